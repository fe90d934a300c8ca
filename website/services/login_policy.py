"""What a person must do before the consent page (prompt, max_age, screen_hint, and a second
factor for acr_values, an essential acr, an app's require_mfa or the MFA policy)."""

from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import InvalidRequestError
from authlib.oidc.core.errors import ConsentRequiredError, InteractionRequiredError, LoginRequiredError

from website.models.base import now
from website.oauth2.acr import acr_for, requested_acr
from website.oauth2.response_modes import (
    FORM_POST,
    allowed_response_modes,
    can_form_post,
    default_response_mode,
)
from website.services.consent import consent_required
from website.services.mfa import needs_step_up
from website.services.sessions import current_session_id, federation


def redirect_target(grant) -> tuple[str, bool]:
    """Where an error for this (validated) request is sent, and whether in the fragment."""
    redirect_uri = grant.redirect_uri or grant.validate_authorization_redirect_uri(
        grant.request, grant.request.client
    )
    return redirect_uri, isinstance(grant, grants.ImplicitGrant)


def _upstream_acr(amr, asked: list[str]) -> str | None:
    """The upstream's acr for a session that signed in through an upstream, when the request
    asks for an acr (acr_values or an acr claim): the app learns how the upstream
    authenticated the person, which this server cannot say better."""
    if not asked or "fed" not in (amr or ()) or (signed_in_with := federation()) is None:
        return None
    acr = signed_in_with.get("acr")
    return acr if isinstance(acr, str) and acr else None


def authentication_step(grant, end_user, auth_time: int | None, amr=None, fresh_login: bool = False) -> str | None:
    """What the person must do before the consent page: "login", "signup", "mfa" (add a
    second factor to this session) or nothing.

    Acts on prompt (none, login, consent), max_age, screen_hint=signup (``fresh_login``: the
    person just logged in for this request, which satisfies prompt=login and max_age), and on
    acr_values or an ``acr`` claim asking for two factors, a client registered with
    ``require_mfa`` and the MFA policy (services/mfa.py); raises the OAuth2Error to send back
    for a response_mode the response type does not answer in, an essential acr the server
    never issues, or when prompt=none forbids the page that would be needed. Sets the
    request's auth_time, amr and acr, which the code and id_token carry.
    """
    amr = list(amr or ()) or (["pwd"] if end_user is not None else None)
    grant.request.auth_time = auth_time
    grant.request.amr = amr
    grant.request.sid = current_session_id()  # the id_token's sid (Back-Channel Logout §2.4)
    data = grant.request.payload.data
    prompts = (data.get("prompt") or "").split()
    redirect_uri, fragment = redirect_target(grant)
    mode = data.get("response_mode", default_response_mode(fragment))
    if mode not in allowed_response_modes(fragment):
        modes = " or ".join(allowed_response_modes(fragment))
        raise InvalidRequestError(f"This response_type answers with response_mode={modes} only.",
                                  redirect_uri=redirect_uri, redirect_fragment=fragment)
    if mode == FORM_POST and not can_form_post(redirect_uri):
        # No redirect_uri: shown to the person, since the client asked for no other mode.
        raise InvalidRequestError("response_mode=form_post needs an http or https redirect URI.")
    max_age = data.get("max_age")
    if max_age is not None:
        # isascii: str.isdigit() also admits digits such as "²" that int() refuses.
        if not (max_age.isascii() and max_age.isdigit()) or len(max_age) > 10:
            raise InvalidRequestError("'max_age' must be a whole number of seconds.",
                                      redirect_uri=redirect_uri, redirect_fragment=fragment)
    asked = requested_acr(data, getattr(grant.request, "acr_claim", None))
    asked.check(redirect_uri=redirect_uri, redirect_fragment=fragment)
    grant.request.acr = _upstream_acr(amr, asked.values) or acr_for(amr, asked.values)
    login = end_user is None or (not fresh_login and ("login" in prompts or grant.prompt == "login"))
    if not login and not fresh_login and max_age is not None and now() - (auth_time or 0) > int(max_age):
        login = True
    if login:
        if "none" in prompts:
            raise LoginRequiredError(redirect_uri=redirect_uri, redirect_fragment=fragment)
        return "signup" if data.get("screen_hint") == "signup" else "login"
    if needs_step_up(end_user, grant.client, amr, asked.wants_mfa()):
        if "none" in prompts:
            raise InteractionRequiredError("A second factor is needed, and prompt=none allows no page.",
                                           redirect_uri=redirect_uri, redirect_fragment=fragment)
        return "mfa"
    if "none" in prompts and consent_required(grant, end_user):
        # prompt=none may go on only when the remembered consent already covers the scopes.
        raise ConsentRequiredError(redirect_uri=redirect_uri, redirect_fragment=fragment)
    return None
