"""Blueprint: resources protected by bearer tokens."""

from authlib.integrations.flask_oauth2 import current_token
from flask import Blueprint, jsonify

from website.http.endpoints import protocol_endpoint
from website.http.front import jsonify_body
from website.oauth2.protector import require_oauth

bp = Blueprint("api", __name__, url_prefix="/api")


#: The scope /api/me needs.
ME_SCOPE = "profile"


def me_claims(user) -> dict:
    """/api/me's answer: id, sub (as in id_tokens), username and email."""
    return {"id": user.id, "sub": user.sub, "username": user.username, "email": user.email}


def me_below_flask(token_string: str) -> bytes | None:
    """/api/me's usual answer, given by the front below Flask (http/front.py), as jsonify
    writes it: for a person's token that require_oauth accepts; None for anything else,
    which the view answers."""
    token = require_oauth.accepted_bearer(token_string, [ME_SCOPE])
    if token is None or token.user is None:
        return None
    return jsonify_body(me_claims(token.user))


@bp.route("/me")
@protocol_endpoint(bearer_answer=me_below_flask)
@require_oauth(ME_SCOPE)
def me():
    """The user the token was issued for (me_claims)."""
    user = current_token.user
    if user is None:
        return jsonify(error="invalid_token",
                       error_description="This token was issued to a client, not for a user."), 403
    return jsonify(me_claims(user))
