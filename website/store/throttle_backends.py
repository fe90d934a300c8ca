"""Where the throttle counters and the spent one-time values (replay caches) live: the
database (one atomic upsert per attempt, one insert-unique per value, SQLite and PostgreSQL),
Redis, or Redis with the database standing in while Redis is away."""

import logging
import threading
import time

from sqlalchemy import bindparam, case, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from website.extensions import db
from website.store import driver
from website.models.grants import SpentJti
from website.models.throttle import ThrottleCounter
from website.store.tokens import commit_keeping_loaded

#: Named as before the package layout, so operators' log filters keep working.
log = logging.getLogger("website.throttle")


#: Seconds a Redis command may take (connect, read, write) before the database stands in.
REDIS_TIMEOUT = 0.5


_COUNTERS = ThrottleCounter.__table__


_SPENT = SpentJti.__table__


def _locked_until_query(count: int):
    """SELECT max(locked_until) for ``count`` keys, built once per count (Core, fixed binds)."""
    keys = [bindparam(f"k{i}") for i in range(count)]
    return select(func.max(_COUNTERS.c.locked_until)).where(_COUNTERS.c.key.in_(keys))


#: Built once per count and kept: the driver knows a statement by its identity.
_LOCKED_UNTIL: dict[int, object] = {count: _locked_until_query(count) for count in (1, 2)}


class DatabaseBackend:
    """Counters in the ``throttle_counters`` table, written on their own connection so a
    failure is counted even when the request's transaction is rolled back."""

    def locked_for(self, keys: list[str], now: int) -> int:
        # One primary-key read on the driver (store/driver.py), as a bearer check is: no pool
        # checkout, no ORM session for a client-authenticated request that writes nothing
        # (introspection, revocation). The counters are committed apart (record_failure), so
        # the request's own transaction has nothing here the driver's connection cannot see.
        query = _LOCKED_UNTIL.get(len(keys))
        if query is None:
            query = _LOCKED_UNTIL.setdefault(len(keys), _locked_until_query(len(keys)))
        (until,) = driver.fetch_one(query, {f"k{i}": key for i, key in enumerate(keys)})  # max(): one row
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

    def reserve(self, key: str, limit: int, window: int, lockout: int, now: int) -> tuple[int, int]:
        """Count one attempt before it is checked, in one atomic upsert; return the count and
        the lockout in seconds (an attempt past the limit locks the subject at once)."""
        table = ThrottleCounter.__table__
        insert = postgresql.insert if db.engine.dialect.name == "postgresql" else sqlite.insert
        statement = insert(table).values(key=key, failures=1, window_started_at=now,
                                         locked_until=0)
        expired = (table.c.window_started_at <= now - window) | (
            (table.c.locked_until > 0) & (table.c.locked_until <= now))
        attempts = case((expired, 1), else_=table.c.failures + 1)
        statement = statement.on_conflict_do_update(
            index_elements=[table.c.key],
            set_={
                "failures": attempts,
                "window_started_at": case((expired, now), else_=table.c.window_started_at),
                "locked_until": case(
                    (table.c.locked_until > now, table.c.locked_until),
                    (attempts > limit, now + lockout),
                    else_=0,
                ),
            },
        ).returning(table.c.failures, table.c.locked_until)
        with db.engine.begin() as conn:
            count, until = conn.execute(statement).one()
        return count, max(0, until - now)

    def lock(self, key: str, lockout: int, now: int) -> int:
        """Lock the subject (its reserved attempt failed at the limit); return the lockout."""
        with db.engine.begin() as conn:
            conn.execute(update(ThrottleCounter).where(
                ThrottleCounter.key == key, ThrottleCounter.locked_until <= now,
            ).values(locked_until=now + lockout))
        return lockout

    def release(self, key: str) -> None:
        """Give back a reserved attempt that succeeded (it was no failure)."""
        with db.engine.begin() as conn:
            conn.execute(update(ThrottleCounter).where(
                ThrottleCounter.key == key, ThrottleCounter.failures > 0,
            ).values(failures=ThrottleCounter.failures - 1))

    def clear(self, key: str) -> None:
        with db.engine.begin() as conn:
            conn.execute(delete(ThrottleCounter).where(ThrottleCounter.key == key))

    def clear_prefix(self, prefix: str) -> int:
        with db.engine.begin() as conn:
            return conn.execute(delete(ThrottleCounter).where(
                ThrottleCounter.key.startswith(prefix, autoescape=True))).rowcount

    def spend_once(self, key: str, expires_at: int, now: int) -> bool:
        """Record a one-time value until ``expires_at``; False if it was recorded before.

        The primary key decides (INSERT ... ON CONFLICT DO NOTHING), so of two simultaneous
        requests with one value only one gets in. Committed at once, in the request's own
        session (a second connection would wait on SQLite's write lock): the value is spent
        even if the rest of the request fails. Expired values go in the same transaction."""
        insert = postgresql.insert if db.engine.dialect.name == "postgresql" else sqlite.insert
        db.session.execute(delete(_SPENT).where(_SPENT.c.expires_at < now))
        # RETURNING tells whether the row went in; the rowcount of ON CONFLICT DO NOTHING did
        # not, on PostgreSQL with psycopg.
        spent = db.session.execute(insert(_SPENT).values(key=key, expires_at=expires_at)
                                   .on_conflict_do_nothing().returning(_SPENT.c.key)).first()
        commit_keeping_loaded()
        return spent is not None


#: One attempt on a Redis subject: refused while the lock key lives; else counted (the count
#: expiring with the window), and an attempt past the limit sets the lock and starts a new count.
_RESERVE_SCRIPT = """
local wait = redis.call('TTL', KEYS[2])
if wait > 0 then return {0, wait} end
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
if count > tonumber(ARGV[2]) then
  redis.call('SET', KEYS[2], 1, 'EX', ARGV[3])
  redis.call('DEL', KEYS[1])
  return {count, tonumber(ARGV[3])}
end
return {count, 0}
"""


_RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) then return redis.call('DECR', KEYS[1]) end
return 0
"""


class RedisBackend:
    """Counters in Redis: ``<prefix><key>`` counts failures and expires with the window;
    ``<prefix><key>:lock`` exists while the subject is locked."""

    def __init__(self, url: str, prefix: str):
        import redis  # only with REDIS_URL: 3 MiB a worker without Redis does not carry

        # Short timeouts: a Redis that hangs must not hold requests; the database stands in.
        self.redis = redis.Redis.from_url(url, socket_timeout=REDIS_TIMEOUT,
                                          socket_connect_timeout=REDIS_TIMEOUT)
        self.prefix = prefix
        self._reserve = self.redis.register_script(_RESERVE_SCRIPT)
        self._release = self.redis.register_script(_RELEASE_SCRIPT)

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

    def reserve(self, key: str, limit: int, window: int, lockout: int, now: int) -> tuple[int, int]:
        name = f"{self.prefix}{key}"
        count, wait = self._reserve(keys=[name, f"{name}:lock"], args=[window, limit, lockout])
        return int(count), max(0, int(wait))

    def lock(self, key: str, lockout: int, now: int) -> int:
        name = f"{self.prefix}{key}"
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(f"{name}:lock", 1, ex=lockout, nx=True)
        pipe.delete(name)
        pipe.ttl(f"{name}:lock")
        return max(0, pipe.execute()[-1])

    def release(self, key: str) -> None:
        self._release(keys=[f"{self.prefix}{key}"])

    def clear(self, key: str) -> None:
        self.redis.delete(f"{self.prefix}{key}")

    def clear_prefix(self, prefix: str) -> int:
        names = list(self.redis.scan_iter(match=f"{self.prefix}{prefix}*", count=1000))
        return self.redis.delete(*names) if names else 0

    def spend_once(self, key: str, expires_at: int, now: int) -> bool:
        # SET NX is atomic: only the first of any number of instances sets the key.
        return bool(self.redis.set(f"{self.prefix}spent:{key}", 1, nx=True, exat=max(expires_at, now + 1)))

    def close(self) -> None:
        """Close the connections to Redis."""
        self.redis.close()


class FallbackBackend:
    """Redis, with the database counters standing in while Redis cannot be reached: a Redis
    error (refused connection, timeout, a server that answers with an error) sends that call and
    every call for the next ``retry`` seconds to the database, with one warning per outage;
    after that Redis is tried again. Counters do not move between the two: a lock made during
    an outage lasts only while the database is in use."""

    def __init__(self, redis_backend: RedisBackend, retry: int):
        self.redis = redis_backend
        self.database = DatabaseBackend()
        self.retry = retry
        from redis import RedisError

        self._errors = (RedisError, OSError)
        self._retry_at = 0.0  # time.monotonic() after which Redis is tried again
        self._down = False
        self._state = threading.Lock()

    def _call(self, name: str, *args):
        if time.monotonic() >= self._retry_at:
            try:
                result = getattr(self.redis, name)(*args)
            except self._errors as error:
                with self._state:
                    self._retry_at = time.monotonic() + self.retry
                    if not self._down:
                        self._down = True
                        log.warning("Redis is unreachable (%s): throttle counters use the database; "
                                    "retrying Redis every %s s.", error, self.retry)
            else:
                if self._down:
                    with self._state:
                        if self._down:
                            self._down = False
                            log.warning("Redis is back: throttle counters use Redis again.")
                return result
        return getattr(self.database, name)(*args)

    def __getattr__(self, name: str):
        if name not in ("locked_for", "record_failure", "reserve", "lock", "release", "clear", "spend_once"):
            raise AttributeError(name)
        return lambda *args: self._call(name, *args)

    def clear_prefix(self, prefix: str) -> int:
        # Both stores: the database may still hold counters from an outage.
        return self._call("clear_prefix", prefix) + self.database.clear_prefix(prefix)

    def close(self) -> None:
        self.redis.close()
