"""DPoP proofs built by hand with joserfc (RFC 9449 §4), right ones and each kind of wrong one."""

import base64
import hashlib
import json
import secrets
import time

from joserfc import jws
from joserfc.jwk import ECKey

#: The Flask test client's URLs.
TOKEN_URL = "http://localhost/oauth/token"
ME_URL = "http://localhost/api/me"


def ath(access_token: str) -> str:
    """§4.2: base64url SHA-256 of the access token."""
    return base64.urlsafe_b64encode(hashlib.sha256(access_token.encode()).digest()).rstrip(b"=").decode()


class DPoPKey:
    """A client's DPoP key pair (P-256) that signs proofs."""

    def __init__(self, key=None):
        self.key = key or ECKey.generate_key("P-256")
        #: RFC 7638 thumbprint: what the server binds tokens to (cnf.jkt, dpop_jkt).
        self.jkt = self.key.thumbprint()

    def proof(self, method: str, url: str, access_token: str | None = None, nonce: str | None = None,
              iat: int | None = None, jti: str | None = None, header: dict | None = None,
              claims: dict | None = None, signer=None) -> str:
        """A proof for ``method url``; ``header``/``claims`` override or (with None) drop
        members; ``signer`` signs with another key than the one in the header."""
        protected = {"typ": "dpop+jwt", "alg": "ES256", "jwk": self.key.as_dict(private=False)}
        payload = {"jti": jti or secrets.token_urlsafe(16), "htm": method, "htu": url,
                   "iat": int(time.time()) if iat is None else iat}
        if access_token is not None:
            payload["ath"] = ath(access_token)
        if nonce is not None:
            payload["nonce"] = nonce
        for target, changes in ((protected, header), (payload, claims)):
            for name, value in (changes or {}).items():
                if value is None:
                    target.pop(name, None)
                else:
                    target[name] = value
        if protected.get("alg") != "ES256":
            # An algorithm the server must refuse before it verifies anything (none, HS256):
            # the parts are assembled by hand, with a signature of random bytes.
            parts = [json.dumps(protected).encode(), json.dumps(payload).encode(), secrets.token_bytes(64)]
            return ".".join(base64.urlsafe_b64encode(p).rstrip(b"=").decode() for p in parts)
        return jws.serialize_compact(protected, json.dumps(payload), (signer or self).key, algorithms=["ES256"])

    def headers(self, method: str, url: str, access_token: str | None = None, **kwargs) -> dict:
        """The DPoP header, and Authorization: DPoP when there is an access token."""
        headers = {"DPoP": self.proof(method, url, access_token, **kwargs)}
        if access_token is not None:
            headers["Authorization"] = f"DPoP {access_token}"
        return headers
