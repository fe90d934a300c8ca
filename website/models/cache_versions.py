"""The version row of each in-process cache: a counter every write to what the cache holds
bumps in its own transaction, so every instance can tell its copy went stale."""

from sqlalchemy import BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from website.extensions import db


class CacheVersion(db.Model):
    __tablename__ = "cache_versions"

    #: The cache: "clients" (OAuth2Client rows) or "apis" (resource servers and their grants).
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, default=0)
