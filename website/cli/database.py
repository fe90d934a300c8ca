"""`flask` commands for the database: create or upgrade it, purge what has expired."""

import click
from flask.cli import with_appcontext
from sqlalchemy import and_, delete, or_, select

from website.extensions import db, upgrade_schema
from website.models.base import now
from website.models.clients import SecretView
from website.models.grants import AuthorizationCode, Token
from website.models.links import AccountLink
from website.models.pending import DeviceCode, PushedAuthorizationRequest
from website.models.mail import QueuedMail
from website.models.sessions import LogoutDelivery
from website.oauth2.keys import (
    KeyDecryptionError,
    check_private_keys,
    ensure_signing_key,
)
from website.services.sessions import purge_ended_sessions
from website.store.upstreams import purge_expired_states

#: Rows deleted per transaction by purge-expired, so a big purge never holds long locks.
PURGE_BATCH_SIZE = 5000

#: Seconds a delivered or given-up logout token's row is kept (to look into a recent problem).
FINISHED_DELIVERIES_KEPT = 24 * 3600


@click.command("initdb")
@with_appcontext
def initdb_command():
    """Create the database or upgrade it to the newest schema, with a first signing key
    (safe to run again)."""
    upgrade_schema()
    click.echo("Database is at the newest schema.")
    try:
        check_private_keys()
    except KeyDecryptionError as error:
        raise click.ClickException(str(error))
    if (key := ensure_signing_key()) is not None:
        click.echo(f"Created the first signing key (kid {key.kid}).")


@click.command("purge-expired")
@with_appcontext
def purge_expired_command():
    """Delete expired authorization codes, device codes, pushed requests, tokens, unopened
    secret views and the rows of ended or expired sessions; print how many."""
    stamp = now()
    codes = _purge(AuthorizationCode, AuthorizationCode.expires_at <= stamp)
    # A token row is dead once its access token has expired and its refresh token
    # (if any) has expired or been revoked.
    tokens = _purge(
        Token,
        Token.expires_at <= stamp,
        # A rotated refresh token stays until it would have expired: if it comes back, the
        # reuse is detected and its family revoked (RFC 9700 §4.14.2).
        or_(Token.refresh_token_hash.is_(None),
            and_(Token.refresh_token_revoked_at != 0, Token.rotated_at.is_(None)),
            Token.refresh_token_expires_at <= stamp),
    )
    click.echo(f"Deleted {codes} expired authorization codes and {tokens} expired tokens.")
    if pending := (_purge(DeviceCode, DeviceCode.expires_at <= stamp)
                   + _purge(PushedAuthorizationRequest, PushedAuthorizationRequest.expires_at <= stamp)):
        click.echo(f"Deleted {pending} expired device codes and pushed authorization requests.")
    if views := _purge(SecretView, SecretView.expires_at <= stamp):
        click.echo(f"Deleted {views} new client secrets nobody opened in time.")
    if sessions := purge_ended_sessions(PURGE_BATCH_SIZE):
        click.echo(f"Deleted {sessions} ended or expired sessions.")
    # Sent or given up on a day ago: the audit log keeps the outcome.
    finished = (LogoutDelivery.state != "pending", LogoutDelivery.created_at <= stamp - FINISHED_DELIVERIES_KEPT)
    if deliveries := _purge(LogoutDelivery, *finished):
        click.echo(f"Deleted {deliveries} finished back-channel logout deliveries.")
    sent = (QueuedMail.state != "pending", QueuedMail.created_at <= stamp - FINISHED_DELIVERIES_KEPT)
    if mails := _purge(QueuedMail, *sent):
        click.echo(f"Deleted {mails} queued mails sent or given up on.")
    # Used links go too once they would have expired: until then "already used" is the answer.
    if links := _purge(AccountLink, AccountLink.expires_at <= stamp):
        click.echo(f"Deleted {links} expired links mailed to people.")
    if states := purge_expired_states():
        click.echo(f"Deleted {states} upstream sign-ins that never came back.")


def _purge(model, *conditions) -> int:
    """Delete matching rows in batches of PURGE_BATCH_SIZE; return how many."""
    total = 0
    while True:
        ids = db.session.scalars(select(model.id).where(*conditions).limit(PURGE_BATCH_SIZE)).all()
        if not ids:
            return total
        db.session.execute(delete(model).where(model.id.in_(ids)))
        db.session.commit()
        total += len(ids)
