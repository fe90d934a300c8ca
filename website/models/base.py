"""Helpers every model uses: timestamps, the hash secrets are stored as, and the columns of
an outgoing-work queue."""

import hashlib
import time
from datetime import datetime, timezone

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column


def now() -> int:
    """The current time as whole seconds since the epoch."""
    return int(time.time())


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(timezone.utc)


def hash_secret(value: str) -> str:
    """SHA-256 of a high-entropy secret (token, code, client secret), as hex."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


class QueuedWork:
    """The columns of a queue of outgoing work (back-channel logout tokens, mail) that
    store/queue.py claims, retries and settles: a mixin for the queue's model."""

    created_at: Mapped[int] = mapped_column(Integer)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    #: When a worker may (next) try; while one is sending, a lease a little past its timeout.
    next_attempt_at: Mapped[int] = mapped_column(Integer)
    #: pending, delivered or given_up.
    state: Mapped[str] = mapped_column(String(16), default="pending")
    #: What the last try got (an HTTP status, the network or mail server's error), for the audit log.
    last_error: Mapped[str | None] = mapped_column(String(300))
