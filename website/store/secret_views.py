"""One-time views of a new client secret, for post/redirect/get.

The POST that makes a secret (register, rotate, an edit that makes a client confidential)
stashes it here and redirects to a page that shows it once: opening that page deletes the
record in the same transaction, so reloading it shows no secret and never repeats the POST.
The secret never goes into the session cookie. At rest, the view's token (in the page's
address) is a SHA-256 hash and the secret is Fernet-encrypted with a key derived (HKDF) from
SECRET_KEY; the record belongs to one user and one client and expires after LIFETIME seconds
(``flask purge-expired`` deletes those nobody opened).
"""

import base64
import secrets

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app
from sqlalchemy import delete, select

from website.extensions import db
from website.models.base import hash_secret, now
from website.models.clients import OAuth2Client, SecretView
from website.models.users import User

#: Seconds a stashed secret waits to be shown.
LIFETIME = 600


#: View tokens are 43 characters; anything much longer is not one.
_MAX_TOKEN_LENGTH = 100


def _fernet_for(secret_key) -> Fernet:
    key = secret_key.encode("utf-8") if isinstance(secret_key, str) else secret_key
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"secret-views/v1").derive(key)
    return Fernet(base64.urlsafe_b64encode(derived))


def _fernet() -> MultiFernet:
    # Encrypts with SECRET_KEY; also decrypts what an old key in SECRET_KEY_FALLBACKS encrypted.
    keys = [current_app.secret_key, *(current_app.config.get("SECRET_KEY_FALLBACKS") or ())]
    return MultiFernet([_fernet_for(key) for key in keys])


def stash(secret: str, client: OAuth2Client, user: User) -> str:
    """Keep ``secret`` for one view by ``user``, in the caller's transaction; return the view's
    token. An earlier view of the same client's secret is dropped: that secret is gone."""
    token = secrets.token_urlsafe(32)
    db.session.execute(delete(SecretView).where(SecretView.client_id == client.client_id))
    db.session.add(SecretView(
        token_hash=hash_secret(token), user_id=user.id, client_id=client.client_id,
        secret_encrypted=_fernet().encrypt(secret.encode("utf-8")).decode("ascii"),
        created_at=now(), expires_at=now() + LIFETIME,
    ))
    return token


def take(token: str, client: OAuth2Client, user: User) -> str | None:
    """The secret stashed under ``token`` for this user and client, once: the record is
    deleted in the caller's transaction. None if there is none (already shown, expired, not
    theirs, or unreadable because SECRET_KEY changed)."""
    if not token or len(token) > _MAX_TOKEN_LENGTH or not token.isascii():
        return None
    view = db.session.scalar(select(SecretView).where(
        SecretView.token_hash == hash_secret(token),
        SecretView.user_id == user.id,
        SecretView.client_id == client.client_id,
    ))
    if view is None:
        return None
    # Of two requests at once, only the one whose DELETE removes the row shows the secret.
    deleted = db.session.execute(delete(SecretView).where(SecretView.id == view.id)).rowcount
    if deleted != 1 or view.expires_at <= now():
        return None
    try:
        return _fernet().decrypt(view.secret_encrypted.encode("ascii")).decode("utf-8")
    except InvalidToken:
        return None
