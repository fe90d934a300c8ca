"""The queue of mail waiting for the mail server (``mail_queue``): rows added in the
caller's transaction, claimed and settled through store/queue.py."""

from sqlalchemy import func, select

from website.extensions import db
from website.models.base import now
from website.models.mail import QueuedMail
from website.models.users import User
from website.store import queue


def enqueue(to: str, template: str, subject: str, user: User | None = None, link_purpose: str | None = None,
            created_by: str | None = None, base_url: str | None = None, error: str | None = None,
            **context) -> QueuedMail:
    """Queue a mail in the caller's transaction, due at once. ``context`` goes to the
    templates and is stored as it is: never put a secret in it (a link is made when sent)."""
    stamp = now()
    item = QueuedMail(to_address=to, template=template, subject=subject[:200],
                      user_id=user.id if user is not None else None, link_purpose=link_purpose,
                      created_by=created_by[:40] if created_by else None, base_url=base_url, context=context,
                      created_at=stamp, attempts=0, next_attempt_at=stamp, state="pending",
                      last_error=error[:300] if error else None)
    db.session.add(item)
    return item


def due_ids(limit: int) -> list[int]:
    """Queued mails whose time has come, oldest first."""
    return queue.due_ids(QueuedMail, limit)


def claim(item_id: int, lease: int) -> QueuedMail | None:
    """Take a due mail for one try (store/queue.claim); None if another worker has it."""
    return queue.claim(QueuedMail, item_id, lease)


def pending_count() -> int:
    """How many mails wait (due or not)."""
    return db.session.scalar(select(func.count()).select_from(QueuedMail).where(QueuedMail.state == "pending"))
