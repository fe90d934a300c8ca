"""Clients: lookup by client_id (with the throttle lock in one query) and deletion
with everything that names them."""


from flask import g
from sqlalchemy import (
    bindparam,
    delete,
    select,
)

from website.extensions import db
from website.models.apis import ApiClientGrant
from website.models.clients import OAuth2Client, RegistrationAccessToken
from website.models.grants import AuthorizationCode, Consent, Token
from website.store import throttle


def delete_clients(condition) -> None:
    """Delete the clients matching ``condition`` with everything that names them by client_id
    (tokens, codes, consents, registration access tokens), in the caller's transaction."""
    client_ids = select(OAuth2Client.client_id).where(condition).scalar_subquery()
    for model in (Token, AuthorizationCode, Consent, RegistrationAccessToken, ApiClientGrant):
        db.session.execute(delete(model).where(model.client_id.in_(client_ids)))
    db.session.execute(delete(OAuth2Client).where(condition))


_CLIENT_BY_ID = select(OAuth2Client).where(OAuth2Client.client_id == bindparam("client_id"))


#: The client and its throttle lock in one query (two subjects: the client and its address).
_CLIENT_AND_LOCK = select(OAuth2Client, throttle.locked_until_subquery(2)).where(
    OAuth2Client.client_id == bindparam("client_id")
)


def _possible_client_id(client_id: str) -> bool:
    # A NUL byte is never in a client_id, and PostgreSQL refuses to even compare one.
    return bool(client_id) and len(client_id) <= 48 and "\x00" not in client_id


def query_client(client_id: str) -> OAuth2Client | None:
    """Find a client by its client_id."""
    if not _possible_client_id(client_id):
        return None
    prefetched = g.get("prefetched_client")
    if prefetched is not None and prefetched.client_id == client_id:
        return prefetched  # read with its lock by AuthorizationServer.authenticate_client
    return db.session.scalar(_CLIENT_BY_ID, {"client_id": client_id})
