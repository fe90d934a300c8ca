"""One-time account links sent by mail: confirm an address, reset a password, accept an
invitation, confirm a new address."""

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from website.extensions import db
from website.models.base import now

#: What a link is for.
PURPOSES = ("verify_email", "reset_password", "invite", "change_email")


class AccountLink(db.Model):
    """A link mailed to a person, stored as the SHA-256 of its token (never the token).

    Single-use (``used_at``), expiring (``expires_at``), and bound to the account state it was
    made for (``state``: an HMAC over the password hash and address, so a reset link dies when
    the password changes, and a confirmation link when the address does)."""

    __tablename__ = "account_links"
    # AUTOINCREMENT: a link id is never handed out twice (the audit log names them).
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(primary_key=True)
    purpose: Mapped[str] = mapped_column(String(20))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: None for an invitation (the account does not exist yet).
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    #: The address the link was sent to (for change_email: the new address).
    email: Mapped[str] = mapped_column(String(254))
    state: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[int] = mapped_column(default=now)
    expires_at: Mapped[int] = mapped_column(index=True)
    used_at: Mapped[int | None] = mapped_column()
    #: Who made it (an invitation's administrator, "cli"), for the audit log and the admin page.
    created_by: Mapped[str | None] = mapped_column(String(40))

    def __repr__(self) -> str:
        return f"<AccountLink {self.id} {self.purpose}>"
