"""People: checking a username and password, finding them by subject, what they allowed."""

import secrets

from sqlalchemy import (
    select,
)
from werkzeug.security import check_password_hash, generate_password_hash

from website.extensions import db
from website.models.usernames import canonical_username
from website.models.grants import Consent
from website.models.users import User

#: Checked when no such user exists, so a wrong username costs as long as a wrong password.
_DUMMY_PASSWORD_HASH = generate_password_hash(secrets.token_hex(16), method="scrypt")


def find_user(username: str | None) -> User | None:
    """The user with this username, compared in canonical form ("Alice" finds alice), or None."""
    # PostgreSQL refuses a NUL byte even in a comparison; no username holds one.
    if not username or "\x00" in username:
        return None
    return db.session.scalar(select(User).where(User.username_canonical == canonical_username(username)))


def authenticate_user(username: str, password: str) -> User | None:
    """Return the user whose username and password these are, or None."""
    user = find_user(username)
    if user is None:
        check_password_hash(_DUMMY_PASSWORD_HASH, password or "")
        return None
    if not user.check_password(password) or user.disabled_at is not None:
        return None  # a disabled account is refused like a wrong password, after the same work
    return user


def find_user_by_sub(sub) -> User | None:
    """The user whose subject identifier (``sub`` in id_tokens) this is, or None."""
    if not isinstance(sub, str) or not sub or len(sub) > 255 or "\x00" in sub:
        return None
    return db.session.scalar(select(User).where(User.sub == sub))


def consented_scope(user_id: int, client_id: str) -> str | None:
    """The scopes the person allowed the client (their remembered consent), or None."""
    return db.session.scalar(select(Consent.scope).where(Consent.user_id == user_id, Consent.client_id == client_id))
