"""Authorization codes: lookup by hash, and what a reused code revokes."""


from sqlalchemy import bindparam, select
from sqlalchemy.orm import joinedload

from website.extensions import db
from website.models.grants import AuthorizationCode, Token
from website.store.tokens import revoke_family

_CODE_BY_HASH = (
    select(AuthorizationCode)
    .options(joinedload(AuthorizationCode.user))
    .where(AuthorizationCode.code_hash == bindparam("hash"))
)


def _revoke_code_tokens(item: AuthorizationCode) -> None:
    """A second redemption: the code may have leaked, so revoke what it produced."""
    families = db.session.scalars(
        select(Token.family_id).where(Token.authorization_code_id == item.id).distinct()
    ).all()
    for family_id in families:
        revoke_family(family_id, reason="authorization code reused")
    db.session.commit()
