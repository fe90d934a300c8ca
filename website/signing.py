"""The narrow seam through which logout and JWT access tokens reach the signing keys that
``oidc.py`` keeps in the database (so those features never touch the key store directly)."""

import json

from joserfc.jwk import KeySet

from . import oidc

#: The algorithm of every token this server signs.
SIGNING_ALG = oidc.ID_TOKEN_ALG


def get_signing_keyset() -> KeySet:
    """A key set holding only the current private signing key, so its kid goes in headers."""
    return KeySet([oidc.signing_key()])


def get_public_jwks() -> KeySet:
    """Every public key the JWKS publishes: what verifies the tokens this server signed."""
    return KeySet.import_key_set(json.loads(oidc.jwks_json()))
