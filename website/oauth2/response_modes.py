"""Response modes (OAuth 2.0 Multiple Response Types §2.1, Form Post Response Mode): which
mode answers a request, and the parameters of a redirect for the form_post page.

Every grant here answers with a redirect (RFC 9207's ``iss`` is added to it by
compat.IssuerParameter); for ``response_mode=form_post`` the view turns that redirect into
a page whose form posts the same parameters to the redirect URI.
"""

from urllib.parse import parse_qsl, urlsplit

from authlib.common.urls import add_params_to_uri
from authlib.oauth2.rfc6749.errors import AccessDeniedError

FORM_POST = "form_post"

#: What discovery lists: each response type's default mode, and form_post for all of them.
RESPONSE_MODES = ["query", "fragment", FORM_POST]


def default_response_mode(fragment: bool) -> str:
    """The mode a response type answers in when the request names none."""
    return "fragment" if fragment else "query"


def allowed_response_modes(fragment: bool) -> tuple[str, ...]:
    """The modes a response type may ask for: its default and form_post. Tokens never go in
    the query (Multiple Response Types §3), and the code flow keeps to the query."""
    return (default_response_mode(fragment), FORM_POST)


def can_form_post(redirect_uri: str) -> bool:
    """A form can be posted only to http(s): a ``javascript:`` action would run a script in
    this site's origin, and an app's own scheme cannot receive a POST."""
    return urlsplit(redirect_uri).scheme in ("http", "https")


def response_parameters(location: str, redirect_uri: str) -> list[tuple[str, str]]:
    """The parameters a redirect to ``location`` carries to ``redirect_uri``: those after the
    redirect URI's own query (Authlib appends to it), or the whole fragment."""
    parts = urlsplit(location)
    if parts.fragment:
        return parse_qsl(parts.fragment, keep_blank_values=True)
    own = parse_qsl(urlsplit(redirect_uri).query, keep_blank_values=True)
    return parse_qsl(parts.query, keep_blank_values=True)[len(own):]


class RedirectResponse:
    """OpenID Connect implicit and hybrid grants: the response is always a redirect (in the
    fragment). Authlib (1.9) renders form_post itself, with an inline onload script that the
    site's CSP blocks and without RFC 9207's iss; the view builds that page instead."""

    def create_authorization_response(self, redirect_uri, grant_user):
        state = self.request.payload.state
        if grant_user:
            params = self.create_granted_params(grant_user)
            if state:
                params.append(("state", state))
        else:
            params = AccessDeniedError(state=state).get_body()
        return 302, "", [("Location", add_params_to_uri(redirect_uri, params, fragment=True))]
