"""Tokens: lookups by hash (ORM rows to change them, plain records for read-only
checks), the insert of a new token, and revocation of a token family."""

import functools

from sqlalchemy import bindparam, case, select, update
from sqlalchemy.orm import joinedload

from website.extensions import db
from website.models.audit import AuditEvent
from website.models.base import hash_secret, now
from website.models.grants import Token, TokenState
from website.models.users import Subject, User
from website.store import audit, driver, throttle


class UserRecord(Subject):
    """A user's public columns read with a Core query (see TokenRecord); not an ORM object."""

    COLUMNS = ("id", "sub", "username", "email", "name", "email_verified", "created_at", "updated_at",
               "disabled_at")
    __slots__ = COLUMNS

    def __init__(self, values):
        for name, value in zip(self.COLUMNS, values):
            setattr(self, name, value)

    def __repr__(self) -> str:
        return f"<User {self.username}>"


class TokenRecord(TokenState):
    """A token row and its user, read with one Core query for the read-only checks (bearer
    tokens, introspection): the same columns and TokenState methods as Token, without the
    ORM's instance state and identity map, which nothing here needs."""

    COLUMNS = tuple(column.key for column in Token.__table__.columns)
    #: Set by the introspection lookup: the value presented was the refresh token.
    matched_refresh_token = False

    def __init__(self, values, user: UserRecord | None):
        self.__dict__.update(zip(self.COLUMNS, values))
        self.user = user

    def get_client(self):
        """The token's client, read-only, from the client cache (store/cache.py)."""
        from website.store.clients import read_client  # clients.py imports this module

        return read_client(self.client_id)


#: The longest token value looked up: JWT access tokens (RFC 9068) run to about a kilobyte.
MAX_TOKEN_LENGTH = 4096
#: The longest refresh token looked up (they are opaque, 48 characters).
MAX_REFRESH_TOKEN_LENGTH = 512


# The hot statements, built once rather than built and cache-keyed per request. Each lookup
# is one indexed query that also loads the token's user, so the view reading
# ``current_token.user`` needs no second query.

_TOKEN_BY_ACCESS_HASH = (
    select(Token).options(joinedload(Token.user)).where(Token.access_token_hash == bindparam("hash"))
)


_TOKEN_BY_REFRESH_HASH = (
    select(Token).options(joinedload(Token.user)).where(Token.refresh_token_hash == bindparam("hash"))
)


_TOKENS, _USERS = Token.__table__, User.__table__


_RECORD_COLUMNS = [*(_TOKENS.c[name] for name in TokenRecord.COLUMNS),
                   *(_USERS.c[name].label(f"user_{name}") for name in UserRecord.COLUMNS)]


_RECORD_BY = {
    column: select(*_RECORD_COLUMNS)
    .select_from(_TOKENS.outerjoin(_USERS, _USERS.c.id == _TOKENS.c.user_id))
    .where(_TOKENS.c[column] == bindparam("hash"))
    for column in ("access_token_hash", "refresh_token_hash")
}


@functools.cache
def _record_and_lock():
    """The access token's record and the throttle lock of two subjects, in one statement
    (built at first use: the throttle module imports this one)."""
    return (select(*_RECORD_COLUMNS, throttle.locked_until_subquery(2))
            .select_from(_TOKENS.outerjoin(_USERS, _USERS.c.id == _TOKENS.c.user_id))
            .where(_TOKENS.c.access_token_hash == bindparam("hash")))


_TOKEN_WIDTH = len(TokenRecord.COLUMNS)
_USER_WIDTH = len(UserRecord.COLUMNS)


def _record(row) -> TokenRecord | None:
    if row is None:
        return None
    user = UserRecord(row[_TOKEN_WIDTH:_TOKEN_WIDTH + _USER_WIDTH]) if row[_TOKEN_WIDTH] is not None else None
    return TokenRecord(row[:_TOKEN_WIDTH], user)


def _token_record(column: str, secret: str) -> TokenRecord | None:
    return _record(db.session.execute(_RECORD_BY[column], {"hash": hash_secret(secret)}).first())


def read_token_by_access_token(access_token: str) -> TokenRecord | None:
    """Read a token (and its user) by the hash of its access token, for read-only checks.

    The hot path of every bearer check and introspection: one statement run on the driver
    (driver.py: prepared, on a connection of its own, no pool checkout, no ORM session). Never
    cached: a revocation committed by any instance is seen by the next check. A lost
    connection raises OperationalError like any query (503; the next check reconnects)."""
    return _record(driver.fetch_one(_RECORD_BY["access_token_hash"], {"hash": hash_secret(access_token)}))


def read_token_and_lock(access_token: str, subjects) -> tuple[TokenRecord | None, int]:
    """``read_token_by_access_token`` and ``throttle.locked_for(*subjects)`` (two subjects), in
    one statement on the driver when the counters live in the database and the token exists."""
    if not throttle.uses_database():
        return read_token_by_access_token(access_token), throttle.locked_for(*subjects)
    row = driver.fetch_one(_record_and_lock(), {"hash": hash_secret(access_token), **throttle.key_parameters(*subjects)})
    if row is None:
        return None, throttle.locked_for(*subjects)
    return _record(row), throttle.wait_until(row[-1])


def read_token_by_refresh_token(refresh_token: str) -> TokenRecord | None:
    """Read a token (and its user) by the hash of its refresh token, for read-only checks."""
    return _token_record("refresh_token_hash", refresh_token)


def query_token_by_access_token(access_token: str) -> Token | None:
    """Find a token row (and its user) by the hash of its access token."""
    return db.session.scalar(_TOKEN_BY_ACCESS_HASH, {"hash": hash_secret(access_token)})


def query_token_by_refresh_token(refresh_token: str) -> Token | None:
    """Find a token row (and its user) by the hash of its refresh token."""
    return db.session.scalar(_TOKEN_BY_REFRESH_HASH, {"hash": hash_secret(refresh_token)})


def find_token(token_string: str, token_type_hint: str | None,
               by_access=None, by_refresh=None) -> Token | None:
    """Find a token by its access or refresh token, trying the hinted kind first (RFC 7009
    §2.1, RFC 7662 §2.1); ``matched_refresh_token`` tells which one matched. The lookups are
    ORM rows by default (to change them), or read-only records when passed."""
    by_access = by_access or query_token_by_access_token
    by_refresh = by_refresh or query_token_by_refresh_token
    if not token_string or len(token_string) > MAX_TOKEN_LENGTH:
        return None
    order = (by_refresh, by_access) if token_type_hint == "refresh_token" else (by_access, by_refresh)
    for lookup in order:
        if (token := lookup(token_string)) is not None:
            token.matched_refresh_token = lookup is by_refresh
            return token
    return None


def revoke_family(family_id: str, reason: str = "revoked") -> None:
    """Revoke every access and refresh token descended from one grant (one code or log-in)."""
    stamp = now()
    audit.record("token_family_revoked", family_id=family_id, reason=reason)
    db.session.execute(
        update(Token)
        .where(Token.family_id == family_id, Token.access_token_revoked_at == 0)
        .values(access_token_revoked_at=stamp)
    )
    db.session.execute(
        update(Token)
        .where(Token.family_id == family_id, Token.refresh_token_revoked_at == 0)
        .values(refresh_token_revoked_at=stamp)
    )


def revoke_user_tokens(user_id: int, reason: str) -> None:
    """Revoke every access and refresh token issued for the person (the caller commits)."""
    stamp = now()
    audit.record("user_tokens_revoked", user_id_revoked=user_id, reason=reason)
    mine = Token.user_id == user_id
    db.session.execute(update(Token).where(mine, Token.access_token_revoked_at == 0)
                       .values(access_token_revoked_at=stamp))
    db.session.execute(update(Token).where(mine, Token.refresh_token_revoked_at == 0)
                       .values(refresh_token_revoked_at=stamp))


def store_token(values: dict, event: dict) -> None:
    """Write a new token's row and its audit event (``audit.row``) and commit, with whatever
    the request's session changed (a code or refresh token spent) in the same transaction.

    Core INSERTs skip the unit of work and the ORM's bulk-insert bookkeeping for rows nothing
    reads again (the column defaults still apply); on PostgreSQL both rows are one statement
    (store/driver.py). When the session has nothing open (client credentials), they go
    straight to the driver in one transaction of their own.
    """
    rows = ((Token.__table__, values), (AuditEvent.__table__, event))
    if driver.may_write_alone(db.session()):
        driver.insert_rows(rows)
        return
    driver.insert_rows_in(db.session(), rows)
    commit_keeping_loaded()


def claim_refresh_token(token_id: int, rotate: bool) -> bool:
    """Spend a refresh token in the caller's transaction: revoke its access token and, when
    refresh tokens rotate, the refresh token itself. False if another request spent it first.

    The UPDATE is guarded by ``refresh_token_revoked_at = 0``, so of two concurrent
    refreshes with one token only one succeeds.
    """
    return bool(db.session.execute(_SPEND_REFRESH_TOKEN[rotate], {"token_id": token_id, "stamp": now()}).rowcount)


def _spend_refresh_token(rotate: bool):
    # Core, on the table: nothing reads the old row again in this request, so the ORM's
    # bulk-update bookkeeping (synchronising the session) would be wasted.
    tokens, stamp = Token.__table__.c, bindparam("stamp")
    values = {"access_token_revoked_at": case((tokens.access_token_revoked_at == 0, stamp),
                                              else_=tokens.access_token_revoked_at)}
    if rotate:
        values.update(refresh_token_revoked_at=stamp, rotated_at=stamp)
    return (update(Token.__table__).where(tokens.id == bindparam("token_id"), tokens.refresh_token_revoked_at == 0)
            .values(values))


#: Built once, with and without rotation (claim_refresh_token runs on every refresh).
_SPEND_REFRESH_TOKEN = {rotate: _spend_refresh_token(rotate) for rotate in (False, True)}


def commit_keeping_loaded() -> None:
    """Commit without expiring what the request loaded.

    After a token is stored nothing loaded has changed (the claims were Core UPDATEs), and
    the id_token still reads the client and the code: expiring them would reload both.
    """
    session = db.session()
    expire_on_commit, session.expire_on_commit = session.expire_on_commit, False
    try:
        session.commit()
    finally:
        session.expire_on_commit = expire_on_commit
