"""The narrow interface through which logout, JWT access tokens and introspection reach the
server's signing keys and issuer.

The key store itself (keys in the database, rotation, JWKS) belongs to the OpenID Connect
module; it plugs in here as a *key provider*: any object with ``signing_key()`` (the current
private joserfc key, with a ``kid``) and ``public_keyset()`` (a joserfc ``KeySet`` of every
published public key), stored as ``app.extensions["signing_keys"]``. Keeping the interface
this small lets either side change without touching the other.
"""

from flask import current_app, request
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

#: The algorithm of every token this server signs.
SIGNING_ALG = "RS256"


class SigningKeysUnavailable(RuntimeError):
    """No key provider is registered with the app, so nothing can be signed or verified."""


def _provider():
    provider = current_app.extensions.get("signing_keys")
    if provider is None:
        raise SigningKeysUnavailable("No signing key provider is registered with the app.")
    return provider


def register_key_provider(app, provider) -> None:
    """Make ``provider`` the app's source of signing keys."""
    app.extensions["signing_keys"] = provider


def get_issuer() -> str:
    """The issuer identifier: exactly OAUTH2_ISSUER, or the URL the request came in on."""
    return current_app.config.get("OAUTH2_ISSUER") or request.url_root.rstrip("/")


def get_signing_keyset() -> KeySet:
    """A key set holding only the current private signing key (so its kid goes in headers)."""
    return KeySet([_provider().signing_key()])


def get_public_jwks() -> KeySet:
    """Every public key the server publishes, for verifying what it signed."""
    return _provider().public_keyset()


def verify_jwt(token: str, claims_options: dict | None = None) -> dict:
    """Verify a JWT this server signed; return its claims or raise ``JoseError``."""
    decoded = jwt.decode(token, get_public_jwks(), algorithms=[SIGNING_ALG])
    jwt.JWTClaimsRegistry(**(claims_options or {})).validate(decoded.claims)
    return dict(decoded.claims)


__all__ = [
    "JoseError",
    "SIGNING_ALG",
    "SigningKeysUnavailable",
    "get_issuer",
    "get_public_jwks",
    "get_signing_keyset",
    "register_key_provider",
    "verify_jwt",
]
