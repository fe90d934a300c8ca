"""Second factors: a person's TOTP authenticator and their recovery codes."""

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from website.extensions import db
from website.models.base import now
from website.models.users import User


class TotpFactor(db.Model):
    """A TOTP authenticator (RFC 6238): the shared secret, sealed (store/sealed.py), because
    codes are computed from it. One per person; ``confirmed_at`` is None until a code proved
    that the authenticator app holds the secret (an unconfirmed row does not count)."""

    __tablename__ = "mfa_totp"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    secret_sealed: Mapped[str] = mapped_column(Text)
    created_at: Mapped[int] = mapped_column(default=now)
    confirmed_at: Mapped[int | None] = mapped_column()
    #: The last time step (unix time // 30) whose code was accepted: a code for it, or for an
    #: earlier step, is refused (replay).
    last_used_step: Mapped[int | None] = mapped_column()
    last_used_at: Mapped[int | None] = mapped_column()

    user: Mapped[User] = relationship()


class RecoveryCode(db.Model):
    """A single-use recovery code, stored as its SHA-256 (the codes are random, 60 bits)."""

    __tablename__ = "mfa_recovery_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[int] = mapped_column(default=now)
    used_at: Mapped[int | None] = mapped_column()
