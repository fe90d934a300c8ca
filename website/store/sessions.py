"""Reads and writes of the server-side session rows (``user_sessions``)."""

from sqlalchemy import delete, or_, select, update

from website.extensions import db
from website.models.base import now
from website.models.sessions import UserSession
from website.models.users import User
from website.store import logout_deliveries
from website.store.sealed import UnsealError, seal, unseal

#: The newest client_ids a session remembers having signed in to.
CLIENTS_KEPT = 20


def create_session(user: User, amr: list[str], ip_address: str | None, user_agent: str | None) -> UserSession:
    """Add a live session row for the user (committed by the caller)."""
    stamp = now()
    row = UserSession(user_id=user.id, created_at=stamp, last_seen_at=stamp, ended_at=0,
                      ip_address=(ip_address or "")[:45] or None, user_agent=(user_agent or "")[:300] or None,
                      amr=list(amr), clients=[])
    db.session.add(row)
    return row


def renew_session(row: UserSession, amr: list[str]) -> UserSession:
    """The same person proved themselves again in this browser (a step-up): the session keeps
    its sid and apps, with the new sign-in's time and methods (committed by the caller)."""
    stamp = now()
    row.created_at, row.last_seen_at, row.amr = stamp, stamp, list(amr)
    return row


def keep_upstream_id_token(row: UserSession, id_token: str | None) -> None:
    """Keep (sealed) the id_token an upstream sent for this session's sign-in, or forget it
    (committed by the caller)."""
    row.upstream_id_token_sealed = seal(id_token) if id_token else None


def upstream_id_token(row: UserSession | None) -> str | None:
    """The upstream id_token kept for the session, or None (also when no configured key
    opens it any more: the hint is then left out)."""
    if row is None or not row.upstream_id_token_sealed:
        return None
    try:
        return unseal(row.upstream_id_token_sealed, "Upstream id_token of a session").decode("utf-8")
    except UnsealError:
        return None


def live_user_and_session(sid: str, user_id: int, lifetime: int) -> tuple[User, UserSession] | None:
    """The user and their session row if it is live (not ended, seen within ``lifetime``
    seconds): one primary-key query."""
    row = db.session.execute(
        select(User, UserSession).join(UserSession, UserSession.user_id == User.id).where(
            UserSession.id == sid, User.id == user_id, UserSession.ended_at == 0,
            UserSession.last_seen_at > now() - lifetime)
    ).first()
    return (row[0], row[1]) if row is not None else None


def touch(row: UserSession, interval: int) -> None:
    """Note that the browser was seen, at most once per ``interval`` seconds (one UPDATE,
    committed at once on its own connection so the request's transaction stays its own)."""
    stamp = now()
    if stamp - row.last_seen_at < interval:
        return
    with db.engine.begin() as conn:
        conn.execute(update(UserSession).where(UserSession.id == row.id).values(last_seen_at=stamp))
    row.last_seen_at = stamp


def add_client(sid: str, client_id: str) -> None:
    """Remember that the session signed in to the client (in the caller's transaction)."""
    row = db.session.get(UserSession, sid)
    if row is None:
        return
    used = [c for c in (row.clients or []) if c != client_id]
    row.clients = (used + [client_id])[-CLIENTS_KEPT:]


def session_clients(sid: str) -> list[str]:
    """The client_ids the session signed in to."""
    clients = db.session.scalar(select(UserSession.clients).where(UserSession.id == sid))
    return list(clients or [])


def end_session(user_id: int, sid: str) -> bool:
    """End one live session of the user; tell whether there was one. The clients it signed in
    to with a back-channel logout URI get a logout token (queued in the same transaction)."""
    return _end(UserSession.id == sid, UserSession.user_id == user_id) > 0


def end_user_sessions(user_id: int, keep: str | None = None) -> int:
    """End every live session of the user, except ``keep``; return how many (their clients
    are told, as ``end_session`` does)."""
    conditions = [UserSession.user_id == user_id]
    if keep is not None:
        conditions.append(UserSession.id != keep)
    return _end(*conditions)


def _end(*conditions) -> int:
    """End the live sessions matching ``conditions``; RETURNING tells exactly which ones this
    statement ended, so a session ended twice at once is announced once."""
    ended = db.session.execute(update(UserSession).where(*conditions, UserSession.ended_at == 0)
                               .values(ended_at=now())
                               .returning(UserSession.id, UserSession.user_id, UserSession.clients)).all()
    by_user: dict[int, list] = {}
    for sid, user_id, clients in ended:
        by_user.setdefault(user_id, []).append((sid, list(clients or [])))
    for user_id, sessions in by_user.items():
        logout_deliveries.enqueue(user_id, sessions)
    return len(ended)


def live_sessions(user_id: int, lifetime: int, limit: int | None = None, offset: int = 0) -> list[UserSession]:
    """The user's live sessions, the most recently seen first (``limit`` of them from
    ``offset``, or all)."""
    return list(db.session.scalars(select(UserSession).where(
        UserSession.user_id == user_id, UserSession.ended_at == 0,
        UserSession.last_seen_at > now() - lifetime,
    ).order_by(UserSession.last_seen_at.desc(), UserSession.created_at.desc(), UserSession.id)
        .limit(limit).offset(offset)))


def live_session(sid: str, lifetime: int) -> UserSession | None:
    """The session with this sid if it is live (not ended, seen within ``lifetime`` seconds)."""
    return db.session.scalar(select(UserSession).where(
        UserSession.id == sid, UserSession.ended_at == 0, UserSession.last_seen_at > now() - lifetime))


def all_sessions(user_id: int) -> list[UserSession]:
    """Every session row of the user still kept (live, ended or expired), newest first."""
    return list(db.session.scalars(select(UserSession).where(UserSession.user_id == user_id)
                                   .order_by(UserSession.created_at.desc())))


def purge_sessions(lifetime: int, batch: int) -> int:
    """Delete ended and expired session rows in batches; return how many."""
    total = 0
    dead = or_(UserSession.ended_at != 0, UserSession.last_seen_at <= now() - lifetime)
    while True:
        ids = db.session.scalars(select(UserSession.id).where(dead).limit(batch)).all()
        if not ids:
            return total
        db.session.execute(delete(UserSession).where(UserSession.id.in_(ids)))
        db.session.commit()
        total += len(ids)
