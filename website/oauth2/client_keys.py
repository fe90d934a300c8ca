"""The public keys a ``private_key_jwt`` client registered (RFC 7523 §2.2, OpenID Connect
Core §9, RFC 7591 §2): a JWKS given inline (``jwks``) or published at a URL (``jwks_uri``),
and the algorithms a client assertion may be signed with.

A jwks_uri is fetched when an assertion needs it, with a bounded timeout and size, and kept
for a short while per instance (OAUTH2_CLIENT_JWKS_CACHE seconds); an assertion signed with
a key the cached set does not have fetches the set again, so a client can rotate its keys.
"""

import ipaddress
import json
import time
import urllib.error
import urllib.request
import warnings
from urllib.parse import urlsplit

from flask import current_app
from joserfc.errors import JoseError, SecurityWarning
from joserfc.jwk import KeySet

#: Asymmetric algorithms only: never ``none``, never HMAC (the secret is stored as a hash).
#: Ed25519 is RFC 9864's name for EdDSA with that curve (joserfc warns that "EdDSA" is deprecated).
SIGNING_ALGS = ["RS256", "PS256", "ES256", "Ed25519"]

#: Key types the algorithms above use.
_KEY_TYPES = {"RSA", "EC", "OKP"}

#: The most bytes read from a jwks_uri; a JWKS of a few keys is a few kilobytes.
MAX_JWKS_BYTES = 64 * 1024

MAX_KEYS = 20


class ClientKeysError(ValueError):
    """The client's registered keys cannot be used; the message is a sentence for people."""


def jwks_problem(jwks) -> str | None:
    """Why a value cannot be registered as a client's JWKS, or None when it can."""
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        return "jwks must be a JSON Web Key Set: an object with a 'keys' list."
    if not 1 <= len(jwks["keys"]) <= MAX_KEYS:
        return f"jwks must hold 1 to {MAX_KEYS} keys."
    try:
        with warnings.catch_warnings():
            # joserfc warns of weak keys (an RSA key under 2048 bits): refuse them instead.
            warnings.simplefilter("error", SecurityWarning)
            key_set = KeySet.import_key_set(jwks)
    except SecurityWarning as warning:
        return f"jwks holds a key too weak to use: {str(warning).rstrip('.')}."
    except (JoseError, ValueError, TypeError, KeyError) as error:
        return f"jwks holds a key that cannot be read ({type(error).__name__})."
    for key in key_set.keys:
        if key.key_type not in _KEY_TYPES:
            return "jwks may hold only public RSA, EC or OKP keys."
        if key.is_private:
            return "jwks holds a private key: register only the public keys."
    return None


def jwks_uri_problem(uri) -> str | None:
    """Why a URL cannot be registered as a client's jwks_uri, or None when it can."""
    if not isinstance(uri, str) or len(uri) > 2000:
        return "jwks_uri must be a URL of at most 2000 characters."
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        return "jwks_uri is not a valid URL."
    if not parts.hostname or parts.fragment or parts.username or parts.password:
        return "jwks_uri must be an absolute URL without credentials or a fragment."
    # Plain http only to this machine (a client under development), as for redirect URIs.
    if parts.scheme != "https" and not (parts.scheme == "http" and _is_loopback(parts.hostname)):
        return "jwks_uri must use https (plain http only for a loopback address)."
    return None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # Only the registered URL is fetched: a redirect could point anywhere.
    def redirect_request(self, *args, **kwargs):
        return None


#: An opener that follows no redirects, for every request this server makes to a client.
no_redirects_opener = urllib.request.build_opener(_NoRedirects)


def _fetch(uri: str) -> KeySet:
    timeout = current_app.config["OAUTH2_CLIENT_JWKS_TIMEOUT"]
    try:
        request = urllib.request.Request(uri, headers={"Accept": "application/json"})
        with no_redirects_opener.open(request, timeout=timeout) as response:
            if response.status != 200:
                raise ClientKeysError(f"the client's jwks_uri answered HTTP {response.status}")
            body = response.read(MAX_JWKS_BYTES + 1)
    except (OSError, ValueError) as error:  # URLError, timeouts and HTTP errors are OSErrors
        if isinstance(error, ClientKeysError):
            raise
        raise ClientKeysError("the client's jwks_uri could not be fetched") from error
    if len(body) > MAX_JWKS_BYTES:
        raise ClientKeysError("the JWKS at the client's jwks_uri is too large")
    try:
        jwks = json.loads(body)
    except ValueError as error:
        raise ClientKeysError("the client's jwks_uri did not return JSON") from error
    if problem := jwks_problem(jwks):
        raise ClientKeysError(f"the JWKS at the client's jwks_uri is not usable: {problem}")
    return KeySet.import_key_set(jwks)


def client_key_set(client, kid: str | None = None) -> KeySet:
    """The public keys the client registered: inline, or fetched from its jwks_uri (cached)."""
    metadata = client.client_metadata
    if metadata.get("jwks"):
        return KeySet.import_key_set(metadata["jwks"])
    uri = metadata.get("jwks_uri")
    if not uri:
        raise ClientKeysError("the client registered no keys")
    cache = current_app.extensions.setdefault("client_jwks_cache", {})
    cached = cache.get(uri)
    now = time.monotonic()
    fresh = cached is not None and cached[0] > now
    # A kid the cached set lacks: the client may have rotated; fetch again (at most once a
    # few seconds, so unknown kids cannot make us fetch on every request).
    if fresh and kid is not None and not _has_kid(cached[1], kid) and cached[2] + 5 < now:
        fresh = False
    if not fresh:
        key_set = _fetch(uri)
        cache[uri] = (now + current_app.config["OAUTH2_CLIENT_JWKS_CACHE"], key_set, now)
        return key_set
    return cached[1]


def _has_kid(key_set: KeySet, kid: str) -> bool:
    return any(key.kid == kid for key in key_set.keys)
