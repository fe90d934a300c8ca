"""Secrets the server must read back (private signing keys, TOTP secrets, upstream providers'
client secrets): Fernet ciphertext under the first key of KEY_ENCRYPTION_KEYS, readable with any.

Every column that holds sealed text is listed in ``SEALED_COLUMNS``, so that
``flask rotate-key-encryption-key`` re-encrypts all of them in one transaction.
"""

from cryptography.fernet import InvalidToken
from flask import current_app
from sqlalchemy import select

from website.extensions import db
from website.models.keys import SigningKey
from website.models.mfa import TotpFactor
from website.models.sessions import UserSession
from website.models.upstreams import Upstream
from website.store import audit

#: (model, column name, what a person calls one row): every column holding ``seal``'s output.
SEALED_COLUMNS = [
    (SigningKey, "private_key_encrypted", "signing key"),
    (TotpFactor, "secret_sealed", "TOTP secret"),
    (Upstream, "client_secret_encrypted", "upstream client secret"),
    (UserSession, "upstream_id_token_sealed", "upstream id_token of session"),
]


class UnsealError(Exception):
    """Sealed text that no key of KEY_ENCRYPTION_KEYS decrypts."""

    def __init__(self, what: str):
        super().__init__(
            f"{what} cannot be decrypted with KEY_ENCRYPTION_KEYS: set the key-encryption key"
            " it was encrypted with (keep the old key after the new one until `flask"
            " rotate-key-encryption-key` has run)."
        )
        self.what = what


def seal(plain: str | bytes) -> str:
    """Encrypt under the first key of KEY_ENCRYPTION_KEYS; the result is ASCII text."""
    if isinstance(plain, str):
        plain = plain.encode("utf-8")
    return current_app.extensions["key_encryption"].encrypt(plain).decode("ascii")


def unseal(ciphertext: str, what: str) -> bytes:
    """Decrypt ``seal``'s output; UnsealError (naming ``what``, e.g. "Signing key 1a2b") if no
    configured key can."""
    try:
        return current_app.extensions["key_encryption"].decrypt(ciphertext.encode("ascii"))
    except InvalidToken:
        raise UnsealError(what) from None


def reseal_everything() -> int:
    """Re-encrypt every sealed column under the first key, in one transaction (all or none);
    return how many values. Raises UnsealError, changing nothing, if one cannot be decrypted."""
    fernet = current_app.extensions["key_encryption"]
    count = 0
    try:
        for model, column, what in SEALED_COLUMNS:
            attribute = getattr(model, column)
            for row in db.session.scalars(select(model).where(attribute.is_not(None)).with_for_update()):
                try:
                    setattr(row, column, fernet.rotate(getattr(row, column).encode("ascii")).decode("ascii"))
                except InvalidToken:
                    raise UnsealError(f"{what.capitalize()} {_name(row)}") from None
                count += 1
        audit.record("key_encryption_key_rotated", values=count)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return count


def _name(row) -> str:
    return str(getattr(row, "kid", None) or getattr(row, "name", None) or getattr(row, "id", ""))
