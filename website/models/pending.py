"""Authorization requests waiting for a browser: device codes (RFC 8628) and pushed
authorization requests (RFC 9126). Every code and request_uri is kept as its SHA-256 only, so
any instance sharing the database can find it and a copy of the table reveals none."""

import time

from sqlalchemy import ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from website.extensions import db
from website.models.base import now
from website.models.users import User


class DeviceCode(db.Model):
    """A device authorization (RFC 8628 §3.2): the device code the device polls with, the user
    code the person types at /device, and what the person decided."""

    __tablename__ = "oauth2_device_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    device_code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: SHA-256 of the normalised user code (upper case, no dashes).
    user_code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    client_id: Mapped[str] = mapped_column(
        ForeignKey("oauth2_clients.client_id", ondelete="CASCADE"), index=True
    )
    scope: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[int] = mapped_column(default=now)
    expires_at: Mapped[int] = mapped_column(Integer, index=True)
    #: Seconds the device must wait between polls; raised by 5 at each slow_down (§3.5).
    interval: Mapped[int] = mapped_column(default=5)
    last_polled_at: Mapped[int | None] = mapped_column()
    #: Who answered and how: "allowed" or "denied"; None while the person has not.
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    decision: Mapped[str | None] = mapped_column(String(10))
    #: When the person signed in for the decision (the id_token's auth_time).
    auth_time: Mapped[int | None] = mapped_column()
    #: When the device code was exchanged for tokens (once only).
    used_at: Mapped[int | None] = mapped_column()

    user: Mapped[User | None] = relationship()

    def is_expired(self) -> bool:
        return self.expires_at <= time.time()


class PushedAuthorizationRequest(db.Model):
    """An authorization request a client pushed (RFC 9126 §2): its parameters, waiting for the
    browser to bring the request_uri to the authorization endpoint, bound to the client."""

    __tablename__ = "oauth2_pushed_requests"

    id: Mapped[int] = mapped_column(primary_key=True)
    request_uri_hash: Mapped[str] = mapped_column(String(64), unique=True)
    client_id: Mapped[str] = mapped_column(
        ForeignKey("oauth2_clients.client_id", ondelete="CASCADE"), index=True
    )
    #: The authorization request's parameters as a JSON object of strings.
    parameters: Mapped[str] = mapped_column(Text)
    created_at: Mapped[int] = mapped_column(default=now)
    expires_at: Mapped[int] = mapped_column(Integer, index=True)
    #: When an authorization response was given for it (once only).
    used_at: Mapped[int | None] = mapped_column()

    def is_expired(self) -> bool:
        return self.expires_at <= time.time()
