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
