"""What a person grants: authorization codes, tokens and remembered consent."""

import time
from datetime import datetime

from authlib.oauth2.rfc6749 import TokenMixin, scope_to_list
from authlib.oidc.core import AuthorizationCodeMixin
from sqlalchemy import (
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from website.extensions import db
from website.models.base import now, utcnow
from website.models.clients import OAuth2Client
from website.models.users import User


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
    #: The known claims the claims parameter asked for, as JSON by target (oauth2/claims.py).
    claims: Mapped[str | None] = mapped_column(Text)
    auth_time: Mapped[int] = mapped_column(default=now)
    expires_at: Mapped[int] = mapped_column(Integer, index=True)
    used_at: Mapped[int | None] = mapped_column()
    #: The JWK thumbprint the authorization request bound the code to (RFC 9449 §10,
    #: ``dpop_jkt``): only a token request proving that key may redeem it.
    dpop_jkt: Mapped[str | None] = mapped_column(String(43))

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


class TokenState(TokenMixin):
    """What a token's columns say about it (Authlib's TokenMixin interface): one definition
    for the ORM row (``Token``) and the plain record the read-only checks use
    (``store.tokens.TokenRecord``)."""

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


class Token(db.Model, TokenState):
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
    #: When the person signed in for this token family (the code's auth_time, kept through
    #: refreshes), for the id_token a refresh returns; None without a sign-in or for old rows.
    auth_time: Mapped[int | None] = mapped_column()
    #: The claims parameter's request, kept from the code (and through refreshes) for UserInfo.
    claims: Mapped[str | None] = mapped_column(Text)
    #: The JWK thumbprint (RFC 7638) of the key the access token is bound to with DPoP
    #: (RFC 9449, ``cnf.jkt``); for a public client the refresh token is bound to it too.
    dpop_jkt: Mapped[str | None] = mapped_column(String(43))
    #: Who acts for the subject (RFC 8693 §4.1 ``act``, JSON), for a token from token exchange.
    act: Mapped[str | None] = mapped_column(Text)

    #: Set by the revocation endpoint's lookup: the value presented was the refresh token.
    matched_refresh_token = False

    user: Mapped[User | None] = relationship()
    client: Mapped[OAuth2Client] = relationship(
        primaryjoin="foreign(Token.client_id) == OAuth2Client.client_id", viewonly=True
    )

    def get_client(self) -> OAuth2Client:
        return self.client


class SpentJti(db.Model):
    """A one-time value already seen (a DPoP proof's ``jti``, RFC 9449 §11.1), kept until it
    could no longer be accepted anyway; the primary key makes a second use fail on every
    instance. Used when Redis is not configured (or unreachable)."""

    __tablename__ = "spent_jtis"

    #: SHA-256 of what was spent and in which context (e.g. the DPoP key and the jti).
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[int] = mapped_column(Integer, index=True)


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
