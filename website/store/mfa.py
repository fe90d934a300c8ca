"""Reads and writes of second factors: the TOTP authenticator (its secret sealed) and the
recovery codes (their SHA-256), and which kinds of second factor a person has.

Single use is enforced by guarded UPDATEs, so two simultaneous requests with the same TOTP
code or recovery code cannot both succeed (on SQLite and PostgreSQL alike).
"""

import secrets

from sqlalchemy import delete, func, or_, select, update

from website.extensions import db
from website.models.base import hash_secret, now
from website.models.mfa import RecoveryCode, TotpFactor
from website.models.users import User
from website.store.passkeys import has_passkey, remove_all_passkeys
from website.store.sealed import seal, unseal

#: How many recovery codes a person gets at a time.
RECOVERY_CODE_COUNT = 10

#: Letters and digits that cannot be mistaken for one another when copied by hand.
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"


def totp_factor(user: User) -> TotpFactor | None:
    """The person's TOTP row, confirmed or not."""
    return db.session.scalar(select(TotpFactor).where(TotpFactor.user_id == user.id))


def confirmed_totp(user: User) -> TotpFactor | None:
    """The person's TOTP authenticator once a code proved it; None otherwise."""
    factor = totp_factor(user)
    return factor if factor is not None and factor.confirmed_at is not None else None


def totp_secret(factor: TotpFactor) -> str:
    """The authenticator's base32 secret, unsealed."""
    return unseal(factor.secret_sealed, f"TOTP secret of user {factor.user_id}").decode("ascii")


def start_totp(user: User, secret: str) -> TotpFactor:
    """Keep a new, unconfirmed secret for the person (replacing an earlier unconfirmed one;
    a confirmed authenticator is never replaced this way)."""
    factor = totp_factor(user)
    if factor is None:
        factor = TotpFactor(user_id=user.id, secret_sealed=seal(secret))
        db.session.add(factor)
    elif factor.confirmed_at is None:
        factor.secret_sealed, factor.created_at, factor.last_used_step = seal(secret), now(), None
    else:
        raise ValueError("The person already has a confirmed authenticator.")
    return factor


def claim_totp_step(factor: TotpFactor, step: int, confirm: bool = False) -> bool:
    """Mark the code of time step ``step`` used, unless it (or a later one) already was: True
    when this call won. ``confirm`` also marks the authenticator confirmed."""
    values = {"last_used_step": step, "last_used_at": now()}
    if confirm:
        values["confirmed_at"] = now()
    result = db.session.execute(
        update(TotpFactor)
        .where(TotpFactor.id == factor.id,
               or_(TotpFactor.last_used_step.is_(None), TotpFactor.last_used_step < step))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount == 1:
        db.session.expire(factor)
        return True
    return False


def delete_totp(user: User) -> bool:
    """Remove the person's authenticator; True if there was a confirmed one."""
    result = db.session.execute(delete(TotpFactor).where(TotpFactor.user_id == user.id,
                                                         TotpFactor.confirmed_at.is_not(None)))
    db.session.execute(delete(TotpFactor).where(TotpFactor.user_id == user.id))
    return result.rowcount > 0


def new_recovery_code() -> str:
    """A random recovery code such as ``k7dm-q2xa-9hfp`` (12 characters, about 59 bits)."""
    raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(12))
    return f"{raw[:4]}-{raw[4:8]}-{raw[8:]}"


def normalize_recovery_code(text: str) -> str:
    """What a person typed, as the code is stored: lower case, the dashes where they belong."""
    raw = "".join(c for c in text.lower() if c.isalnum())
    return f"{raw[:4]}-{raw[4:8]}-{raw[8:]}" if len(raw) == 12 else raw


def replace_recovery_codes(user: User) -> list[str]:
    """Give the person a fresh set of recovery codes (the old ones stop working); return them
    in plain, to show once. Only their hashes are stored."""
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = [new_recovery_code() for _ in range(RECOVERY_CODE_COUNT)]
    db.session.add_all(RecoveryCode(user_id=user.id, code_hash=hash_secret(code)) for code in codes)
    return codes


def delete_recovery_codes(user: User) -> int:
    return db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id)).rowcount


def claim_recovery_code(user: User, text: str) -> bool:
    """Spend one of the person's unused recovery codes: True when ``text`` was one (now used)."""
    code = normalize_recovery_code(text)
    if len(code) != 14:
        return False
    result = db.session.execute(
        update(RecoveryCode)
        .where(RecoveryCode.user_id == user.id, RecoveryCode.code_hash == hash_secret(code),
               RecoveryCode.used_at.is_(None))
        .values(used_at=now())
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def recovery_codes_left(user: User) -> int:
    return db.session.scalar(select(func.count()).select_from(RecoveryCode).where(
        RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None))) or 0


def factor_kinds(user: User) -> list[str]:
    """The kinds of second factor the person can sign in with, strongest first:
    ``"passkey"`` (store/passkeys.py), ``"totp"`` (a confirmed authenticator) and ``"recovery_code"`` (unused codes, counted only
    beside another factor). A new kind (passkeys) adds its own check here."""
    kinds = []
    if has_passkey(user):
        kinds.append("passkey")
    if confirmed_totp(user) is not None:
        kinds.append("totp")
    if kinds and recovery_codes_left(user):
        kinds.append("recovery_code")
    return kinds


def has_second_factor(user) -> bool:
    """Tell whether the person has a second factor (not counting recovery codes alone)."""
    return bool(factor_kinds(user))


def reset_factors(user: User) -> list[str]:
    """Remove every second factor of the person (an administrator's reset); return the kinds
    removed. Their MFA grace period starts again."""
    removed = [kind for kind in factor_kinds(user) if kind != "recovery_code"]
    delete_totp(user)
    delete_recovery_codes(user)
    remove_all_passkeys(user)  # a lost device's passkeys go with it
    user.mfa_grace_started_at = None
    return removed
