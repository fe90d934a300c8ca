"""The queue of logout tokens owed to clients (``logout_deliveries``, OpenID Connect
Back-Channel Logout): rows are added in the transaction that ends a session, and claimed by
a worker with a guarded UPDATE (store/queue.py), so two instances never send the same one at once."""

from flask import current_app, has_request_context, request
from sqlalchemy import select

from website.extensions import db
from website.models.base import now
from website.models.clients import OAuth2Client
from website.models.sessions import LogoutDelivery
from website.models.users import User
from website.store import queue


def backchannel_clients(client_ids) -> list[str]:
    """Those of the clients that registered a backchannel_logout_uri, in the order given."""
    if not client_ids:
        return []
    rows = db.session.scalars(select(OAuth2Client).where(OAuth2Client.client_id.in_(list(client_ids))))
    wanting = {c.client_id for c in rows if (c.extra_metadata or {}).get("backchannel_logout_uri")}
    return [c for c in dict.fromkeys(client_ids) if c in wanting]


def enqueue(user_id: int, ended: list[tuple[str, list]]) -> int:
    """Queue a logout token for every back-channel client each ended session ``(sid,
    clients)`` signed in to (in the caller's transaction); return how many."""
    if not ended:
        return 0
    sub = db.session.scalar(select(User.sub).where(User.id == user_id))
    # The issuer the id_tokens named (oauth2/keys.get_issuer, from which this layer cannot import);
    # without OAUTH2_ISSUER and a request (the CLI), the worker's own issuer is used.
    issuer = current_app.config.get("OAUTH2_ISSUER") or (request.url_root if has_request_context() else None)
    stamp, count = now(), 0
    for sid, clients in ended:
        for client_id in backchannel_clients(clients or []):
            db.session.add(LogoutDelivery(client_id=client_id, user_id=user_id, sub=sub, sid=sid, issuer=issuer,
                                          created_at=stamp, attempts=0, next_attempt_at=stamp, state="pending"))
            count += 1
    return count


def due_ids(limit: int) -> list[int]:
    """Pending deliveries whose time has come, oldest first."""
    return queue.due_ids(LogoutDelivery, limit)


def claim(delivery_id: int, lease: int) -> LogoutDelivery | None:
    """Take a due delivery for one try (store/queue.claim); None if another worker has it."""
    return queue.claim(LogoutDelivery, delivery_id, lease)
