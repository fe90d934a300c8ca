"""Helpers every model uses: timestamps and the hash secrets are stored as."""

import hashlib
import time
from datetime import datetime, timezone


def now() -> int:
    """The current time as whole seconds since the epoch."""
    return int(time.time())


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(timezone.utc)


def hash_secret(value: str) -> str:
    """SHA-256 of a high-entropy secret (token, code, client secret), as hex."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()
