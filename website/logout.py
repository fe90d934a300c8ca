"""Logging out from an app: OpenID Connect RP-Initiated Logout 1.0 at /oauth/logout, and
Auth0's /v2/logout.

Logging out from an app ends only this browser's session; ending every session is the
person's own action on the account page. The browser goes back to the app only to a URL
registered for that client (``post_logout_redirect_uris``, Auth0's "Allowed Logout URLs"),
matched exactly, and automatically only when the request is tied to this person's session
with that client (a valid id_token_hint; for /v2/logout, a sign-in to the client in this
session). Anyone can register a client, so otherwise a page names the destination's host and
the person decides (RFC 9700 §4.11.2).
"""

import hmac
from urllib.parse import urlencode, urlsplit

from authlib.common.urls import add_params_to_uri
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749.errors import InvalidRequestError
from authlib.oidc.rpinitiated import EndSessionEndpoint as _EndSessionEndpoint
from flask import Blueprint, abort, g, redirect, render_template, request, session

from .auth import log_out, session_used_client
from .forms import ConfirmForm
from .oauth2 import authorization, query_client
from .oidc import advertise, get_issuer
from .signing import SIGNING_ALG, get_public_jwks


def registered_logout_uris(client) -> list[str]:
    """The URLs the client registered for the browser to return to after logging out."""
    return list(client.client_metadata.get("post_logout_redirect_uris") or []) if client else []


def hint_ties_session(claims: dict | None, client) -> bool:
    """Whether a (verified) id_token_hint names the signed-in person and was issued to the
    client: only then is it a valid hint for this session (RP-Initiated Logout §2, §6).
    An expired hint still counts, as the spec allows."""
    if claims is None or client is None or g.get("user") is None:
        return False
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    return client.client_id in audiences and hmac.compare_digest(str(claims.get("sub", "")), g.user.sub)


class EndSessionEndpoint(_EndSessionEndpoint):
    """The id_token_hint is verified with the server's published keys and must come from
    this issuer; a hint that does not name the signed-in person and the client counts as no
    hint, and without a valid hint the person confirms on a page first."""

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
        if claims is not None and not hint_ties_session(claims, end_session_request.client):
            # Another person's (or client's) id_token: not a valid hint for this session.
            end_session_request.id_token_claims = None
            if not g.get("logout_confirmed"):
                end_session_request.redirect_uri = None
        return end_session_request

    def is_post_logout_redirect_uri_legitimate(self, request, post_logout_redirect_uri, client, logout_hint):
        # Without a valid id_token_hint the person confirmed on our page, which named the
        # destination, and the URI is registered for the client: that is legitimate enough.
        return bool(g.get("logout_confirmed"))

    def end_session(self, end_session_request) -> None:
        log_out(everywhere=False)


bp = Blueprint("logout", __name__)

#: The request parameters carried through the confirmation page.
_CARRIED = ("client_id", "post_logout_redirect_uri", "state", "logout_hint", "ui_locales")


@bp.route("/oauth/logout", methods=["GET", "POST"])
@advertise("end_session_endpoint")
def end_session():
    """Log the person out of this browser for an app (RP-Initiated Logout), then return to it
    if allowed."""
    confirming = request.method == "POST" and "confirm" in request.form
    if request.method == "POST" and not confirming:
        # A cross-site POST carries no SameSite=Lax session cookie: continue as a top-level GET.
        return redirect(request.path + "?" + urlencode(list(request.form.items(multi=True))), 303)
    if confirming and not ConfirmForm().validate_on_submit():
        abort(400)
    g.logout_confirmed = confirming
    try:
        end_session_request = authorization.validate_endpoint_request(EndSessionEndpoint.ENDPOINT_NAME)
    except OAuth2Error as error:
        # Never redirect on an invalid request (RP-Initiated Logout §4).
        return render_template("logout/error.html", error=error), 400
    client = end_session_request.client
    requested_uri = request.values.get("post_logout_redirect_uri")
    if end_session_request.needs_confirmation and not confirming:
        destination = None
        if requested_uri and requested_uri in registered_logout_uris(client):
            state = request.values.get("state")
            destination = add_params_to_uri(requested_uri, {"state": state}) if state else requested_uri
        if g.user is not None or destination:
            carried = {k: request.values[k] for k in _CARRIED if request.values.get(k)}
            if client is not None:
                carried["client_id"] = client.client_id  # it may have come from the hint
            return render_template("logout/confirm.html", client=client, carried=carried, form=ConfirmForm(),
                                   destination=destination, destination_host=_host(destination))
    response = authorization.create_endpoint_response(EndSessionEndpoint.ENDPOINT_NAME, end_session_request)
    return response or _logged_out_page(client, requested_uri)


@bp.route("/v2/logout")
def auth0_logout():
    """Auth0's logout: sign this browser out, then go to ``returnTo`` if it is registered for
    ``client_id``: at once when this session signed in to that client, otherwise from a page
    that names where it leads."""
    # A plain GET that any site can send the browser to (no CSRF token, by Auth0's design):
    # it may end this browser's session, but not the user's sessions on other devices.
    client_id = request.args.get("client_id", "")
    client = query_client(client_id)
    used_by_this_session = client is not None and session_used_client(client.client_id)
    log_out(everywhere=False)
    return_to = request.args.get("returnTo")
    if return_to and return_to in registered_logout_uris(client):
        if used_by_this_session:
            return redirect(return_to)
        return render_template("logout/done.html", client=client, refused_uri=None,
                               destination=return_to, destination_host=_host(return_to))
    return _logged_out_page(client, return_to)


def _host(url: str | None) -> str | None:
    """The host (and port) a URL leads to, as the person should read it."""
    if not url:
        return None
    parts = urlsplit(url)
    return (parts.hostname or "") + (f":{parts.port}" if parts.port else "")


def _logged_out_page(client, refused_uri: str | None):
    return render_template("logout/done.html", client=client, refused_uri=refused_uri)


def init_app(app, csrf) -> None:
    """Register the end-session endpoint with the authorization server, and the routes."""
    app.extensions["authorization_server"].register_endpoint(EndSessionEndpoint)
    # Apps send people here from their own pages; the confirmation form checks its own token.
    csrf.exempt(end_session)
    app.register_blueprint(bp)
