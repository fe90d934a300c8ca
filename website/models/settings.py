"""Site settings an administrator changes in the admin UI (branding), overriding the
configuration's defaults; every instance reads them from here."""

from datetime import datetime

from sqlalchemy import DateTime, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from website.extensions import db
from website.models.base import utcnow


class SiteSetting(db.Model):
    __tablename__ = "site_settings"

    #: The configuration key it overrides, e.g. SITE_NAME.
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)
