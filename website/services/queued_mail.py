"""Sending the mail queue (``mail_queue``, store/mail_queue.py): mail the mail server
refused where the person may not be told (the forgot-password answer), sent later by a
daemon thread in every instance (MAIL_QUEUE_WORKER) and by ``flask send-queued-mail``.

A failed try is retried after MAIL_QUEUE_BACKOFF seconds, doubling, until
MAIL_QUEUE_MAX_ATTEMPTS tries; every outcome goes to the audit log (``queued_mail_sent``,
``queued_mail_failed``, ``queued_mail_given_up``).
"""

from flask import current_app

from website.extensions import db
from website.models.users import User
from website.services.accounts import queued_mail_refusal, send_queued_mail
from website.services.mail import MailError
from website.store import audit, mail_queue, queue

#: Mails one pass takes at most (the rest wait for the next pass).
BATCH = 50

#: Seconds a claimed mail stays taken past MAIL_TIMEOUT, should its worker die mid-try.
LEASE_MARGIN = 30


def send_one(item_id: int) -> str | None:
    """Try one due mail if no other worker has it; return its new state (None if taken)."""
    config = current_app.config
    item = mail_queue.claim(item_id, int(config["MAIL_TIMEOUT"]) + LEASE_MARGIN)
    if item is None:
        return None
    user = db.session.get(User, item.user_id) if item.user_id is not None else None
    about = {"user": user, "template": item.template, "attempts": item.attempts}
    if refusal := queued_mail_refusal(item, user):
        queue.finish(item, "given_up", error=refusal)
        audit.record("queued_mail_given_up", error=refusal, **about)
        db.session.commit()
        return "given_up"
    try:
        send_queued_mail(item, user)
    except MailError as error:
        db.session.rollback()  # the link made for this try; the claim was committed apart
        delay = queue.retry_later(item, error.detail, config["MAIL_QUEUE_MAX_ATTEMPTS"], config["MAIL_QUEUE_BACKOFF"])
        state = "pending" if delay is not None else "given_up"
        audit.record("queued_mail_failed" if delay is not None else "queued_mail_given_up",
                     error=error.detail, retry_in=delay, **about)
    else:
        queue.finish(item, "delivered")
        audit.record("queued_mail_sent", **about)
        state = "delivered"
    db.session.commit()
    return state


def send_due(limit: int = BATCH) -> dict[str, int]:
    """One pass over the mail queue: try every due mail; count the outcomes."""
    return queue.work_through(mail_queue.due_ids(limit), send_one)


def init_worker(app) -> queue.QueueWorker:
    """Start the mail-queue thread (``send_due`` every MAIL_QUEUE_POLL_INTERVAL seconds while
    MAIL_QUEUE_WORKER is on) lazily, on each process's first request."""
    return queue.start_worker(app, "mail_queue_worker", "mail-queue", "MAIL_QUEUE_WORKER",
                              "MAIL_QUEUE_POLL_INTERVAL", send_due)
