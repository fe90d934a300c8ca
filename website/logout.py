"""Logging out from an app: OpenID Connect RP-Initiated Logout 1.0 at /oauth/logout, and
Auth0's /v2/logout.

The browser goes back to the app only to a URL registered for that client
(``post_logout_redirect_uris``, Auth0's "Allowed Logout URLs"), matched exactly; otherwise
the person sees a page saying they are signed out.
"""

from urllib.parse import urlencode

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749.errors import InvalidRequestError
from authlib.oidc.rpinitiated import EndSessionEndpoint as _EndSessionEndpoint
from flask import Blueprint, abort, g, redirect, render_template, request, session

from .forms import ConfirmForm
from .oauth2 import authorization, query_client
from .oidc import advertise, get_issuer
from .signing import SIGNING_ALG, get_public_jwks


def sign_out() -> None:
    """End the person's session here (and for the page this request still renders)."""
    session.clear()
    g.user = None


def registered_logout_uris(client) -> list[str]:
    """The URLs the client registered for the browser to return to after logging out."""
    return list(client.client_metadata.get("post_logout_redirect_uris") or []) if client else []


class EndSessionEndpoint(_EndSessionEndpoint):
    """The id_token_hint is verified with the server's published keys and must come from
    this issuer; without it the person confirms the logout on a page first."""

    def get_server_jwks(self):
        return get_public_jwks()

    def get_algorithms(self) -> list[str]:
        return [SIGNING_ALG]

    def validate_request(self, request):
        if len(request.payload.data.get("id_token_hint") or "") > 8192:
            raise InvalidRequestError("The id_token_hint is too long.")
        end_session_request = super().validate_request(request)
        claims = end_session_request.id_token_claims
        if claims is not None and claims.get("iss") != get_issuer():
            raise InvalidRequestError("The id_token_hint was not issued by this server.")
        client_id = request.payload.data.get("client_id")
        if client_id and end_session_request.client is None:
            raise InvalidRequestError("The client does not exist on this server.")
        return end_session_request

    def is_post_logout_redirect_uri_legitimate(self, request, post_logout_redirect_uri, client, logout_hint):
        # Without an id_token_hint the person confirmed on our page (or had no session to
        # lose), and the URI is registered for the client: that is legitimate enough.
        return bool(g.get("logout_confirmed"))

    def end_session(self, end_session_request) -> None:
        sign_out()


bp = Blueprint("logout", __name__)

#: The request parameters carried through the confirmation page.
_CARRIED = ("client_id", "post_logout_redirect_uri", "state", "logout_hint", "ui_locales")


@bp.route("/oauth/logout", methods=["GET", "POST"])
@advertise("end_session_endpoint")
def end_session():
    """Log the person out for an app (RP-Initiated Logout), then return to it if allowed."""
    confirming = request.method == "POST" and "confirm" in request.form
    if request.method == "POST" and not confirming:
        # A cross-site POST carries no SameSite=Lax session cookie: continue as a top-level GET.
        return redirect(request.path + "?" + urlencode(list(request.form.items(multi=True))), 303)
    if confirming and not ConfirmForm().validate_on_submit():
        abort(400)
    g.logout_confirmed = confirming or g.user is None
    try:
        end_session_request = authorization.validate_endpoint_request(EndSessionEndpoint.ENDPOINT_NAME)
    except OAuth2Error as error:
        # Never redirect on an invalid request (RP-Initiated Logout §4).
        return render_template("logout/error.html", error=error), 400
    client = end_session_request.client
    if end_session_request.needs_confirmation and not g.logout_confirmed:
        carried = {k: request.values[k] for k in _CARRIED if request.values.get(k)}
        return render_template("logout/confirm.html", client=client, carried=carried, form=ConfirmForm())
    response = authorization.create_endpoint_response(EndSessionEndpoint.ENDPOINT_NAME, end_session_request)
    return response or _logged_out_page(client, request.values.get("post_logout_redirect_uri"))


@bp.route("/v2/logout")
def auth0_logout():
    """Auth0's logout: sign out, then go to ``returnTo`` only if it is registered for ``client_id``."""
    sign_out()
    client = query_client(request.args.get("client_id", ""))
    return_to = request.args.get("returnTo")
    if return_to and return_to in registered_logout_uris(client):
        return redirect(return_to)
    return _logged_out_page(client, return_to)


def _logged_out_page(client, refused_uri: str | None):
    return render_template("logout/done.html", client=client, refused_uri=refused_uri)


def init_app(app, csrf) -> None:
    """Register the end-session endpoint with the authorization server, and the routes."""
    app.extensions["authorization_server"].register_endpoint(EndSessionEndpoint)
    # Apps send people here from their own pages; the confirmation form checks its own token.
    csrf.exempt(end_session)
    app.register_blueprint(bp)
