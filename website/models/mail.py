"""Mail that waits for the mail server (``mail_queue``)."""

from sqlalchemy import JSON, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from website.extensions import db
from website.models.base import QueuedWork


class QueuedMail(QueuedWork, db.Model):
    """A mail the mail server refused where saying so would tell a stranger something (the
    forgot-password answer must not show whether an address has an account): a worker sends
    it later, with retries. It holds no secret: a mail with a link gets a fresh link when it
    is sent (``link_purpose``), so neither the link nor the mail's body is stored."""

    __tablename__ = "mail_queue"
    __table_args__ = (Index("ix_mail_queue_due", "state", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    to_address: Mapped[str] = mapped_column(String(254))
    #: templates/mail/<template>.txt and .html, and the subject after the site name.
    template: Mapped[str] = mapped_column(String(40))
    subject: Mapped[str] = mapped_column(String(200))
    #: The account the mail is about. No foreign key: a deleted account's mail is given up.
    user_id: Mapped[int | None] = mapped_column(Integer)
    #: The purpose of the one-time link the mail carries (made when it is sent), or None.
    link_purpose: Mapped[str | None] = mapped_column(String(20))
    #: Who asked for the link (the link's created_by).
    created_by: Mapped[str | None] = mapped_column(String(40))
    #: The site URL the request came in on, for the link and the sender when OAUTH2_ISSUER is unset.
    base_url: Mapped[str | None] = mapped_column(String(2000))
    #: What else the templates need; never a secret.
    context: Mapped[dict] = mapped_column(JSON, default=dict)
