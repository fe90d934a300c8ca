"""`flask` commands for people's accounts."""

import errno
import json
import os
import re
from datetime import datetime, timezone

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from website.extensions import db
from website.forms import EMAIL_RULE
from website.models.usernames import canonical_username, normalize_username, username_problem
from website.models.users import User
from website.services import accounts
from website.services.mail import MailError
from website.services.administration import disable_account, enable_account
from website.store import audit, throttle
from website.store.users import find_user


def user_named(username: str) -> User:
    """The account with this username; a one-line error otherwise (every command that names one)."""
    user = find_user(username)
    if user is None:
        raise click.ClickException(f"No user named {username!r}.")
    return user


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
    """Forget an account's failed log-ins (from every address, and over all addresses), ending
    its lockouts now."""
    user = user_named(username)
    removed = throttle.unlock_account(user.username)
    audit.record("account_unlocked", user=user, by="cli", counters=removed)
    db.session.commit()
    click.echo(f"Unlocked {user.username}: {removed} throttle counter{'s' if removed != 1 else ''} removed.")


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
    user = user_named(username)
    if not user.email:
        raise click.ClickException(f"{user.username} has no email address to verify.")
    if user.email_verified:
        click.echo(f"{user.email} of {user.username} is verified already.")
        return
    accounts.verify_email_by_admin(user, by="cli")
    click.echo(f"Marked {user.email} of {user.username} as verified.")


def _account_switch_command(name: str, disable: bool):
    """The disable-user / enable-user command: find the account, change it, say so."""

    @click.command(name, help="Disable an account: the person cannot sign in, and their sessions and tokens stop"
                              " now." if disable else "Let a disabled account sign in again.")
    @with_appcontext
    @click.argument("username")
    def command(username):
        user = user_named(username)
        if not (disable_account if disable else enable_account)(user, by=None, via="cli"):
            raise click.ClickException(f"{user.username} is {'disabled already' if disable else 'not disabled'}.")
        click.echo(f"Disabled {user.username}: signed out everywhere, every token revoked." if disable
                   else f"Enabled {user.username}; they can sign in again.")

    return command


disable_user_command = _account_switch_command("disable-user", disable=True)
enable_user_command = _account_switch_command("enable-user", disable=False)


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:  # SQLite hands back naive UTC times
        value = value.replace(tzinfo=timezone.utc)
    return value.isoformat()


def _user_record(user: User) -> dict:
    return {"username": user.username, "email": user.email, "email_verified": bool(user.email_verified),
            "name": user.name, "is_admin": bool(user.is_admin), "sub": user.sub,
            "created_at": _iso(user.created_at), "disabled_at": _iso(user.disabled_at)}


@click.command("list-users")
@with_appcontext
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array instead of a table.")
def list_users_command(as_json):
    """List every user account, oldest first (no password hashes)."""
    users = db.session.scalars(select(User).order_by(User.id)).all()
    if as_json:
        click.echo(json.dumps([{"id": user.id, **_user_record(user)} for user in users], indent=2))
        return
    if not users:
        click.echo("No users.")
        return
    rows = [("ID", "USERNAME", "EMAIL", "NAME", "ADMIN", "CREATED", "STATUS")] + [
        (str(user.id), user.username, user.email or "-", user.name or "-", "yes" if user.is_admin else "no",
         (_iso(user.created_at) or "-")[:10], "disabled" if user.disabled_at else "active") for user in users]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


@click.command("export-users")
@with_appcontext
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
def export_users_command(file):
    """Write every user to FILE as JSON Lines (one account a line, with its password hash;
    "-" is standard output). The file is readable by its owner only."""
    users = db.session.scalars(select(User).order_by(User.id)).all()
    lines = "".join(json.dumps({**_user_record(user), "password_hash": user.password_hash}) + "\n"
                    for user in users)
    if file == "-":
        click.echo(lines, nl=False)
        return
    try:
        # O_EXCL: an existing file (perhaps readable by others) is never overwritten.
        descriptor = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as error:
        reason = "it exists; choose a new name" if error.errno == errno.EEXIST else error.strerror
        raise click.ClickException(f"Cannot create {file}: {reason}.")
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(lines)
    click.echo(f"Exported {len(users)} user{'s' if len(users) != 1 else ''} to {file}.")


#: A password hash werkzeug checks (``check_password_hash``): kept on import.
WERKZEUG_HASH = re.compile(r"\A(scrypt:\d+:\d+:\d+|pbkdf2:sha(1|224|256|384|512)(:\d+)?)\$[^$\s]+\$[0-9a-f]+\Z")

#: What an imported account without a usable password gets: check_password_hash never matches it.
UNUSABLE_PASSWORD = "!imported-without-password"

_IMPORT_FIELDS = {"username", "email", "email_verified", "name", "is_admin", "sub", "created_at", "disabled_at",
                  "password_hash"}


def _import_record(record, taken_names: set, taken_subs: set) -> tuple[dict | None, list[str]]:
    """The User columns of one line of an import, or what is wrong with it."""
    if not isinstance(record, dict):
        return None, ["expected a JSON object"]
    # PostgreSQL cannot store a NUL character (nor compare with one); no field may hold one.
    if nul := sorted(key for key, value in record.items() if isinstance(value, str) and "\x00" in value):
        return None, [f"'{key}' holds a NUL character (\\u0000)" for key in nul]
    problems = []
    if unknown := sorted(set(record) - _IMPORT_FIELDS):
        problems.append(f"unknown field{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}")
    username = record.get("username")
    if not isinstance(username, str):
        return None, problems + ["'username' is missing or not a string"]
    username = normalize_username(username)
    if problem := username_problem(username):
        problems.append(f"username {username!r}: {problem}")
    elif canonical_username(username) in taken_names:
        problems.append(f"username {username!r} is taken (or repeated in the file, perhaps differing only "
                        "in case or character width)")
    email = record.get("email")
    if email is not None and (not isinstance(email, str) or len(email) > 254 or not EMAIL_RULE.regex.match(email)):
        problems.append(f"{email!r} is not an email address")
    name = record.get("name")
    if name is not None and (not isinstance(name, str) or not 1 <= len(name.strip()) <= 100):
        problems.append("'name' must be 1 to 100 characters")
    for flag in ("email_verified", "is_admin"):
        if not isinstance(record.get(flag, False), bool):
            problems.append(f"'{flag}' must be true or false")
    sub = record.get("sub")
    if sub is not None and (not isinstance(sub, str) or not 1 <= len(sub) <= 255 or not sub.isprintable()):
        problems.append("'sub' must be 1 to 255 printable characters")
    elif sub is not None and sub in taken_subs:
        problems.append(f"sub {sub!r} belongs to another account")
    times = {}
    for key in ("created_at", "disabled_at"):
        if record.get(key) is not None:
            try:
                value = datetime.fromisoformat(record[key])
            except (TypeError, ValueError):
                problems.append(f"'{key}' must be an ISO 8601 date and time")
            else:
                times[key] = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    password_hash = record.get("password_hash")
    if password_hash is not None and not isinstance(password_hash, str):
        problems.append("'password_hash' must be a string")
    if problems:
        return None, problems
    taken_names.add(canonical_username(username))
    if sub is not None:
        taken_subs.add(sub)
    keep_hash = bool(password_hash) and len(password_hash) <= 255 and WERKZEUG_HASH.match(password_hash)
    columns = {"username": username, "email": email, "name": name.strip() if name else None,
               "email_verified": record.get("email_verified", False), "is_admin": record.get("is_admin", False),
               "password_hash": password_hash if keep_hash else UNUSABLE_PASSWORD}
    if sub is not None:
        columns["sub"] = sub
    columns.update(times)  # a disabled account stays disabled on the new server
    return columns, []


@click.command("import-users")
@with_appcontext
@click.argument("file", type=click.File("r", encoding="utf-8", lazy=False))
def import_users_command(file):
    """Create the accounts in FILE (JSON Lines, as export-users writes them; "-" is standard
    input), all or none. Werkzeug password hashes (scrypt, pbkdf2) are kept; accounts with any
    other hash get no usable password and, once the import is committed, a password-reset mail
    (exit status 1 if the mail server refused some: they are named, to send again with
    `flask send-password-reset`)."""
    taken_names = set(db.session.scalars(select(User.username_canonical)))
    taken_subs = set(db.session.scalars(select(User.sub)))
    accounts, errors = [], []
    try:
        lines = list(file)
    except UnicodeDecodeError:
        raise click.ClickException(f"{file.name} is not UTF-8 text.")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as error:
            errors.append(f"line {number}: not JSON ({error.msg})")
            continue
        columns, problems = _import_record(record, taken_names, taken_subs)
        errors.extend(f"line {number}: {problem}" for problem in problems)
        if columns is not None:
            accounts.append(columns)
    if errors:
        for error in errors:
            click.echo(error, err=True)
        raise click.ClickException(f"Nothing was imported: {len(errors)} problem{'s' if len(errors) != 1 else ''} "
                                   f"in {file.name}, listed above.")
    if not accounts:
        raise click.ClickException(f"{file.name} holds no accounts.")
    users = [User(**columns) for columns in accounts]
    db.session.add_all(users)
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()  # another process created one of these names meanwhile
        raise click.ClickException("Nothing was imported: an account in the file was created meanwhile; run again.")
    need_reset = [user for user in users if user.password_hash == UNUSABLE_PASSWORD]
    audit.record("users_imported", by="cli", count=len(users), without_password=len(need_reset))
    db.session.commit()
    click.echo(f"Imported {len(users)} user{'s' if len(users) != 1 else ''}.")
    if need_reset:
        names = ", ".join(user.username for user in need_reset)
        click.echo(f"{len(need_reset)} account{'s have' if len(need_reset) != 1 else ' has'} no usable password "
                   f"(the file had none, or a hash this server cannot check) and need{'' if len(need_reset) != 1 else 's'} "
                   f"a password reset: {names}")
        _mail_imported_resets(need_reset)


#: After this many refused reset mails in a row, import-users stops trying (each may wait MAIL_TIMEOUT).
IMPORT_MAIL_GIVE_UP_AFTER = 3


def _mail_imported_resets(users: list[User]) -> None:
    """Mail each imported account without a password a reset link, after the import's commit:
    a mail server that refuses cannot undo the import. Each mail commits its own link; the
    ones that failed are named with how to send them again (exit status 1)."""
    sent, failed, error, in_a_row = [], [], None, 0
    unmailable = [f"{user.username} ({'disabled' if user.disabled_at else 'no email address'})"
                  for user in users if not user.email or user.disabled_at is not None]
    for user in (user for user in users if user.email and user.disabled_at is None):
        if in_a_row >= IMPORT_MAIL_GIVE_UP_AFTER:
            failed.append(user.username)  # the mail server is down: do not wait for it once per account
            continue
        try:
            accounts.send_password_reset(user, by="cli")
        except MailError as refused:
            db.session.rollback()
            failed.append(user.username)
            error, in_a_row = refused, in_a_row + 1
        else:
            db.session.commit()
            sent.append(user.username)
            in_a_row = 0
    if sent:
        where = ("Mailed" if current_app.config.get("MAIL_SERVER") else
                 "MAIL_SERVER is not set: wrote to the log")
        click.echo(f"{where} a password-reset link (valid for {accounts.in_words(accounts.lifetime('reset_password'))})"
                   f" for {', '.join(sent)}.")
    if unmailable:
        click.echo(f"No mail for {', '.join(unmailable)}; once that is fixed, send one with"
                   " `flask send-password-reset USERNAME`.")
    if failed:
        raise click.ClickException(
            f"The accounts are imported, but {len(failed)} password-reset mail{'s were' if len(failed) != 1 else ' was'}"
            f" not sent ({error.detail if error else 'the mail server refused'}): {', '.join(failed)}."
            " Send each with `flask send-password-reset USERNAME` once the mail server takes mail.")
