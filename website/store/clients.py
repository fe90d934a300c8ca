"""Clients: lookup by client_id (the token endpoint's from the in-process cache, with the
throttle lock), and deletion with everything that names them."""

from sqlalchemy import bindparam, delete, insert, select
from sqlalchemy.exc import IntegrityError

from website.extensions import db
from website.models.apis import ApiClientGrant
from website.models.base import hash_secret, now
from website.models.clients import (
    ClientAssertionJti,
    ClientSnapshot,
    OAuth2Client,
    RegistrationAccessToken,
    SecretView,
)
from website.models.grants import AuthorizationCode, Consent, Token
from website.models.pending import DeviceCode, PushedAuthorizationRequest
from website.store import throttle
from website.store.cache import CLIENTS, versioned_cache
from website.store.tokens import commit_keeping_loaded


def delete_clients(condition) -> None:
    """Delete the clients matching ``condition`` with everything that names them by client_id
    (tokens, codes, consents, registration access tokens, secret views, device codes, pushed
    requests), in the caller's transaction."""
    client_ids = select(OAuth2Client.client_id).where(condition).scalar_subquery()
    for model in (Token, AuthorizationCode, Consent, RegistrationAccessToken, ApiClientGrant, SecretView,
                  ClientAssertionJti, DeviceCode, PushedAuthorizationRequest):
        db.session.execute(delete(model).where(model.client_id.in_(client_ids)))
    db.session.execute(delete(OAuth2Client).where(condition))


_CLIENT_BY_ID = select(OAuth2Client).where(OAuth2Client.client_id == bindparam("client_id"))


#: The client and its throttle lock in one query (two subjects: the client and its address).
_CLIENT_AND_LOCK = select(OAuth2Client, throttle.locked_until_subquery(2)).where(
    OAuth2Client.client_id == bindparam("client_id")
)


def possible_client_id(client_id: str) -> bool:
    """Tell whether a value can be a client_id at all (so it is worth a query)."""
    # A NUL byte is never in a client_id, and PostgreSQL refuses to even compare one.
    return bool(client_id) and len(client_id) <= 48 and "\x00" not in client_id


def query_client(client_id: str) -> OAuth2Client | None:
    """Find a client by its client_id."""
    if not possible_client_id(client_id):
        return None
    return db.session.scalar(_CLIENT_BY_ID, {"client_id": client_id})


def query_client_and_lock(client_id: str, subjects) -> tuple[ClientSnapshot | None, int]:
    """The client, read-only (from this process's cache when it holds it: store/cache.py),
    and the seconds until its two throttle subjects are unlocked. A cached client costs one
    statement (the lock) when the counters live in the database, none with Redis; one not
    cached yet is read with its lock in one query."""
    if not possible_client_id(client_id):
        return None, throttle.locked_for(*subjects)
    entries = versioned_cache().fresh(CLIENTS)
    if entries is not None and (cached := entries.get(client_id)) is not None:
        return cached, throttle.locked_for(*subjects)
    if throttle.uses_database():
        row = db.session.execute(
            _CLIENT_AND_LOCK, {"client_id": client_id, **throttle.key_parameters(*subjects)}
        ).first()
        client, wait = (row[0], throttle.wait_until(row[1])) if row is not None else (None, None)
    else:
        client, wait = query_client(client_id), None
    if wait is None:
        wait = throttle.locked_for(*subjects)
    if client is None:
        return None, wait  # unknown client_ids are not kept: anyone can make up more
    snapshot = ClientSnapshot(client)
    if entries is not None:
        entries[client_id] = snapshot
    return snapshot, wait


def read_client(client_id: str) -> ClientSnapshot | None:
    """The client, read-only, from this process's cache (loaded into it on a miss)."""
    if not possible_client_id(client_id):
        return None
    entries = versioned_cache().fresh(CLIENTS)
    if entries is not None and (cached := entries.get(client_id)) is not None:
        return cached
    client = query_client(client_id)
    if client is None:
        return None
    snapshot = ClientSnapshot(client)
    if entries is not None:
        entries[client_id] = snapshot
    return snapshot


def spend_assertion_jti(client_id: str, jti: str, expires_at: int) -> bool:
    """Record that the client used a client assertion with this jti; False if it did before
    (a replay). The unique (client_id, jti) row decides, so of two simultaneous requests with
    one assertion only one gets in. Committed at once: the jti is spent even if the rest of
    the request fails. The client's expired jtis go in the same transaction."""
    db.session.execute(delete(ClientAssertionJti).where(
        ClientAssertionJti.client_id == client_id, ClientAssertionJti.expires_at < now()))
    try:
        db.session.execute(insert(ClientAssertionJti).values(
            client_id=client_id, jti_hash=hash_secret(jti), expires_at=expires_at))
        commit_keeping_loaded()
    except IntegrityError:
        db.session.rollback()
        return False
    return True
