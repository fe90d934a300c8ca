"""`flask` commands that register clients."""

import json
import secrets

import click
from flask import current_app
from flask.cli import with_appcontext

from website.extensions import db
from website.models.base import hash_secret, now
from website.models.apis import ApiClientGrant
from website.models.clients import InitialAccessToken, OAuth2Client
from website.oauth2.client_metadata import (
    AUTH_METHODS,
    GRANT_TYPES,
    REQUEST_OBJECT_ALGS,
    RESPONSE_TYPE_GRANTS,
    ClientMetadataError,
    validate_client_metadata,
)
from website.oauth2.keys import ID_TOKEN_SIGNING_ALGS, USERINFO_SIGNING_ALGS
from website.oauth2.management import MANAGEMENT_SCOPES, ensure_management_api
from website.store import audit
from website.store.users import find_user


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
@click.option("--id-token-signed-response-alg", "id_token_alg", default=None,
              type=click.Choice(ID_TOKEN_SIGNING_ALGS),
              help="Sign the client's id_tokens and logout tokens with this algorithm (default: RS256).")
@click.option("--userinfo-signed-response-alg", "userinfo_alg", default=None,
              type=click.Choice(USERINFO_SIGNING_ALGS),
              help="UserInfo answers as a JWT signed with this algorithm (default: plain JSON).")
@click.option("--auth-method", default="client_secret_basic", type=click.Choice(AUTH_METHODS),
              help="How the client authenticates at the token endpoint (client_secret_basic and "
                   "client_secret_post both work unless --strict-auth-method).")
@click.option("--strict-auth-method", is_flag=True,
              help="Accept only the registered secret method (Basic or body), not the other.")
@click.option("--require-mfa", is_flag=True,
              help="People sign in to this app with a second factor (set up at sign-in if they have none).")
@click.option("--require-par", is_flag=True,
              help="Accept only authorization requests the client pushed first (RFC 9126 PAR).")
@click.option("--request-object-signing-alg", "request_object_alg", default=None,
              type=click.Choice(REQUEST_OBJECT_ALGS),
              help="The one algorithm the client signs request objects with (default: any supported; "
                   "'none' accepts them unsigned).")
@click.option("--dpop-bound", is_flag=True,
              help="The client always sends DPoP proofs (RFC 9449 dpop_bound_access_tokens): token "
                   "requests without one are refused.")
@click.option("--require-verified-email", is_flag=True,
              help="Give codes only for people whose email address is verified.")
@click.option("--jwks-file", type=click.File("r"), default=None,
              help="For private_key_jwt and signed request objects: a file holding the client's public JWKS (JSON).")
@click.option("--jwks-uri", default=None,
              help="For private_key_jwt and signed request objects: the URL of the client's public JWKS.")
@click.option("--backchannel-logout-uri", default=None,
              help="Where a signed logout_token is POSTed when a session that signed in to the client ends.")
@click.option("--backchannel-logout-session-required", is_flag=True,
              help="The client needs the sid claim in logout tokens (always sent here).")
@click.option("--frontchannel-logout-uri", default=None,
              help="A page of the client that the signed-out page loads in a hidden iframe; same "
                   "origin as a redirect URI.")
@click.option("--frontchannel-logout-session-required", is_flag=True,
              help="Add iss and sid to the front-channel logout URL.")
@click.option("--owner", default=None, help="Username of the client's owner.")
@click.option("--access-token-lifetime", type=int, default=None, help="Seconds its access tokens live (default: the site's).")
@click.option("--refresh-token-lifetime", type=int, default=None, help="Seconds its refresh tokens live.")
@click.option("--id-token-lifetime", type=int, default=None, help="Seconds its id_tokens live.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def create_client_command(name, redirect_uris, post_logout_redirect_uris, allowed_origins, grant_types,
                          response_types, scope, id_token_alg, userinfo_alg, auth_method, strict_auth_method,
                          require_mfa, require_par, request_object_alg, dpop_bound, require_verified_email, jwks_file, jwks_uri,
                          backchannel_logout_uri, backchannel_logout_session_required, frontchannel_logout_uri,
                          frontchannel_logout_session_required, owner, access_token_lifetime, refresh_token_lifetime,
                          id_token_lifetime, as_json):
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
        "require_mfa": require_mfa,
        "require_pushed_authorization_requests": require_par,
        "request_object_signing_alg": request_object_alg,
        "dpop_bound_access_tokens": dpop_bound,
        "require_verified_email": require_verified_email,
        "jwks_uri": jwks_uri,
        "backchannel_logout_uri": backchannel_logout_uri,
        "backchannel_logout_session_required": backchannel_logout_session_required,
        "frontchannel_logout_uri": frontchannel_logout_uri,
        "frontchannel_logout_session_required": frontchannel_logout_session_required,
        "access_token_lifetime": access_token_lifetime,
        "refresh_token_lifetime": refresh_token_lifetime,
        "id_token_lifetime": id_token_lifetime,
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
    if id_token_alg:
        data["id_token_signed_response_alg"] = id_token_alg
    if userinfo_alg:
        data["userinfo_signed_response_alg"] = userinfo_alg
    try:
        metadata = validate_client_metadata(data, allow_api_scopes=True)
    except ClientMetadataError as error:
        raise click.ClickException(f"{error.field}: {error.message}")
    client, secret = OAuth2Client.register(metadata, owner=owner_user)
    db.session.add(client)
    audit.record("client_created", user=owner_user, client_id=client.client_id, client_name=name, via="cli")
    if client.require_mfa:
        audit.record("mfa_policy_changed", client_id=client.client_id, require_mfa=True, via="cli")
    db.session.commit()
    if as_json:
        click.echo(json.dumps({**client.client_metadata, "client_id": client.client_id,
                               "client_secret": secret}))
    else:
        click.echo(f"client_id: {client.client_id}")
        none = "(none: public client)" if client.is_public else "(none: the client signs with its own key)"
        click.echo(f"client_secret: {secret if secret else none}")


@click.command("create-admin-api-client")
@with_appcontext
@click.option("--name", required=True, help="The client's name (a tool or script).")
@click.option("--scope", "scopes", multiple=True, required=True, type=click.Choice(list(MANAGEMENT_SCOPES)),
              help="An admin API scope the client may get (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def create_admin_api_client_command(name, scopes, as_json):
    """Register a client that gets admin API tokens (client credentials, audience
    ISSUER/api/v2/) with the given scopes; print its client_id and client_secret."""
    if not current_app.config.get("OAUTH2_ISSUER"):
        raise click.ClickException("Set OAUTH2_ISSUER first: the admin API's audience is the issuer followed"
                                   " by /api/v2/.")
    api = ensure_management_api()
    db.session.flush()
    try:
        metadata = validate_client_metadata({"client_name": name, "grant_types": ["client_credentials"],
                                             "redirect_uris": [], "scope": " ".join(scopes),
                                             "token_endpoint_auth_method": "client_secret_basic"},
                                            allow_api_scopes=True)
    except ClientMetadataError as error:
        raise click.ClickException(f"{error.field}: {error.message}")
    client, secret = OAuth2Client.register(metadata)
    db.session.add(client)
    db.session.flush()
    db.session.add(ApiClientGrant(api_id=api.id, client_id=client.client_id))
    audit.record("client_created", client_id=client.client_id, client_name=name, via="cli", admin_api=True,
                 scope=" ".join(scopes))
    db.session.commit()
    if as_json:
        click.echo(json.dumps({"client_id": client.client_id, "client_secret": secret,
                               "audience": api.identifier, "scope": " ".join(scopes)}))
    else:
        click.echo(f"client_id: {client.client_id}")
        click.echo(f"client_secret: {secret}")
        click.echo(f"audience: {api.identifier}")
