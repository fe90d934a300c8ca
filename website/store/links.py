"""One-time account links: made (the token returned once, its SHA-256 stored), looked up,
and spent with a guarded UPDATE so a link works once even when two requests race."""

import hashlib
import hmac
import secrets

from flask import current_app
from sqlalchemy import delete, select, update

from website.extensions import db
from website.models.base import hash_secret, now
from website.models.links import PURPOSES, AccountLink
from website.models.users import User

#: The longest token looked up (they are 43 characters); longer values match nothing.
MAX_TOKEN_LENGTH = 200


def account_state(purpose: str, email: str | None, user: User | None) -> str:
    """The fingerprint of what a link is bound to: an HMAC (under SECRET_KEY) over its purpose,
    the address and, for an account, its password hash and current address. A new password,
    or a changed address, makes the account's older links stale."""
    parts = [purpose, (email or "").casefold()]
    if user is not None:
        parts += [str(user.id), user.password_hash or "", (user.email or "").casefold()]
    message = "\x00".join(parts).encode("utf-8", "surrogatepass")
    return hmac.new(current_app.config["SECRET_KEY"].encode(), message, hashlib.sha256).hexdigest()


def make_link(purpose: str, email: str, user: User | None, lifetime: int, created_by: str | None = None) -> str:
    """Add a link to the caller's transaction; return its token (shown only in the mail)."""
    if purpose not in PURPOSES:
        raise ValueError(f"Unknown link purpose: {purpose}")
    token = secrets.token_urlsafe(32)
    db.session.add(AccountLink(
        purpose=purpose, token_hash=hash_secret(token), user_id=user.id if user is not None else None,
        email=email, state=account_state(purpose, email, user), expires_at=now() + lifetime,
        created_by=created_by[:40] if created_by else None,
    ))
    db.session.flush()
    return token


def discard_link(token: str) -> None:
    """Take a link made in this transaction back out (its mail was not sent)."""
    db.session.execute(delete(AccountLink).where(AccountLink.token_hash == hash_secret(token)),
                       execution_options={"synchronize_session": False})


def find_link(token: str | None) -> AccountLink | None:
    """The link with this token (any purpose, used or not), or None."""
    if not token or len(token) > MAX_TOKEN_LENGTH or "\x00" in token:
        return None
    return db.session.scalar(select(AccountLink).where(AccountLink.token_hash == hash_secret(token)))


def is_stale(link: AccountLink, user: User | None) -> bool:
    """Whether the account changed (password, address) since the link was made."""
    return not hmac.compare_digest(link.state, account_state(link.purpose, link.email, user))


def spend_link(link: AccountLink) -> bool:
    """Mark the link used in the caller's transaction; False when another request used it
    first, or it expired meanwhile (the UPDATE is guarded by both)."""
    stamp = now()
    return bool(db.session.execute(
        update(AccountLink)
        .where(AccountLink.id == link.id, AccountLink.used_at.is_(None), AccountLink.expires_at > stamp)
        .values(used_at=stamp),
        execution_options={"synchronize_session": False},
    ).rowcount)


def retire_links(user: User, *purposes: str) -> None:
    """Mark the account's unused links of these purposes used (a newer one replaces them)."""
    db.session.execute(
        update(AccountLink)
        .where(AccountLink.user_id == user.id, AccountLink.purpose.in_(purposes), AccountLink.used_at.is_(None))
        .values(used_at=now()),
        execution_options={"synchronize_session": False},
    )


def pending_invitations(limit: int = 20) -> list[AccountLink]:
    """Invitations not yet accepted and not expired, newest first."""
    return list(db.session.scalars(
        select(AccountLink)
        .where(AccountLink.purpose == "invite", AccountLink.used_at.is_(None), AccountLink.expires_at > now())
        .order_by(AccountLink.id.desc()).limit(limit)
    ))
