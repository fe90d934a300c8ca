"""The admin API's audience: a built-in API (``{issuer}/api/v2/``, as Auth0's Management API)
whose JWT access tokens clients get with the client credentials grant, and the protector
that checks them on every /api/v2 request (by hash, so a revocation counts at once)."""

from authlib.oauth2.rfc6750 import BearerTokenValidator
from flask import current_app
from sqlalchemy import select

from website.extensions import db
from website.models.apis import ResourceServer
from website.oauth2.keys import get_issuer
from website.oauth2.protector import ResourceProtector
from website.store.tokens import MAX_TOKEN_LENGTH, read_token_by_access_token

#: The admin API's scopes, each in words (Auth0's Management API names where they exist).
MANAGEMENT_SCOPES = {
    "read:users": "Read people's accounts, groups, roles and sessions.",
    "create:users": "Create accounts.",
    "update:users": "Change accounts: profile, password, disabled, groups and roles.",
    "delete:users": "Delete accounts.",
    "read:sessions": "Read people's browser sessions.",
    "delete:sessions": "Sign people out.",
    "read:clients": "Read clients and their roles.",
    "create:clients": "Register clients.",
    "update:clients": "Change clients, rotate their secrets, define their roles.",
    "delete:clients": "Delete clients.",
    "read:groups": "Read groups and their members.",
    "create:groups": "Create groups.",
    "update:groups": "Change groups and their members.",
    "delete:groups": "Delete groups.",
}

MANAGEMENT_API_NAME = "Admin API"


def management_identifier() -> str:
    """The admin API's audience: the issuer followed by /api/v2/."""
    return get_issuer().rstrip("/") + "/api/v2/"


def ensure_management_api() -> ResourceServer:
    """The admin API's row among the APIs, made (or its scopes brought up to date) on first
    use; the caller commits."""
    identifier = management_identifier()
    api = db.session.scalar(select(ResourceServer).where(ResourceServer.identifier == identifier))
    if api is None:
        api = ResourceServer(identifier=identifier, name=MANAGEMENT_API_NAME, scopes=list(MANAGEMENT_SCOPES),
                             access_token_lifetime=current_app.config["OAUTH2_ACCESS_TOKEN_LIFETIME"])
        db.session.add(api)
    elif sorted(api.scopes or []) != sorted(MANAGEMENT_SCOPES):
        api.scopes = list(MANAGEMENT_SCOPES)
    return api


class ManagementTokenValidator(BearerTokenValidator):
    """A bearer token issued for the admin API's audience, found by its hash: unknown, expired,
    revoked and other audiences' tokens fail."""

    def authenticate_token(self, token_string: str):
        if not token_string or len(token_string) > MAX_TOKEN_LENGTH:
            return None
        token = read_token_by_access_token(token_string)
        if token is None or token.audience != management_identifier():
            return None
        return token


management_protector = ResourceProtector()
management_protector.register_token_validator(ManagementTokenValidator())
