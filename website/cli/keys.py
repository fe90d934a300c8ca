"""`flask` commands for the signing keys and the key that encrypts them."""

from datetime import datetime, timezone

import click
from cryptography.fernet import Fernet
from flask.cli import with_appcontext

from website.oauth2.keys import rotate_signing_keys
from website.store.sealed import UnsealError, reseal_everything


@click.command("rotate-keys")
@with_appcontext
def rotate_keys_command():
    """Start signing with a new key; older public keys stay published until their tokens expire."""
    new, published, deleted = rotate_signing_keys()
    click.echo(f"New signing key: kid {new.kid}.")
    for key in published:
        until = datetime.fromtimestamp(key.publish_until, timezone.utc).isoformat(timespec="seconds")
        click.echo(f"Retired key {key.kid} stays published until {until}.")
    if deleted:
        click.echo(f"Deleted {deleted} retired keys whose tokens have all expired.")


@click.command("rotate-key-encryption-key")
@with_appcontext
def rotate_key_encryption_key_command():
    """Re-encrypt every stored secret (private signing keys and the rest) under the first key
    of KEY_ENCRYPTION_KEYS."""
    try:
        count = reseal_everything()
    except UnsealError as error:
        raise click.ClickException(f"{error} Nothing was changed.")
    click.echo(f"Re-encrypted {count} stored secrets (private signing keys and the rest) with the first"
               " key of KEY_ENCRYPTION_KEYS; keys after it may now be removed.")


@click.command("generate-key-encryption-key")
def generate_key_encryption_key_command():
    """Print a new Fernet key for KEY_ENCRYPTION_KEYS."""
    click.echo(Fernet.generate_key().decode())
