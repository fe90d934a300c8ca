"""People: checking a username and password, finding them by subject, what they allowed, the
clients they own, deleting an account."""

import functools
import secrets

from flask import current_app
from sqlalchemy import (
    delete,
    select,
)
from werkzeug.security import check_password_hash, generate_password_hash

from website.extensions import db
from website.models.clients import OAuth2Client
from website.models.grants import AuthorizationCode, Consent, Token
from website.models.sessions import UserSession
from website.models.usernames import canonical_username
from website.models.users import User
from website.store.clients import delete_clients
from website.store.sessions import end_user_sessions

@functools.lru_cache(maxsize=4)
def _dummy_password_hash(method: str) -> str:
    """Checked when no such user exists, so a wrong username costs as long as a wrong password
    hashed with the configured method."""
    return generate_password_hash(secrets.token_hex(16), method=method)


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
        check_password_hash(_dummy_password_hash(current_app.config["PASSWORD_HASH_METHOD"]), password or "")
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


def delete_user(user: User) -> None:
    """Delete the user with the clients they own (and everything naming those clients), their
    tokens and codes at other clients, consents and sessions, in the caller's transaction."""
    delete_clients(OAuth2Client.owner_id == user.id)
    # The user's own tokens and codes at other clients (the foreign keys cascade too).
    db.session.execute(delete(Token).where(Token.user_id == user.id))
    db.session.execute(delete(AuthorizationCode).where(AuthorizationCode.user_id == user.id))
    db.session.execute(delete(Consent).where(Consent.user_id == user.id))
    end_user_sessions(user.id)  # the apps its live sessions signed in to get logout tokens
    db.session.execute(delete(UserSession).where(UserSession.user_id == user.id))
    db.session.delete(user)


def owned_clients(user: User) -> list[OAuth2Client]:
    """The clients the user registered (and owns), by name."""
    return list(db.session.scalars(select(OAuth2Client).where(OAuth2Client.owner_id == user.id)
                                   .order_by(OAuth2Client.client_name, OAuth2Client.id)))
