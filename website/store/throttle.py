"""Throttling of failed log-ins and client authentications, shared by every instance.

A *subject* is what failures are counted against: ``("account", (username, ip))`` (one
account from one address, so a stranger elsewhere cannot lock the person out), ``("address", ip)``,
``("account_total", username)`` (the account from every address), ``("client", client_id)``,
``("client_address", ip)``, or ``("user_code", user_id)`` and ``("user_code_address", ip)`` for
user codes typed at /device. Each kind has a limit (THROTTLE_*_LIMIT) of failures within
THROTTLE_WINDOW seconds; reaching it locks the subject for THROTTLE_LOCKOUT seconds, doubled at
each further lockout of the subject within a day (at most THROTTLE_MAX_LOCKOUT), after which it
unlocks by itself with a fresh count.

The account itself is never locked by strangers: ``account_total`` locks only addresses the
person has not signed in from successfully within THROTTLE_KNOWN_ADDRESS_DAYS, so an attack from
many addresses stops there while the person's own places keep working. When the account's
failures from everywhere reach THROTTLE_NOTIFY_AFTER, ``repeated_failures`` is sent once (a mail
to the person, services/lockout.py); at most once per THROTTLE_NOTIFY_INTERVAL.

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
from datetime import timedelta

from blinker import Namespace
from flask import current_app, request
from sqlalchemy import select

from website.extensions import db
from website.models.audit import AuditEvent
from website.models.base import utcnow
from website.models.usernames import canonical_username
from website.models.users import User
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
    # The account from every address: locks only addresses the person has not signed in from.
    "account_total": "THROTTLE_ACCOUNT_TOTAL_LIMIT",
    # Client authentication failures per address, counted apart from log-ins so a misconfigured
    # service cannot lock out the people who log in from behind the same address.
    "client_address": "THROTTLE_ADDRESS_LIMIT",
    # Second-factor codes (TOTP, recovery codes) per account, whatever the address: a code has
    # a million values, so guesses are counted against the account (services/mfa.py).
    "second_factor": "MFA_ATTEMPT_LIMIT",
    # Wrong user codes typed at /device (RFC 8628 §5.1), per person and per address.
    "user_code": "THROTTLE_USER_CODE_LIMIT",
    "user_code_address": "THROTTLE_USER_CODE_LIMIT",
    # Mails with a link asked for (password reset, confirmation again): per account, username
    # or address asked for, and per client address.
    "mail_link": "MAIL_LINK_LIMIT",
    "mail_link_address": "MAIL_LINK_ADDRESS_LIMIT",
    # Passwordless passkey sign-ins started per address: each one stores a challenge.
    "passkey_sign_in_address": "PASSKEY_SIGN_IN_ADDRESS_LIMIT",
}

#: Kinds whose failures are forgotten when the attempt succeeds (the rest are only given back).
_CLEARED_ON_SUCCESS = {"account", "second_factor"}


#: Sent (sender: the app) with ``username`` and ``failures`` when an account's failed log-ins
#: from every address reach THROTTLE_NOTIFY_AFTER; once per THROTTLE_NOTIFY_INTERVAL.
repeated_failures = Namespace().signal("repeated-login-failures")

#: Seconds a subject's lockouts are remembered, for the growing lockout.
LOCKOUTS_REMEMBERED = 24 * 3600

#: The count limit of a subject that is counted but never locks (account_total with its limit 0,
#: so the person is still told about repeated failures).
_COUNT_ONLY = 10**9


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

    def __init__(self, reserved: list[tuple[str, str, int, int]], wait: int, username: str | None = None):
        self._reserved = reserved  # (kind, key, count after this attempt, limit)
        self._username = username
        #: Seconds to wait when the attempt is refused; 0: go ahead and check the password.
        self.wait = wait

    def succeeded(self) -> None:
        """The password was right: forget the failures of the account from this address (and
        its lockouts); the attempt was no failure. The account's count from every address stays:
        the person signing in does not give strangers elsewhere fresh guesses."""
        backend = _backend()
        for kind, key, _, _ in self._reserved:
            if kind in _CLEARED_ON_SUCCESS:
                backend.clear(key)
                backend.clear(_lockouts_key(key))
            else:
                backend.release(key)

    def failed(self) -> int:
        """The password was wrong: a subject whose count reached its limit locks, for longer at
        each lockout within a day; return the lockout in seconds (0: not locked)."""
        backend, config, now = _backend(), current_app.config, int(time.time())
        wait = 0
        for kind, key, count, limit in self._reserved:
            if count >= limit:
                lockouts, _ = backend.reserve(_lockouts_key(key), _COUNT_ONLY, LOCKOUTS_REMEMBERED, 0, now)
                lockout = min(config["THROTTLE_LOCKOUT"] * 2 ** min(lockouts - 1, 30),
                              max(config["THROTTLE_MAX_LOCKOUT"], config["THROTTLE_LOCKOUT"]))
                locked = backend.lock(key, lockout, now)
                if kind != "account_total" or not _known_address(self._username, client_address()):
                    wait = max(wait, locked)
            if kind == "account_total" and self._username is not None:
                _maybe_notify(self._username, count)
        return wait


def _lockouts_key(key: str) -> str:
    """The counter of a subject's lockouts (under the subject's prefix, so unlock clears it)."""
    return f"{key}:n"


def _maybe_notify(username: str, failures: int) -> None:
    """Send ``repeated_failures`` once the account's failures reach THROTTLE_NOTIFY_AFTER, at
    most once per THROTTLE_NOTIFY_INTERVAL (a one-failure counter marks that it was sent)."""
    config = current_app.config
    threshold = config["THROTTLE_NOTIFY_AFTER"]
    if not threshold or failures < threshold:
        return
    interval, now = config["THROTTLE_NOTIFY_INTERVAL"], int(time.time())
    marker = f"account_mail:{_digest(username)}"
    count, locked = _backend().reserve(marker, 1, interval, interval, now)
    if count != 1 or locked:
        return  # already told within the interval
    delivered = [result for _, result in repeated_failures.send(
        current_app._get_current_object(), username=username, failures=failures)]
    if delivered and not all(delivered):
        _backend().clear(marker)  # not delivered (the mail server was down): try at the next failure


def _known_address(username: str | None, address: str) -> bool:
    """Whether the person signed in successfully from this address within
    THROTTLE_KNOWN_ADDRESS_DAYS (the audit log's ``login_succeeded``): the account's total
    limit does not lock such an address."""
    days = current_app.config["THROTTLE_KNOWN_ADDRESS_DAYS"]
    if not username or not days or "\x00" in username:
        return False
    since = utcnow() - timedelta(days=days)
    return db.session.scalar(
        select(AuditEvent.id).join(User, User.id == AuditEvent.user_id).where(
            User.username_canonical == canonical_username(username),
            AuditEvent.event == "login_succeeded", AuditEvent.ip_address == address[:45],
            AuditEvent.created_at >= since).limit(1)) is not None


def begin_attempt(*subjects: tuple) -> Attempt:
    """Count an attempt against each subject *before* the password is checked, each with one
    atomic increment that returns the new count, so simultaneous guesses (any number of
    processes) get at most the limit of checks. When a subject is locked, or this attempt is
    past its limit, the attempt is refused (``wait`` > 0) and given back to the others. A locked
    ``account_total`` refuses only addresses the person has not signed in from."""
    config, backend, now = current_app.config, _backend(), int(time.time())
    reserved, free, wait, username = [], [], 0, None
    for subject in subjects:
        limit = config[LIMIT_KEYS[subject[0]]]
        if subject[0] == "account_total":
            username, limit = subject[1], limit or _COUNT_ONLY
        if not limit:
            continue  # a limit of 0 turns this kind of throttling off
        key = subject_key(subject)
        count, locked = backend.reserve(key, limit, config["THROTTLE_WINDOW"], config["THROTTLE_LOCKOUT"], now)
        if locked and subject[0] == "account_total" and _known_address(username, client_address()):
            continue  # the person's own address: strangers elsewhere do not lock them out
        if locked:
            wait = max(wait, locked)
        else:
            reserved.append((subject[0], key, count, limit))
            free.append(key)
    if wait:
        for key in free:  # a refused attempt checks nothing: it counts against the locked subject only
            backend.release(key)
        return Attempt([], wait)
    return Attempt(reserved, 0, username)


def login_subjects(username: str) -> tuple:
    """What a password attempt is counted against: the account from this address, and the
    address (across accounts). The account is its canonical name: failures under look-alike
    names count against the one account."""
    address, name = client_address(), canonical_username(username)
    return ("account", (name, address)), ("address", address), ("account_total", name)


def unlock_account(username: str) -> int:
    """Forget every counter of an account (from every address, its total and lockouts, the
    mark that the person was told); return how many were removed."""
    name = canonical_username(username)
    return sum(_backend().clear_prefix(prefix) for prefix in (
        account_prefix(username), subject_key(("account_total", name)), f"account_mail:{_digest(name)}"))


def clear(subject: tuple) -> None:
    """Forget the failures counted against a subject."""
    _backend().clear(subject_key(subject))


def wait_message(seconds: int, reason: str = "Too many failed attempts") -> str:
    """Tell a person or client why (``reason``) and how long to wait, in words."""
    minutes = -(-seconds // 60)
    span = f"{minutes} minute{'s' if minutes != 1 else ''}" if seconds > 60 else f"{seconds} seconds"
    return f"{reason}. Try again in {span}."
