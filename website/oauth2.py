"""All Authlib wiring: the AuthorizationServer, its grants and hooks, revocation and the
ResourceProtector. Everything here implements hooks Authlib leaves to the application."""

import secrets

from authlib.integrations.flask_oauth2 import AuthorizationServer, ResourceProtector
from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import InvalidClientError, InvalidGrantError, InvalidRequestError
from authlib.oauth2.rfc6750 import BearerTokenGenerator, BearerTokenValidator
from authlib.oauth2.rfc7009 import RevocationEndpoint as _RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge as _CodeChallenge
from flask import current_app
from sqlalchemy import bindparam, case, insert, select, update
from sqlalchemy.orm import joinedload
from werkzeug.local import LocalProxy

from .models import AuthorizationCode, OAuth2Client, Token, User, authenticate_user, db, hash_secret, now

#: The client authentication methods every token-endpoint grant accepts.
CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]


# The hot lookups, built once: building and cache-keying a select() on every request cost
# a third of a bearer check. Each is one indexed query that also loads the token's user,
# so the view reading ``current_token.user`` needs no second query.
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


def query_client(client_id: str) -> OAuth2Client | None:
    """Find a client by its client_id."""
    if not client_id or len(client_id) > 48:
        return None
    return db.session.scalar(_CLIENT_BY_ID, {"client_id": client_id})


def query_token_by_access_token(access_token: str) -> Token | None:
    """Find a token row (and its user) by the hash of its access token."""
    return db.session.scalar(_TOKEN_BY_ACCESS_HASH, {"hash": hash_secret(access_token)})


def query_token_by_refresh_token(refresh_token: str) -> Token | None:
    """Find a token row (and its user) by the hash of its refresh token."""
    return db.session.scalar(_TOKEN_BY_REFRESH_HASH, {"hash": hash_secret(refresh_token)})


def revoke_family(family_id: str) -> None:
    """Revoke every access and refresh token descended from one grant (one code or log-in)."""
    stamp = now()
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
    )
    # A bulk INSERT skips the unit of work's bookkeeping for an object nothing reads again.
    db.session.execute(insert(Token), [values])
    db.session.commit()


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
        if method == "plain" and not current_app.config["OAUTH2_PKCE_ALLOW_PLAIN"]:
            raise InvalidRequestError("Unsupported 'code_challenge_method': use S256.")
        super().validate_code_challenge(grant, redirect_uri)


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = CLIENT_AUTH_METHODS

    def save_authorization_code(self, code: str, request) -> AuthorizationCode:
        data = request.payload.data
        item = AuthorizationCode(
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
        revoke_family(family_id)
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
        return authenticate_user(username, password)


class ClientCredentialsGrant(grants.ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]


class RefreshTokenGrant(grants.RefreshTokenGrant):
    """Refresh tokens rotate for public clients always, for confidential clients when
    configured; presenting a rotated refresh token again revokes the whole family."""

    TOKEN_ENDPOINT_AUTH_METHODS = CLIENT_AUTH_METHODS

    def _rotates(self, client) -> bool:
        return client.is_public or current_app.config["OAUTH2_ROTATE_CONFIDENTIAL_REFRESH_TOKENS"]

    def authenticate_refresh_token(self, refresh_token: str) -> Token | None:
        if not refresh_token or len(refresh_token) > 512:
            return None
        token = query_token_by_refresh_token(refresh_token)
        if token is None or token.client_id != self.request.client.client_id:
            return None
        if token.refresh_token_revoked_at:
            if token.rotated_at:
                # A rotated refresh token came back: it was stolen or replayed.
                revoke_family(token.family_id)
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


class RevocationEndpoint(_RevocationEndpoint):
    """RFC 7009: a client revokes its own tokens; a refresh token takes its family with it."""

    CLIENT_AUTH_METHODS = CLIENT_AUTH_METHODS

    def query_token(self, token_string: str, token_type_hint: str | None) -> Token | None:
        if not token_string or len(token_string) > 512:
            return None
        if token_type_hint == "refresh_token":
            order = (query_token_by_refresh_token, query_token_by_access_token)
        else:
            order = (query_token_by_access_token, query_token_by_refresh_token)
        for lookup in order:
            if (token := lookup(token_string)) is not None:
                token.matched_refresh_token = lookup is query_token_by_refresh_token
                return token
        return None

    def revoke_token(self, token: Token, request) -> None:
        if token.matched_refresh_token:
            revoke_family(token.family_id)
        else:
            token.access_token_revoked_at = token.access_token_revoked_at or now()
        db.session.commit()


class BearerValidator(BearerTokenValidator):
    """Checks a bearer token by the hash of its value: unknown, expired and revoked tokens fail."""

    def authenticate_token(self, token_string: str) -> Token | None:
        if not token_string or len(token_string) > 512:
            return None
        return query_token_by_access_token(token_string)


#: Protects resource endpoints such as /api/me; its validator holds no per-app state.
require_oauth = ResourceProtector()
require_oauth.register_token_validator(BearerValidator())

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
    authorization = AuthorizationServer()
    authorization.init_app(app, query_client=query_client, save_token=save_token)
    authorization.register_token_generator("default", create_token_generator(app.config))
    authorization.scopes_supported = app.config["OAUTH2_SCOPES_SUPPORTED"].split()
    authorization.register_grant(AuthorizationCodeGrant, [CodeChallenge(required=True)])
    authorization.register_grant(ImplicitGrant)
    authorization.register_grant(PasswordGrant)
    authorization.register_grant(ClientCredentialsGrant)
    authorization.register_grant(RefreshTokenGrant)
    authorization.register_endpoint(RevocationEndpoint)
    app.extensions["authorization_server"] = authorization
    return authorization
