"""Counters of failed attempts."""


from sqlalchemy import (
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from website.extensions import db


class ThrottleCounter(db.Model):
    """Failed attempts against one subject (an account, an address, a client) in the current
    window, and until when the subject is locked out. Shared by every instance."""

    __tablename__ = "throttle_counters"

    #: The subject, e.g. ``account:<sha256 of the username>``.
    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    failures: Mapped[int] = mapped_column(default=0)
    window_started_at: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[int] = mapped_column(default=0, index=True)
