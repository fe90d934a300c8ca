"""Reads and writes of passkeys and of the challenges their ceremonies answer.

A challenge is single-use: answering it deletes it (a guarded DELETE whose row count is
checked, or Redis's GETDEL), so of two answers racing with one challenge exactly one gets it;
an expired challenge is never accepted. Challenges live in the database, or in Redis when
REDIS_URL is set (keys expire by themselves); while Redis cannot be reached the database
stands in, as for the throttle counters, and an answer is looked for in both.
"""

import hashlib
import logging
import secrets
import threading

from flask import current_app
from sqlalchemy import delete, select, update

from website.extensions import db
from website.models.base import now, utcnow
from website.models.passkeys import Passkey, WebAuthnChallenge
from website.models.users import User
from website.store.throttle_backends import REDIS_TIMEOUT

logger = logging.getLogger("website.passkeys")

#: 32 random bytes: WebAuthn §13.4.3 asks for at least 16.
CHALLENGE_BYTES = 32

_redis_lock = threading.Lock()


def _challenge_hash(challenge: bytes) -> str:
    return hashlib.sha256(challenge).hexdigest()


def _owner_value(purpose: str, user: User | None) -> str:
    return f"{purpose}:{user.id if user is not None else ''}"


def _redis():
    """The app's Redis client for challenges (None without REDIS_URL), made once per app."""
    app = current_app
    url = app.config.get("REDIS_URL")
    if not url:
        return None
    client = app.extensions.get("webauthn_redis")
    if client is None:
        with _redis_lock:
            client = app.extensions.get("webauthn_redis")
            if client is None:
                import redis  # only with REDIS_URL: 3 MiB a worker without Redis does not carry

                # Short timeouts: a Redis that hangs must not hold a sign-in; the database stands in.
                client = redis.Redis.from_url(url, socket_timeout=REDIS_TIMEOUT,
                                              socket_connect_timeout=REDIS_TIMEOUT)
                app.extensions["webauthn_redis"] = client
    return client


def _redis_key(challenge_hash: str) -> str:
    return current_app.config["WEBAUTHN_REDIS_PREFIX"] + challenge_hash


def issue_challenge(purpose: str, user: User | None, lifetime: int) -> bytes:
    """Make a fresh challenge for one ceremony (of ``user``, or of anyone when None), kept
    ``lifetime`` seconds (in Redis, or in the database, where expired ones are swept first)."""
    challenge = secrets.token_bytes(CHALLENGE_BYTES)
    digest = _challenge_hash(challenge)
    if (client := _redis()) is not None:
        from redis import RedisError

        try:
            client.set(_redis_key(digest), _owner_value(purpose, user), ex=lifetime)
            return challenge
        except RedisError as error:
            logger.warning("Redis is unavailable for passkey challenges (%s); the database stands in", error)
    db.session.execute(delete(WebAuthnChallenge).where(WebAuthnChallenge.expires_at <= now()))
    db.session.add(WebAuthnChallenge(challenge_hash=digest, purpose=purpose,
                                     user_id=user.id if user is not None else None,
                                     expires_at=now() + lifetime))
    db.session.commit()
    return challenge


def consume_challenge(challenge: bytes, purpose: str, user: User | None) -> bool:
    """Spend a challenge: True only for an unexpired challenge made for this ceremony and
    person, and only once (the database's in the caller's transaction)."""
    digest = _challenge_hash(challenge)
    if (client := _redis()) is not None:
        from redis import RedisError

        try:
            stored = client.getdel(_redis_key(digest))
        except RedisError as error:
            logger.warning("Redis is unavailable for passkey challenges (%s); the database stands in", error)
        else:
            if stored is not None:
                # Spent whatever it was made for: a challenge is never tried twice.
                return stored.decode() == _owner_value(purpose, user)
    owner = WebAuthnChallenge.user_id.is_(None) if user is None else WebAuthnChallenge.user_id == user.id
    return bool(db.session.execute(
        delete(WebAuthnChallenge).where(
            WebAuthnChallenge.challenge_hash == digest,
            WebAuthnChallenge.purpose == purpose, owner, WebAuthnChallenge.expires_at > now())
    ).rowcount)


def list_passkeys(user: User) -> list[Passkey]:
    """The person's passkeys, oldest first."""
    return list(db.session.scalars(select(Passkey).where(Passkey.user_id == user.id).order_by(Passkey.id)))


def has_passkey(user: User) -> bool:
    """Whether the person has at least one passkey."""
    return db.session.scalar(select(Passkey.id).where(Passkey.user_id == user.id).limit(1)) is not None


def find_passkey(credential_id: str) -> Passkey | None:
    """The passkey with this credential id (base64url), whoever it belongs to."""
    if len(credential_id) > 1400:
        return None
    return db.session.scalar(select(Passkey).where(Passkey.credential_id == credential_id))


def user_passkey(user: User, passkey_id: int) -> Passkey | None:
    """One of the person's passkeys by its row id (None for someone else's)."""
    return db.session.scalar(select(Passkey).where(Passkey.id == passkey_id, Passkey.user_id == user.id))


def add_passkey(user: User, credential_id: str, public_key: bytes, sign_count: int, transports: list[str],
                name: str, backed_up: bool) -> Passkey:
    """Add a verified credential to the person's passkeys, in the caller's transaction."""
    passkey = Passkey(user_id=user.id, credential_id=credential_id, public_key=public_key,
                      sign_count=sign_count, transports=" ".join(transports)[:200], name=name,
                      backed_up=backed_up)
    db.session.add(passkey)
    return passkey


def record_use(passkey: Passkey, new_sign_count: int, backed_up: bool) -> bool:
    """Store the counter of a verified assertion and when it was used, in the caller's
    transaction; False when another request stored a counter first (a cloned or replayed
    authenticator racing this one): the update is guarded by the counter it was checked against."""
    changed = db.session.execute(
        update(Passkey).where(Passkey.id == passkey.id, Passkey.sign_count == passkey.sign_count)
        .values(sign_count=new_sign_count, last_used_at=utcnow(), backed_up=backed_up)
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.expire(passkey)
    return bool(changed)


def remove_passkey(passkey: Passkey) -> None:
    """Delete the passkey, in the caller's transaction."""
    db.session.delete(passkey)


def remove_all_passkeys(user: User) -> None:
    """Delete every passkey of the person (an administrator's reset of their factors)."""
    db.session.execute(delete(Passkey).where(Passkey.user_id == user.id))


def close(app) -> None:
    """Release the app's Redis connections for challenges (if it made any)."""
    client = app.extensions.pop("webauthn_redis", None)
    if client is not None:
        client.close()
