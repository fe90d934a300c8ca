"""People."""

import hashlib
import hmac
import secrets
from datetime import datetime

from sqlalchemy import (
    DateTime,
    String,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column, validates
from werkzeug.security import check_password_hash, generate_password_hash

from website.extensions import db
from website.models.base import utcnow
from website.models.usernames import canonical_username, normalize_username


def new_subject() -> str:
    """A fresh OpenID Connect subject: opaque, random, never derived from the row id."""
    return secrets.token_hex(16)


def new_session_secret() -> str:
    """A fresh per-user secret that every session cookie of the user is bound to."""
    return secrets.token_hex(32)


class Subject:
    """What a person is to the protocol: the id Authlib stores with codes and tokens. Shared
    by the ORM row and ``store.tokens.UserRecord``."""

    def get_user_id(self) -> int:
        """The user id Authlib stores with codes and tokens (the ``sub`` is ``self.sub``)."""
        return self.id


class User(db.Model, Subject):
    __tablename__ = "users"
    # AUTOINCREMENT: SQLite otherwise hands the id of a deleted newest user to the next one,
    # and ids (in /api/me, the audit log) must name one person for ever.
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(primary_key=True)
    #: The OpenID Connect ``sub`` (and RFC 9068 / 7662 ``sub``): opaque, stable, never
    #: reassigned. Accounts that existed before it was added keep ``str(id)``.
    sub: Mapped[str] = mapped_column(String(255), unique=True, default=new_subject)
    username: Mapped[str] = mapped_column(String(40), unique=True)
    #: ``usernames.canonical_username`` of the username, set with it: unique, so "Alice" (or
    #: fullwidth "ａｌｉｃｅ") cannot be a second account beside alice; every look-up uses it.
    username_canonical: Mapped[str] = mapped_column(String(40), unique=True)
    email: Mapped[str | None] = mapped_column(String(254))
    #: The full name for the OpenID Connect ``name`` claim (the username when unset).
    name: Mapped[str | None] = mapped_column(String(100))
    #: No verification flow exists yet, so addresses are reported as unverified.
    email_verified: Mapped[bool] = mapped_column(default=False, server_default=false())
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)
    is_admin: Mapped[bool] = mapped_column(default=False)
    #: When an administrator disabled the account (None: enabled). A disabled person cannot
    #: sign in, their sessions end and their tokens are refused at once.
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: Random per user, replaced on log-out everywhere and on password change: a session
    #: cookie carries a digest of it (``session_key``), so a cookie made before the change, or
    #: for a deleted account, matches nobody, although a cookie cannot be deleted on the server.
    session_secret: Mapped[str] = mapped_column(String(64), default=new_session_secret)
    #: When an MFA policy (MFA_REQUIRED_FOR) first found the person without a second factor:
    #: their grace period for enrolling (MFA_ENROLMENT_GRACE_DAYS) runs from here.
    mfa_grace_started_at: Mapped[int | None] = mapped_column()

    @validates("username")
    def _keep_canonical(self, key: str, username: str) -> str:
        username = normalize_username(username)
        self.username_canonical = canonical_username(username)
        return username

    def set_password(self, password: str, method: str) -> None:
        """Store a slow, salted hash of the password."""
        self.password_hash = generate_password_hash(password, method=method)

    def check_password(self, password: str) -> bool:
        """Tell whether the password matches the stored hash."""
        return check_password_hash(self.password_hash, password)

    def session_key(self) -> str:
        """What a session cookie of this user carries: a digest of the session secret, so the
        cookie never holds the secret itself."""
        return hmac.new(self.session_secret.encode(), b"session cookie", hashlib.sha256).hexdigest()

    def check_session_key(self, value) -> bool:
        """Tell, in constant time, whether a cookie's session key is this user's current one."""
        return isinstance(value, str) and hmac.compare_digest(value.encode(), self.session_key().encode())

    def end_all_sessions(self) -> None:
        """Make every session cookie of the user invalid (log-out everywhere, password change)."""
        self.session_secret = new_session_secret()

    def __repr__(self) -> str:
        return f"<User {self.username}>"
