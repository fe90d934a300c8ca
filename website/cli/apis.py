"""`flask` commands for APIs (resource servers) and which clients may get their tokens."""

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from website.extensions import db
from website.models.apis import ApiClientGrant, ResourceServer
from website.models.base import now
from website.models.clients import OAuth2Client
from website.models.grants import AuthorizationCode, Token
from website.oauth2.audiences import _SCOPE_TOKEN, validate_identifier
from website.store import audit
from website.store.apis import api_grant, find_api


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
@click.option("--impersonation/--no-impersonation", default=None,
              help="Token exchange (RFC 8693) without an actor token: the client may get tokens for "
                   "the API that stand for a person with no trace of the client acting (default: no).")
def grant_api_command(identifier, client_id, impersonation):
    """Allow a client access tokens for an API (client credentials, a user's consent, token exchange)."""
    api = _find_api_or_fail(identifier)
    client = _find_client(client_id)
    grant = api_grant(api, client.client_id)
    if grant is not None and (impersonation is None or grant.allow_impersonation == impersonation):
        click.echo(f"{client_id} was already allowed tokens for {identifier}.")
        return
    if grant is None:
        _grant(api, client)
        grant = api_grant(api, client.client_id)
    if impersonation is not None:
        grant.allow_impersonation = impersonation
        audit.record("api_impersonation_allowed" if impersonation else "api_impersonation_revoked",
                     client_id=client.client_id, api=api.identifier, by="cli")
    db.session.commit()
    click.echo(f"{client_id} may now get tokens for {identifier}"
               + (" and impersonate people there by token exchange." if grant.allow_impersonation else "."))


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
