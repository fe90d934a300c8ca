"""Upstream identity providers people may sign in with, the identities they linked, and the
state of sign-ins under way."""

from datetime import datetime

from sqlalchemy import JSON, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from website.extensions import db
from website.models.base import utcnow
from website.models.users import User

#: Kinds of upstream: OpenID Connect by discovery, or plain OAuth 2.0 with a userinfo URL.
OIDC = "oidc"
OAUTH2 = "oauth2"

#: What an account without a password of its own has as password hash: no password matches it
#: (werkzeug's check_password_hash refuses a hash without its "method$salt$hash" form).
NO_PASSWORD = "!no-password"


def has_password(user: User) -> bool:
    """Whether the person can sign in with a password here (accounts made through an upstream
    provider have none)."""
    return not user.password_hash.startswith("!")


class Upstream(db.Model):
    """An OpenID Connect or OAuth 2.0 provider people may sign in with."""

    __tablename__ = "upstreams"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: The name in URLs, the CLI and idp_hint (lower-case letters, digits, dashes).
    name: Mapped[str] = mapped_column(String(40), unique=True)
    #: What the "Continue with ..." button says.
    display_name: Mapped[str] = mapped_column(String(80))
    kind: Mapped[str] = mapped_column(String(10), default=OIDC)
    #: The preset the row was made from (google, microsoft, gitlab, keycloak, github, ...).
    preset: Mapped[str | None] = mapped_column(String(20))
    #: OpenID Connect: the issuer, whose /.well-known/openid-configuration is read.
    issuer: Mapped[str | None] = mapped_column(String(500))
    client_id: Mapped[str] = mapped_column(String(255))
    #: store.sealed ciphertext of the client secret (read back to authenticate to the upstream).
    client_secret_encrypted: Mapped[str] = mapped_column(Text)
    scope: Mapped[str] = mapped_column(String(500))
    #: Plain OAuth 2.0: the endpoints (OpenID Connect takes them from discovery).
    authorize_url: Mapped[str | None] = mapped_column(String(500))
    token_url: Mapped[str | None] = mapped_column(String(500))
    userinfo_url: Mapped[str | None] = mapped_column(String(500))
    #: A GitHub-style list of {email, verified, primary} (GET /user/emails), for the email.
    emails_url: Mapped[str | None] = mapped_column(String(500))
    #: Local claim -> the upstream's claim it is read from (sub, email, email_verified, name,
    #: preferred_username, groups).
    claim_map: Mapped[dict] = mapped_column(JSON, default=dict)
    #: The local claims (name, email) each sign-in overwrites with the upstream's value.
    overwrite_claims: Mapped[list] = mapped_column(JSON, default=list)
    #: Also end the person's session at the upstream when they log out here (RP-initiated
    #: logout, when the upstream advertises an end_session_endpoint).
    end_upstream_session: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    identities: Mapped[list["UpstreamIdentity"]] = relationship(
        back_populates="upstream", cascade="all, delete-orphan", passive_deletes=True)

    def __repr__(self) -> str:
        return f"<Upstream {self.name}>"


class UpstreamIdentity(db.Model):
    """A person's account at an upstream provider, linked to their account here: always by
    (upstream, subject), never by email."""

    __tablename__ = "upstream_identities"
    __table_args__ = (UniqueConstraint("upstream_id", "subject"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    upstream_id: Mapped[int] = mapped_column(ForeignKey("upstreams.id", ondelete="CASCADE"))
    subject: Mapped[str] = mapped_column(String(255))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    #: What the upstream said at the last sign-in (shown on the account page).
    email: Mapped[str | None] = mapped_column(String(254))
    groups: Mapped[list] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    upstream: Mapped[Upstream] = relationship(back_populates="identities")
    user: Mapped[User] = relationship()


class UpstreamState(db.Model):
    """A sign-in sent to an upstream and not yet back: Authlib's state data (PKCE verifier,
    nonce, redirect URI, where to go next), kept where every instance sees it and taken once,
    so a replayed callback finds nothing."""

    __tablename__ = "upstream_states"

    #: SHA-256 of Authlib's key for the state (the state itself never rests here).
    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[int] = mapped_column(Integer, index=True)
