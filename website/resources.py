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

import re
from urllib.parse import urlsplit

import click
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import InvalidScopeError, scope_to_list
from authlib.oauth2.rfc9068 import JWTBearerTokenGenerator
from flask import current_app, g
from flask.cli import with_appcontext
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from . import audit
from .models import ApiClientGrant, AuthorizationCode, OAuth2Client, ResourceServer, Token, db, now
from .oidc import get_issuer
from .signing import SIGNING_ALG, get_signing_keyset

#: The parameters naming the API a token is for: RFC 8707's, then Auth0's.
RESOURCE_PARAMETERS = ("resource", "audience")
#: RFC 6749 §3.3 scope-token characters.
_SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5B\x5D-\x7E]+$")


class InvalidTargetError(OAuth2Error):
    """RFC 8707 §2: the requested resource is unknown, invalid or not allowed."""

    error = "invalid_target"
    description = "The requested resource (audience) is not an API registered on this server."


def requested_resource(data) -> str | None:
    """The API an authorization or token request names with ``resource`` or ``audience``."""
    values = []
    for name in RESOURCE_PARAMETERS:
        raw = data.getlist(name) if hasattr(data, "getlist") else data.get(name)
        values += [v for v in ([raw] if isinstance(raw, str) else raw or []) if v]
    if len(set(values)) > 1:
        raise InvalidTargetError("Ask for one API at a time: a single 'resource' or 'audience'.")
    return values[0] if values else None


def find_api(identifier: str | None) -> ResourceServer | None:
    """The registered API with this identifier."""
    # PostgreSQL refuses even to compare text holding a NUL byte.
    if not identifier or len(identifier) > 2000 or "\x00" in identifier:
        return None
    return db.session.scalar(select(ResourceServer).where(ResourceServer.identifier == identifier))


def api_scopes() -> set[str]:
    """Every scope some registered API defines."""
    return {scope for scopes in db.session.scalars(select(ResourceServer.scopes)) for scope in scopes or []}


def api_names() -> dict[str, str]:
    """Each registered API's name for people, by its identifier."""
    return dict(db.session.execute(select(ResourceServer.identifier, ResourceServer.name)).all())


def scope_descriptions() -> dict[str, str]:
    """Each scope in words for people: the server's, and each API's scopes named after the API."""
    from .client_metadata import SCOPE_DESCRIPTIONS

    described = {}
    for api in db.session.scalars(select(ResourceServer).order_by(ResourceServer.id)):
        for scope in api.scopes or []:
            described.setdefault(scope, f"Use {api.name} on your behalf ({scope}).")
    return {**described, **SCOPE_DESCRIPTIONS}


def resolve_api(identifier: str | None, **error_args) -> ResourceServer | None:
    """The API a request names (None when it names none); ``invalid_target`` when unknown."""
    if identifier is None:
        return None
    api = find_api(identifier)
    if api is None:
        raise InvalidTargetError(**error_args)
    return api


def api_allows(api: ResourceServer, client_id: str) -> bool:
    """Tell whether an administrator allowed the client tokens for the API (``grant-api``)."""
    return db.session.scalar(select(ApiClientGrant.id).where(
        ApiClientGrant.api_id == api.id, ApiClientGrant.client_id == client_id)) is not None


def check_api_access(client, api: ResourceServer | None, **error_args) -> None:
    """A client gets tokens for an API only if the API allows it: an explicit grant by an
    administrator, whether or not the API defines scopes (registering an API's scope is not
    enough, and an API without scopes is not open to every client)."""
    if api is None:
        return
    if not api_allows(api, client.client_id):
        raise InvalidTargetError("This client is not allowed to get tokens for that API.", **error_args)


def check_api_scopes(scope: str | None, api: ResourceServer | None, **error_args) -> None:
    """An API's own scopes may be asked for only in a token for that API."""
    server_scopes = set(current_app.config["OAUTH2_SCOPES_SUPPORTED"].split())
    allowed = server_scopes | set(api.scopes if api else [])
    foreign = [s for s in scope_to_list(scope) or [] if s not in allowed]
    if foreign:
        raise InvalidScopeError(
            f"The scope {' '.join(foreign)} belongs to an API: ask for it with that API's "
            "'audience' (or 'resource').", **error_args)


def _use_api(grant, api: ResourceServer | None) -> None:
    # The token generator has no access to the request (Authlib passes only client, user,
    # scope), so the chosen API travels in flask.g for this request; save_token reads it
    # from the request to store the token's audience.
    g.oauth2_resource_server = api
    grant.request.audience = api.identifier if api else None


class ResourceIndicators:
    """A grant extension: validates ``resource`` / ``audience`` and picks the API whose token
    the grant issues, at the authorization endpoint and at the token endpoint."""

    def __call__(self, grant) -> None:
        grant.register_hook("after_validate_consent_request", self.check_authorization_request)
        grant.register_hook("before_create_authorization_response", self.before_authorization_response)
        grant.register_hook("before_create_token_response", self.before_token_response)

    @staticmethod
    def _error_args(grant, redirect_uri) -> dict:
        return {"redirect_uri": redirect_uri, "redirect_fragment": grant.request.payload.response_type != "code",
                "state": grant.request.payload.state}

    def check_authorization_request(self, grant, redirect_uri) -> None:
        error_args = self._error_args(grant, redirect_uri)
        data = grant.request.payload.datalist
        api = resolve_api(requested_resource(data), **error_args)
        check_api_access(grant.request.client, api, **error_args)
        check_api_scopes(grant.request.payload.scope, api, **error_args)
        # The consent page names the API, and remembered consent covers only the APIs it named.
        grant.request.audience = api.identifier if api else None

    def before_authorization_response(self, grant, redirect_uri, grant_user) -> None:
        # Implicit and hybrid responses carry an access token made right here.
        _use_api(grant, resolve_api(requested_resource(grant.request.payload.datalist),
                                    **self._error_args(grant, redirect_uri)))

    def before_token_response(self, grant) -> None:
        request = grant.request
        asked = requested_resource(request.payload.datalist)
        code = getattr(request, "authorization_code", None)
        parent = getattr(request, "refresh_token", None)
        granted = getattr(code, "resource", None) or getattr(parent, "audience", None)
        if granted and asked and asked != granted:
            raise InvalidTargetError("The grant was for another API; a token can only be for that one.")
        if asked and not granted and (code is not None or parent is not None):
            # The user approved this grant without that API: it cannot be added afterwards.
            raise InvalidTargetError("Name the API ('audience' or 'resource') in the authorization request.")
        api = resolve_api(granted or asked)
        check_api_access(request.client, api)
        if code is None and parent is None:
            # Client credentials and password grants name their scopes here.
            check_api_scopes(request.payload.scope, api)
        _use_api(grant, api)


class JWTAccessTokenGenerator(JWTBearerTokenGenerator):
    """RFC 9068 access tokens for one API, signed with the server's current key."""

    def __init__(self, api: ResourceServer, refresh_token_generator):
        lifetime = api.access_token_lifetime
        super().__init__(issuer=get_issuer(), alg=SIGNING_ALG, refresh_token_generator=refresh_token_generator,
                         expires_generator=lambda client, grant_type: lifetime)
        self.api = api

    def get_jwks(self):
        return get_signing_keyset()

    def get_audiences(self, client, user, scope) -> str:
        return self.api.identifier

    def get_extra_claims(self, client, grant_type, user, scope) -> dict:
        # Authlib sets sub to str(user.get_user_id()), the row id; the subject is user.sub.
        return {"sub": user.sub} if user else {}


class ResourceTokenGenerator:
    """The server's default token generator: a JWT for the API the request named, else the
    opaque bearer token."""

    def __init__(self, opaque_generator):
        self.opaque_generator = opaque_generator

    def __call__(self, grant_type, client, user=None, scope=None, expires_in=None, include_refresh_token=True):
        api = g.get("oauth2_resource_server")
        if api is None:
            return self.opaque_generator(grant_type, client, user, scope, expires_in, include_refresh_token)
        generator = JWTAccessTokenGenerator(api, self.opaque_generator.refresh_token_generator)
        # The API's lifetime wins over the grant's default.
        return generator(grant_type, client, user, scope, None, include_refresh_token)


# CLI --------------------------------------------------------------------------------------


def validate_identifier(identifier: str) -> str | None:
    """Return why an API identifier is unacceptable, or None.

    RFC 8707 wants an absolute URI without a fragment, and that is what to use; Auth0 also
    allows plain names (e.g. ``my-api``), so those are accepted for apps moving from Auth0.
    """
    if not identifier or len(identifier) > 2000:
        return "The identifier must be 1 to 2000 characters."
    if any(c.isspace() or ord(c) < 32 for c in identifier):
        return "The identifier cannot contain spaces or control characters."
    if "#" in identifier:
        return "The identifier must not contain a fragment (#); use e.g. https://api.example.com/."
    try:
        urlsplit(identifier)
    except ValueError:
        return f"{identifier} is not a valid URI."
    return None


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
    server_scopes = current_app.config["OAUTH2_SCOPES_SUPPORTED"].split()
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


def init_app(app) -> None:
    """Make the server issue JWT access tokens for registered APIs, and add the CLI commands."""
    from .oauth2 import create_token_generator

    server = app.extensions["authorization_server"]
    server.register_token_generator("default", ResourceTokenGenerator(create_token_generator(app.config)))
    server.register_grant_extension(ResourceIndicators())
    for command in (create_api_command, list_apis_command, delete_api_command, grant_api_command,
                    revoke_api_command):
        app.cli.add_command(command)
