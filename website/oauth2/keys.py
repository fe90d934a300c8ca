"""The issuer and the signing keys: the key ring every instance reloads when another
rotates the keys, rotation itself, and the JWKS."""

import json
import sys
import threading
import time
from dataclasses import dataclass, field

from flask import Flask, current_app, g
from joserfc.jwa import EdDSAAlgorithm, JWSRegistry
from joserfc.jwk import ECKey, KeySet, OKPKey, RSAKey
from sqlalchemy import delete, func, insert, or_, select
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import ServiceUnavailable

from website.extensions import db
from website.http.front import documents_changed, request_url_root
from website.models.apis import ResourceServer
from website.models.base import now
from website.models.keys import SigningKey
from website.store import audit
from website.store.sealed import UnsealError, seal, unseal

#: What id_tokens are signed with unless the client registered otherwise (OpenID Connect's
#: mandatory default), with the RSA key every generation of keys starts with.
ID_TOKEN_ALG = "RS256"


#: The other algorithms the server signs with, each with a key created when the first token
#: needs it: P-256 for ES256 (what RFC 9068 JWT access tokens are signed with under
#: ACCESS_TOKEN_SIGNING_ALG=ES256), Ed25519 for EdDSA. Both sign in a fraction of RS256's time.
EC_ALG = "ES256"
EDDSA_ALG = "EdDSA"


#: What a client may register as id_token_signed_response_alg and userinfo_signed_response_alg
#: (OpenID Connect Registration §2): the algorithms of this server's own keys; never none or HMAC.
ID_TOKEN_SIGNING_ALGS = (ID_TOKEN_ALG, EC_ALG, EDDSA_ALG)
USERINFO_SIGNING_ALGS = ID_TOKEN_SIGNING_ALGS


class _EdDSA(EdDSAAlgorithm):
    """EdDSA under the name OpenID Connect registers and relying parties' libraries verify,
    without joserfc's warning that RFC 9864 deprecates the name for the fully-specified
    ``Ed25519``: the name is ambiguous about the curve, and this server's EdDSA key is
    always Ed25519 (_generate)."""

    security_warning = None


JWSRegistry.register(_EdDSA())


RSA_KEY_SIZE = 2048


#: Extra seconds a retired key stays published, for clock skew and in-flight tokens.
KEY_RETIREMENT_LEEWAY = 300


#: How long clients may cache the JWKS and discovery documents.
JWKS_MAX_AGE = 300


def get_issuer() -> str:
    """The issuer: ``OAUTH2_ISSUER`` exactly as configured, else the URL the request came in on."""
    return current_app.config.get("OAUTH2_ISSUER") or request_url_root()


class KeyDecryptionError(UnsealError):
    """A stored private signing key that no key of KEY_ENCRYPTION_KEYS decrypts."""

    def __init__(self, kid: str):
        super().__init__(f"Signing key {kid}")
        self.kid = kid


def _decrypt(kid: str, ciphertext: str) -> bytes:
    try:
        return unseal(ciphertext, f"Signing key {kid}")
    except UnsealError:
        raise KeyDecryptionError(kid) from None


Key = RSAKey | ECKey | OKPKey

_KEY_TYPES = {"RSA": RSAKey, "EC": ECKey, "OKP": OKPKey}


def encrypt_private_key(key: Key) -> str:
    """The private JWK as Fernet ciphertext, under the first key of KEY_ENCRYPTION_KEYS."""
    return seal(json.dumps(key.as_dict(private=True)))


def decrypt_private_key(row: SigningKey) -> Key:
    """The row's private key, parsed; KeyDecryptionError if no configured key decrypts it."""
    data = json.loads(_decrypt(row.kid, row.private_key_encrypted))
    return _KEY_TYPES[data.get("kty", "RSA")].import_key(data)


def check_private_keys() -> int:
    """Decrypt every stored private key (keeping none): raise KeyDecryptionError for the first
    that KEY_ENCRYPTION_KEYS cannot decrypt; return how many there are."""
    rows = db.session.execute(
        select(SigningKey.kid, SigningKey.private_key_encrypted)
        .where(SigningKey.private_key_encrypted.is_not(None))
    ).all()
    for kid, ciphertext in rows:
        _decrypt(kid, ciphertext)
    return len(rows)


def _generate(alg: str) -> Key:
    # kid: the RFC 7638 thumbprint
    if alg == EC_ALG:
        return ECKey.generate_key("P-256", auto_kid=True)
    if alg == EDDSA_ALG:
        return OKPKey.generate_key("Ed25519", auto_kid=True)
    return RSAKey.generate_key(RSA_KEY_SIZE, auto_kid=True)


def _row_values(key: Key, alg: str) -> dict:
    return {"kid": key.kid, "alg": alg,
            "public_jwk": {**key.as_dict(private=False), "use": "sig", "alg": alg},
            "private_key_encrypted": encrypt_private_key(key), "created_at": now()}


def create_signing_key() -> SigningKey:
    """Generate an RSA signing key and add it to the session (the caller commits)."""
    row = SigningKey(**_row_values(_generate(ID_TOKEN_ALG), ID_TOKEN_ALG))
    db.session.add(row)
    return row


def create_other_key(alg: str) -> tuple[Key, dict]:
    """Generate and store the key for ``alg`` (one of the algorithms besides ID_TOKEN_ALG) in a
    transaction of its own (the request's session may hold uncommitted work); return the key
    and its public JWK."""
    key = _generate(alg)
    values = _row_values(key, alg)
    with db.engine.begin() as connection:
        connection.execute(insert(SigningKey).values(**values))
    return key, values["public_jwk"]


def ensure_signing_key() -> SigningKey | None:
    """Create the first signing key when there is none; return it, or None if one existed."""
    if db.session.scalar(select(SigningKey.id).limit(1)) is not None:
        return None
    row = create_signing_key()
    db.session.commit()
    return row


def rotate_signing_keys() -> tuple[SigningKey, list[SigningKey], int]:
    """Add a new signing key and retire the others.

    A retired key loses its private half at once but stays published until every token it
    may have signed has expired. Returns the new key, the retired keys still published, and
    how many long-expired keys were deleted.
    """
    config = current_app.config
    stamp = now()
    # JWT access tokens for APIs (audiences.py) may live longer than the default lifetime.
    longest_api = db.session.scalar(select(func.max(ResourceServer.access_token_lifetime))) or 0
    # Clients may choose lifetimes up to the OAUTH2_MAX_* limits.
    keep = max(config["OAUTH2_ID_TOKEN_LIFETIME"], config["OAUTH2_ACCESS_TOKEN_LIFETIME"], longest_api,
               config["OAUTH2_MAX_ID_TOKEN_LIFETIME"], config["OAUTH2_MAX_ACCESS_TOKEN_LIFETIME"])
    deleted = db.session.execute(
        delete(SigningKey).where(SigningKey.publish_until <= stamp)
    ).rowcount
    for old in db.session.scalars(select(SigningKey).where(SigningKey.retired_at.is_(None))):
        old.retired_at = stamp
        old.publish_until = stamp + keep + KEY_RETIREMENT_LEEWAY
        old.private_key_encrypted = None
    new = create_signing_key()
    audit.record("key_rotated", kid=new.kid, retired=deleted)
    db.session.commit()
    key_ring().expire()
    published = db.session.scalars(
        select(SigningKey).where(SigningKey.retired_at.is_not(None), SigningKey.publish_until > stamp)
        .order_by(SigningKey.id)
    ).all()
    return new, list(published), deleted


@dataclass(frozen=True)
class LoadedKeys:
    """One loaded generation of the signing keys."""

    newest_kid: str
    signing_key: RSAKey
    #: (publish_until or None, public JWK) for every key that may still be published.
    public_keys: list[tuple[int | None, dict]]
    #: The newest usable private key of each other algorithm (EC_ALG, EDDSA_ALG), parsed once.
    signers: dict = field(default_factory=dict)
    jwks_cache: dict = field(default_factory=dict, compare=False)

    def jwks_json(self, at: int) -> str:
        """The JWKS of the keys published at ``at``, serialized once per set of keys."""
        published = tuple(jwk["kid"] for until, jwk in self.public_keys if until is None or until > at)
        cached = self.jwks_cache.get(published)
        if cached is None:
            keys = [jwk for _, jwk in self.public_keys if jwk["kid"] in published]
            cached = self.jwks_cache[published] = json.dumps({"keys": keys})
        return cached


class KeyRing:
    """The signing keys this process loaded, reloaded when another instance rotates them.

    The newest kid is read (one indexed query) at most once per OIDC_KEY_CHECK_INTERVAL
    seconds; keys are parsed only when it changes. A rotation by this process shows at once
    (``expire``); one by another instance within the interval, while the key this instance
    signed with stays published (rotate_signing_keys), so its tokens keep verifying.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._keys: LoadedKeys | None = None
        self._checked_at = float("-inf")

    def expire(self) -> None:
        """Read the keys again on next use (after this process rotated them)."""
        self._checked_at = float("-inf")
        documents_changed()

    def current(self) -> LoadedKeys:
        """The current key set, creating the first key if the database has none."""
        keys = self._keys
        checked = time.monotonic()
        if keys is not None and checked - self._checked_at < current_app.config["OIDC_KEY_CHECK_INTERVAL"]:
            return keys
        keys = self._check()
        self._checked_at = checked
        return keys

    def _check(self) -> LoadedKeys:
        newest = db.session.scalar(select(SigningKey.kid).order_by(SigningKey.id.desc()).limit(1))
        if newest is None:
            ensure_signing_key()
            newest = db.session.scalar(select(SigningKey.kid).order_by(SigningKey.id.desc()).limit(1))
        keys = self._keys
        if keys is not None and keys.newest_kid == newest:
            return keys
        with self._lock:
            if self._keys is None or self._keys.newest_kid != newest:
                self._keys = self._load()
                documents_changed()
            return self._keys

    def signer(self, alg: str) -> Key:
        """The private key that signs with ``alg`` (one of ID_TOKEN_SIGNING_ALGS); the key
        of another algorithm than ID_TOKEN_ALG is created when the first token needs it (and
        again after each rotation retired it)."""
        keys = self.current()
        if alg == ID_TOKEN_ALG:
            return keys.signing_key
        key = keys.signers.get(alg)
        if key is not None:
            return key
        if alg not in ID_TOKEN_SIGNING_ALGS:
            raise ValueError(f"This server has no {alg} key.")
        with self._lock:
            keys = self._keys
            if alg not in keys.signers:
                key, jwk = create_other_key(alg)
                # Built from what was just stored: this session's snapshot may not see it yet.
                self._keys = keys = LoadedKeys(
                    newest_kid=key.kid, signing_key=keys.signing_key,
                    signers={**keys.signers, alg: key}, public_keys=[(None, jwk), *keys.public_keys])
                documents_changed()
            return keys.signers[alg]

    def _load(self) -> LoadedKeys:
        rows = db.session.scalars(
            select(SigningKey)
            .where(or_(SigningKey.publish_until.is_(None), SigningKey.publish_until > now()))
            .order_by(SigningKey.id.desc())
        ).all()
        signer = next((row for row in rows if row.private_key_encrypted and row.alg == ID_TOKEN_ALG), None)
        if signer is None:
            # Two rotations at once retired each other's keys: start a fresh one.
            create_signing_key()
            db.session.commit()
            return self._load()
        return LoadedKeys(
            newest_kid=rows[0].kid,
            signing_key=decrypt_private_key(signer),  # once per generation, not per request
            signers={row.alg: decrypt_private_key(row) for row in reversed(rows)
                     if row.private_key_encrypted and row.alg != ID_TOKEN_ALG},
            public_keys=[(row.publish_until, row.public_jwk) for row in rows],
        )


def key_ring() -> KeyRing:
    """This app's key ring (one per app and process)."""
    return current_app.extensions["oidc_key_ring"]


def _current_keys() -> LoadedKeys:
    """The key ring's current keys for a request: 503 and one log line (no traceback) when the
    signing key cannot be decrypted with this instance's KEY_ENCRYPTION_KEYS."""
    try:
        return key_ring().current()
    except KeyDecryptionError as error:
        current_app.logger.error("%s Answered 503.", error)
        raise ServiceUnavailable("The server cannot sign tokens right now; try again later.") from None


def signing_key(alg: str = ID_TOKEN_ALG) -> Key:
    """The key that signs with ``alg`` in this request; fixed for the request so kid and
    signature agree."""
    name = f"oidc_signing_key_{alg}"
    if name not in g:
        _current_keys()  # the 503 for an undecryptable key
        setattr(g, name, key_ring().signer(alg))
    return g.get(name)


def client_signing_alg(client, field: str) -> str | None:
    """What the client registered as ``field`` (id_token_signed_response_alg or
    userinfo_signed_response_alg) when this server signs with it, else None."""
    alg = client.client_metadata.get(field) if client is not None else None
    return alg if alg in ID_TOKEN_SIGNING_ALGS else None


def id_token_alg(client) -> str:
    """What the client's id_tokens and logout tokens are signed with: its registered
    id_token_signed_response_alg, else ID_TOKEN_ALG."""
    return client_signing_alg(client, "id_token_signed_response_alg") or ID_TOKEN_ALG


def jwks_json() -> str:
    """The published public keys as a serialized JWKS."""
    return _current_keys().jwks_json(now())


def get_signing_keyset(alg: str = ID_TOKEN_ALG) -> KeySet:
    """A key set holding only the current private key for ``alg``, so its kid goes in headers."""
    return KeySet([signing_key(alg)])


def get_public_jwks() -> KeySet:
    """Every public key the JWKS publishes: what verifies the tokens this server signed."""
    return KeySet.import_key_set(json.loads(jwks_json()))


#: gunicorn's "worker failed to boot" exit status: gunicorn stops rather than restarting the
#: worker for ever (and any other non-zero status is an error for `flask`).
EXIT_CANNOT_START = 3


def check_private_keys_at_start(app: Flask) -> None:
    """Refuse to start, with one line and a non-zero exit, when a stored private signing key
    cannot be decrypted with KEY_ENCRYPTION_KEYS (instead of failing every request later)."""
    with app.app_context():
        try:
            check_private_keys()
        except KeyDecryptionError as error:
            print(f"Error: {error}", file=sys.stderr)
            raise SystemExit(EXIT_CANNOT_START)
        except SQLAlchemyError:
            # No database, not migrated yet (`flask initdb` checks after migrating) or
            # unreachable (requests answer 503 meanwhile): nothing to check.
            pass
        finally:
            db.session.remove()
