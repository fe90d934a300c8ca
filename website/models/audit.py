"""The audit log's rows."""

from datetime import datetime

from sqlalchemy import (
    JSON,
    DateTime,
    Integer,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from website.extensions import db
from website.models.base import utcnow


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
