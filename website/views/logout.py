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

from urllib.parse import urlencode, urlsplit

from authlib.common.urls import add_params_to_uri
from authlib.oauth2 import OAuth2Error
from flask import Blueprint, abort, g, redirect, render_template, request

from website.forms import ConfirmForm
from website.http.endpoints import FORM, protocol_endpoint
from website.http.headers import allow_frames
from website.oauth2.endpoints import EndSessionEndpoint, registered_logout_uris
from website.oauth2.logout import frame_origins
from website.oauth2.server import authorization
from website.services.sessions import federation_for_logout, log_out, session_used_client
from website.services.upstreams import start_upstream_logout
from website.store.clients import query_client

bp = Blueprint("logout", __name__)


#: The request parameters carried through the confirmation page.
_CARRIED = ("client_id", "post_logout_redirect_uri", "state", "logout_hint", "ui_locales")


@bp.route("/oauth/logout", methods=["GET", "POST"])
# Apps send people here from their own pages; the confirmation form checks its own token.
@protocol_endpoint(FORM, json=False, csrf_exempt=True, advertise="end_session_endpoint")
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
    # Only a log-out the person's own session vouches for (a valid id_token_hint, or Log out
    # on our confirmation page) also ends the session at the upstream they signed in with.
    vouched = g.user is not None and (confirming or end_session_request.id_token_claims is not None)
    signed_in_with = federation_for_logout() if vouched else None
    frames = log_out(everywhere=False)  # this browser only (see EndSessionEndpoint.end_session)
    continue_to = response.location if response is not None else None
    if upstream_logout := start_upstream_logout(signed_in_with, continue_to, client.client_id if client else None):
        if frames:
            return signed_out_page(frames, client=client, continue_to=upstream_logout)
        return redirect(upstream_logout)
    if continue_to and frames:
        # The apps' front-channel logout frames load first, then the page goes on to the app.
        return signed_out_page(frames, client=client, continue_to=continue_to)
    return response or _logged_out_page(client, requested_uri, frames)


@bp.route("/v2/logout")
@protocol_endpoint(json=False)
def auth0_logout():
    """Auth0's logout: sign this browser out, then go to ``returnTo`` if it is registered for
    ``client_id``: at once when this session signed in to that client, otherwise from a page
    that names where it leads."""
    # A plain GET that any site can send the browser to (no CSRF token, by Auth0's design):
    # it may end this browser's session, but not the user's sessions on other devices.
    client_id = request.args.get("client_id", "")
    client = query_client(client_id)
    used_by_this_session = client is not None and session_used_client(client.client_id)
    # Only a log-out from an app this session signed in to ends the session at the upstream
    # too: any site can send the browser here, and it must not sign the person out there.
    signed_in_with = federation_for_logout() if used_by_this_session else None
    frames = log_out(everywhere=False)
    return_to = request.args.get("returnTo")
    returning = bool(return_to and return_to in registered_logout_uris(client))
    if upstream_logout := start_upstream_logout(signed_in_with, return_to if returning else None,
                                                client.client_id if client else None):
        return signed_out_page(frames, client=client, continue_to=upstream_logout) if frames \
            else redirect(upstream_logout)
    if returning:
        if used_by_this_session:
            return signed_out_page(frames, client=client, continue_to=return_to) if frames else redirect(return_to)
        return signed_out_page(frames, client=client, destination=return_to, destination_host=_host(return_to))
    return _logged_out_page(client, return_to, frames)


def _host(url: str | None) -> str | None:
    """The host (and port) a URL leads to, as the person should read it."""
    if not url:
        return None
    parts = urlsplit(url)
    return (parts.hostname or "") + (f":{parts.port}" if parts.port else "")


def _logged_out_page(client, refused_uri: str | None, frames: list[str]):
    return signed_out_page(frames, client=client, refused_uri=refused_uri)


def signed_out_page(frames: list[str], **context):
    """The signed-out page, framing the apps' front-channel logout URLs (OpenID Connect
    Front-Channel Logout §3) with a CSP that allows exactly their origins."""
    allow_frames(frame_origins(frames))
    return render_template("logout/done.html", frames=frames, **context)
