"""Throttling of failed log-ins and client authentications, shared by every instance.

A *subject* is what failures are counted against: ``("account", (username, ip))`` (one
account from one address, so a stranger elsewhere cannot lock the person out), ``("address", ip)``,
``("client", client_id)`` or ``("client_address", ip)``. Each kind has a limit (THROTTLE_*_LIMIT)
of failures within THROTTLE_WINDOW seconds; reaching it locks the subject for
THROTTLE_LOCKOUT seconds, after which it unlocks by itself with a fresh count.

The counters live in the database (one atomic upsert per attempt, on SQLite and PostgreSQL),
or in Redis when REDIS_URL is set; while Redis cannot be reached the database counters stand in
(see FallbackBackend). Passwords are guarded by counting the attempt *before* the check::

    attempt = begin_attempt(*subjects)   # one atomic increment per subject
    if attempt.wait: refuse              # over the limit: the password is never checked
    attempt.succeeded() / attempt.failed()

Client authentication uses ``locked_for(*subjects)`` and ``record_failure(*subjects)``;
``unlock_account(username)`` forgets an account's counters (admins).
"""

import hashlib
import threading
import time

from flask import current_app, request

from website.models.usernames import canonical_username
from website.store.throttle_backends import (
    DatabaseBackend,
    FallbackBackend,
    RedisBackend,
    _locked_until_query,
)

#: The config key holding the failure limit of each kind of subject.
LIMIT_KEYS = {
    "account": "THROTTLE_ACCOUNT_LIMIT",
    "address": "THROTTLE_ADDRESS_LIMIT",
    "client": "THROTTLE_CLIENT_LIMIT",
    # Client authentication failures per address, counted apart from log-ins so a misconfigured
    # service cannot lock out the people who log in from behind the same address.
    "client_address": "THROTTLE_ADDRESS_LIMIT",
}


def _digest(value) -> str:
    return hashlib.sha256(str(value).casefold().encode("utf-8", "surrogatepass")).hexdigest()[:40]


def subject_key(subject: tuple) -> str:
    """The storage key of a subject: its kind and a hash, so no username is stored in clear
    and every key has a bounded length. An account from an address is
    ``account:<hash of the username>:<hash of the address>``, so all of an account's
    counters share a prefix (``unlock_account``)."""
    kind, value = subject
    if kind not in LIMIT_KEYS:
        raise ValueError(f"Unknown throttle subject kind: {kind}")
    if isinstance(value, tuple):
        return ":".join([kind, *map(_digest, value)])
    return f"{kind}:{_digest(value)}"


def account_prefix(username: str) -> str:
    """The key prefix of every counter of one account (by its canonical name: "Alice" and
    "ＡＬＩＣＥ" are alice)."""
    return f"account:{_digest(canonical_username(username))}:"


def client_address() -> str:
    """The address the request came from (behind a proxy, configure ProxyFix so this is the client)."""
    return request.remote_addr or "unknown"


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


_backend_lock = threading.Lock()


def _backend():
    app = current_app
    backend = app.extensions.get("throttle")
    if backend is None:
        with _backend_lock:  # one backend (one Redis pool) per app, even when threads race
            backend = app.extensions.get("throttle")
            if backend is None:
                url = app.config.get("REDIS_URL")
                if url:
                    backend = FallbackBackend(RedisBackend(url, app.config["THROTTLE_REDIS_PREFIX"]),
                                              app.config["THROTTLE_REDIS_RETRY"])
                else:
                    backend = DatabaseBackend()
                app.extensions["throttle"] = backend
    return backend


def close(app) -> None:
    """Release the app's throttle backend connections (Redis); the database needs nothing."""
    backend = app.extensions.pop("throttle", None)
    if isinstance(backend, FallbackBackend):
        backend.close()


def spend_once(context: str, value: str, expires_at: int) -> bool:
    """Spend a one-time value (a DPoP proof's jti) in ``context`` until ``expires_at``, in the
    store every instance shares (the counters' store: Redis when configured, else the
    database); False if it was spent before, a replay."""
    # Not _digest: it folds case, and one-time values are case-sensitive.
    key = hashlib.sha256(f"{context}\x00{value}".encode("utf-8", "surrogatepass")).hexdigest()
    return _backend().spend_once(key, expires_at, int(time.time()))


def locked_for(*subjects: tuple) -> int:
    """Seconds until none of the subjects is locked out; 0 when the attempt may proceed."""
    return _backend().locked_for([subject_key(s) for s in subjects], int(time.time()))


def record_failure(*subjects: tuple) -> int:
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


class Attempt:
    """A password attempt counted before it is checked (``begin_attempt``)."""

    def __init__(self, reserved: list[tuple[str, str, int, int]], wait: int):
        self._reserved = reserved  # (kind, key, count after this attempt, limit)
        #: Seconds to wait when the attempt is refused; 0: go ahead and check the password.
        self.wait = wait

    def succeeded(self) -> None:
        """The password was right: forget the account's failures; the attempt was no failure."""
        backend = _backend()
        for kind, key, _, _ in self._reserved:
            if kind == "account":
                backend.clear(key)
            else:
                backend.release(key)

    def failed(self) -> int:
        """The password was wrong: a subject whose count reached its limit locks; return the
        lockout in seconds (0: not locked)."""
        backend, lockout, now = _backend(), current_app.config["THROTTLE_LOCKOUT"], int(time.time())
        wait = 0
        for _, key, count, limit in self._reserved:
            if count >= limit:
                wait = max(wait, backend.lock(key, lockout, now))
        return wait


def begin_attempt(*subjects: tuple) -> Attempt:
    """Count an attempt against each subject *before* the password is checked, each with one
    atomic increment that returns the new count, so simultaneous guesses (any number of
    processes) get at most the limit of checks. When a subject is locked, or this attempt is
    past its limit, the attempt is refused (``wait`` > 0) and given back to the others."""
    config, backend, now = current_app.config, _backend(), int(time.time())
    reserved, free, wait = [], [], 0
    for subject in subjects:
        limit = config[LIMIT_KEYS[subject[0]]]
        if not limit:
            continue  # a limit of 0 turns this kind of throttling off
        key = subject_key(subject)
        count, locked = backend.reserve(key, limit, config["THROTTLE_WINDOW"], config["THROTTLE_LOCKOUT"], now)
        reserved.append((subject[0], key, count, limit))
        if locked:
            wait = max(wait, locked)
        else:
            free.append(key)
    if wait:
        for key in free:  # a refused attempt checks nothing: it counts against the locked subject only
            backend.release(key)
        return Attempt([], wait)
    return Attempt(reserved, 0)


def login_subjects(username: str) -> tuple:
    """What a password attempt is counted against: the account from this address, and the
    address (across accounts). The account is its canonical name: failures under look-alike
    names count against the one account."""
    address = client_address()
    return ("account", (canonical_username(username), address)), ("address", address)


def unlock_account(username: str) -> int:
    """Forget every counter of an account (from every address); return how many were removed."""
    return _backend().clear_prefix(account_prefix(username))


def clear(subject: tuple) -> None:
    """Forget the failures counted against a subject."""
    _backend().clear(subject_key(subject))


def wait_message(seconds: int) -> str:
    """Tell a person or client how long to wait, in words."""
    minutes = -(-seconds // 60)
    span = f"{minutes} minute{'s' if minutes != 1 else ''}" if seconds > 60 else f"{seconds} seconds"
    return f"Too many failed attempts. Try again in {span}."
