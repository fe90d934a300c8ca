"""Signing keys, shared by every instance through the database."""


from sqlalchemy import (
    JSON,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from website.extensions import db
from website.models.base import now


class SigningKey(db.Model):
    """A key that signs id_tokens; every instance reads the same keys from here.

    The newest key signs. Older keys keep their public half published in the JWKS until
    ``publish_until``, when every token they signed has expired; their private half is
    erased when they are retired, since nothing may sign with them any more. The private half
    is stored only encrypted, with the key-encryption key from the environment (or the
    instance folder): KEY_ENCRYPTION_KEYS, website/config.py.
    """

    __tablename__ = "oauth2_signing_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: The RFC 7638 thumbprint of the public key.
    kid: Mapped[str] = mapped_column(String(64), unique=True)
    alg: Mapped[str] = mapped_column(String(16), default="RS256")
    public_jwk: Mapped[dict] = mapped_column(JSON)
    #: The private JWK as JSON, Fernet-encrypted (MultiFernet of KEY_ENCRYPTION_KEYS); NULL once
    #: erased, so "no private key" is plain to see and query.
    private_key_encrypted: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[int] = mapped_column(default=now)
    retired_at: Mapped[int | None] = mapped_column()
    publish_until: Mapped[int | None] = mapped_column()

    def is_published(self, at: int) -> bool:
        """Tell whether the JWKS lists this key at the given time."""
        return self.publish_until is None or self.publish_until > at
