"""`flask` commands for people's accounts."""

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from website.extensions import db
from website.forms import EMAIL_RULE
from website.models.usernames import normalize_username, username_problem
from website.models.users import User
from website.services import accounts
from website.services.mail import MailError
from website.services.administration import disable_account, enable_account
from website.store import audit, throttle
from website.store.users import find_user


@click.command("create-user")
@with_appcontext
@click.argument("username")
@click.option("--password", required=True, help="The user's password (at least 8 characters).")
@click.option("--email", default=None, help="The user's email address.")
@click.option("--name", default=None, help="The user's full name (the OpenID Connect name claim).")
@click.option("--admin", is_flag=True, help="Make the user an administrator.")
def create_user_command(username, password, email, name, admin):
    """Create a user account."""
    if len(password) < 8:
        raise click.ClickException("The password must be at least 8 characters.")
    # The same rules as the sign-up form, so every account can also log in on the site.
    username = normalize_username(username)
    if problem := username_problem(username):
        raise click.ClickException(f"Username {username!r}: {problem}")
    if email is not None and (len(email) > 254 or not EMAIL_RULE.regex.match(email)):
        raise click.ClickException(f"{email!r} is not an email address.")
    if name is not None and not 1 <= len(name.strip()) <= 100:
        raise click.ClickException("The name must be 1 to 100 characters.")
    user = User(username=username, email=email, name=name.strip() if name else None, is_admin=admin)
    user.set_password(password, method=current_app.config["PASSWORD_HASH_METHOD"])
    db.session.add(user)
    try:
        db.session.commit()
    except IntegrityError:
        # Also "Alice" beside alice: usernames are unique ignoring case and look-alike forms.
        raise click.ClickException(f"That username is taken: a user named {username} (or a look-alike "
                                   "differing only in case or character width) already exists.")
    click.echo(f"Created user {username} (id {user.id}).")


@click.command("unlock-user")
@with_appcontext
@click.argument("username")
def unlock_user_command(username):
    """Forget an account's failed log-ins (from every address), ending its lockouts now."""
    removed = throttle.unlock_account(username)
    user = db.session.scalar(select(User).where(User.username == username))
    audit.record("account_unlocked", user=user, attempted_username=username[:40], by="cli", counters=removed)
    db.session.commit()
    click.echo(f"Unlocked {username}: {removed} throttle counter{'s' if removed != 1 else ''} removed.")


def _check_email(email: str) -> str:
    email = email.strip()
    if len(email) > 254 or not EMAIL_RULE.regex.match(email):
        raise click.ClickException(f"{email!r} is not an email address.")
    return email


def _sent(what: str, email: str) -> None:
    """Say where the mail went: to the mail server, or to the log (no MAIL_SERVER)."""
    if current_app.config.get("MAIL_SERVER"):
        click.echo(f"Sent {what} to {email}.")
    else:
        click.echo(f"MAIL_SERVER is not set: {what} for {email} was written to the log instead of sent.")


def _mail_or_fail(send) -> None:
    """Run ``send``; a mail server that refuses undoes everything and is a one-line error."""
    try:
        send()
    except MailError as error:
        db.session.rollback()
        raise click.ClickException(str(error))
    db.session.commit()


@click.command("invite-user")
@with_appcontext
@click.argument("email")
def invite_user_command(email):
    """Mail EMAIL an invitation link to create an account (under any SIGNUP_POLICY)."""
    email = _check_email(email)
    if (existing := accounts.existing_account_with_email(email)) is not None:
        raise click.ClickException(f"{existing.username} already has an account with {email}.")
    _mail_or_fail(lambda: accounts.send_invitation(email, by="cli"))
    _sent(f"an invitation (valid for {accounts.in_words(accounts.lifetime('invite'))})", email)


@click.command("send-password-reset")
@with_appcontext
@click.argument("who", metavar="USERNAME|EMAIL")
def send_password_reset_command(who):
    """Mail a password-reset link to the account with this username (or this address)."""
    users = accounts.accounts_for(who)
    if not users:
        raise click.ClickException(f"No account has the username or email address {who!r}.")
    if len(users) > 1:
        names = ", ".join(user.username for user in users)
        raise click.ClickException(f"{len(users)} accounts use {who}: {names}. Name one by its username.")
    user = users[0]
    if not user.email:
        raise click.ClickException(f"{user.username} has no email address to send the link to.")
    if user.disabled_at is not None:
        raise click.ClickException(f"{user.username} is disabled; enable the account first (flask enable-user).")
    _mail_or_fail(lambda: accounts.send_password_reset(user, by="cli"))
    _sent(f"a password-reset link for {user.username} (valid for "
          f"{accounts.in_words(accounts.lifetime('reset_password'))})", user.email)


@click.command("verify-email")
@with_appcontext
@click.argument("username")
def verify_email_command(username):
    """Mark USERNAME's email address as verified without a mail (an administrator vouches for it)."""
    user = find_user(username)
    if user is None:
        raise click.ClickException(f"No user named {username}.")
    if not user.email:
        raise click.ClickException(f"{user.username} has no email address to verify.")
    if user.email_verified:
        click.echo(f"{user.email} of {user.username} is verified already.")
        return
    accounts.verify_email_by_admin(user, by="cli")
    click.echo(f"Marked {user.email} of {user.username} as verified.")


@click.command("disable-user")
@with_appcontext
@click.argument("username")
def disable_user_command(username):
    """Disable an account: the person cannot sign in, and their sessions and tokens stop now."""
    user = find_user(username)
    if user is None:
        raise click.ClickException(f"No user named {username!r}.")
    if not disable_account(user, by=None, via="cli"):
        raise click.ClickException(f"{user.username} is disabled already.")
    click.echo(f"Disabled {user.username}: signed out everywhere, every token revoked.")


@click.command("enable-user")
@with_appcontext
@click.argument("username")
def enable_user_command(username):
    """Let a disabled account sign in again."""
    user = find_user(username)
    if user is None:
        raise click.ClickException(f"No user named {username!r}.")
    if not enable_account(user, by=None, via="cli"):
        raise click.ClickException(f"{user.username} is not disabled.")
    click.echo(f"Enabled {user.username}; they can sign in again.")
