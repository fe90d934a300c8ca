"""Outgoing mail: a plain-text and an HTML part from templates (``templates/mail/NAME.txt`` and
``NAME.html``), sent through Flask-Mailman's SMTP backend.

With no ``MAIL_SERVER`` the mail is written to the log instead (a fresh install needs no mail
server), and the caller tells the person a mail was sent either way. A mail server that is down
or refuses the mail raises ``MailError``, whose message is fit to show: callers send before
they commit what the mail is about (or undo it), so the person can simply try again.
"""

import logging
import smtplib
from urllib.parse import urlsplit

from flask import current_app, has_request_context, render_template, request
from flask_mailman import EmailMultiAlternatives

from website.extensions import mail
from website.store.branding import branding

logger = logging.getLogger("website.mail")


class MailError(Exception):
    """The mail could not be handed to the mail server; the message says so in words for people."""

    @property
    def detail(self) -> str:
        """What the mail server (or the network) said, for logs and the mail queue."""
        cause = self.__cause__
        return f"{type(cause).__name__}: {cause}"[:300] if cause is not None else str(self)


def send_mail(to: str, template: str, subject: str, base_url: str | None = None, **context) -> None:
    """Render ``mail/<template>.txt`` and ``.html`` with ``context`` (and ``site_name``) and send
    them to ``to`` with ``subject`` (prefixed with the site name). ``base_url``: the site's URL
    when there is no request (a queued mail), for the default sender. Raises MailError."""
    brand = branding()
    site_name = brand.name
    context.setdefault("site_name", site_name)
    context.setdefault("support_email", brand.support_email)
    context.setdefault("primary_color", brand.primary_color)
    message = EmailMultiAlternatives(
        subject=f"{site_name}: {subject}",
        body=render_template(f"mail/{template}.txt", **context),
        from_email=sender(base_url),
        to=[to],
    )
    message.attach_alternative(render_template(f"mail/{template}.html", **context), "text/html")
    if not current_app.config.get("MAIL_SERVER"):
        logger.info("MAIL_SERVER is not set; this mail was not sent:\n%s", message.message().as_string())
        return
    message.connection = connection = _connection()
    try:
        message.send()
    except (smtplib.SMTPException, OSError) as error:  # OSError: refused, unreachable, timed out
        logger.warning("Mail to the server %s failed: %s", current_app.config["MAIL_SERVER"], error)
        raise MailError("The mail could not be sent just now (the mail server did not take it)."
                        " Nothing was changed; please try again in a few minutes.") from error
    finally:
        connection.close()


def _connection():
    """An SMTP connection from the current configuration (read at each send, not at start-up)."""
    config = current_app.config
    return mail.get_connection(
        host=config["MAIL_SERVER"], port=config["MAIL_PORT"], username=config["MAIL_USERNAME"] or "",
        password=config["MAIL_PASSWORD"] or "", use_tls=config["MAIL_USE_TLS"],
        use_ssl=config["MAIL_USE_SSL"], timeout=config["MAIL_TIMEOUT"])


def sender(base_url: str | None = None) -> str:
    """MAIL_DEFAULT_SENDER, else no-reply@ the issuer's host name (or ``base_url``'s, or the request's)."""
    configured = current_app.config.get("MAIL_DEFAULT_SENDER")
    if configured:
        return configured
    site = current_app.config.get("OAUTH2_ISSUER") or base_url
    host = urlsplit(site).hostname if site else (request.host.split(":")[0] if has_request_context() else None)
    return f"no-reply@{host or 'localhost'}"
