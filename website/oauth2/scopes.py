"""Scopes: which the server and its APIs define, and each in words for people."""

from flask import current_app
from sqlalchemy import select

from website.extensions import db
from website.models.apis import ResourceServer
from website.store.apis import api_scopes


def scope_descriptions() -> dict[str, str]:
    """Each scope in words for people: the server's, and each API's scopes named after the API."""
    described = {}
    for api in db.session.scalars(select(ResourceServer).order_by(ResourceServer.id)):
        for scope in api.scopes or []:
            described.setdefault(scope, f"Use {api.name} on your behalf ({scope}).")
    return {**described, **SCOPE_DESCRIPTIONS}


#: Each scope explained in words, for the consent page.
SCOPE_DESCRIPTIONS = {
    "openid": "Confirm who you are (sign you in).",
    "profile": "See your username and profile.",
    "email": "See your email address.",
    "offline_access": "Keep access while you are away (refresh tokens).",
    "groups": "See which groups you belong to.",
}


def supported_scopes() -> list[str]:
    """The scopes a client may register and request: the server's and its APIs'."""
    server_scopes = current_app.config["OAUTH2_SCOPES"]
    return server_scopes + sorted(api_scopes() - set(server_scopes))
