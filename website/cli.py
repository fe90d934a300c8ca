"""APIs (resource servers) and the access tokens issued for them.

An API is registered with ``flask create-api``: an identifier (its audience URI), a name, the
scopes it defines and an access token lifetime. A client asks for a token for it with
``audience`` (as with Auth0) or ``resource`` (RFC 8707) at the authorization or the token
endpoint; that token is a JWT access token (RFC 9068: typ ``at+jwt``, ``aud`` the API) signed
with the server's keys, so the API can verify it with the JWKS. An unknown API gets
``invalid_target``, and so does an API that does not allow the client: an administrator allows
a client with ``flask grant-api`` (an ApiClientGrant row). Without either parameter tokens stay
opaque. Either way the Token table
keeps the token's hash, so revocation and introspection work the same.
"""

import json
import secrets
from datetime import datetime, timezone

import click
import flask_migrate
from cryptography.fernet import Fernet
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.exc import IntegrityError

from website.extensions import db
from website.forms import EMAIL_RULE
from website.models.apis import ApiClientGrant, ResourceServer
from website.models.base import hash_secret, now
from website.models.clients import InitialAccessToken, OAuth2Client, SecretView
from website.models.grants import AuthorizationCode, Token
from website.models.usernames import normalize_username, username_problem
from website.models.users import User
from website.oauth2.audiences import _SCOPE_TOKEN, validate_identifier
from website.oauth2.client_metadata import (
    AUTH_METHODS,
    GRANT_TYPES,
    RESPONSE_TYPE_GRANTS,
    ClientMetadataError,
    validate_client_metadata,
)
from website.oauth2.keys import (
    USERINFO_SIGNING_ALGS,
    KeyDecryptionError,
    check_private_keys,
    ensure_signing_key,
    reencrypt_private_keys,
    rotate_signing_keys,
)
from website.store import audit, throttle
from website.store.apis import api_allows, find_api
from website.store.users import find_user


@click.command("create-api")
@with_appcontext
@click.option("--identifier", required=True, help="The API's audience URI, e.g. https://api.example.com/.")
@click.option("--name", required=True, help="A name for people, e.g. 'Orders API'.")
@click.option("--scope", "scopes", multiple=True, help="A scope the API defines (repeatable).")
@click.option("--lifetime", type=click.IntRange(min=60, max=86400), default=None,
              help="Access token lifetime in seconds (default: OAUTH2_ACCESS_TOKEN_LIFETIME).")
@click.option("--introspection-client", "introspection_client", default=None,
              help="client_id of a confidential client the API uses to introspect its tokens.")
@click.option("--allow-client", "allowed_clients", multiple=True,
              help="client_id of a client allowed tokens for the API (repeatable; see grant-api).")
def create_api_command(identifier, name, scopes, lifetime, introspection_client, allowed_clients):
    """Register an API whose access tokens are JWTs with aud = its identifier."""
    if problem := validate_identifier(identifier):
        raise click.ClickException(problem)
    if not name.strip() or len(name) > 100:
        raise click.ClickException("The name must be 1 to 100 characters.")
    server_scopes = current_app.config["OAUTH2_SCOPES"]
    scopes = list(dict.fromkeys(s for value in scopes for s in value.split()))
    for scope in scopes:
        if not _SCOPE_TOKEN.match(scope) or len(scope) > 100:
            raise click.ClickException(f"{scope!r} is not a valid scope name.")
        if scope in server_scopes:
            raise click.ClickException(f"{scope} is one of the server's own scopes; choose another name.")
    if introspection_client is not None:
        client = db.session.scalar(select(OAuth2Client).where(OAuth2Client.client_id == introspection_client))
        if client is None or client.is_public:
            raise click.ClickException(f"No confidential client with client_id {introspection_client}.")
    allowed = [_find_client(client_id) for client_id in dict.fromkeys(allowed_clients)]
    api = ResourceServer(identifier=identifier, name=name.strip(), scopes=scopes,
                         access_token_lifetime=lifetime or current_app.config["OAUTH2_ACCESS_TOKEN_LIFETIME"],
                         introspection_client_id=introspection_client)
    db.session.add(api)
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        raise click.ClickException(f"An API with the identifier {identifier} already exists.")
    for client in allowed:
        _grant(api, client)
    db.session.commit()
    click.echo(f"Created API {api.name} ({api.identifier}); scopes: {' '.join(scopes) or '(none)'}; "
               f"token lifetime {api.access_token_lifetime}s; allowed clients: "
               f"{' '.join(c.client_id for c in allowed) or '(none yet: see grant-api)'}.")


def _find_client(client_id: str) -> OAuth2Client:
    client = db.session.scalar(select(OAuth2Client).where(OAuth2Client.client_id == client_id))
    if client is None:
        raise click.ClickException(f"No client with client_id {client_id}.")
    return client


def _find_api_or_fail(identifier: str) -> ResourceServer:
    api = find_api(identifier)
    if api is None:
        raise click.ClickException(f"No API with the identifier {identifier}.")
    return api


def _grant(api: ResourceServer, client: OAuth2Client) -> None:
    db.session.add(ApiClientGrant(api_id=api.id, client_id=client.client_id))
    audit.record("api_client_granted", client_id=client.client_id, api=api.identifier, by="cli")


@click.command("grant-api")
@with_appcontext
@click.argument("identifier")
@click.argument("client_id")
def grant_api_command(identifier, client_id):
    """Allow a client access tokens for an API (client credentials, or a user's consent)."""
    api = _find_api_or_fail(identifier)
    client = _find_client(client_id)
    if api_allows(api, client.client_id):
        click.echo(f"{client_id} was already allowed tokens for {identifier}.")
        return
    _grant(api, client)
    db.session.commit()
    click.echo(f"{client_id} may now get tokens for {identifier}.")


@click.command("revoke-api")
@with_appcontext
@click.argument("identifier")
@click.argument("client_id")
def revoke_api_command(identifier, client_id):
    """Take back a client's access to an API: its tokens and unused codes for the API stop now."""
    api = _find_api_or_fail(identifier)
    grant = db.session.scalar(select(ApiClientGrant).where(
        ApiClientGrant.api_id == api.id, ApiClientGrant.client_id == client_id))
    if grant is None:
        raise click.ClickException(f"{client_id} is not allowed tokens for {identifier}.")
    stamp = now()
    owned = (Token.client_id == client_id, Token.audience == api.identifier)
    db.session.execute(update(Token).where(*owned, Token.access_token_revoked_at == 0)
                       .values(access_token_revoked_at=stamp))
    db.session.execute(update(Token).where(*owned, Token.refresh_token_revoked_at == 0)
                       .values(refresh_token_revoked_at=stamp))
    db.session.execute(delete(AuthorizationCode).where(
        AuthorizationCode.client_id == client_id, AuthorizationCode.resource == api.identifier,
        AuthorizationCode.used_at.is_(None)))
    db.session.delete(grant)
    audit.record("api_client_revoked", client_id=client_id, api=api.identifier, by="cli")
    db.session.commit()
    click.echo(f"{client_id} may no longer get tokens for {identifier}.")


@click.command("list-apis")
@with_appcontext
def list_apis_command():
    """List the registered APIs."""
    apis = db.session.scalars(select(ResourceServer).order_by(ResourceServer.id)).all()
    if not apis:
        click.echo("No APIs registered.")
    for api in apis:
        allowed = db.session.scalars(select(ApiClientGrant.client_id).where(ApiClientGrant.api_id == api.id)
                                     .order_by(ApiClientGrant.id)).all()
        click.echo(f"{api.identifier}\t{api.name}\t{' '.join(api.scopes) or '-'}\t{api.access_token_lifetime}s"
                   f"\t{api.introspection_client_id or '-'}\tallowed: {' '.join(allowed) or '-'}")


@click.command("delete-api")
@with_appcontext
@click.argument("identifier")
def delete_api_command(identifier):
    """Delete an API; tokens already issued for it stay valid until they expire or are revoked."""
    api = _find_api_or_fail(identifier)
    db.session.execute(delete(ApiClientGrant).where(ApiClientGrant.api_id == api.id))
    db.session.delete(api)
    db.session.commit()
    click.echo(f"Deleted API {identifier}.")


@click.command("create-initial-access-token")
@with_appcontext
@click.option("--expires-in", type=click.IntRange(min=1), default=None,
              help="Seconds until the token expires (default: never).")
def create_initial_access_token_command(expires_in):
    """Make a token that allows registering clients at /oauth/register; print it once."""
    value = secrets.token_urlsafe(32)
    db.session.add(InitialAccessToken(token_hash=hash_secret(value),
                                      expires_at=now() + expires_in if expires_in else 0))
    db.session.commit()
    click.echo(value)


#: Rows deleted per transaction by purge-expired, so a big purge never holds long locks.
PURGE_BATCH_SIZE = 5000


@click.command("initdb")
@with_appcontext
def initdb_command():
    """Create the database or upgrade it to the newest schema, with a first signing key
    (safe to run again)."""
    flask_migrate.upgrade(directory=current_app.extensions["migrate"].directory)
    click.echo("Database is at the newest schema.")
    try:
        check_private_keys()
    except KeyDecryptionError as error:
        raise click.ClickException(str(error))
    if (key := ensure_signing_key()) is not None:
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


@click.command("create-client")
@with_appcontext
@click.option("--name", required=True, help="The client's name, shown on the consent page.")
@click.option("--redirect-uri", "redirect_uris", multiple=True, help="A redirect URI (repeatable).")
@click.option("--post-logout-redirect-uri", "post_logout_redirect_uris", multiple=True,
              help="A URL the logout endpoints may return to (repeatable).")
@click.option("--allowed-origin", "allowed_origins", multiple=True,
              help="A web origin (https://app.example.com) whose scripts may call the token, "
                   "userinfo and revocation endpoints, besides the redirect URIs' (repeatable).")
@click.option("--grant-type", "grant_types", multiple=True, type=click.Choice(GRANT_TYPES),
              help="A grant type (repeatable); default authorization_code.")
@click.option("--response-type", "response_types", multiple=True,
              help=f"A response type (repeatable): {', '.join(repr(r) for r in RESPONSE_TYPE_GRANTS)}.")
@click.option("--scope", default="", help='Space-separated scopes, e.g. "openid profile".')
@click.option("--userinfo-signed-response-alg", "userinfo_alg", default=None,
              type=click.Choice(USERINFO_SIGNING_ALGS),
              help="UserInfo answers as a JWT signed with this algorithm (default: plain JSON).")
@click.option("--auth-method", default="client_secret_basic", type=click.Choice(AUTH_METHODS),
              help="How the client authenticates at the token endpoint (client_secret_basic and "
                   "client_secret_post both work unless --strict-auth-method).")
@click.option("--strict-auth-method", is_flag=True,
              help="Accept only the registered secret method (Basic or body), not the other.")
@click.option("--jwks-file", type=click.File("r"), default=None,
              help="For private_key_jwt: a file holding the client's public JWKS (JSON).")
@click.option("--jwks-uri", default=None, help="For private_key_jwt: the URL of the client's public JWKS.")
@click.option("--owner", default=None, help="Username of the client's owner.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def create_client_command(name, redirect_uris, post_logout_redirect_uris, allowed_origins, grant_types,
                          response_types, scope, userinfo_alg, auth_method, strict_auth_method, jwks_file,
                          jwks_uri, owner, as_json):
    """Register a client and print its client_id and client_secret."""
    owner_user = None
    if owner is not None:
        owner_user = find_user(owner)
        if owner_user is None:
            raise click.ClickException(f"No user named {owner}.")
    data = {
        "client_name": name,
        "redirect_uris": list(redirect_uris),
        "post_logout_redirect_uris": list(post_logout_redirect_uris),
        "allowed_origins": list(allowed_origins),
        "scope": scope,
        "token_endpoint_auth_method": auth_method,
        "strict_auth_method": strict_auth_method,
        "jwks_uri": jwks_uri,
    }
    if jwks_file is not None:
        try:
            data["jwks"] = json.load(jwks_file)
        except ValueError:
            raise click.ClickException(f"{jwks_file.name} does not hold JSON.")
    if grant_types:
        data["grant_types"] = list(grant_types)
    if response_types:
        data["response_types"] = list(response_types)
    if userinfo_alg:
        data["userinfo_signed_response_alg"] = userinfo_alg
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
        none = "(none: public client)" if client.is_public else "(none: the client signs with its own key)"
        click.echo(f"client_secret: {secret if secret else none}")


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
    """Re-encrypt every private signing key under the first key of KEY_ENCRYPTION_KEYS."""
    try:
        count = reencrypt_private_keys()
    except KeyDecryptionError as error:
        raise click.ClickException(f"{error} Nothing was changed.")
    click.echo(f"Re-encrypted {count} private signing keys with the first key of KEY_ENCRYPTION_KEYS;"
               " keys after it may now be removed.")


@click.command("generate-key-encryption-key")
def generate_key_encryption_key_command():
    """Print a new Fernet key for KEY_ENCRYPTION_KEYS."""
    click.echo(Fernet.generate_key().decode())


@click.command("purge-expired")
@with_appcontext
def purge_expired_command():
    """Delete expired authorization codes, tokens and unopened secret views; print how many."""
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
    if views := _purge(SecretView, SecretView.expires_at <= stamp):
        click.echo(f"Deleted {views} new client secrets nobody opened in time.")


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
                    purge_expired_command, unlock_user_command, create_api_command, list_apis_command,
                    delete_api_command, grant_api_command, revoke_api_command,
                    create_initial_access_token_command, rotate_key_encryption_key_command,
                    generate_key_encryption_key_command):
        app.cli.add_command(command)
