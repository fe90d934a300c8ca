"""`flask` commands for upstream providers people may sign in with."""

import click
from flask.cli import with_appcontext

from website.extensions import db
from website.services.upstreams import (
    PRESETS,
    UpstreamSettingsError,
    parse_claim_map,
    redirect_uri,
    save_upstream,
    upstream_settings,
)
from website.store import audit
from website.store.upstreams import all_upstreams, find_upstream


@click.command("add-upstream")
@with_appcontext
@click.option("--name", required=True, help="Lower-case letters, digits, dashes: part of the redirect URI.")
@click.option("--preset", type=click.Choice(sorted(PRESETS)), default=None,
              help="Fill in the issuer (or GitHub's URLs and claim mapping).")
@click.option("--issuer", default=None, help="The OpenID Connect issuer (discovery is read from it).")
@click.option("--tenant", default=None, help="The Entra directory (tenant) ID, for --preset microsoft.")
@click.option("--client-id", required=True, help="The client ID the upstream gave this server.")
@click.option("--client-secret", required=True, help="The client secret (stored encrypted).")
@click.option("--scope", default=None, help='Default "openid email profile" (the preset\'s for GitHub).')
@click.option("--display-name", default=None, help='What "Continue with ..." says (default: the preset\'s).')
@click.option("--kind", type=click.Choice(["oidc", "oauth2"]), default=None,
              help="oidc (discovery, the default) or oauth2 (give the URLs below).")
@click.option("--authorize-url", default=None, help="OAuth 2.0: the authorization endpoint.")
@click.option("--token-url", default=None, help="OAuth 2.0: the token endpoint.")
@click.option("--userinfo-url", default=None, help="OAuth 2.0: where the person's claims are read.")
@click.option("--emails-url", default=None, help="OAuth 2.0: a GitHub-style verified-emails list.")
@click.option("--claim", "claims", multiple=True, metavar="LOCAL=UPSTREAM",
              help="Read a local claim from another upstream claim (repeatable), e.g. groups=realm_access.roles.")
@click.option("--overwrite", default="name", help="Local claims each sign-in overwrites (name,email or none).")
@click.option("--end-upstream-session", is_flag=True, help="Logging out here also ends the upstream session.")
def add_upstream_command(name, preset, issuer, tenant, client_id, client_secret, scope, display_name, kind,
                         authorize_url, token_url, userinfo_url, emails_url, claims, overwrite,
                         end_upstream_session):
    """Add an upstream OpenID Connect or OAuth 2.0 provider people may sign in with."""
    overwrite_claims = [] if overwrite.strip() in ("", "none") else [c.strip() for c in overwrite.split(",")]
    try:
        values = upstream_settings(name, client_id, client_secret, preset=preset, display_name=display_name,
                                   issuer=issuer, tenant=tenant, scope=scope, kind=kind,
                                   authorize_url=authorize_url, token_url=token_url, userinfo_url=userinfo_url,
                                   emails_url=emails_url, claim_map=parse_claim_map(claims),
                                   overwrite_claims=overwrite_claims, end_upstream_session=end_upstream_session)
    except UpstreamSettingsError as error:
        raise click.ClickException(str(error))
    if find_upstream(values["name"]) is not None:
        raise click.ClickException(f"An upstream named {values['name']} exists (remove-upstream it first).")
    upstream = save_upstream(values)
    db.session.flush()
    audit.record("upstream_added", upstream=upstream.name, issuer=upstream.issuer, by="cli")
    db.session.commit()
    click.echo(f"Added upstream {upstream.name} ({upstream.display_name}).")
    click.echo(f"Register this redirect URI there: {redirect_uri(upstream.name)}")


@click.command("list-upstreams")
@with_appcontext
def list_upstreams_command():
    """List the upstream providers: name, kind, issuer (or authorization URL), client ID."""
    upstreams = all_upstreams()
    if not upstreams:
        click.echo("No upstream providers.")
    for upstream in upstreams:
        click.echo(f"{upstream.name}\t{upstream.kind}\t{upstream.issuer or upstream.authorize_url}"
                   f"\t{upstream.client_id}\t{upstream.display_name}")


@click.command("remove-upstream")
@with_appcontext
@click.argument("name")
def remove_upstream_command(name):
    """Remove an upstream provider and the identities linked to it (the accounts stay)."""
    upstream = find_upstream(name)
    if upstream is None:
        raise click.ClickException(f"No upstream named {name!r}.")
    audit.record("upstream_removed", upstream=upstream.name, by="cli")
    db.session.delete(upstream)
    db.session.commit()
    click.echo(f"Removed upstream {name}.")


@click.command("update-upstream")
@with_appcontext
@click.argument("name")
@click.option("--issuer", default=None, help="A new OpenID Connect issuer.")
@click.option("--client-id", default=None, help="A new client ID.")
@click.option("--client-secret", default=None, help="A new client secret (stored encrypted).")
@click.option("--scope", default=None, help="A new scope.")
@click.option("--display-name", default=None, help='What "Continue with ..." says.')
@click.option("--authorize-url", default=None, help="OAuth 2.0: the authorization endpoint.")
@click.option("--token-url", default=None, help="OAuth 2.0: the token endpoint.")
@click.option("--userinfo-url", default=None, help="OAuth 2.0: where the person's claims are read.")
@click.option("--emails-url", default=None, help="OAuth 2.0: a GitHub-style verified-emails list.")
@click.option("--claim", "claims", multiple=True, metavar="LOCAL=UPSTREAM", help="Change a claim mapping.")
@click.option("--overwrite", default=None, help="Local claims each sign-in overwrites (name,email,groups or none).")
@click.option("--end-upstream-session/--keep-upstream-session", default=None,
              help="Whether logging out here also ends the upstream session.")
def update_upstream_command(name, issuer, client_id, client_secret, scope, display_name, authorize_url, token_url,
                            userinfo_url, emails_url, claims, overwrite, end_upstream_session):
    """Change an upstream's settings (a new client secret, scope, ...); linked identities stay."""
    upstream = find_upstream(name)
    if upstream is None:
        raise click.ClickException(f"No upstream named {name!r}.")
    overwrite_claims = upstream.overwrite_claims if overwrite is None else (
        [] if overwrite.strip() in ("", "none") else [c.strip() for c in overwrite.split(",")])
    try:
        values = upstream_settings(
            upstream.name, client_id or upstream.client_id, client_secret, display_name=display_name or upstream.display_name,
            issuer=issuer or upstream.issuer, scope=scope or upstream.scope, kind=upstream.kind,
            authorize_url=authorize_url or upstream.authorize_url, token_url=token_url or upstream.token_url,
            userinfo_url=userinfo_url or upstream.userinfo_url, emails_url=emails_url or upstream.emails_url,
            claim_map={**upstream.claim_map, **parse_claim_map(claims)}, overwrite_claims=overwrite_claims,
            end_upstream_session=upstream.end_upstream_session if end_upstream_session is None else end_upstream_session,
            require_secret=False)
    except UpstreamSettingsError as error:
        raise click.ClickException(str(error))
    values["preset"] = upstream.preset
    save_upstream(values, upstream)
    audit.record("upstream_updated", upstream=upstream.name, by="cli", new_secret=bool(client_secret))
    db.session.commit()
    click.echo(f"Updated upstream {upstream.name}.")
