"""`flask` commands for running the server: check the configuration, back up and restore, send
queued logout tokens."""

import os
import shutil
import smtplib
import sqlite3
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import make_url

from website.extensions import db, upgrade_schema
from website.http.ops import readiness
from website.oauth2.keys import KeyDecryptionError, check_private_keys
from website.oauth2.logout import BATCH, deliver_due
from website.services.signup import allowed_domains

_LOOPBACK = ("localhost", "127.0.0.1", "::1")


@click.command("deliver-logouts")
@with_appcontext
@click.option("--limit", type=click.IntRange(1, 10000), default=BATCH, show_default=True,
              help="The most deliveries to try in this pass.")
def deliver_logouts_command(limit):
    """Send the back-channel logout tokens that are due, once (for cron when
    LOGOUT_DELIVERY_WORKER is off); failures are retried on a later pass."""
    counts = deliver_due(limit)
    click.echo(f"Delivered {counts['delivered']}, will retry {counts['pending']}, gave up on {counts['given_up']}.")


@click.command("check-config")
@with_appcontext
@click.option("--strict", is_flag=True, help="Exit with status 1 on warnings too.")
def check_config_command(strict):
    """Check the configuration and what it points at; print one line per problem."""
    errors, warnings = _config_problems()
    for line in errors:
        click.echo(f"error: {line}")
    for line in warnings:
        click.echo(f"warning: {line}")
    if errors or (strict and warnings):
        raise SystemExit(1)
    click.echo("The configuration is usable." + (" (See the warnings.)" if warnings else ""))


def _config_problems() -> tuple[list[str], list[str]]:
    config = current_app.config
    errors, warnings = [], []
    for name, result in readiness().items():
        if result not in ("ok", "not configured"):
            key = {"database": "DATABASE_URL", "redis": "REDIS_URL", "migrations": "the database schema"}[name]
            errors.append(f"{key}: {result}")
    if not errors:
        try:
            check_private_keys()
        except KeyDecryptionError as error:
            errors.append(f"KEY_ENCRYPTION_KEYS: {error}")
    issuer = config.get("OAUTH2_ISSUER")
    if not issuer:
        warnings.append("OAUTH2_ISSUER is unset: the issuer is taken from each request's URL; set it to"
                        " the public https URL in production.")
    elif issuer.startswith("http://") and (urlsplit(issuer).hostname or "") not in _LOOPBACK:
        errors.append(f"OAUTH2_ISSUER {issuer} is plain http on a host other than loopback: tokens and"
                      " cookies would travel in the clear; use https.")
    elif issuer.startswith("https://") and config.get("SESSION_COOKIE_SECURE") is False:
        errors.append("SESSION_COOKIE_SECURE is off while OAUTH2_ISSUER is https: the session cookie"
                      " would also be sent over plain http.")
    for key, generated in current_app.extensions.get("generated_secrets", {}).items():
        warnings.append(f"{key} is unset: a generated one in {generated} is used; set the same value on"
                        " every instance in production.")
    if config["SIGNUP_POLICY"] == "domain" and not allowed_domains():
        errors.append("SIGNUP_POLICY is domain but SIGNUP_ALLOWED_DOMAINS names no domain: nobody can sign up.")
    if config.get("MAIL_SERVER"):
        if problem := _mail_problem(config):
            errors.append(f"MAIL_SERVER {config['MAIL_SERVER']}:{config['MAIL_PORT']} {problem}")
    else:
        warnings.append("MAIL_SERVER is unset: mails (account links, notices) are written to the log, not sent.")
    return errors, warnings


def _mail_problem(config) -> str | None:
    """Greet the mail server as a sender would (TLS and log-in as configured), then QUIT."""
    smtp_class = smtplib.SMTP_SSL if config["MAIL_USE_SSL"] else smtplib.SMTP
    try:
        with smtp_class(config["MAIL_SERVER"], int(config["MAIL_PORT"]), timeout=config["MAIL_TIMEOUT"]) as smtp:
            smtp.ehlo()
            if config["MAIL_USE_TLS"]:
                smtp.starttls()
                smtp.ehlo()
            if config.get("MAIL_USERNAME"):
                smtp.login(config["MAIL_USERNAME"], config.get("MAIL_PASSWORD") or "")
    except smtplib.SMTPAuthenticationError:
        return "refused MAIL_USERNAME / MAIL_PASSWORD."
    except (smtplib.SMTPException, OSError) as error:
        return f"cannot be reached or refused us ({getattr(error, 'strerror', None) or type(error).__name__})."
    return None


@click.command("backup")
@with_appcontext
@click.argument("path", type=click.Path(dir_okay=False))
def backup_command(path):
    """Write a consistent copy of the database to PATH while the server keeps serving
    (SQLite's online backup; pg_dump's custom format for PostgreSQL)."""
    target = Path(path)
    if target.exists():
        raise click.ClickException(f"{target} exists; choose a new file (a backup never overwrites one).")
    if not target.parent.is_dir():
        raise click.ClickException(f"{target.parent} is not a directory.")
    url = make_url(current_app.config["SQLALCHEMY_DATABASE_URI"])
    partial = target.with_name(f".{target.name}.partial")
    try:
        if url.get_backend_name() == "sqlite":
            _sqlite_copy(_sqlite_path(url), partial)
        elif url.get_backend_name() == "postgresql":
            _run(["pg_dump", "--format=custom", "--no-owner", f"--file={partial}", _libpq_url(url)])
        else:
            raise click.ClickException(f"Backups are for SQLite and PostgreSQL, not {url.get_backend_name()}.")
        os.replace(partial, target)  # whole or not at all
    finally:
        partial.unlink(missing_ok=True)
    click.echo(f"Backed up the database to {target}.")


@click.command("restore")
@with_appcontext
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def restore_command(path, yes):
    """Replace everything in the database with the backup in PATH, then upgrade it to the
    newest schema. Stop the server (or every instance) first."""
    source = Path(path)
    if not source.is_file():
        raise click.ClickException(f"{source} is not a file.")
    url = make_url(current_app.config["SQLALCHEMY_DATABASE_URI"])
    backend = url.get_backend_name()
    if backend == "sqlite":
        _check_sqlite_backup(source)
    elif backend != "postgresql":
        raise click.ClickException(f"Restores are for SQLite and PostgreSQL, not {backend}.")
    if not yes:
        click.confirm(f"Replace everything in {url.render_as_string(hide_password=True)} with {source}?",
                      abort=True)
    db.session.remove()
    db.engine.dispose()
    if backend == "sqlite":
        _sqlite_copy(source, Path(_sqlite_path(url)))
    else:
        _run(["pg_restore", "--clean", "--if-exists", "--no-owner", "--single-transaction",
              f"--dbname={_libpq_url(url)}", str(source)])
    upgrade_schema()
    click.echo(f"Restored the database from {source}; it is at the newest schema.")


def _sqlite_path(url) -> str:
    if not url.database or url.database == ":memory:":
        raise click.ClickException("The database is in memory: there is nothing to back up or restore.")
    return url.database


def _sqlite_copy(source: str | Path, target: Path) -> None:
    """Copy one SQLite database into another with SQLite's online backup API: a consistent
    snapshot even while other connections write, and the target replaced as a whole."""
    with sqlite3.connect(source) as origin, sqlite3.connect(target) as copy:
        origin.backup(copy)
    origin.close()
    copy.close()


def _check_sqlite_backup(source: Path) -> None:
    """Refuse a file that is not a SQLite database made by this server."""
    try:
        with sqlite3.connect(f"file:{source}?mode=ro", uri=True) as conn:
            revisions = [row[0] for row in conn.execute("SELECT version_num FROM alembic_version")]
        conn.close()
    except sqlite3.DatabaseError:
        raise click.ClickException(f"{source} is not a backup of this server (no SQLite database"
                                   " with a migration version).") from None
    if not revisions:
        raise click.ClickException(f"{source} is not a backup of this server (no migration version).")
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    scripts = ScriptDirectory.from_config(current_app.extensions["migrate"].migrate.get_config())
    for revision in revisions:
        try:
            scripts.get_revision(revision)
        except CommandError:
            raise click.ClickException(f"{source} was made by a newer version of this server (schema"
                                       f" {revision}); upgrade the server first.") from None


def _libpq_url(url) -> str:
    """The SQLAlchemy URL as libpq reads it (no +driver)."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def _run(command: list[str]) -> None:
    if shutil.which(command[0]) is None:
        raise click.ClickException(f"{command[0]} is not installed (PostgreSQL's client tools:"
                                   " apt install postgresql-client).")
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        first = (result.stderr.strip().splitlines() or ["no message"])[0]
        raise click.ClickException(f"{command[0]} failed: {first}")
