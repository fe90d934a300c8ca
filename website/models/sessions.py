"""People's browser sessions, kept on the server so every instance sees them."""

import secrets

from sqlalchemy import (
    JSON,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from website.extensions import db
from website.models.base import QueuedWork


def new_session_id() -> str:
    """A fresh session id: random, URL-safe, stable for the session's life. It is the OpenID
    Connect ``sid`` (id_tokens, back-channel logout), so it must never be derived from the row."""
    return secrets.token_urlsafe(32)


class UserSession(db.Model):
    """One signed-in browser: the cookie carries ``id`` (signed), and the session is live while
    ``ended_at`` is 0 and it was seen within PERMANENT_SESSION_LIFETIME."""

    __tablename__ = "user_sessions"
    __table_args__ = (Index("ix_user_sessions_user_live", "user_id", "ended_at"),)

    #: The ``sid``: 43 URL-safe characters.
    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_session_id)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    #: When the person signed in (the OpenID Connect ``auth_time``), seconds since the epoch.
    created_at: Mapped[int] = mapped_column(Integer)
    #: When the browser was last seen, updated at most every SESSION_TOUCH_INTERVAL seconds.
    last_seen_at: Mapped[int] = mapped_column(Integer)
    #: 0 while live; when it was signed out (or ended from another device).
    ended_at: Mapped[int] = mapped_column(Integer, default=0)
    ip_address: Mapped[str | None] = mapped_column(String(45))
    #: The browser's User-Agent header, cut to 300 characters.
    user_agent: Mapped[str | None] = mapped_column(String(300))
    #: How the person proved who they are (RFC 8176 values).
    amr: Mapped[list] = mapped_column(JSON, default=list)
    #: The client_ids this session signed in to (an authorization was issued), oldest first.
    clients: Mapped[list] = mapped_column(JSON, default=list)
    #: A sign-in through an upstream provider: store.sealed ciphertext of the id_token it sent
    #: (the id_token_hint for ending the session there too at log-out).
    upstream_id_token_sealed: Mapped[str | None] = mapped_column(Text)


class LogoutDelivery(QueuedWork, db.Model):
    """A logout token owed to a client (OpenID Connect Back-Channel Logout): queued in the
    transaction that ended the session, POSTed by a worker with retries. The token itself is
    signed when sent, from ``sub`` and ``sid`` (the person may be deleted by then)."""

    __tablename__ = "logout_deliveries"
    __table_args__ = (Index("ix_logout_deliveries_due", "state", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[str] = mapped_column(String(48))
    #: Kept without a foreign key: an account deleted with its sessions still signs out its apps.
    user_id: Mapped[int | None] = mapped_column(Integer)
    sub: Mapped[str] = mapped_column(String(255))
    sid: Mapped[str] = mapped_column(String(64))
    #: The issuer the session was signed in at (the token's ``iss``, as id_tokens had it).
    issuer: Mapped[str | None] = mapped_column(String(2000))
    #: The token's ``jti``, the same on every try (the client may ignore a repeat).
    jti: Mapped[str] = mapped_column(String(64), default=lambda: secrets.token_urlsafe(24))
