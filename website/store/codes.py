"""Authorization codes: storing one, finding one by its hash, spending it once, and what a
reused code revokes."""

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import joinedload

from website.extensions import db
from website.models.base import hash_secret, now
from website.models.grants import AuthorizationCode, Token
from website.store.tokens import revoke_family

#: The longest code looked up.
MAX_CODE_LENGTH = 512

# Built once: one indexed query that also loads the code's user.
_CODE_BY_HASH = (
    select(AuthorizationCode)
    .options(joinedload(AuthorizationCode.user))
    .where(AuthorizationCode.code_hash == bindparam("hash"))
)


def save_code(code: str, **values) -> AuthorizationCode:
    """Store a new code (as its hash) with its request's values, and commit."""
    item = AuthorizationCode(code_hash=hash_secret(code), **values)
    db.session.add(item)
    db.session.commit()
    return item


def query_code(code: str) -> AuthorizationCode | None:
    """The code row (and its user) with this value, used or not."""
    if not code or len(code) > MAX_CODE_LENGTH:
        return None
    return db.session.scalar(_CODE_BY_HASH, {"hash": hash_secret(code)})


def claim_code(item: AuthorizationCode) -> bool:
    """Mark the code used, in the caller's transaction; False if it already was.

    The claim is an UPDATE guarded by ``used_at IS NULL``: the database lets exactly one
    concurrent transaction change the row, so only one redemption can ever succeed.
    """
    return bool(db.session.execute(
        update(AuthorizationCode)
        .where(AuthorizationCode.id == item.id, AuthorizationCode.used_at.is_(None))
        .values(used_at=now())
    ).rowcount)


def revoke_code_tokens(item: AuthorizationCode) -> None:
    """A second redemption: the code may have leaked, so revoke what it produced."""
    families = db.session.scalars(
        select(Token.family_id).where(Token.authorization_code_id == item.id).distinct()
    ).all()
    for family_id in families:
        revoke_family(family_id, reason="authorization code reused")
    db.session.commit()
