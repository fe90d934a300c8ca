"""Client authentication at the token, revocation and introspection endpoints: which
methods each accepts, the client read once with its throttle lock, lockouts after failed
attempts (per client and per address), ``private_key_jwt`` (RFC 7523) with single-use jti,
and error descriptions that tell a person what to change."""

from urllib.parse import urlsplit

from authlib.oauth2.rfc6749 import authenticate_client as methods
from authlib.oauth2.rfc6749.errors import InvalidClientError, InvalidRequestError
from authlib.oauth2.rfc6749.util import extract_basic_authorization
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from authlib.oauth2.rfc7523.client import ASSERTION_TYPE
from flask import current_app, url_for
from flask import request as flask_request
from joserfc import jwt
from joserfc.errors import BadSignatureError, ExpiredTokenError, JoseError

from website.http.cors import check_client_origin
from website.models.base import now
from website.oauth2.client_keys import SIGNING_ALGS, ClientKeysError, client_key_set
from website.oauth2.keys import get_issuer
from website.store import throttle
from website.store.clients import query_client, query_client_and_lock, spend_assertion_jti

#: The client authentication methods every token-endpoint grant accepts.
CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]

#: Each method as a person would recognise it, for error descriptions.
METHOD_NAMES = {
    "client_secret_basic": "client_secret_basic (HTTP Basic)",
    "client_secret_post": "client_secret_post (the secret in the request body)",
    "private_key_jwt": "private_key_jwt (a client assertion signed with its key)",
    "none": "none (a public client: its client_id and no secret)",
}


class LockedOutClientError(InvalidClientError):
    """The client (or its address) is locked after failed client authentications."""

    def __init__(self, wait: int):
        super().__init__(status_code=401, description=throttle.wait_message(wait))
        self.wait = wait

    def get_headers(self):
        return super().get_headers() + [("Retry-After", str(self.wait))]


def authenticating_client_id(request) -> str:
    """The client_id a request authenticates as, found before any secret is checked, so the
    throttle counts the client actually being authenticated.

    RFC 6749 §2.3: a client MUST NOT use more than one authentication method in a request.
    HTTP Basic, a ``client_secret`` in the body and a ``client_assertion`` are methods; a body
    ``client_id`` next to HTTP Basic is allowed only when it names the same client. Anything
    else is 400 ``invalid_request``: Authlib would try each method in turn, so Basic
    credentials of one client and the body secret of another authenticated the second while
    the first was counted.
    """
    data = request.payload.data
    basic = uses_basic(request)
    assertion = bool(data.get("client_assertion") or data.get("client_assertion_type"))
    methods = [basic, bool(data.get("client_secret")), assertion]
    if sum(methods) > 1:
        raise InvalidRequestError("Use only one client authentication method in a request.")
    body_client_id = data.get("client_id") or ""
    if assertion:
        # RFC 7521 §4.2: a client_id next to an assertion must name the assertion's subject.
        subject = assertion_subject(data.get("client_assertion") or "")
        if body_client_id and subject and body_client_id != subject:
            raise InvalidRequestError("The 'client_id' in the body is not the subject of the client assertion.")
        return subject or body_client_id
    if basic:
        try:
            basic_client_id = extract_basic_authorization(request.headers)[0] or ""
        except ValueError:  # malformed Basic credentials: Authlib's parser raises
            basic_client_id = ""
        if body_client_id and body_client_id != basic_client_id:
            raise InvalidRequestError("The 'client_id' in the body is not the client of the Authorization header.")
        return basic_client_id
    return body_client_id


def uses_basic(request) -> bool:
    authorization = (request.headers.get("Authorization") or "").split(None, 1)
    return bool(authorization) and authorization[0].lower() == "basic"


def used_method(request) -> str:
    """The client authentication method a request tried (only one, see above)."""
    data = request.payload.data
    if uses_basic(request):
        return "client_secret_basic"
    if data.get("client_secret"):
        return "client_secret_post"
    if data.get("client_assertion") or data.get("client_assertion_type"):
        return "private_key_jwt"
    return "none"


def throttle_subjects(client_id: str, address: str | None) -> tuple:
    """What a client authentication is counted against: the client and the address it came from."""
    return ("client", client_id[:200]), ("client_address", address or "unknown")


def read_client_with_lock(request) -> int:
    """Read the claimed client and its lockout in one query; keep the client on the request
    for the authentication methods below. Returns the seconds to wait (0: go ahead)."""
    client_id = authenticating_client_id(request)  # one method only, or invalid_request
    request.throttle_subjects = throttle_subjects(client_id, flask_request.remote_addr)
    request.claimed_client, wait = query_client_and_lock(client_id, request.throttle_subjects)
    return wait


def check_origin(request) -> None:
    """Refuse a browser request from an origin the claimed client does not allow, before the
    client is authenticated and so before the grant runs: the browser would not show the
    answer to the script, so the request must not spend the code (or revoke the token).

    An unknown client is left to fail client authentication; a request without an Origin
    (a server-side client) is not affected.
    """
    client = getattr(request, "claimed_client", None)
    if client is not None and not check_client_origin(client.allowed_origins):
        raise InvalidRequestError("The request's Origin is not an allowed web origin of this client: "
                                  "register it with the client (allowed_origins).")


def record_failure(request) -> int:
    """Count a failed client authentication; return the lockout it caused, in seconds."""
    return throttle.record_failure(*request.throttle_subjects)


def _reading_claimed_client(request):
    """A query_client for Authlib's methods that answers from the client read with its lock."""
    claimed = getattr(request, "claimed_client", None)

    def lookup(client_id):
        if claimed is not None and claimed.client_id == client_id:
            return claimed
        return query_client(client_id)

    return lookup


def authenticate_client_secret_basic(_query_client, request):
    """HTTP Basic (RFC 6749 §2.3.1); a malformed header fails like a wrong secret."""
    try:
        return methods.authenticate_client_secret_basic(_reading_claimed_client(request), request)
    except ValueError:
        # Authlib 1.6-1.9: its parser raises on "Basic " with nothing after it or non-UTF-8 credentials.
        return None


def authenticate_client_secret_post(_query_client, request):
    """client_id and client_secret in the body (RFC 6749 §2.3.1)."""
    return methods.authenticate_client_secret_post(_reading_claimed_client(request), request)


def authenticate_none(_query_client, request):
    """A public client: its client_id and no secret."""
    return methods.authenticate_none(_reading_claimed_client(request), request)


class AssertionRefused(InvalidClientError):
    """A client assertion that does not authenticate the client; ``reason`` says why."""

    def __init__(self, reason: str):
        super().__init__(description=f"Client authentication failed: {reason}.")
        self.reason = reason


def _assertion_reason(cause: Exception | None) -> str:
    """A sentence part for joserfc's error about a client assertion."""
    if isinstance(cause, ExpiredTokenError):
        return "the client assertion has expired"
    if isinstance(cause, BadSignatureError):
        return "the client assertion's signature does not match the client's registered keys"
    claim = getattr(cause, "claim", None)
    if claim:
        return f"the client assertion's '{claim}' claim is missing or wrong"
    return "the client assertion is not valid"


def assertion_audiences() -> list[str]:
    """What a client assertion's ``aud`` may be (RFC 7523 §3, OpenID Connect Core §9): the
    issuer, the token endpoint's URL or the URL of the endpoint it is sent to."""
    issuer = get_issuer()
    parts = urlsplit(issuer)
    origin = f"{parts.scheme}://{parts.netloc}"
    return list(dict.fromkeys([issuer, origin + url_for("oauth.issue_token"), origin + flask_request.path]))


class PrivateKeyJWT(JWTBearerClientAssertion):
    """``private_key_jwt``: Authlib's RFC 7523 client assertion, verified with the keys the
    client registered, each jti used once, and exp at most OAUTH2_CLIENT_ASSERTION_MAX_LIFETIME
    seconds ahead (the jti is kept until then)."""

    CLIENT_AUTH_METHOD = "private_key_jwt"

    def __init__(self):
        super().__init__(validate_jti=True, leeway=60)

    def __call__(self, _query_client, request):
        data = request.payload.data
        if data.get("client_assertion") and data.get("client_assertion_type") != ASSERTION_TYPE:
            raise AssertionRefused(f"client_assertion_type must be {ASSERTION_TYPE}")
        try:
            return super().__call__(_reading_claimed_client(request), request)
        except AssertionRefused:
            raise
        except InvalidClientError as error:
            if error.description == "The client does not exist on this server.":
                raise
            raise AssertionRefused(_assertion_reason(error.__cause__)) from error

    def get_audiences(self):
        return assertion_audiences()

    def resolve_client_public_key(self, client):
        # A client that did not register private_key_jwt is refused before its keys are read.
        if not client.check_endpoint_auth_method(self.CLIENT_AUTH_METHOD, "token"):
            raise AssertionRefused(f"this client authenticates with {METHOD_NAMES[client.token_endpoint_auth_method]}")
        try:
            return client_key_set(client, kid=_assertion_kid(flask_request))
        except ClientKeysError as error:
            raise AssertionRefused(str(error)) from error

    def process_assertion_claims(self, assertion, resolve_key):
        # Authlib 1.9 decodes with joserfc's recommended algorithms only (HS256, RS256,
        # ES256): HS256 cannot be verified with a hashed secret, and PS256 / EdDSA are wanted.
        try:
            token = jwt.decode(assertion, resolve_key, algorithms=SIGNING_ALGS)
        except JoseError as error:
            raise AssertionRefused(_assertion_reason(error)) from error
        self.verify_claims(token.claims)
        return token.claims

    def verify_claims(self, claims):
        exp = claims.get("exp")
        limit = current_app.config["OAUTH2_CLIENT_ASSERTION_MAX_LIFETIME"]
        if isinstance(exp, (int, float)) and not isinstance(exp, bool) and exp > now() + limit + self.leeway:
            raise AssertionRefused(f"the client assertion must expire within {limit} seconds")
        jti = claims.get("jti")
        if "jti" in claims and (not isinstance(jti, str) or not jti or len(jti) > 1000):
            raise AssertionRefused("the client assertion's 'jti' must be a non-empty string")
        try:
            super().verify_claims(claims)
        except AssertionRefused:
            raise
        except InvalidClientError as error:
            if error.description == "Missing JWT ID.":
                raise AssertionRefused("the client assertion has no 'jti' claim") from error
            if error.description == "JWT ID is used before.":
                raise AssertionRefused("the client assertion was used before (each jti only once)") from error
            if error.description == "Issuer and Subject MUST match.":
                raise AssertionRefused("the client assertion's 'iss' and 'sub' must both be the client_id") from error
            raise AssertionRefused(_assertion_reason(error.__cause__)) from error

    def validate_jti(self, claims, jti):
        return spend_assertion_jti(claims["sub"], jti, int(claims["exp"]) + self.leeway)


def assertion_subject(assertion: str) -> str:
    """The unverified ``sub`` of a client assertion (only to find the client to throttle and
    check; the signature is verified by PrivateKeyJWT), or "" when there is none."""
    try:
        _headers, claims = private_key_jwt.extract_assertion(assertion)
    except InvalidClientError:
        return ""
    sub = claims.get("sub")
    return sub if isinstance(sub, str) else ""


def _assertion_kid(request) -> str | None:
    try:
        headers, _claims = private_key_jwt.extract_assertion(request.form.get("client_assertion") or "")
    except InvalidClientError:
        return None
    kid = headers.get("kid")
    return kid if isinstance(kid, str) else None


private_key_jwt = PrivateKeyJWT()


def failure_description(request, error: InvalidClientError, methods: list[str], endpoint: str) -> str:
    """A sentence for people saying why client authentication failed, naming the method the
    client registered. For a client_id that is not registered it says only that it failed,
    so the answer tells no more about which clients exist than any failure does."""
    client = getattr(request, "claimed_client", None)
    reason = getattr(error, "reason", None)
    if client is None:
        # An assertion that cannot be read names no client: saying so reveals nothing.
        if reason and used_method(request) == "private_key_jwt" and "the client assertion" in reason:
            return f"Client authentication failed: {reason}."
        return "Client authentication failed."
    registered = client.token_endpoint_auth_method
    used = used_method(request)
    if registered not in methods:
        accepted = ", ".join(m for m in methods if m != "none")
        return (f"Client authentication failed: this client authenticates with {METHOD_NAMES[registered]}, "
                f"which this endpoint does not accept; it accepts {accepted}.")
    if not client.check_endpoint_auth_method(used, endpoint):
        also = ""
        if registered in ("client_secret_basic", "client_secret_post") and not client.strict_auth_method:
            other = "client_secret_post" if registered == "client_secret_basic" else "client_secret_basic"
            also = f" or {METHOD_NAMES[other]}"
        return f"Client authentication failed: this client authenticates with {METHOD_NAMES[registered]}{also}."
    if reason:
        return f"Client authentication failed: {reason}."
    if used in ("client_secret_basic", "client_secret_post"):
        return "Client authentication failed: the client secret is wrong."
    return "Client authentication failed."


def register(server) -> None:
    """Use these methods at every client-authenticating endpoint of the server."""
    server.register_client_auth_method("client_secret_basic", authenticate_client_secret_basic)
    server.register_client_auth_method("client_secret_post", authenticate_client_secret_post)
    server.register_client_auth_method("private_key_jwt", private_key_jwt)
    server.register_client_auth_method("none", authenticate_none)
