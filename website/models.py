"""Database models: people, OAuth clients, authorization codes and tokens.

Secrets at rest are hashes: passwords with werkzeug's slow password hash, client secrets
and tokens (high-entropy random values) with SHA-256, looked up by that hash.
"""

import hashlib
import hmac
import secrets
import time
from datetime import datetime, timezone

from authlib.oauth2.rfc6749 import ClientMixin, TokenMixin, list_to_scope, scope_to_list
from authlib.oidc.core import AuthorizationCodeMixin
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import JSON, DateTime, ForeignKey, Integer, MetaData, String, Text, UniqueConstraint, delete, false, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from .redirect_uris import redirect_uri_matches


class Base(DeclarativeBase):
    # Named constraints let Alembic's batch mode drop and recreate them on SQLite.
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


db = SQLAlchemy(model_class=Base)


def now() -> int:
    """The current time as whole seconds since the epoch."""
    return int(time.time())


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(timezone.utc)


def hash_secret(value: str) -> str:
    """SHA-256 of a high-entropy secret (token, code, client secret), as hex."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def new_subject() -> str:
    """A fresh OpenID Connect subject: opaque, random, never derived from the row id."""
    return secrets.token_hex(16)


def new_session_secret() -> str:
    """A fresh per-user secret that every session cookie of the user is bound to."""
    return secrets.token_hex(32)


class User(db.Model):
    __tablename__ = "users"
    # AUTOINCREMENT: SQLite otherwise hands the id of a deleted newest user to the next one,
    # and ids (in /api/me, the audit log) must name one person for ever.
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(primary_key=True)
    #: The OpenID Connect ``sub`` (and RFC 9068 / 7662 ``sub``): opaque, stable, never
    #: reassigned. Accounts that existed before it was added keep ``str(id)``.
    sub: Mapped[str] = mapped_column(String(255), unique=True, default=new_subject)
    username: Mapped[str] = mapped_column(String(40), unique=True)
    email: Mapped[str | None] = mapped_column(String(254))
    #: The full name for the OpenID Connect ``name`` claim (the username when unset).
    name: Mapped[str | None] = mapped_column(String(100))
    #: No verification flow exists yet, so addresses are reported as unverified.
    email_verified: Mapped[bool] = mapped_column(default=False, server_default=false())
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)
    is_admin: Mapped[bool] = mapped_column(default=False)
    #: Random per user, replaced on log-out everywhere and on password change: a session
    #: cookie carries a digest of it (``session_key``), so a cookie made before the change, or
    #: for a deleted account, matches nobody, although a cookie cannot be deleted on the server.
    session_secret: Mapped[str] = mapped_column(String(64), default=new_session_secret)

    def set_password(self, password: str, method: str = "scrypt") -> None:
        """Store a slow, salted hash of the password."""
        self.password_hash = generate_password_hash(password, method=method)

    def check_password(self, password: str) -> bool:
        """Tell whether the password matches the stored hash."""
        return check_password_hash(self.password_hash, password)

    def get_user_id(self) -> int:
        """The user id Authlib stores with codes and tokens (the ``sub`` is ``self.sub``)."""
        return self.id

    def session_key(self) -> str:
        """What a session cookie of this user carries: a digest of the session secret, so the
        cookie never holds the secret itself."""
        return hmac.new(self.session_secret.encode(), b"session cookie", hashlib.sha256).hexdigest()

    def check_session_key(self, value) -> bool:
        """Tell, in constant time, whether a cookie's session key is this user's current one."""
        return isinstance(value, str) and hmac.compare_digest(value.encode(), self.session_key().encode())

    def end_all_sessions(self) -> None:
        """Make every session cookie of the user invalid (log-out everywhere, password change)."""
        self.session_secret = new_session_secret()

    def __repr__(self) -> str:
        return f"<User {self.username}>"


#: Checked when no such user exists, so a wrong username costs as long as a wrong password.
_DUMMY_PASSWORD_HASH = generate_password_hash(secrets.token_hex(16), method="scrypt")


def authenticate_user(username: str, password: str) -> User | None:
    """Return the user whose username and password these are, or None."""
    # PostgreSQL refuses a NUL byte even in a comparison; no username holds one.
    known = username and "\x00" not in username
    user = db.session.scalar(select(User).where(User.username == username)) if known else None
    if user is None:
        check_password_hash(_DUMMY_PASSWORD_HASH, password or "")
        return None
    return user if user.check_password(password) else None


class OAuth2Client(db.Model, ClientMixin):
    """A registered client with its RFC 7591 metadata; the secret is kept only as a hash."""

    __tablename__ = "oauth2_clients"

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[str] = mapped_column(String(48), unique=True)
    client_secret_hash: Mapped[str | None] = mapped_column(String(64))
    client_id_issued_at: Mapped[int] = mapped_column(default=now)
    client_secret_expires_at: Mapped[int] = mapped_column(default=0)
    owner_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    client_name: Mapped[str] = mapped_column(String(100))
    client_uri: Mapped[str | None] = mapped_column(String(2000))
    logo_uri: Mapped[str | None] = mapped_column(String(2000))
    redirect_uris: Mapped[list] = mapped_column(JSON, default=list)
    grant_types: Mapped[list] = mapped_column(JSON, default=list)
    response_types: Mapped[list] = mapped_column(JSON, default=list)
    scope: Mapped[str] = mapped_column(Text, default="")
    token_endpoint_auth_method: Mapped[str] = mapped_column(String(40))
    contacts: Mapped[list] = mapped_column(JSON, default=list)
    #: Any other RFC 7591 / OpenID metadata (post_logout_redirect_uris, tos_uri, ...).
    extra_metadata: Mapped[dict] = mapped_column(JSON, default=dict)

    owner: Mapped[User | None] = relationship()

    METADATA_FIELDS = (
        "client_name",
        "client_uri",
        "logo_uri",
        "redirect_uris",
        "grant_types",
        "response_types",
        "scope",
        "token_endpoint_auth_method",
        "contacts",
    )

    @property
    def client_metadata(self) -> dict:
        """All registered metadata as one RFC 7591 dictionary."""
        data = dict(self.extra_metadata or {})
        for field in self.METADATA_FIELDS:
            value = getattr(self, field)
            if value not in (None, "", []):
                data[field] = value
        return data

    def set_client_metadata(self, metadata: dict) -> None:
        """Store RFC 7591 metadata: known fields in columns, the rest in extra_metadata."""
        extra = {}
        for key, value in metadata.items():
            if key in self.METADATA_FIELDS:
                setattr(self, key, value)
            else:
                extra[key] = value
        self.extra_metadata = extra

    @property
    def is_public(self) -> bool:
        """A public client has no secret and authenticates with ``none``."""
        return self.token_endpoint_auth_method == "none"

    @classmethod
    def register(cls, metadata: dict, owner: User | None = None) -> tuple["OAuth2Client", str | None]:
        """Make a client from validated metadata; return it with its plain secret (None if public)."""
        client = cls(client_id=secrets.token_urlsafe(24), owner=owner, client_id_issued_at=now())
        client.set_client_metadata(metadata)
        return client, client.rotate_secret()

    def rotate_secret(self) -> str | None:
        """Give a confidential client a new secret; return it (the only time it is seen)."""
        if self.is_public:
            self.client_secret_hash = None
            return None
        secret = secrets.token_urlsafe(48)
        self.client_secret_hash = hash_secret(secret)
        return secret

    # Authlib's ClientMixin interface.

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        # Only unambiguous: with several registered URIs the request must name one.
        if len(self.redirect_uris) == 1:
            return self.redirect_uris[0]
        return None

    def get_allowed_scope(self, scope: str) -> str:
        if not scope:
            return self.scope
        allowed = set(scope_to_list(self.scope))
        return list_to_scope([s for s in scope_to_list(scope) if s in allowed])

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return any(redirect_uri_matches(registered, redirect_uri) for registered in self.redirect_uris)

    def check_client_secret(self, client_secret: str) -> bool:
        if not self.client_secret_hash or not client_secret:
            return False
        return hmac.compare_digest(self.client_secret_hash, hash_secret(client_secret))

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        # The same registered method authenticates the client at every endpoint
        # (token, revocation, introspection).
        return self.token_endpoint_auth_method == method

    def check_response_type(self, response_type: str) -> bool:
        return response_type in self.response_types

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.grant_types


class AuthorizationCode(db.Model, AuthorizationCodeMixin):
    """A short-lived, single-use authorization code, stored as a hash."""

    __tablename__ = "oauth2_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    client_id: Mapped[str] = mapped_column(String(48), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    redirect_uri: Mapped[str] = mapped_column(Text, default="")
    response_type: Mapped[str] = mapped_column(Text, default="")
    scope: Mapped[str] = mapped_column(Text, default="")
    nonce: Mapped[str | None] = mapped_column(Text)
    code_challenge: Mapped[str | None] = mapped_column(Text)
    code_challenge_method: Mapped[str | None] = mapped_column(String(10))
    #: The API (RFC 8707 resource / Auth0 audience) the tokens are for; None for opaque tokens.
    resource: Mapped[str | None] = mapped_column(String(2000))
    auth_time: Mapped[int] = mapped_column(default=now)
    expires_at: Mapped[int] = mapped_column(Integer, index=True)
    used_at: Mapped[int | None] = mapped_column()

    user: Mapped[User] = relationship()

    def is_expired(self) -> bool:
        return self.expires_at <= time.time()

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time


class Token(db.Model, TokenMixin):
    """An access token and its optional refresh token, both stored as hashes."""

    __tablename__ = "oauth2_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[str] = mapped_column(String(48), index=True)
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    token_type: Mapped[str] = mapped_column(String(40), default="Bearer")
    access_token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    refresh_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    scope: Mapped[str] = mapped_column(Text, default="")
    issued_at: Mapped[int] = mapped_column(default=now)
    expires_in: Mapped[int] = mapped_column(default=0)
    #: When the access token stops working; indexed for purging.
    expires_at: Mapped[int] = mapped_column(Integer, index=True)
    refresh_token_expires_at: Mapped[int | None] = mapped_column()
    access_token_revoked_at: Mapped[int] = mapped_column(default=0)
    refresh_token_revoked_at: Mapped[int] = mapped_column(default=0)
    #: When this row's refresh token was exchanged for a new one (rotation).
    rotated_at: Mapped[int | None] = mapped_column()
    #: The authorization code this token was issued from, to revoke it on code reuse.
    authorization_code_id: Mapped[int | None] = mapped_column(Integer, index=True)
    #: Tokens refreshed from one another share a family, revoked together.
    family_id: Mapped[str] = mapped_column(String(32), index=True)
    #: The API a JWT access token was issued for (its aud); None for opaque tokens.
    audience: Mapped[str | None] = mapped_column(String(2000))

    #: Set by the revocation endpoint's lookup: the value presented was the refresh token.
    matched_refresh_token = False

    user: Mapped[User | None] = relationship()
    client: Mapped[OAuth2Client] = relationship(
        primaryjoin="foreign(Token.client_id) == OAuth2Client.client_id", viewonly=True
    )

    # Authlib's TokenMixin interface.

    def check_client(self, client) -> bool:
        return self.client_id == client.get_client_id()

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return self.expires_in

    def get_expires_at(self) -> int:
        return self.expires_at

    def is_expired(self) -> bool:
        return self.expires_at <= time.time()

    def is_revoked(self) -> bool:
        return bool(self.access_token_revoked_at)

    def is_refresh_token_active(self) -> bool:
        """Tell whether the refresh token can still be exchanged."""
        if not self.refresh_token_hash or self.refresh_token_revoked_at:
            return False
        return self.refresh_token_expires_at is None or self.refresh_token_expires_at > time.time()

    def get_user(self) -> User | None:
        return self.user

    def get_client(self) -> OAuth2Client:
        return self.client


class SigningKey(db.Model):
    """A key that signs id_tokens; every instance reads the same keys from here.

    The newest key signs. Older keys keep their public half published in the JWKS until
    ``publish_until``, when every token they signed has expired; their private half is
    erased when they are retired, since nothing may sign with them any more.
    """

    __tablename__ = "oauth2_signing_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: The RFC 7638 thumbprint of the public key.
    kid: Mapped[str] = mapped_column(String(64), unique=True)
    alg: Mapped[str] = mapped_column(String(16), default="RS256")
    public_jwk: Mapped[dict] = mapped_column(JSON)
    #: SQL NULL (not JSON null) once erased, so "no private key" is plain to see and query.
    private_jwk: Mapped[dict | None] = mapped_column(JSON(none_as_null=True))
    created_at: Mapped[int] = mapped_column(default=now)
    retired_at: Mapped[int | None] = mapped_column()
    publish_until: Mapped[int | None] = mapped_column()

    def is_published(self, at: int) -> bool:
        """Tell whether the JWKS lists this key at the given time."""
        return self.publish_until is None or self.publish_until > at


# Consents, dynamic registration and APIs (resource servers).


class Consent(db.Model):
    """The scopes a user allowed a client; later requests for a subset skip the consent page."""

    __tablename__ = "oauth2_consents"
    __table_args__ = (UniqueConstraint("user_id", "client_id", name="uq_oauth2_consents_user_id_client_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    client_id: Mapped[str] = mapped_column(
        ForeignKey("oauth2_clients.client_id", ondelete="CASCADE"), index=True
    )
    scope: Mapped[str] = mapped_column(Text, default="")
    #: The APIs (their identifiers, space-separated) the user allowed the client tokens for.
    audiences: Mapped[str | None] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    user: Mapped[User] = relationship()
    client: Mapped[OAuth2Client] = relationship(
        primaryjoin="Consent.client_id == OAuth2Client.client_id", viewonly=True
    )

    def covers(self, scope: str, audience: str | None = None) -> bool:
        """Tell whether every scope in ``scope``, and the API ``audience`` (if any), were
        already allowed."""
        if audience is not None and audience not in self.audience_list():
            return False
        return set(scope_to_list(scope) or []) <= set(scope_to_list(self.scope) or [])

    def audience_list(self) -> list[str]:
        """The identifiers of the APIs the user allowed (identifiers hold no spaces)."""
        return (self.audiences or "").split()


class InitialAccessToken(db.Model):
    """A bearer token that allows one to use dynamic client registration (RFC 7591 §3)."""

    __tablename__ = "oauth2_initial_access_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[int] = mapped_column(default=now)
    #: 0 means it never expires.
    expires_at: Mapped[int] = mapped_column(default=0)

    def is_active(self) -> bool:
        """Tell whether the token can still be used."""
        return not self.expires_at or self.expires_at > time.time()


class RegistrationAccessToken(db.Model):
    """The token a dynamically registered client uses to manage itself (RFC 7592)."""

    __tablename__ = "oauth2_registration_access_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    client_id: Mapped[str] = mapped_column(
        ForeignKey("oauth2_clients.client_id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[int] = mapped_column(default=now)

    def check_client(self, client) -> bool:
        """Tell whether the token was issued for this client."""
        return self.client_id == client.get_client_id()


class ResourceServer(db.Model):
    """An API that access tokens can be requested for (RFC 8707 resource / Auth0 audience)."""

    __tablename__ = "oauth2_resource_servers"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: The audience URI, used as ``aud`` in its JWT access tokens.
    identifier: Mapped[str] = mapped_column(String(2000), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    scopes: Mapped[list] = mapped_column(JSON, default=list)
    access_token_lifetime: Mapped[int] = mapped_column(default=3600)
    #: The client the API authenticates as to introspect tokens issued for it (RFC 7662).
    introspection_client_id: Mapped[str | None] = mapped_column(
        ForeignKey("oauth2_clients.client_id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ApiClientGrant(db.Model):
    """An API allows a client to get access tokens for it (granted by an administrator with
    ``flask grant-api``); without one the client gets ``invalid_target`` for that API."""

    __tablename__ = "oauth2_api_grants"
    __table_args__ = (UniqueConstraint("api_id", "client_id", name="uq_oauth2_api_grants_api_id_client_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    api_id: Mapped[int] = mapped_column(
        ForeignKey("oauth2_resource_servers.id", ondelete="CASCADE"), index=True
    )
    client_id: Mapped[str] = mapped_column(
        ForeignKey("oauth2_clients.client_id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AuditEvent(db.Model):
    """One security-relevant event (log-in, consent, token, client, key), kept for admins to read.

    The user's name and the client_id are copied in, so the record outlives the rows it names.
    """

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    event: Mapped[str] = mapped_column(String(64), index=True)
    user_id: Mapped[int | None] = mapped_column(Integer, index=True)
    username: Mapped[str | None] = mapped_column(String(40))
    client_id: Mapped[str | None] = mapped_column(String(48), index=True)
    ip_address: Mapped[str | None] = mapped_column(String(45))
    detail: Mapped[dict] = mapped_column(JSON, default=dict)


class ThrottleCounter(db.Model):
    """Failed attempts against one subject (an account, an address, a client) in the current
    window, and until when the subject is locked out. Shared by every instance."""

    __tablename__ = "throttle_counters"

    #: The subject, e.g. ``account:<sha256 of the username>``.
    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    failures: Mapped[int] = mapped_column(default=0)
    window_started_at: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[int] = mapped_column(default=0, index=True)


class UserRecord:
    """A user's public columns read with a Core query (see TokenRecord); not an ORM object."""

    COLUMNS = ("id", "sub", "username", "email", "name", "email_verified", "created_at", "updated_at")
    __slots__ = COLUMNS

    def __init__(self, values):
        for name, value in zip(self.COLUMNS, values):
            setattr(self, name, value)

    get_user_id = User.get_user_id

    def __repr__(self) -> str:
        return f"<User {self.username}>"


class TokenRecord(TokenMixin):
    """A token row and its user, read with one Core query for the read-only checks (bearer
    tokens, introspection): the same columns and methods as Token, without the ORM's
    instance state and identity map, which cost more than the query itself."""

    COLUMNS = tuple(column.key for column in Token.__table__.columns)
    #: Set by the introspection lookup: the value presented was the refresh token.
    matched_refresh_token = False

    def __init__(self, values, user: UserRecord | None):
        self.__dict__.update(zip(self.COLUMNS, values))
        self.user = user

    check_client = Token.check_client
    get_scope = Token.get_scope
    get_expires_in = Token.get_expires_in
    get_expires_at = Token.get_expires_at
    is_expired = Token.is_expired
    is_revoked = Token.is_revoked
    is_refresh_token_active = Token.is_refresh_token_active
    get_user = Token.get_user

    def get_client(self) -> OAuth2Client | None:
        # client_id is not the primary key (id is): look it up by its column.
        return db.session.scalar(select(OAuth2Client).where(OAuth2Client.client_id == self.client_id))


def delete_clients(condition) -> None:
    """Delete the clients matching ``condition`` with everything that names them by client_id
    (tokens, codes, consents, registration access tokens), in the caller's transaction."""
    client_ids = select(OAuth2Client.client_id).where(condition).scalar_subquery()
    for model in (Token, AuthorizationCode, Consent, RegistrationAccessToken, ApiClientGrant):
        db.session.execute(delete(model).where(model.client_id.in_(client_ids)))
    db.session.execute(delete(OAuth2Client).where(condition))

