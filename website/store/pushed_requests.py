"""Pushed authorization requests (RFC 9126): storing one under its request_uri (kept as its
SHA-256), finding the client's unexpired one, and spending it once."""

import json

from sqlalchemy import bindparam, select, update

from website.extensions import db
from website.models.base import hash_secret, now
from website.models.pending import PushedAuthorizationRequest

#: The longest request_uri looked up.
MAX_REQUEST_URI_LENGTH = 512

_BY_HASH = select(PushedAuthorizationRequest).where(
    PushedAuthorizationRequest.request_uri_hash == bindparam("hash"))


def save_pushed_request(request_uri: str, client_id: str, parameters: dict, lifetime: int) -> None:
    """Store a pushed request's parameters under its request_uri's hash, and commit."""
    db.session.add(PushedAuthorizationRequest(
        request_uri_hash=hash_secret(request_uri), client_id=client_id,
        parameters=json.dumps(parameters), expires_at=now() + lifetime))
    db.session.commit()


def query_pushed_request(request_uri: str, client_id: str) -> PushedAuthorizationRequest | None:
    """The unused, unexpired request pushed by this client under this request_uri, or None:
    a request_uri is bound to the client that pushed it (RFC 9126 §4)."""
    if not request_uri or len(request_uri) > MAX_REQUEST_URI_LENGTH:
        return None
    item = db.session.scalar(_BY_HASH, {"hash": hash_secret(request_uri)})
    if item is None or item.client_id != client_id or item.used_at is not None or item.is_expired():
        return None
    return item


def pushed_parameters(item: PushedAuthorizationRequest) -> dict:
    """The pushed request's parameters."""
    return json.loads(item.parameters)


def claim_pushed_request(item_id: int) -> bool:
    """Spend the request_uri, and commit; False if it was already spent (or has expired)."""
    claimed = db.session.execute(
        update(PushedAuthorizationRequest)
        .where(PushedAuthorizationRequest.id == item_id, PushedAuthorizationRequest.used_at.is_(None),
               PushedAuthorizationRequest.expires_at > now())
        .values(used_at=now())
    ).rowcount
    db.session.commit()
    return bool(claimed)
