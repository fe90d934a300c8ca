"""Blueprint: the OAuth 2.0 and OpenID Connect protocol endpoints (authorize, token, revoke,
userinfo, discovery, JWKS), with Auth0-style aliases so apps written for Auth0 work here."""

from urllib.parse import urlsplit

from authlib.oauth2 import OAuth2Error
from flask import Blueprint, Response, g, redirect, render_template, request, session

from . import audit, oidc
from .auth import remember_client_in_session
from .consent import consent_required, effective_scope, remember_consent, requested_audience
from .forms import ConsentForm
from .models import db
from .oauth2 import authorization
from .oidc import advertise
from .resources import find_api, scope_descriptions

bp = Blueprint("oauth", __name__)


def render_authorization_error(error: OAuth2Error):
    """Redirect the error to the client only when its redirect URI was validated and the
    person is signed in; otherwise show it to the person.

    Anyone can register a client with their own redirect URIs, so an error sent to a visitor
    who is not signed in would make this server an open redirector (RFC 9700 §4.11.2: the
    person is authenticated first). The page names where the app wants to go, with a link.
    """
    if error.redirect_uri:
        response = authorization.handle_error_response(None, error)
        oidc.issuer_parameter.add_issuer_parameter(authorization, response)
        if g.user is not None:
            return response
        continue_url = response.headers["Location"]
        return render_template("oauth/error.html", error=error, continue_url=continue_url,
                               continue_host=urlsplit(continue_url).netloc), 400
    return render_template("oauth/error.html", error=error), error.status_code


def _authorization_response(grant, grant_user):
    """The redirect back to the client; a successful one is remembered in the session."""
    if grant_user is not None:
        remember_client_in_session(grant.client.client_id)
    return authorization.create_authorization_response(grant=grant, grant_user=grant_user)


# url_for, and so discovery, gives the route nearest the function; /authorize is Auth0's path.
@bp.route("/authorize", methods=["GET", "POST"])
@bp.route("/oauth/authorize", methods=["GET", "POST"])
@advertise("authorization_endpoint")
def authorize():
    """Ask the signed-in person to allow or deny the client's request."""
    try:
        grant = authorization.get_consent_grant(end_user=g.user)
        step = oidc.authentication_step(grant, g.user, session.get("auth_time"))
    except OAuth2Error as error:
        return render_authorization_error(error)
    if step is not None:
        return redirect(oidc.login_redirect(step))
    if request.method == "GET" and not consent_required(grant, g.user):
        # The user already allowed these scopes: no need to ask again.
        return _authorization_response(grant, g.user)
    form = ConsentForm()
    if request.method == "GET" or not form.validate_on_submit():
        status = 400 if request.method == "POST" else 200
        audience = requested_audience(grant)
        return render_template("oauth/authorize.html", grant=grant, form=form,
                               scopes=effective_scope(grant).split(),
                               apis=[find_api(audience)] if audience else [],
                               scope_descriptions=scope_descriptions()), status
    grant_user = g.user if form.allow.data else None
    if grant_user is not None:
        remember_consent(grant_user, grant.client, effective_scope(grant), requested_audience(grant))
    audit.record("consent_granted" if grant_user else "consent_denied", user=g.user,
                 client_id=grant.client.client_id, scope=grant.request.scope,
                 audience=requested_audience(grant))
    db.session.commit()
    return _authorization_response(grant, grant_user)


@bp.route("/oauth/token", methods=["POST"])
@advertise("token_endpoint")
def issue_token():
    """Exchange a grant for tokens (RFC 6749 §3.2); a JSON body works too, as with Auth0."""
    return authorization.create_token_response()


@bp.route("/oauth/revoke", methods=["POST"])
@advertise("revocation_endpoint")
def revoke_token():
    """Revoke an access or refresh token (RFC 7009)."""
    return authorization.create_endpoint_response("revocation")


@bp.route("/userinfo", methods=["GET", "POST"])
@bp.route("/oauth/userinfo", methods=["GET", "POST"])
@advertise("userinfo_endpoint")
def userinfo():
    """The claims about the token's user that its scopes allow (OpenID Connect UserInfo)."""
    return authorization.create_endpoint_response("userinfo")


@bp.route("/.well-known/jwks.json")
@advertise("jwks_uri")
def jwks():
    """The public keys that verify id_tokens (JWKS), old ones until their tokens expire."""
    return _cached_json(oidc.jwks_json(), oidc.JWKS_MAX_AGE)


@bp.route("/.well-known/openid-configuration")
@bp.route("/.well-known/oauth-authorization-server")
def discovery():
    """OpenID Connect Discovery and RFC 8414 metadata (one document serves both)."""
    return _cached_json(oidc.discovery_json(authorization), oidc.DISCOVERY_MAX_AGE)


def _cached_json(body: str, max_age: int) -> Response:
    response = Response(body, mimetype="application/json")
    response.headers["Cache-Control"] = f"public, max-age={max_age}"
    return response
