"""Throttling of failed log-ins and client authentications, shared by every instance.

A *subject* is what failures are counted against: ``("account", username)``,
``("address", ip)``, ``("client", client_id)`` or ``("client_address", ip)``. Each kind has a limit (THROTTLE_*_LIMIT)
of failures within THROTTLE_WINDOW seconds; reaching it locks the subject for
THROTTLE_LOCKOUT seconds, after which it unlocks by itself with a fresh count.

The counters live in the database (one atomic upsert per failure, on SQLite and PostgreSQL),
or in Redis when REDIS_URL is set. The interface is three functions::

    wait = locked_for(*subjects)      # seconds until every subject is unlocked (0: go ahead)
    record_failure(*subjects)         # count one failure against each subject
    clear(subject)                    # forget an account's failures after a success
"""

import hashlib
import threading
import time

from flask import current_app, request
from sqlalchemy import bindparam, case, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite

from .models import ThrottleCounter, db

#: The config key holding the failure limit of each kind of subject.
LIMIT_KEYS = {
    "account": "THROTTLE_ACCOUNT_LIMIT",
    "address": "THROTTLE_ADDRESS_LIMIT",
    "client": "THROTTLE_CLIENT_LIMIT",
    # Client authentication failures per address, counted apart from log-ins so a misconfigured
    # service cannot lock out the people who log in from behind the same address.
    "client_address": "THROTTLE_ADDRESS_LIMIT",
}


def subject_key(subject: tuple[str, str]) -> str:
    """The storage key of a subject: its kind and a hash, so no username is stored in clear
    and every key has the same bounded length."""
    kind, value = subject
    if kind not in LIMIT_KEYS:
        raise ValueError(f"Unknown throttle subject kind: {kind}")
    digest = hashlib.sha256(str(value).casefold().encode("utf-8", "surrogatepass")).hexdigest()[:40]
    return f"{kind}:{digest}"


def client_address() -> str:
    """The address the request came from (behind a proxy, configure ProxyFix so this is the client)."""
    return request.remote_addr or "unknown"


_COUNTERS = ThrottleCounter.__table__


def _locked_until_query(count: int):
    """SELECT max(locked_until) for ``count`` keys, built once per count (Core, fixed binds)."""
    keys = [bindparam(f"k{i}") for i in range(count)]
    return select(func.max(_COUNTERS.c.locked_until)).where(_COUNTERS.c.key.in_(keys))


_LOCKED_UNTIL = {count: _locked_until_query(count) for count in (1, 2)}


def uses_database() -> bool:
    """Tell whether the counters live in the database (so a query can read them along)."""
    return isinstance(_backend(), DatabaseBackend)


def locked_until_subquery(count: int):
    """max(locked_until) of ``count`` subjects as a scalar subquery, to read along with
    another query; bind it with ``key_parameters``."""
    return _locked_until_query(count).scalar_subquery()


def key_parameters(*subjects: tuple[str, str]) -> dict:
    """The bind parameters of ``locked_until_subquery`` for these subjects."""
    return {f"k{i}": subject_key(subject) for i, subject in enumerate(subjects)}


def wait_until(locked_until: int | None) -> int:
    """Seconds from now until ``locked_until`` (a value read with locked_until_subquery)."""
    return max(0, (locked_until or 0) - int(time.time()))


class DatabaseBackend:
    """Counters in the ``throttle_counters`` table, written on their own connection so a
    failure is counted even when the request's transaction is rolled back."""

    def locked_for(self, keys: list[str], now: int) -> int:
        # One primary-key read on the request's own connection: a separate pooled connection
        # cost a checkout (and on PostgreSQL a pre-ping round trip) on every token request.
        query = _LOCKED_UNTIL.get(len(keys))
        if query is None:
            query = _locked_until_query(len(keys))
        until = db.session.scalar(query, {f"k{i}": key for i, key in enumerate(keys)})
        return max(0, (until or 0) - now)

    def record_failure(self, key: str, limit: int, window: int, lockout: int, now: int) -> int:
        table = ThrottleCounter.__table__
        dialect = db.engine.dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        statement = insert(table).values(key=key, failures=1, window_started_at=now,
                                         locked_until=now + lockout if limit <= 1 else 0)
        # The SET expressions all see the row as it was, so the upsert is one atomic step:
        # a new window starts when the old one (or a lockout) is over.
        expired = (table.c.window_started_at <= now - window) | (
            (table.c.locked_until > 0) & (table.c.locked_until <= now))
        failures = case((expired, 1), else_=table.c.failures + 1)
        statement = statement.on_conflict_do_update(
            index_elements=[table.c.key],
            set_={
                "failures": failures,
                "window_started_at": case((expired, now), else_=table.c.window_started_at),
                "locked_until": case(
                    (table.c.locked_until > now, table.c.locked_until),
                    (failures >= limit, now + lockout),
                    else_=0,
                ),
            },
        ).returning(table.c.locked_until)
        with db.engine.begin() as conn:
            until = conn.scalar(statement)
        return max(0, until - now)

    def clear(self, key: str) -> None:
        with db.engine.begin() as conn:
            conn.execute(delete(ThrottleCounter).where(ThrottleCounter.key == key))


class RedisBackend:
    """Counters in Redis: ``<prefix><key>`` counts failures and expires with the window;
    ``<prefix><key>:lock`` exists while the subject is locked."""

    def __init__(self, url: str, prefix: str):
        import redis

        self.redis = redis.Redis.from_url(url)
        self.prefix = prefix

    def locked_for(self, keys: list[str], now: int) -> int:
        pipe = self.redis.pipeline(transaction=False)
        for key in keys:
            pipe.ttl(f"{self.prefix}{key}:lock")
        return max([0, *pipe.execute()])

    def record_failure(self, key: str, limit: int, window: int, lockout: int, now: int) -> int:
        name = f"{self.prefix}{key}"
        pipe = self.redis.pipeline(transaction=True)
        pipe.incr(name)
        pipe.expire(name, window, nx=True)
        failures = pipe.execute()[0]
        if failures >= limit:
            pipe = self.redis.pipeline(transaction=True)
            pipe.set(f"{name}:lock", 1, ex=lockout, nx=True)
            pipe.delete(name)
            pipe.ttl(f"{name}:lock")
            return max(0, pipe.execute()[-1])
        return 0

    def clear(self, key: str) -> None:
        self.redis.delete(f"{self.prefix}{key}")

    def close(self) -> None:
        """Close the connections to Redis."""
        self.redis.close()


_backend_lock = threading.Lock()


def _backend():
    app = current_app
    backend = app.extensions.get("throttle")
    if backend is None:
        with _backend_lock:  # one backend (one Redis pool) per app, even when threads race
            backend = app.extensions.get("throttle")
            if backend is None:
                url = app.config.get("REDIS_URL")
                backend = RedisBackend(url, app.config["THROTTLE_REDIS_PREFIX"]) if url else DatabaseBackend()
                app.extensions["throttle"] = backend
    return backend


def close(app) -> None:
    """Release the app's throttle backend connections (Redis); the database needs nothing."""
    backend = app.extensions.pop("throttle", None)
    if isinstance(backend, RedisBackend):
        backend.close()


def locked_for(*subjects: tuple[str, str]) -> int:
    """Seconds until none of the subjects is locked out; 0 when the attempt may proceed."""
    return _backend().locked_for([subject_key(s) for s in subjects], int(time.time()))


def record_failure(*subjects: tuple[str, str]) -> int:
    """Count a failed attempt against each subject; return the lockout it caused, in seconds."""
    config = current_app.config
    now = int(time.time())
    wait = 0
    for subject in subjects:
        if not config[LIMIT_KEYS[subject[0]]]:
            continue  # a limit of 0 turns this kind of throttling off
        wait = max(wait, _backend().record_failure(
            subject_key(subject), config[LIMIT_KEYS[subject[0]]], config["THROTTLE_WINDOW"],
            config["THROTTLE_LOCKOUT"], now,
        ))
    return wait


def clear(subject: tuple[str, str]) -> None:
    """Forget the failures counted against a subject (an account, after a successful log-in)."""
    _backend().clear(subject_key(subject))


def wait_message(seconds: int) -> str:
    """Tell a person or client how long to wait, in words."""
    minutes = -(-seconds // 60)
    span = f"{minutes} minute{'s' if minutes != 1 else ''}" if seconds > 60 else f"{seconds} seconds"
    return f"Too many failed attempts. Try again in {span}."
