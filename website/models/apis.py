"""APIs (resource servers) that access tokens can be issued for."""

from datetime import datetime

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    String,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from website.extensions import db
from website.models.base import utcnow


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
    #: Token exchange (RFC 8693) without an actor token: the client may get tokens for the
    #: API that stand for a person with no trace of the client acting (``grant-api --impersonation``).
    allow_impersonation: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class ApiSnapshot:
    """A read-only copy of an API's row that any request and thread may share (the cache
    in store/cache.py hands these out); code that changes an API reads the row itself."""

    COLUMNS = tuple(column.key for column in ResourceServer.__table__.columns)

    def __init__(self, row: ResourceServer):
        for key in self.COLUMNS:
            value = getattr(row, key)
            object.__setattr__(self, key, tuple(value or ()) if key == "scopes" else value)

    def __setattr__(self, key, value):
        raise AttributeError(f"A cached API is read-only; load the row to change {key}.")

    def __repr__(self) -> str:
        return f"<ApiSnapshot {self.identifier}>"
