"""Blueprint: the OAuth 2.0 protocol endpoints (authorize, token, revoke)."""

from authlib.oauth2 import OAuth2Error
from flask import Blueprint, g, redirect, render_template, request, url_for

from . import audit
from .client_metadata import SCOPE_DESCRIPTIONS
from .forms import ConsentForm
from .models import db
from .oauth2 import authorization

bp = Blueprint("oauth", __name__)


def render_authorization_error(error: OAuth2Error):
    """Redirect the error to the client only when its redirect URI was validated;
    otherwise (unknown client, unregistered redirect URI) show it to the person."""
    if error.redirect_uri:
        return authorization.handle_error_response(None, error)
    return render_template("oauth/error.html", error=error), error.status_code


@bp.route("/oauth/authorize", methods=["GET", "POST"])
def authorize():
    """Ask the signed-in person to allow or deny the client's request."""
    try:
        grant = authorization.get_consent_grant(end_user=g.user)
    except OAuth2Error as error:
        return render_authorization_error(error)
    if g.user is None:
        return redirect(url_for("auth.login", next=request.full_path))
    form = ConsentForm()
    if request.method == "GET" or not form.validate_on_submit():
        status = 400 if request.method == "POST" else 200
        return render_template("oauth/authorize.html", grant=grant, form=form,
                               scopes=grant.request.scope.split(),
                               scope_descriptions=SCOPE_DESCRIPTIONS), status
    grant_user = g.user if form.allow.data else None
    audit.record("consent_granted" if grant_user else "consent_denied", user=g.user,
                 client_id=grant.client.client_id, scope=grant.request.scope)
    db.session.commit()
    return authorization.create_authorization_response(grant=grant, grant_user=grant_user)


@bp.route("/oauth/token", methods=["POST"])
def issue_token():
    """Exchange a grant for tokens (RFC 6749 §3.2)."""
    return authorization.create_token_response()


@bp.route("/oauth/revoke", methods=["POST"])
def revoke_token():
    """Revoke an access or refresh token (RFC 7009)."""
    return authorization.create_endpoint_response("revocation")
