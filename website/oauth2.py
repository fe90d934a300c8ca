"""All Authlib wiring: the AuthorizationServer, its grants and hooks, revocation and the
ResourceProtector. Everything here implements hooks Authlib leaves to the application."""

import secrets
from collections import defaultdict

from authlib.consts import default_json_headers
from authlib.integrations.flask_oauth2 import AuthorizationServer as _AuthorizationServer
from authlib.integrations.flask_oauth2 import ResourceProtector as _ResourceProtector
from authlib.integrations.flask_oauth2.errors import raise_http_exception
from authlib.integrations.flask_oauth2.requests import FlaskOAuth2Request
from authlib.oauth2.base import invalid_error_characters
from authlib.oauth2.rfc6749 import InvalidScopeError, OAuth2Payload, grants, scope_to_list
from authlib.oauth2.rfc6749.authenticate_client import (
    authenticate_client_secret_basic as _authenticate_client_secret_basic,
)
from authlib.oauth2.rfc6749.errors import (
    InvalidClientError,
    InvalidGrantError,
    InvalidRequestError,
    MissingAuthorizationError,
    UnsupportedTokenTypeError,
)
from authlib.oauth2.rfc6749.util import extract_basic_authorization
from authlib.oauth2.rfc6750 import BearerTokenGenerator, BearerTokenValidator, InsufficientScopeError
from authlib.oauth2.rfc7009 import RevocationEndpoint as _RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge as _CodeChallenge
from flask import current_app, g, json
from flask import request as flask_request
from sqlalchemy import bindparam, case, insert, select, update
from sqlalchemy.orm import joinedload
from werkzeug.datastructures import MultiDict
from werkzeug.local import LocalProxy

from . import audit, throttle
from .models import (
    AuthorizationCode,
    OAuth2Client,
    Token,
    TokenRecord,
    User,
    UserRecord,
    authenticate_user,
    db,
    hash_secret,
    now,
)
from .resources import api_scopes, requested_resource

#: The longest token value looked up: JWT access tokens (RFC 9068) run to about a kilobyte.
MAX_TOKEN_LENGTH = 4096

#: The client authentication methods every token-endpoint grant accepts.
CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]


def authenticate_client_secret_basic(query_client, request):
    """HTTP Basic client authentication; a malformed header fails like a wrong secret."""
    try:
        return _authenticate_client_secret_basic(query_client, request)
    except ValueError:
        # Authlib's parser raises on "Basic " with nothing after it or non-UTF-8 credentials.
        return None


# The hot lookups, built once: building and cache-keying a select() on every request cost
# a third of a bearer check. Each is one indexed query that also loads the token's user,
# so the view reading ``current_token.user`` needs no second query.
_INSERT_TOKEN = insert(Token.__table__)
_CLIENT_BY_ID = select(OAuth2Client).where(OAuth2Client.client_id == bindparam("client_id"))
_TOKEN_BY_ACCESS_HASH = (
    select(Token).options(joinedload(Token.user)).where(Token.access_token_hash == bindparam("hash"))
)
_TOKEN_BY_REFRESH_HASH = (
    select(Token).options(joinedload(Token.user)).where(Token.refresh_token_hash == bindparam("hash"))
)
_CODE_BY_HASH = (
    select(AuthorizationCode)
    .options(joinedload(AuthorizationCode.user))
    .where(AuthorizationCode.code_hash == bindparam("hash"))
)


#: The client and its throttle lock in one query (two subjects: the client and its address).
_CLIENT_AND_LOCK = select(OAuth2Client, throttle.locked_until_subquery(2)).where(
    OAuth2Client.client_id == bindparam("client_id")
)


def _possible_client_id(client_id: str) -> bool:
    # A NUL byte is never in a client_id, and PostgreSQL refuses to even compare one.
    return bool(client_id) and len(client_id) <= 48 and "\x00" not in client_id


def query_client(client_id: str) -> OAuth2Client | None:
    """Find a client by its client_id."""
    if not _possible_client_id(client_id):
        return None
    prefetched = g.get("prefetched_client")
    if prefetched is not None and prefetched.client_id == client_id:
        return prefetched  # read with its lock by AuthorizationServer.authenticate_client
    return db.session.scalar(_CLIENT_BY_ID, {"client_id": client_id})


_TOKENS, _USERS = Token.__table__, User.__table__
_RECORD_COLUMNS = [*(_TOKENS.c[name] for name in TokenRecord.COLUMNS),
                   *(_USERS.c[name].label(f"user_{name}") for name in UserRecord.COLUMNS)]
_RECORD_BY = {
    column: select(*_RECORD_COLUMNS)
    .select_from(_TOKENS.outerjoin(_USERS, _USERS.c.id == _TOKENS.c.user_id))
    .where(_TOKENS.c[column] == bindparam("hash"))
    for column in ("access_token_hash", "refresh_token_hash")
}
_TOKEN_WIDTH = len(TokenRecord.COLUMNS)


def _token_record(column: str, secret: str) -> TokenRecord | None:
    row = db.session.execute(_RECORD_BY[column], {"hash": hash_secret(secret)}).first()
    if row is None:
        return None
    user = UserRecord(row[_TOKEN_WIDTH:]) if row[_TOKEN_WIDTH] is not None else None
    return TokenRecord(row[:_TOKEN_WIDTH], user)


def read_token_by_access_token(access_token: str) -> TokenRecord | None:
    """Read a token (and its user) by the hash of its access token, for read-only checks."""
    return _token_record("access_token_hash", access_token)


def read_token_by_refresh_token(refresh_token: str) -> TokenRecord | None:
    """Read a token (and its user) by the hash of its refresh token, for read-only checks."""
    return _token_record("refresh_token_hash", refresh_token)


def query_token_by_access_token(access_token: str) -> Token | None:
    """Find a token row (and its user) by the hash of its access token."""
    return db.session.scalar(_TOKEN_BY_ACCESS_HASH, {"hash": hash_secret(access_token)})


def query_token_by_refresh_token(refresh_token: str) -> Token | None:
    """Find a token row (and its user) by the hash of its refresh token."""
    return db.session.scalar(_TOKEN_BY_REFRESH_HASH, {"hash": hash_secret(refresh_token)})


def find_token(token_string: str, token_type_hint: str | None,
               by_access=None, by_refresh=None) -> Token | None:
    """Find a token by its access or refresh token, trying the hinted kind first (RFC 7009
    §2.1, RFC 7662 §2.1); ``matched_refresh_token`` tells which one matched. The lookups are
    ORM rows by default (to change them), or read-only records when passed."""
    by_access = by_access or query_token_by_access_token
    by_refresh = by_refresh or query_token_by_refresh_token
    if not token_string or len(token_string) > MAX_TOKEN_LENGTH:
        return None
    order = (by_refresh, by_access) if token_type_hint == "refresh_token" else (by_access, by_refresh)
    for lookup in order:
        if (token := lookup(token_string)) is not None:
            token.matched_refresh_token = lookup is by_refresh
            return token
    return None


def revoke_family(family_id: str, reason: str = "revoked") -> None:
    """Revoke every access and refresh token descended from one grant (one code or log-in)."""
    stamp = now()
    audit.record("token_family_revoked", family_id=family_id, reason=reason)
    db.session.execute(
        update(Token)
        .where(Token.family_id == family_id, Token.access_token_revoked_at == 0)
        .values(access_token_revoked_at=stamp)
    )
    db.session.execute(
        update(Token)
        .where(Token.family_id == family_id, Token.refresh_token_revoked_at == 0)
        .values(refresh_token_revoked_at=stamp)
    )


def save_token(token: dict, request) -> None:
    """Store a newly issued token as hashes, in one transaction with the code or refresh
    token it was exchanged for, so a crash leaves nothing half-issued."""
    issued_at = now()
    config = current_app.config
    parent = getattr(request, "refresh_token", None)
    code = getattr(request, "authorization_code", None)
    refresh_token = token.get("refresh_token")
    values = dict(
        client_id=request.client.client_id,
        user_id=request.user.get_user_id() if request.user else None,
        token_type=token.get("token_type", "Bearer"),
        access_token_hash=hash_secret(token["access_token"]),
        refresh_token_hash=hash_secret(refresh_token) if refresh_token else None,
        scope=token.get("scope", ""),
        issued_at=issued_at,
        expires_in=token["expires_in"],
        expires_at=issued_at + token["expires_in"],
        refresh_token_expires_at=(
            issued_at + config["OAUTH2_REFRESH_TOKEN_LIFETIME"] if refresh_token else None
        ),
        authorization_code_id=code.id if isinstance(code, AuthorizationCode) else None,
        family_id=parent.family_id if parent is not None else secrets.token_hex(16),
        audience=getattr(request, "audience", None),
    )
    # A Core INSERT on the table skips the unit of work and the ORM's bulk-insert
    # bookkeeping for an object nothing reads again (the column defaults still apply).
    db.session.execute(_INSERT_TOKEN, values)
    audit.insert("token_issued", user=request.user, client_id=request.client.client_id,
                 grant_type=request.payload.grant_type or "implicit", scope=values["scope"],
                 family_id=values["family_id"])
    # Nothing this request loaded has changed (the claim was a Core UPDATE), and the id_token
    # still reads the client and the code: expiring them made two SELECTs to reload them.
    session = db.session()
    expire_on_commit, session.expire_on_commit = session.expire_on_commit, False
    try:
        session.commit()
    finally:
        session.expire_on_commit = expire_on_commit


def pkce_methods() -> list[str]:
    """The PKCE code_challenge_methods this server accepts: S256, and plain if configured."""
    return ["S256", "plain"] if current_app.config["OAUTH2_PKCE_ALLOW_PLAIN"] else ["S256"]


class LockedOutGrantError(InvalidGrantError):
    """The resource owner's account (or the client's address) is locked after failed attempts."""

    def __init__(self, wait: int):
        super().__init__(throttle.wait_message(wait))
        self.wait = wait

    def get_headers(self):
        return super().get_headers() + [("Retry-After", str(self.wait))]


class LockedOutClientError(InvalidClientError):
    """The client (or its address) is locked after failed client authentications."""

    def __init__(self, wait: int):
        super().__init__(status_code=401, description=throttle.wait_message(wait))
        self.wait = wait

    def get_headers(self):
        return super().get_headers() + [("Retry-After", str(self.wait))]


def request_client_id(request) -> str:
    """The client_id a token-endpoint request claims (HTTP Basic or body), before authentication."""
    try:
        client_id, _ = extract_basic_authorization(request.headers)
    except ValueError:  # malformed Basic credentials: Authlib's parser raises
        client_id = None
    return client_id or request.payload.client_id or ""


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
    authorization = (request.headers.get("Authorization") or "").split(None, 1)
    basic = bool(authorization) and authorization[0].lower() == "basic"
    methods = [basic, bool(data.get("client_secret")),
               bool(data.get("client_assertion") or data.get("client_assertion_type"))]
    if sum(methods) > 1:
        raise InvalidRequestError("Use only one client authentication method in a request.")
    body_client_id = data.get("client_id") or ""
    if basic:
        try:
            basic_client_id = extract_basic_authorization(request.headers)[0] or ""
        except ValueError:  # malformed Basic credentials: Authlib's parser raises
            basic_client_id = ""
        if body_client_id and body_client_id != basic_client_id:
            raise InvalidRequestError("The 'client_id' in the body is not the client of the Authorization header.")
        return basic_client_id
    return body_client_id


class CodeChallenge(_CodeChallenge):
    """PKCE (RFC 7636): S256 only unless ``plain`` is configured; required for public clients."""

    def validate_code_challenge(self, grant, redirect_uri):
        request = grant.request
        data = request.payload.data
        challenge = data.get("code_challenge")
        method = data.get("code_challenge_method")
        if challenge and not method:
            method = "plain"
        if request.client.is_public and not challenge:
            raise InvalidRequestError(
                "Public clients must use PKCE: send 'code_challenge' with 'code_challenge_method=S256'."
            )
        if method and method not in pkce_methods():
            raise InvalidRequestError("Unsupported 'code_challenge_method': use S256.")
        super().validate_code_challenge(grant, redirect_uri)


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = CLIENT_AUTH_METHODS

    def save_authorization_code(self, code: str, request) -> AuthorizationCode:
        data = request.payload.data
        item = AuthorizationCode(
            resource=requested_resource(request.payload.datalist),
            code_hash=hash_secret(code),
            client_id=request.client.client_id,
            user_id=request.user.id,
            redirect_uri=request.payload.redirect_uri or "",
            response_type=request.payload.response_type,
            scope=request.scope or "",
            nonce=data.get("nonce"),
            code_challenge=data.get("code_challenge"),
            code_challenge_method=data.get("code_challenge_method") or (
                "plain" if data.get("code_challenge") else None
            ),
            auth_time=getattr(request, "auth_time", None) or now(),
            expires_at=now() + current_app.config["OAUTH2_CODE_LIFETIME"],
        )
        db.session.add(item)
        db.session.commit()
        # A hybrid response issues a token right after the code: link it to the code, so a
        # second redemption of the code revokes it too.
        request.authorization_code = item
        return item

    def query_authorization_code(self, code: str, client) -> AuthorizationCode | None:
        """Find an unused, unexpired code of this client (and its user, in the same query).

        The code is claimed later, in ``save_token``, in the transaction that stores the
        token: a write transaction (on SQLite, the database's write lock) then lasts only
        for the claim, the insert and the commit, not for the whole grant.
        """
        if not code or len(code) > 512:
            return None
        item = db.session.scalar(_CODE_BY_HASH, {"hash": hash_secret(code)})
        if item is None or item.client_id != client.client_id:
            return None
        if item.used_at is not None:
            _revoke_code_tokens(item)
            return None
        if item.is_expired():
            return None
        return item

    def save_token(self, token: dict) -> None:
        """Claim the code, then store the token in the same transaction.

        The claim is an UPDATE guarded by ``used_at IS NULL``; the database lets exactly one
        concurrent transaction change the row, so only one redemption can ever succeed.
        """
        item = self.request.authorization_code
        claimed = db.session.execute(
            update(AuthorizationCode)
            .where(AuthorizationCode.id == item.id, AuthorizationCode.used_at.is_(None))
            .values(used_at=now())
        ).rowcount
        if not claimed:
            db.session.rollback()
            _revoke_code_tokens(item)
            raise InvalidGrantError("Invalid 'code' in request.")
        super().save_token(token)

    def delete_authorization_code(self, authorization_code) -> None:
        # The code was marked used when claimed; the row stays to detect reuse.
        pass

    def authenticate_user(self, authorization_code) -> User | None:
        return authorization_code.user


def _revoke_code_tokens(item: AuthorizationCode) -> None:
    """A second redemption: the code may have leaked, so revoke what it produced."""
    families = db.session.scalars(
        select(Token.family_id).where(Token.authorization_code_id == item.id).distinct()
    ).all()
    for family_id in families:
        revoke_family(family_id, reason="authorization code reused")
    db.session.commit()


class ImplicitGrant(grants.ImplicitGrant):
    """The implicit grant (legacy): any client registered for response_type=token."""

    def authenticate_token_endpoint_client(self):
        # At the authorization endpoint there is no client authentication, only the
        # client_id; Authlib's default would admit public clients only.
        client = query_client(self.request.payload.client_id)
        if client is None:
            raise InvalidClientError(description="The client does not exist on this server.")
        return client


class PasswordGrant(grants.ResourceOwnerPasswordCredentialsGrant):
    """The resource owner password grant (legacy), for confidential clients."""

    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

    def authenticate_user(self, username: str, password: str) -> User | None:
        # The same throttle as the log-in form: it guards the same passwords.
        # Counted before the password is checked, so simultaneous guesses get no extra checks.
        attempt = throttle.begin_attempt(*throttle.login_subjects(username))
        if wait := attempt.wait:
            raise LockedOutGrantError(wait)
        user = authenticate_user(username, password)
        if user is None:
            wait = attempt.failed()
            audit.record("login_failed", client_id=request_client_id(self.request)[:48],
                         attempted_username=username[:40], grant_type="password")
            db.session.commit()
            if wait:
                raise LockedOutGrantError(wait)
            # RFC 6749 §5.2: wrong resource owner credentials are an invalid grant;
            # Authlib would answer invalid_request.
            raise InvalidGrantError("Wrong username or password.")
        attempt.succeeded()
        return user


class ClientCredentialsGrant(grants.ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]


class RefreshTokenGrant(grants.RefreshTokenGrant):
    """Refresh tokens rotate for public clients always, for confidential clients when
    configured; presenting a rotated refresh token again revokes the whole family."""

    TOKEN_ENDPOINT_AUTH_METHODS = CLIENT_AUTH_METHODS

    def _rotates(self, client) -> bool:
        return client.is_public or current_app.config["OAUTH2_ROTATE_CONFIDENTIAL_REFRESH_TOKENS"]

    def authenticate_refresh_token(self, refresh_token: str) -> TokenRecord | None:
        if not refresh_token or len(refresh_token) > 512:
            return None
        # A plain record is enough: the old row is changed by UPDATEs (save_token,
        # revoke_family), never through the object.
        token = read_token_by_refresh_token(refresh_token)
        if token is None or token.client_id != self.request.client.client_id:
            return None
        if token.refresh_token_revoked_at:
            if token.rotated_at:
                # A rotated refresh token came back: it was stolen or replayed.
                revoke_family(token.family_id, reason="rotated refresh token reused")
                db.session.commit()
            return None
        if not token.is_refresh_token_active():
            return None
        return token

    def issue_token(self, user, refresh_token):
        self.INCLUDE_NEW_REFRESH_TOKEN = self._rotates(self.request.client)
        return super().issue_token(user, refresh_token)

    def authenticate_user(self, refresh_token) -> User | None:
        return refresh_token.user

    def save_token(self, token: dict) -> None:
        """Spend the old refresh token and store the new token in one short transaction.

        The old access token is revoked with it and, when refresh tokens rotate, the old
        refresh token too: an UPDATE guarded by ``refresh_token_revoked_at = 0``, so of two
        concurrent refreshes with one token only one succeeds.
        """
        old = self.request.refresh_token
        stamp = now()
        values = {"access_token_revoked_at": case((Token.access_token_revoked_at == 0, stamp),
                                                  else_=Token.access_token_revoked_at)}
        if self._rotates(self.request.client):
            values.update(refresh_token_revoked_at=stamp, rotated_at=stamp)
        claimed = db.session.execute(
            update(Token).where(Token.id == old.id, Token.refresh_token_revoked_at == 0).values(values),
            # Nothing reads the old row again in this request; skip re-reading it.
            execution_options={"synchronize_session": False},
        ).rowcount
        if not claimed:
            db.session.rollback()
            raise InvalidGrantError()
        super().save_token(token)

    def revoke_old_credential(self, refresh_token) -> None:
        # Done by save_token, in the transaction that stored the new token.
        pass


class TokenLookup:
    """For the revocation and introspection endpoints: how a presented token is found."""

    def check_params(self, request, client) -> None:
        # An unknown token_type_hint is ignored (RFC 7009 §2.1; RFC 7662 §2.1 extends the
        # search); Authlib refuses it, and introspection even with a 401.
        if "token" not in request.form:
            raise InvalidRequestError("Missing 'token' in request.")

    def query_token(self, token_string: str, token_type_hint: str | None) -> Token | None:
        return find_token(token_string, token_type_hint)


class RevocationEndpoint(TokenLookup, _RevocationEndpoint):
    """RFC 7009: a client revokes its own tokens; a refresh token takes its family with it."""

    CLIENT_AUTH_METHODS = CLIENT_AUTH_METHODS

    def revoke_token(self, token: Token, request) -> None:
        if token.matched_refresh_token:
            revoke_family(token.family_id, reason="refresh token revoked by client")
        else:
            token.access_token_revoked_at = token.access_token_revoked_at or now()
        audit.record("token_revoked", user=token.user, client_id=token.client_id,
                     token_type="refresh_token" if token.matched_refresh_token else "access_token")
        db.session.commit()


class BearerValidator(BearerTokenValidator):
    """Checks a bearer token by the hash of its value: unknown, expired and revoked tokens fail."""

    def authenticate_token(self, token_string: str) -> Token | None:
        if not token_string or len(token_string) > MAX_TOKEN_LENGTH:
            return None
        # Read-only: a plain record, so every request sees the row as stored now.
        token = read_token_by_access_token(token_string)
        if token is not None and token.audience:
            # A token issued for an API (RFC 8707 / 9068) is for that API only, not for this
            # server's own resources (/api/me, userinfo): no token mix-up.
            return None
        return token


class ResourceProtector(_ResourceProtector):
    """Answers resource requests per RFC 6750 §3, which Authlib leaves loose: no bearer token
    is a 401 with a bare ``Bearer`` challenge (Authlib sends a lower-case scheme and a made-up
    error code), and a 403 for a missing scope names the error in the challenge too."""

    def raise_error_response(self, error):
        if isinstance(error, (MissingAuthorizationError, UnsupportedTokenTypeError)):
            body = {"error": "invalid_token",
                    "error_description": "Send an access token in an 'Authorization: Bearer' header."}
            headers = [*default_json_headers, ("WWW-Authenticate", "Bearer")]
            raise_http_exception(401, json.dumps(body), headers)
        if isinstance(error, InsufficientScopeError):
            body = dict(error.get_body())
            challenge = f'Bearer error="insufficient_scope", error_description="{error.description}"'
            headers = [*default_json_headers, ("WWW-Authenticate", challenge)]
            raise_http_exception(403, json.dumps(body), headers)
        super().raise_error_response(error)


#: Protects resource endpoints such as /api/me; its validator holds no per-app state.
require_oauth = ResourceProtector()
require_oauth.register_token_validator(BearerValidator())


def json_body_parameters(request) -> MultiDict | None:
    """A JSON request body as parameters: an object of string values, else None."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not all(isinstance(v, str) for v in body.values()):
        return None
    return MultiDict(body)


def _has_json_body() -> bool:
    return flask_request.method == "POST" and flask_request.is_json


class JsonBodyPayload(OAuth2Payload):
    def __init__(self, data: MultiDict):
        self._data = data

    @property
    def data(self):
        return self._data

    @property
    def datalist(self):
        return defaultdict(list, {key: self._data.getlist(key) for key in self._data})


class JsonBodyRequest(FlaskOAuth2Request):
    """A request whose parameters come in a JSON body instead of a form."""

    def __init__(self, request, data: MultiDict):
        super().__init__(request)
        self.payload = JsonBodyPayload(data)

    @property
    def form(self):
        return self.payload.data


class AuthorizationServer(_AuthorizationServer):
    """Authlib's server, also taking token requests with a JSON body as Auth0 does, telling
    which grants and endpoints are registered (for the discovery documents), and kept from
    building error descriptions it cannot send; failed client authentications are throttled
    per client and address."""

    def create_oauth2_request(self, request):
        if _has_json_body():
            return JsonBodyRequest(flask_request, json_body_parameters(flask_request) or MultiDict())
        return super().create_oauth2_request(request)

    def create_token_response(self, request=None):
        if _has_json_body() and json_body_parameters(flask_request) is None:
            error = InvalidRequestError("A JSON request body must be an object whose values are strings.")
            return self.handle_error_response(None, error)
        return super().create_token_response(request)

    def authenticate_client(self, request, methods, endpoint="token"):
        client_id = authenticating_client_id(request)  # one method only, or invalid_request
        subjects = (("client", client_id[:200]), ("client_address", throttle.client_address()))
        if wait := self._locked_for_prefetching_client(client_id, subjects):
            raise LockedOutClientError(wait)
        try:
            return super().authenticate_client(request, methods, endpoint)
        except InvalidClientError:
            if wait := throttle.record_failure(*subjects):
                raise LockedOutClientError(wait)
            raise
        finally:
            g.pop("prefetched_client", None)

    @staticmethod
    def _locked_for_prefetching_client(client_id: str, subjects) -> int:
        """The lockout of the subjects; with counters in the database, read in the same query
        as the client, which query_client then returns without a second query."""
        if throttle.uses_database() and _possible_client_id(client_id):
            row = db.session.execute(
                _CLIENT_AND_LOCK, {"client_id": client_id, **throttle.key_parameters(*subjects)}
            ).first()
            if row is not None:
                g.prefetched_client = row[0]
                return throttle.wait_until(row[1])
        return throttle.locked_for(*subjects)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        #: Extensions applied to every grant, whichever registered it (see register_grant_extension).
        self._grant_extensions = []

    def register_grant_extension(self, extension) -> None:
        """Apply ``extension`` to every grant the server creates, like a per-grant extension."""
        self._grant_extensions.append(extension)

    def get_authorization_grant(self, request):
        # Values are stored with the code (nonce, scope, ...): PostgreSQL text cannot hold NUL.
        if any("\x00" in value for values in request.payload.datalist.values() for value in values):
            raise InvalidRequestError("Request parameters must not contain NUL characters.")
        # Authlib quotes these values in error descriptions, which may hold only printable
        # ASCII (RFC 6749 §4.1.2.1); anything else made Authlib raise ValueError, a 500.
        for name in ("response_type", "redirect_uri"):
            value = request.payload.data.get(name)
            if value and invalid_error_characters(value):
                raise InvalidRequestError(f"Invalid '{name}' in request.")
        grant = super().get_authorization_grant(request)
        for extension in self._grant_extensions:
            extension(grant)
        return grant

    def get_token_grant(self, request):
        grant = super().get_token_grant(request)
        for extension in self._grant_extensions:
            extension(grant)
        return grant

    def validate_requested_scope(self, scope):
        # Registered APIs define scopes of their own besides the server's (resources.py).
        if scope and self.scopes_supported:
            requested = set(scope_to_list(scope)) - set(self.scopes_supported)
            # Only a scope the server does not define needs the query for the APIs' scopes.
            if requested and not api_scopes().issuperset(requested):
                raise InvalidScopeError()

    @property
    def authorization_grant_classes(self) -> list[type]:
        """The grants registered for the authorization endpoint."""
        return [grant_cls for grant_cls, _ in self._authorization_grants]

    @property
    def token_grant_classes(self) -> list[type]:
        """The grants registered for the token endpoint."""
        return [grant_cls for grant_cls, _ in self._token_grants]

    @property
    def endpoint_registry(self) -> dict[str, list]:
        """Endpoint name (revocation, userinfo, ...) -> its registered endpoint objects."""
        return self._endpoints


#: The current app's AuthorizationServer (one per app, built by ``init_app``).
authorization: AuthorizationServer = LocalProxy(lambda: current_app.extensions["authorization_server"])


def create_token_generator(config) -> BearerTokenGenerator:
    """Random opaque bearer tokens with the configured lifetime."""
    lifetime = config["OAUTH2_ACCESS_TOKEN_LIFETIME"]
    # secrets.token_urlsafe reads the OS random source once per token; Authlib's
    # generate_token draws each character separately, 50x slower for the same entropy.
    return BearerTokenGenerator(
        access_token_generator=lambda **kwargs: secrets.token_urlsafe(32),  # 256 bits
        refresh_token_generator=lambda **kwargs: secrets.token_urlsafe(36),  # 288 bits
        expires_generator=lambda client, grant_type: lifetime,
    )


def init_app(app) -> AuthorizationServer:
    """Build the app's authorization server with its grants and endpoints."""
    from . import oidc  # OpenID Connect builds on the grants defined here

    authorization = AuthorizationServer()
    authorization.init_app(app, query_client=query_client, save_token=save_token)
    authorization.register_client_auth_method("client_secret_basic", authenticate_client_secret_basic)
    authorization.register_token_generator("default", create_token_generator(app.config))
    authorization.scopes_supported = app.config["OAUTH2_SCOPES_SUPPORTED"].split()
    authorization.register_grant(AuthorizationCodeGrant, [CodeChallenge(required=True), oidc.OpenIDCode()])
    authorization.register_grant(ImplicitGrant)
    authorization.register_grant(PasswordGrant)
    authorization.register_grant(ClientCredentialsGrant)
    authorization.register_grant(RefreshTokenGrant)
    authorization.register_endpoint(RevocationEndpoint)
    oidc.register(app, authorization)
    app.extensions["authorization_server"] = authorization
    return authorization
