"""Token introspection (RFC 7662): a client asks whether a token is live and what it grants.

Who may introspect what: a client authenticates with its secret (client_secret_basic or
client_secret_post) and may introspect the tokens issued to itself, and, when an API was
registered with it as its introspection client (``flask create-api --introspection-client``),
the tokens issued for that API. Any other token, like an unknown, expired or revoked one,
answers ``{"active": false}``, so a caller learns nothing about other clients' tokens.
"""

from authlib.oauth2.rfc7662 import IntrospectionEndpoint as _IntrospectionEndpoint
from flask import Blueprint
from sqlalchemy import select

from .models import ResourceServer, TokenRecord, db
from .oauth2 import TokenLookup, authorization, find_token, read_token_by_access_token, read_token_by_refresh_token
from .oidc import advertise, get_issuer

#: Introspection needs a secret: public clients cannot prove who is asking.
INTROSPECTION_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]


class IntrospectionEndpoint(TokenLookup, _IntrospectionEndpoint):
    """RFC 7662 over the hashed tokens of the Token table (opaque and JWT access tokens alike)."""

    CLIENT_AUTH_METHODS = INTROSPECTION_AUTH_METHODS

    def query_token(self, token_string: str, token_type_hint: str | None) -> TokenRecord | None:
        # Read-only: plain records (revocation, which writes, uses ORM rows).
        return find_token(token_string, token_type_hint, read_token_by_access_token, read_token_by_refresh_token)

    def check_permission(self, token: TokenRecord, client, request) -> bool:
        if token.check_client(client):
            return True
        return bool(token.audience) and db.session.scalar(select(ResourceServer.id).where(
            ResourceServer.identifier == token.audience,
            ResourceServer.introspection_client_id == client.client_id,
        )) is not None

    def create_introspection_payload(self, token: TokenRecord | None) -> dict:
        if token is None:
            return {"active": False}
        if token.matched_refresh_token:
            if not token.is_refresh_token_active():
                return {"active": False}
        elif token.is_expired() or token.is_revoked():
            return {"active": False}
        return self.introspect_token(token)

    def introspect_token(self, token: TokenRecord) -> dict:
        payload = {
            "active": True,
            "scope": token.scope,
            "client_id": token.client_id,
            "token_type": token.token_type,
            "exp": token.refresh_token_expires_at if token.matched_refresh_token else token.expires_at,
            "iat": token.issued_at,
            "iss": get_issuer(),
        }
        if token.user is not None:
            payload["sub"] = token.user.sub
            payload["username"] = token.user.username
        else:
            # No resource owner (client credentials): the client is the subject, as in RFC 9068.
            payload["sub"] = token.client_id
        if token.audience:
            payload["aud"] = token.audience
        return {k: v for k, v in payload.items() if v is not None}


bp = Blueprint("introspection", __name__)


@bp.route("/oauth/introspect", methods=["POST"])
@advertise("introspection_endpoint")
def introspect_token():
    """Tell an authenticated client whether its token is active (RFC 7662)."""
    return authorization.create_endpoint_response(IntrospectionEndpoint.ENDPOINT_NAME)


def init_app(app, csrf) -> None:
    """Register the endpoint with the app's authorization server, and its route."""
    app.extensions["authorization_server"].register_endpoint(IntrospectionEndpoint)
    # Clients call this with their own credentials, not a browser session.
    csrf.exempt(introspect_token)
    app.register_blueprint(bp)
