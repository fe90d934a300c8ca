"""OAuth clients and the tokens of dynamic registration (RFC 7591/7592)."""

import copy
import hmac
import secrets
import time

from authlib.oauth2.rfc6749 import ClientMixin, list_to_scope, scope_to_list
from sqlalchemy import (
    JSON,
    ForeignKey,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from website.extensions import db
from website.http.cors import origin_of
from website.models.base import hash_secret, now
from website.models.redirect_uris import redirect_uri_matches
from website.models.users import User

#: The two ways of sending the client secret (RFC 6749 §2.3.1): a client registered with
#: either may use the other, unless it is marked strict.
SECRET_METHODS = ("client_secret_basic", "client_secret_post")

#: Methods that prove the client with a signed JWT (RFC 7523 §2.2) instead of a secret.
KEY_METHODS = ("private_key_jwt",)


#: The characters of a client_id: letters and digits only, so one never starts with "-" (which
#: every command line, `flask limit-client ID` included, reads as an option) or needs quoting.
_CLIENT_ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def new_client_id() -> str:
    """A new random client_id: 32 letters and digits (190 bits)."""
    return "".join(secrets.choice(_CLIENT_ID_ALPHABET) for _ in range(32))


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
            elif value is not None:  # an optional field left unset is absent (RFC 7591 §3.2.1)
                extra[key] = value
        self.extra_metadata = extra

    @property
    def allowed_origins(self) -> set[str]:
        """The web origins whose scripts may call the token, revocation, introspection and
        userinfo endpoints for this client: its redirect URIs' origins and its registered
        ``allowed_origins`` (both compared exactly, normalised as browsers send them)."""
        origins = {origin_of(uri) for uri in self.redirect_uris or ()}
        origins.update((self.extra_metadata or {}).get("allowed_origins") or ())
        origins.discard(None)
        return origins

    @property
    def is_public(self) -> bool:
        """A public client has no secret and authenticates with ``none``."""
        return self.token_endpoint_auth_method == "none"

    @property
    def has_secret(self) -> bool:
        """Whether the client authenticates with a client secret (a key-based client has none)."""
        return self.token_endpoint_auth_method in SECRET_METHODS

    @property
    def strict_auth_method(self) -> bool:
        """A strict client may use only the exact method it registered."""
        return (self.extra_metadata or {}).get("strict_auth_method") is True

    @property
    def require_mfa(self) -> bool:
        """The app needs people to sign in with a second factor (oauth2/acr.py)."""
        return (self.extra_metadata or {}).get("require_mfa") is True

    @property
    def require_verified_email(self) -> bool:
        """The client gets codes only for people whose address is verified."""
        return (self.extra_metadata or {}).get("require_verified_email") is True

    @classmethod
    def register(cls, metadata: dict, owner: User | None = None) -> tuple["OAuth2Client", str | None]:
        """Make a client from validated metadata; return it with its plain secret (None if public)."""
        client = cls(client_id=new_client_id(), owner=owner, client_id_issued_at=now())
        client.set_client_metadata(metadata)
        return client, client.rotate_secret()

    def rotate_secret(self) -> str | None:
        """Give a confidential client a new secret; return it (the only time it is seen)."""
        if not self.has_secret:
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
        # The same rule at every endpoint (token, revocation, introspection). Libraries
        # differ in how they send a secret (openid-client 6 posts it, most others use Basic),
        # and both carry the same secret, so a client registered with one may use the other;
        # a strict client may not. "none" and the JWT methods only as registered.
        registered = self.token_endpoint_auth_method
        if method == registered:
            return True
        return method in SECRET_METHODS and registered in SECRET_METHODS and not self.strict_auth_method

    def check_response_type(self, response_type: str) -> bool:
        return response_type in self.response_types

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.grant_types


class ClientAssertionJti(db.Model):
    """A spent client assertion (RFC 7523 §3, item 7): its ``jti`` may not be used again by
    the client until the assertion expires; the row goes when the assertion has expired."""

    __tablename__ = "oauth2_client_assertion_jtis"
    __table_args__ = (UniqueConstraint("client_id", "jti_hash", name="uq_oauth2_client_assertion_jtis_client_id_jti_hash"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("oauth2_clients.client_id", ondelete="CASCADE"))
    #: SHA-256 of the jti: any length the client chose fits in one column.
    jti_hash: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[int] = mapped_column(index=True)


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


class SecretView(db.Model):
    """A new client secret waiting to be shown once, on the page that the POST which made it
    redirects to (website/secret_views.py). The token in that page's address is kept as a
    hash, the secret encrypted; the record belongs to one user and client and lives minutes."""

    __tablename__ = "secret_views"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    client_id: Mapped[str] = mapped_column(
        ForeignKey("oauth2_clients.client_id", ondelete="CASCADE"), index=True
    )
    #: Fernet ciphertext (key derived from SECRET_KEY), never the plain secret.
    secret_encrypted: Mapped[str] = mapped_column(Text)
    created_at: Mapped[int] = mapped_column(default=now)
    expires_at: Mapped[int] = mapped_column(index=True)


class ClientSnapshot(ClientMixin):
    """A read-only copy of a client's row, with OAuth2Client's methods, that any request and
    thread may share (the cache in store/cache.py hands these out). It belongs to no session:
    it has no ``owner`` and cannot be changed or saved; code that changes a client reads the
    row itself."""

    COLUMNS = tuple(column.key for column in OAuth2Client.__table__.columns)
    METADATA_FIELDS = OAuth2Client.METADATA_FIELDS

    def __init__(self, row: OAuth2Client):
        for key in self.COLUMNS:
            value = getattr(row, key)
            if isinstance(value, (list, dict)):
                value = copy.deepcopy(value)  # JSON columns: not the session's objects
            object.__setattr__(self, key, value)

    def __setattr__(self, key, value):
        raise AttributeError(f"A cached client is read-only; load the row to change {key}.")

    def __repr__(self) -> str:
        return f"<ClientSnapshot {self.client_id}>"

    client_metadata = OAuth2Client.client_metadata
    allowed_origins = OAuth2Client.allowed_origins
    is_public = OAuth2Client.is_public
    has_secret = OAuth2Client.has_secret
    strict_auth_method = OAuth2Client.strict_auth_method
    require_mfa = OAuth2Client.require_mfa
    require_verified_email = OAuth2Client.require_verified_email
    get_client_id = OAuth2Client.get_client_id
    get_default_redirect_uri = OAuth2Client.get_default_redirect_uri
    get_allowed_scope = OAuth2Client.get_allowed_scope
    check_redirect_uri = OAuth2Client.check_redirect_uri
    check_client_secret = OAuth2Client.check_client_secret
    check_endpoint_auth_method = OAuth2Client.check_endpoint_auth_method
    check_response_type = OAuth2Client.check_response_type
    check_grant_type = OAuth2Client.check_grant_type
