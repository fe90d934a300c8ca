"""`flask` commands for outgoing mail."""

import click
from flask import current_app
from flask.cli import with_appcontext

from website.forms import EMAIL_RULE
from website.services.mail import MailError, send_mail
from website.services.queued_mail import BATCH, send_due
from website.store.mail_queue import pending_count


@click.command("send-test-mail")
@with_appcontext
@click.argument("email")
def send_test_mail_command(email):
    """Send a test mail to EMAIL, to check the MAIL_* settings."""
    if len(email.strip()) > 254 or not EMAIL_RULE.regex.match(email.strip()):
        raise click.ClickException(f"{email!r} is not an email address.")
    try:
        send_mail(email.strip(), "test", "test mail")
    except MailError as error:
        raise click.ClickException(f"{error} ({current_app.config['MAIL_SERVER']}:"
                                   f"{current_app.config['MAIL_PORT']})")
    if current_app.config.get("MAIL_SERVER"):
        click.echo(f"Sent a test mail to {email.strip()} through {current_app.config['MAIL_SERVER']}.")
    else:
        click.echo("MAIL_SERVER is not set: the mail was written to the log instead of sent.")


@click.command("send-queued-mail")
@with_appcontext
@click.option("--limit", type=click.IntRange(1, 10000), default=BATCH, show_default=True,
              help="The most mails to try in this pass.")
def send_queued_mail_command(limit):
    """Send the queued mails that are due, once (for cron when MAIL_QUEUE_WORKER is off, or
    right after the mail server is back); failures are retried on a later pass. Exits 1 if
    any mail failed."""
    counts = send_due(limit)
    waiting = pending_count()
    click.echo(f"Sent {counts['delivered']}, will retry {counts['pending']}, gave up on {counts['given_up']};"
               f" {waiting} mail{'s' if waiting != 1 else ''} in the queue.")
    if counts["pending"] or counts["given_up"]:
        raise SystemExit(1)
