"""DPoP (RFC 9449): a client proves with every token request and every resource request
that it holds a private key, and the tokens it gets work only with that key.

Authlib 1.8/1.9 has no DPoP, so the proof check is here, on joserfc: ``check_proof`` is
the one check (RFC 9449 §4.3) the token endpoint (``DPoPBinding``, a grant extension) and
the resource protector (``protector.DPoPValidator``) share. Spent ``jti`` values live where
every instance sees them (``store.throttle.spend_once``: Redis or the database). Server nonces
(§8, §9) are stateless: a time and its HMAC under SECRET_KEY, so every instance checks them.
"""

import base64
import hashlib
import hmac
import json
import time
import warnings
from urllib.parse import urlsplit

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749.errors import InvalidGrantError, InvalidRequestError
from flask import current_app, g
from flask import request as flask_request
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import JWKRegistry

from website.extensions import db
from website.oauth2.keys import get_issuer
from website.store import audit, throttle

#: The proof signing algorithms accepted (§5.1 ``dpop_signing_alg_values_supported``):
#: asymmetric only, never ``none`` or HMAC (§4.3 check 5).
DPOP_SIGNING_ALGS = ["ES256", "ES384", "PS256", "RS256", "EdDSA"]

#: The proof's JOSE type (§4.2).
PROOF_TYPE = "dpop+jwt"

#: The longest proof read; one with an RSA key and an ``ath`` is under 2 kB.
MAX_PROOF_LENGTH = 8192

#: Private key members a proof's ``jwk`` must not carry (§4.3 check 7), and a symmetric key.
_PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


class InvalidDPoPProofError(OAuth2Error):
    """§7.1 / §5: the DPoP proof is missing, malformed or does not match the request."""

    error = "invalid_dpop_proof"
    status_code = 400


class UseDPoPNonceError(OAuth2Error):
    """§8 / §9: the proof must carry the nonce the server gives in the DPoP-Nonce header."""

    error = "use_dpop_nonce"
    status_code = 400
    description = "Send a DPoP proof with the nonce given in the DPoP-Nonce header."

    def get_headers(self):
        return super().get_headers() + [("DPoP-Nonce", new_nonce())]


def enabled() -> bool:
    """Tell whether the server takes DPoP proofs (OAUTH2_DPOP)."""
    return bool(current_app.config["OAUTH2_DPOP"])


def nonces_required() -> bool:
    """Tell whether every proof must carry a server nonce (OAUTH2_DPOP_NONCE)."""
    return enabled() and bool(current_app.config["OAUTH2_DPOP_NONCE"])


def _nonce_mac(issued: str) -> str:
    key = current_app.config["SECRET_KEY"].encode()
    mac = hmac.new(key, b"dpop-nonce\x00" + issued.encode(), hashlib.sha256).digest()[:18]
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def new_nonce() -> str:
    """A nonce any instance sharing SECRET_KEY accepts for OAUTH2_DPOP_NONCE_LIFETIME seconds."""
    issued = str(int(time.time()))
    return f"{issued}.{_nonce_mac(issued)}"


def nonce_is_valid(nonce) -> bool:
    """Tell whether ``nonce`` is one this server gave out and is still fresh."""
    if not isinstance(nonce, str) or len(nonce) > 100:
        return False
    issued, _, mac = nonce.partition(".")
    if not issued.isdigit() or not hmac.compare_digest(mac.encode(), _nonce_mac(issued).encode()):
        return False
    age = int(time.time()) - int(issued)
    return -current_app.config["OAUTH2_DPOP_CLOCK_SKEW"] <= age <= current_app.config["OAUTH2_DPOP_NONCE_LIFETIME"]


def access_token_hash(access_token: str) -> str:
    """§4.2 ``ath``: base64url of the SHA-256 of the access token's ASCII."""
    digest = hashlib.sha256(access_token.encode("ascii", "replace")).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def normalize_uri(uri) -> str | None:
    """An ``htu`` compared as RFC 3986 §6.2.2/§6.2.3 say: scheme and host in lower case, no
    default port, an empty path as ``/``; without query and fragment (§4.3 check 9)."""
    if not isinstance(uri, str) or len(uri) > 4000:
        return None
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        return None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    if port is not None and port != {"http": 80, "https": 443}[scheme]:
        host = f"{host}:{port}"
    return f"{scheme}://{host}{parts.path or '/'}"


def request_uris() -> set[str]:
    """The URIs this request may be named by in ``htu``: as it reached this server, and under
    the configured issuer's origin (a proxy in front may name the host differently)."""
    uris = {normalize_uri(flask_request.base_url)}
    issuer = urlsplit(get_issuer())
    uris.add(normalize_uri(f"{issuer.scheme}://{issuer.netloc}{flask_request.path}"))
    uris.discard(None)
    return uris


def proof_header(status_code: int = 400) -> str | None:
    """The request's DPoP proof, if it sent one; two proofs are refused (§4.3 check 1)."""
    values = flask_request.headers.getlist("DPoP")
    if len(values) > 1:
        raise InvalidDPoPProofError("Send one DPoP proof (one DPoP header).", status_code=status_code)
    return values[0] if values else None


def _refuse(message: str, status_code: int):
    raise InvalidDPoPProofError(f"DPoP proof refused: {message}.", status_code=status_code)


def _public_key(header: dict, status_code: int):
    jwk = header.get("jwk")
    if not isinstance(jwk, dict) or not isinstance(jwk.get("kty"), str):
        _refuse("its header needs the public key as 'jwk'", status_code)
    if _PRIVATE_MEMBERS & set(jwk):
        _refuse("its 'jwk' must be a public key, never a private or symmetric one", status_code)
    try:
        with warnings.catch_warnings():
            # joserfc warns of keys too short to be safe (e.g. RSA under 2048 bits): refuse those.
            warnings.simplefilter("error")
            return JWKRegistry.import_key(jwk)
    except (JoseError, ValueError, TypeError, KeyError, Warning):
        _refuse("its 'jwk' is not a usable public key", status_code)


def _claims(proof: str, status_code: int) -> tuple[dict, dict, object]:
    """The proof's header, claims and public key, once its signature verifies (checks 2-8)."""
    if not isinstance(proof, str) or not proof or len(proof) > MAX_PROOF_LENGTH:
        _refuse(f"send one JWS of at most {MAX_PROOF_LENGTH} characters", status_code)
    try:
        header = jws.extract_compact(proof.encode("ascii")).protected
    except (JoseError, ValueError, UnicodeError, TypeError):
        _refuse("it is not a signed JWT (JWS compact serialization)", status_code)
    if not isinstance(header, dict) or header.get("typ") != PROOF_TYPE:
        _refuse(f"its header must have typ '{PROOF_TYPE}'", status_code)
    alg = header.get("alg")
    if alg not in DPOP_SIGNING_ALGS:
        _refuse(f"its alg must be one of {', '.join(DPOP_SIGNING_ALGS)}", status_code)
    key = _public_key(header, status_code)
    try:
        payload = jws.deserialize_compact(proof, key, algorithms=[alg]).payload
        claims = json.loads(payload)
    except (JoseError, ValueError, TypeError):
        _refuse("its signature does not verify with its 'jwk'", status_code)
    if not isinstance(claims, dict):
        _refuse("its payload must be a JSON object", status_code)
    return header, claims, key


def check_proof(proof: str, access_token: str | None = None, status_code: int = 400) -> str:
    """Check a DPoP proof for this request (RFC 9449 §4.3) and spend its jti; return the
    thumbprint (RFC 7638, SHA-256) of its key. ``access_token``: at a resource, the token the
    proof must name in ``ath``. Raise InvalidDPoPProofError or UseDPoPNonceError."""
    config = current_app.config
    header, claims, key = _claims(proof, status_code)
    jti = claims.get("jti")
    if not isinstance(jti, str) or not 0 < len(jti) <= 512:
        _refuse("it needs a 'jti' of 1 to 512 characters", status_code)
    if claims.get("htm") != flask_request.method:
        _refuse(f"its htm must be this request's method, {flask_request.method}", status_code)
    if normalize_uri(claims.get("htu")) not in request_uris():
        _refuse(f"its htu must be this request's URL, {flask_request.base_url}", status_code)
    iat = claims.get("iat")
    if not isinstance(iat, int) or isinstance(iat, bool):
        _refuse("it needs 'iat', a whole number of seconds", status_code)
    age = int(time.time()) - iat
    if age > config["OAUTH2_DPOP_PROOF_MAX_AGE"] or age < -config["OAUTH2_DPOP_CLOCK_SKEW"]:
        _refuse("its iat is too far from this server's time; make a new proof for each request", status_code)
    if nonces_required() and not nonce_is_valid(claims.get("nonce")):
        raise UseDPoPNonceError(status_code=status_code)
    if access_token is not None:
        ath = claims.get("ath")
        if not isinstance(ath, str) or not hmac.compare_digest(ath.encode(), access_token_hash(access_token).encode()):
            _refuse("its 'ath' must be the hash of the access token sent with it", status_code)
    jkt = key.thumbprint()
    expires_at = iat + config["OAUTH2_DPOP_PROOF_MAX_AGE"] + config["OAUTH2_DPOP_CLOCK_SKEW"]
    if not throttle.spend_once(f"dpop:{jkt}", jti, expires_at):
        # A replay means the proof was captured: worth an administrator's attention.
        audit.record("dpop_proof_replayed", jkt=jkt, path=flask_request.path)
        db.session.commit()
        _refuse("its jti was used before; make a new proof for each request", status_code)
    return jkt


def is_bound_client(client) -> bool:
    """Tell whether the client registered ``dpop_bound_access_tokens`` (RFC 9449 §5.2)."""
    return (client.client_metadata or {}).get("dpop_bound_access_tokens") is True


#: §10: a JWK SHA-256 thumbprint, base64url without padding.
_JKT_LENGTH = 43
_BASE64URL = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def check_authorization_jkt(grant, redirect_uri) -> None:
    """A grant extension hook: ``dpop_jkt`` on the authorization request (§10) must be a
    thumbprint; the code is then redeemable only with a proof of that key."""
    value = grant.request.payload.data.get("dpop_jkt")
    if value is None or not enabled():
        return
    if len(value) != _JKT_LENGTH or not set(value) <= _BASE64URL:
        raise InvalidRequestError("'dpop_jkt' must be the base64url SHA-256 thumbprint of the DPoP key (43 characters).",
                                  redirect_uri=redirect_uri, state=grant.request.payload.state,
                                  redirect_fragment=grant.request.payload.response_type != "code")


def dpop_jkt_parameter(grant) -> None:
    """A grant extension for the grants that issue codes: takes ``dpop_jkt`` (§10)."""
    grant.register_hook("after_validate_consent_request", check_authorization_jkt)


def requested_jkt(request) -> str | None:
    """The DPoP key the authorization request bound its code to (``dpop_jkt``), if any."""
    return request.payload.data.get("dpop_jkt") if enabled() else None


class DPoPBinding:
    """A grant extension for every token-endpoint grant: checks the request's DPoP proof and
    binds the token to its key (``token_type`` DPoP, ``cnf.jkt``); refuses a request without
    a proof from a client registered with ``dpop_bound_access_tokens``, for a code bound with
    ``dpop_jkt``, or with a public client's refresh token bound to a key (§5, §10)."""

    def __call__(self, grant) -> None:
        grant.register_hook("before_create_token_response", self.bind)

    def bind(self, grant) -> None:
        request = grant.request
        client = request.client
        proof = proof_header() if enabled() else None
        jkt = check_proof(proof) if proof is not None else None
        if jkt is None and enabled() and is_bound_client(client):
            raise InvalidDPoPProofError("This client registered dpop_bound_access_tokens: "
                                        "send a DPoP proof with every token request.")
        code = getattr(request, "authorization_code", None)
        if getattr(code, "dpop_jkt", None) and not _same(code.dpop_jkt, jkt):
            raise InvalidGrantError("The code is bound to a DPoP key (dpop_jkt): send a DPoP proof made with that key.")
        parent = getattr(request, "refresh_token", None)
        if getattr(parent, "dpop_jkt", None) and client.is_public and not _same(parent.dpop_jkt, jkt):
            raise InvalidGrantError("The refresh token is bound to a DPoP key: send a DPoP proof made with that key.")
        request.dpop_jkt = jkt
        # The token generator sees only client, user and scope (as with the API in audiences.py).
        g.oauth2_dpop_jkt = jkt


def _same(bound: str, jkt: str | None) -> bool:
    return jkt is not None and hmac.compare_digest(bound.encode(), jkt.encode())


def challenge(error: OAuth2Error | None = None) -> str:
    """The ``WWW-Authenticate: DPoP`` challenge (§7.1), with the error when there is one."""
    parts = []
    if error is not None:
        parts.append(f'error="{error.error}"')
        if error.description:
            parts.append('error_description="{}"'.format(error.description.replace('"', "'")))
    parts.append(f'algs="{" ".join(DPOP_SIGNING_ALGS)}"')
    return "DPoP " + ", ".join(parts)
