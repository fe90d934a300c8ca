"""Device codes (RFC 8628): storing one, finding one by its device code or user code (each
kept as its SHA-256), the person's decision, polling pace, and spending it once.

Every change is an UPDATE guarded by the state it leaves, so instances sharing the database
agree: one decision per code, one redemption, one poll per interval.
"""

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import joinedload

from website.extensions import db
from website.models.base import hash_secret, now
from website.models.pending import DeviceCode

#: The longest device code or user code looked up.
MAX_CODE_LENGTH = 512

#: What slow_down adds to the interval (RFC 8628 §3.5).
SLOW_DOWN_STEP = 5

_BY_DEVICE_CODE = (
    select(DeviceCode).options(joinedload(DeviceCode.user))
    .where(DeviceCode.device_code_hash == bindparam("hash"))
)
_BY_USER_CODE = select(DeviceCode).where(DeviceCode.user_code_hash == bindparam("hash"))


def save_device_code(device_code: str, user_code: str, **values) -> DeviceCode:
    """Store a new device authorization (both codes as hashes), and commit."""
    item = DeviceCode(device_code_hash=hash_secret(device_code), user_code_hash=hash_secret(user_code), **values)
    db.session.add(item)
    db.session.commit()
    return item


def query_device_code(device_code: str) -> DeviceCode | None:
    """The row of this device code (and its user), used or not."""
    if not device_code or len(device_code) > MAX_CODE_LENGTH:
        return None
    return db.session.scalar(_BY_DEVICE_CODE, {"hash": hash_secret(device_code)})


def query_user_code(user_code: str) -> DeviceCode | None:
    """The row of this (normalised) user code, used or not."""
    if not user_code or len(user_code) > MAX_CODE_LENGTH:
        return None
    return db.session.scalar(_BY_USER_CODE, {"hash": hash_secret(user_code)})


def decide(item: DeviceCode, user_id: int, allowed: bool, auth_time: int | None) -> bool:
    """Record the person's answer, in the caller's transaction; False if the code was already
    answered or has expired (only the first answer counts)."""
    return bool(db.session.execute(
        update(DeviceCode)
        .where(DeviceCode.id == item.id, DeviceCode.decision.is_(None), DeviceCode.expires_at > now())
        .values(user_id=user_id, decision="allowed" if allowed else "denied", auth_time=auth_time)
    ).rowcount)


def record_poll(item: DeviceCode) -> bool:
    """Note a poll; False (and the interval raised by SLOW_DOWN_STEP) when it came sooner
    than the interval after the previous one. Commits."""
    stamp = now()
    polled = db.session.execute(
        update(DeviceCode)
        .where(DeviceCode.id == item.id,
               (DeviceCode.last_polled_at.is_(None)) | (DeviceCode.last_polled_at <= stamp - DeviceCode.interval))
        .values(last_polled_at=stamp)
    ).rowcount
    if not polled:
        db.session.execute(
            update(DeviceCode).where(DeviceCode.id == item.id)
            .values(interval=DeviceCode.interval + SLOW_DOWN_STEP, last_polled_at=stamp)
        )
    db.session.commit()
    return bool(polled)


def claim_device_code(item: DeviceCode) -> bool:
    """Mark the device code used, in the caller's transaction; False if it already was.

    Like ``codes.claim_code``: the UPDATE guarded by ``used_at IS NULL`` lets exactly one
    concurrent transaction change the row, so only one redemption can succeed.
    """
    return bool(db.session.execute(
        update(DeviceCode)
        .where(DeviceCode.id == item.id, DeviceCode.used_at.is_(None), DeviceCode.decision == "allowed")
        .values(used_at=now())
    ).rowcount)
