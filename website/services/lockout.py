"""Telling a person about repeated failed log-ins to their account (store/throttle.py sends
``repeated_failures`` once the count from every address reaches THROTTLE_NOTIFY_AFTER)."""

import logging

from flask import current_app, has_request_context, request, url_for

from website.models.users import User
from website.services.mail import MailError, send_mail
from website.store import audit, throttle
from website.store.users import find_user

logger = logging.getLogger("website.lockout")


def notify_person(app, username: str, failures: int) -> bool:
    """Mail the account's owner that someone keeps failing to sign in as them, and what to do.
    Return False when the mail server did not take the mail (the throttle tries again at the
    next failure); True when sent or there is nobody to tell."""
    user: User | None = find_user(username)
    if user is None or not user.email:
        return True
    address = request.remote_addr if has_request_context() else None
    try:
        send_mail(user.email, "login_failures", "failed sign-ins to your account", user=user, failures=failures,
                  address=address, window_minutes=max(1, current_app.config["THROTTLE_WINDOW"] // 60),
                  interval_hours=max(1, current_app.config["THROTTLE_NOTIFY_INTERVAL"] // 3600),
                  account_url=url_for("account.index", _external=True))
    except MailError as error:
        logger.warning("Could not tell %s about %s failed log-ins: %s", user.username, failures, error)
        return False
    # Committed with the failure that caused it (the log-in view and the password grant commit).
    audit.record("login_failures_notified", user=user, failures=failures)
    return True


def init_app(app) -> None:
    """Send the mail for this app's repeated failures."""
    throttle.repeated_failures.connect(notify_person, sender=app)
