"""Passkeys (WebAuthn credentials) and the challenges of their ceremonies."""

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, LargeBinary, String, false
from sqlalchemy.orm import Mapped, mapped_column

from website.extensions import db
from website.models.base import utcnow


class Passkey(db.Model):
    """A WebAuthn public-key credential a person registered on the account page: it signs them
    in without a password, or serves as the second factor after their password.

    Nothing here is secret: the private key never leaves the authenticator."""

    __tablename__ = "webauthn_credentials"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    #: The credential id (base64url, at most 1023 bytes before encoding: WebAuthn §5.8.3).
    credential_id: Mapped[str] = mapped_column(String(1400), unique=True)
    #: The COSE public key from the attestation.
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    #: The authenticator's signature counter at its last use (0: it keeps none, as synced
    #: passkeys do); a counter that does not grow is refused (WebAuthn §7.2 step 21).
    sign_count: Mapped[int] = mapped_column(BigInteger, default=0)
    #: The transports the browser reported (space-separated: usb nfc ble internal hybrid).
    transports: Mapped[str] = mapped_column(String(200), default="")
    #: The name the person gave it, shown on the account page and in mails.
    name: Mapped[str] = mapped_column(String(64))
    #: Whether it may be copied to other devices (a synced passkey): amr ``swk``, else ``hwk``.
    backed_up: Mapped[bool] = mapped_column(default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class WebAuthnChallenge(db.Model):
    """A challenge handed to a browser for one ceremony: single-use (deleted when a response
    names it) and short-lived; in the database so that any instance can check the answer."""

    __tablename__ = "webauthn_challenges"

    #: SHA-256 of the challenge (hex); the challenge itself goes only to the browser.
    challenge_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: ``register``, ``sign_in`` or ``second_factor``: a challenge serves only its ceremony.
    purpose: Mapped[str] = mapped_column(String(20))
    #: The person the ceremony is for (None for a passwordless sign-in: anyone may answer).
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    expires_at: Mapped[int] = mapped_column(index=True)
