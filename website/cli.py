"""Flask commands: initdb, create-user, create-client, rotate-keys, purge-expired, unlock-user."""

import json
from datetime import datetime, timezone

import click
import flask_migrate
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import and_, delete, or_, select
from sqlalchemy.exc import IntegrityError

from . import audit, oidc, throttle
from .client_metadata import (
    AUTH_METHODS,
    GRANT_TYPES,
    RESPONSE_TYPE_GRANTS,
    ClientMetadataError,
    validate_client_metadata,
)
from .forms import EMAIL_RULE, USERNAME_RULE
from .models import AuthorizationCode, OAuth2Client, Token, User, db, now

#: Rows deleted per transaction by purge-expired, so a big purge never holds long locks.
PURGE_BATCH_SIZE = 5000


@click.command("initdb")
@with_appcontext
def initdb_command():
    """Create the database or upgrade it to the newest schema, with a first signing key
    (safe to run again)."""
    flask_migrate.upgrade(directory=current_app.extensions["migrate"].directory)
    click.echo("Database is at the newest schema.")
    if (key := oidc.ensure_signing_key()) is not None:
        click.echo(f"Created the first signing key (kid {key.kid}).")


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
    if not 3 <= len(username) <= 40:
        raise click.ClickException("The username must be 3 to 40 characters.")
    if not USERNAME_RULE.regex.match(username):
        raise click.ClickException(f"The username may use {USERNAME_RULE.message[4:].rstrip('.')}.")
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
        raise click.ClickException(f"A user named {username} already exists.")
    click.echo(f"Created user {username} (id {user.id}).")


@click.command("create-client")
@with_appcontext
@click.option("--name", required=True, help="The client's name, shown on the consent page.")
@click.option("--redirect-uri", "redirect_uris", multiple=True, help="A redirect URI (repeatable).")
@click.option("--post-logout-redirect-uri", "post_logout_redirect_uris", multiple=True,
              help="A URL the logout endpoints may return to (repeatable).")
@click.option("--grant-type", "grant_types", multiple=True, type=click.Choice(GRANT_TYPES),
              help="A grant type (repeatable); default authorization_code.")
@click.option("--response-type", "response_types", multiple=True,
              help=f"A response type (repeatable): {', '.join(repr(r) for r in RESPONSE_TYPE_GRANTS)}.")
@click.option("--scope", default="", help='Space-separated scopes, e.g. "openid profile".')
@click.option("--auth-method", default="client_secret_basic", type=click.Choice(AUTH_METHODS),
              help="How the client authenticates at the token endpoint.")
@click.option("--owner", default=None, help="Username of the client's owner.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def create_client_command(name, redirect_uris, post_logout_redirect_uris, grant_types, response_types, scope, auth_method, owner, as_json):
    """Register a client and print its client_id and client_secret."""
    owner_user = None
    if owner is not None:
        owner_user = db.session.scalar(select(User).where(User.username == owner))
        if owner_user is None:
            raise click.ClickException(f"No user named {owner}.")
    data = {
        "client_name": name,
        "redirect_uris": list(redirect_uris),
        "post_logout_redirect_uris": list(post_logout_redirect_uris),
        "scope": scope,
        "token_endpoint_auth_method": auth_method,
    }
    if grant_types:
        data["grant_types"] = list(grant_types)
    if response_types:
        data["response_types"] = list(response_types)
    try:
        metadata = validate_client_metadata(data, allow_api_scopes=True)
    except ClientMetadataError as error:
        raise click.ClickException(f"{error.field}: {error.message}")
    client, secret = OAuth2Client.register(metadata, owner=owner_user)
    db.session.add(client)
    audit.record("client_created", user=owner_user, client_id=client.client_id, client_name=name, via="cli")
    db.session.commit()
    if as_json:
        click.echo(json.dumps({**client.client_metadata, "client_id": client.client_id,
                               "client_secret": secret}))
    else:
        click.echo(f"client_id: {client.client_id}")
        click.echo(f"client_secret: {secret if secret else '(none: public client)'}")


@click.command("rotate-keys")
@with_appcontext
def rotate_keys_command():
    """Start signing with a new key; older public keys stay published until their tokens expire."""
    new, published, deleted = oidc.rotate_signing_keys()
    click.echo(f"New signing key: kid {new.kid}.")
    for key in published:
        until = datetime.fromtimestamp(key.publish_until, timezone.utc).isoformat(timespec="seconds")
        click.echo(f"Retired key {key.kid} stays published until {until}.")
    if deleted:
        click.echo(f"Deleted {deleted} retired keys whose tokens have all expired.")


@click.command("purge-expired")
@with_appcontext
def purge_expired_command():
    """Delete expired authorization codes and tokens; print how many."""
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


def init_app(app) -> None:
    """Register the commands with the app."""
    for command in (initdb_command, create_user_command, create_client_command, rotate_keys_command,
                    purge_expired_command, unlock_user_command):
        app.cli.add_command(command)
