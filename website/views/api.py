"""Blueprint: resources protected by bearer tokens."""

from authlib.integrations.flask_oauth2 import current_token
from flask import Blueprint, jsonify

from website.http.endpoints import protocol_endpoint
from website.oauth2.protector import require_oauth

bp = Blueprint("api", __name__, url_prefix="/api")


@bp.route("/me")
@protocol_endpoint()
@require_oauth("profile")
def me():
    """The user the token was issued for: id, sub (as in id_tokens), username and email."""
    user = current_token.user
    if user is None:
        return jsonify(error="invalid_token",
                       error_description="This token was issued to a client, not for a user."), 403
    return jsonify(id=user.id, sub=user.sub, username=user.username, email=user.email)
