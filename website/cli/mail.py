"""`flask` commands for outgoing mail."""

import click
from flask import current_app
from flask.cli import with_appcontext

from website.forms import EMAIL_RULE
from website.services.mail import MailError, send_mail


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
