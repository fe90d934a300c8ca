"""The queues of outgoing work (back-channel logout tokens in ``logout_deliveries``, mail in
``mail_queue``; models with ``models.base.QueuedWork``'s columns): picking what is due,
claiming one item with a guarded UPDATE so two instances never send the same one at once,
recording a try's outcome with retries that back off, and the daemon thread of each process
that works through a queue."""

import os
import threading
import time

from sqlalchemy import select, update

from website.extensions import db
from website.models.base import now


def due_ids(model, limit: int) -> list[int]:
    """Pending items whose time has come, oldest first."""
    return list(db.session.scalars(select(model.id).where(
        model.state == "pending", model.next_attempt_at <= now(),
    ).order_by(model.next_attempt_at, model.id).limit(limit)))


def claim(model, item_id: int, lease: int):
    """Take a due item for one try: one guarded UPDATE counts the attempt and moves
    ``next_attempt_at`` past the try's timeout (a worker that dies mid-try frees it then).
    Only one worker's UPDATE matches; the others get None. Committed here."""
    stamp = now()
    result = db.session.execute(update(model).where(
        model.id == item_id, model.state == "pending", model.next_attempt_at <= stamp,
    ).values(attempts=model.attempts + 1, next_attempt_at=stamp + lease))
    db.session.commit()
    if result.rowcount != 1:
        return None
    return db.session.get(model, item_id, populate_existing=True)


def finish(item, state: str, next_attempt_at: int | None = None, error: str | None = None) -> None:
    """Record a try's outcome (committed by the caller with its audit event)."""
    item.state = state
    item.last_error = error[:300] if error else None
    if next_attempt_at is not None:
        item.next_attempt_at = next_attempt_at


def retry_later(item, error: str, max_attempts: int, backoff: int) -> int | None:
    """After a failed try: pending again in ``backoff`` seconds, doubling with each try, and
    return that delay; or, after ``max_attempts`` tries, given up (None)."""
    if item.attempts >= max_attempts:
        finish(item, "given_up", error=error)
        return None
    delay = int(backoff) * 2 ** (item.attempts - 1)
    finish(item, "pending", next_attempt_at=now() + delay, error=error)
    return delay


def work_through(item_ids, try_one) -> dict[str, int]:
    """One pass: ``try_one`` each item (it returns the item's new state, or None when another
    worker had it); count the outcomes."""
    counts = {"delivered": 0, "pending": 0, "given_up": 0}
    for item_id in item_ids:
        state = try_one(item_id)
        if state is not None:
            counts[state] += 1
    return counts


class QueueWorker:
    """The daemon thread of one process that runs ``work`` (one pass over a queue, in a fresh
    app context) every ``interval_setting`` seconds while ``enabled_setting`` is on. Started
    on the first request (after gunicorn has forked, so each worker process has its own),
    and again in a forked child."""

    def __init__(self, app, name: str, enabled_setting: str, interval_setting: str, work):
        self.app = app
        self.name = name
        self.enabled_setting = enabled_setting
        self.interval_setting = interval_setting
        self.work = work
        self.pid = None
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    def ensure_started(self) -> None:
        if self.pid == os.getpid() or not self.app.config[self.enabled_setting]:
            return
        with self.lock:
            if self.pid != os.getpid():
                self.pid = os.getpid()
                threading.Thread(target=self.run, name=self.name, daemon=True).start()

    def run(self) -> None:
        while not self.stopping.wait(float(self.app.config[self.interval_setting])):
            try:
                with self.app.app_context():  # a fresh context each pass: rotated keys, no stale rows
                    self.work()
            except Exception:  # noqa: BLE001 - the thread must outlive a database hiccup
                self.app.logger.exception("A %s pass failed; retrying in the next pass.", self.name)
                time.sleep(1)

    def stop(self) -> None:
        self.stopping.set()


def start_worker(app, extension: str, *args) -> QueueWorker:
    """Make a QueueWorker (``args`` as for it), keep it in ``app.extensions[extension]``, and
    start it lazily, on each process's first request."""
    worker = QueueWorker(app, *args)
    app.extensions[extension] = worker
    app.before_request(worker.ensure_started)
    return worker
