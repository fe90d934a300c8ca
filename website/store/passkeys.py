"""Reads and writes of passkeys and of the challenges their ceremonies answer.

A challenge is single-use: answering it deletes its row with a guarded DELETE whose row count
is checked, so of two answers racing with one challenge exactly one gets it; an expired row is
never accepted and is swept when new challenges are made.
"""

import hashlib
import secrets

from sqlalchemy import delete, select, update

from website.extensions import db
from website.models.base import now, utcnow
from website.models.passkeys import Passkey, WebAuthnChallenge
from website.models.users import User

#: 32 random bytes: WebAuthn §13.4.3 asks for at least 16.
CHALLENGE_BYTES = 32


def _challenge_hash(challenge: bytes) -> str:
    return hashlib.sha256(challenge).hexdigest()


def issue_challenge(purpose: str, user: User | None, lifetime: int) -> bytes:
    """Make a fresh challenge for one ceremony (of ``user``, or of anyone when None), kept
    ``lifetime`` seconds; expired challenges are swept first. Commits."""
    challenge = secrets.token_bytes(CHALLENGE_BYTES)
    db.session.execute(delete(WebAuthnChallenge).where(WebAuthnChallenge.expires_at <= now()))
    db.session.add(WebAuthnChallenge(challenge_hash=_challenge_hash(challenge), purpose=purpose,
                                     user_id=user.id if user is not None else None,
                                     expires_at=now() + lifetime))
    db.session.commit()
    return challenge


def consume_challenge(challenge: bytes, purpose: str, user: User | None) -> bool:
    """Spend a challenge, in the caller's transaction: True only for an unexpired challenge made
    for this ceremony and person, and only once."""
    owner = WebAuthnChallenge.user_id.is_(None) if user is None else WebAuthnChallenge.user_id == user.id
    return bool(db.session.execute(
        delete(WebAuthnChallenge).where(
            WebAuthnChallenge.challenge_hash == _challenge_hash(challenge),
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
