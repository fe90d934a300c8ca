"""Blueprint: the signed-in user's clients: list, create, view, edit, rotate secret, delete."""

import json

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from sqlalchemy import select

from website.extensions import db
from website.forms import ClientForm, ConfirmForm
from website.models.clients import OAuth2Client
from website.oauth2.client_metadata import ClientMetadataError, validate_client_metadata
from website.services.accounts import may_register_clients
from website.store import audit
from website.store.clients import delete_clients
from website.store.secret_views import stash, take
from website.views.auth import login_required

bp = Blueprint("clients", __name__, url_prefix="/clients")


def get_own_client(client_id: str) -> OAuth2Client:
    """The signed-in user's client with this id, or 404 (also for other people's clients)."""
    if "\x00" in client_id:  # PostgreSQL refuses a NUL byte even in a comparison
        abort(404)
    client = db.session.scalar(select(OAuth2Client).where(OAuth2Client.client_id == client_id))
    if client is None or client.owner_id != g.user.id:
        abort(404)
    return client


def validated_metadata(form: ClientForm) -> dict | None:
    """The submitted form as validated client metadata, or None with the message on the
    offending field."""
    if not form.validate_on_submit():
        return None
    try:
        return validate_client_metadata(form.to_metadata(), allow_api_scopes=g.user.is_admin)
    except ClientMetadataError as error:
        getattr(form, error.field, form.client_name).errors.append(error.message)
        return None


@bp.route("/")
@login_required
def index():
    """List the signed-in user's clients."""
    clients = db.session.scalars(
        select(OAuth2Client).where(OAuth2Client.owner_id == g.user.id).order_by(OAuth2Client.id)
    ).all()
    return render_template("clients/index.html", clients=clients, may_register=may_register_clients(g.user))


@bp.route("/new", methods=["GET", "POST"])
@login_required
def create():
    """Register a new client; its secret is shown once, on the page redirected to."""
    if not may_register_clients(g.user):
        return render_template("clients/not_allowed.html"), 403
    form = ClientForm()
    if (metadata := validated_metadata(form)) is not None:
        client, secret = OAuth2Client.register(metadata, owner=g.user)
        db.session.add(client)
        audit.record("client_created", user=g.user, client_id=client.client_id, client_name=client.client_name)
        if client.require_mfa:
            audit.record("mfa_policy_changed", user=g.user, client_id=client.client_id, require_mfa=True)
        flash("Client created.")
        return _redirect_to_new_secret(client, secret)
    return render_template("clients/form.html", form=form, client=None), 400 if form.errors else 200


@bp.route("/<client_id>")
@login_required
def show(client_id: str):
    """Show a client's settings."""
    client = get_own_client(client_id)
    return render_template("clients/show.html", client=client, secret=None, form=ConfirmForm())


@bp.route("/<client_id>/secret/<token>")
@login_required
def show_secret(client_id: str, token: str):
    """The client's page with its new secret, once: opening it deletes the stashed secret, so a
    reload (or anyone else) sees only that it was shown."""
    client = get_own_client(client_id)
    secret = take(token, client, g.user)
    db.session.commit()
    return render_template("clients/show.html", client=client, secret=secret, secret_gone=secret is None,
                           form=ConfirmForm())


@bp.route("/<client_id>/edit", methods=["GET", "POST"])
@login_required
def edit(client_id: str):
    """Change a client's settings; a client that starts using a secret gets a new one."""
    client = get_own_client(client_id)
    form = ClientForm(data=client_form_data(client))
    if (metadata := validated_metadata(form)) is not None:
        had_secret, had_mfa = client.has_secret, client.require_mfa
        client.set_client_metadata({**client.extra_metadata, **metadata})
        secret = client.rotate_secret() if had_secret != client.has_secret else None
        audit.record("client_updated", user=g.user, client_id=client.client_id, client_name=client.client_name)
        if had_mfa != client.require_mfa:
            audit.record("mfa_policy_changed", user=g.user, client_id=client.client_id, require_mfa=client.require_mfa)
        flash("Client saved.")
        if secret:
            return _redirect_to_new_secret(client, secret)
        db.session.commit()
        return redirect(url_for("clients.show", client_id=client.client_id))
    return render_template("clients/form.html", form=form, client=client), 400 if form.errors else 200


@bp.route("/<client_id>/rotate-secret", methods=["GET", "POST"])
@login_required
def rotate_secret(client_id: str):
    """Ask, then replace the client's secret; the old one stops working at once. A POST
    without the confirmation page's ``confirm`` changes nothing and shows that page."""
    client = get_own_client(client_id)
    if not client.has_secret:
        flash("A public client has no secret to rotate.", "error")
        return redirect(url_for("clients.show", client_id=client.client_id))
    form = ConfirmForm()
    if request.method == "POST" and not form.validate_on_submit():
        abort(400)
    if request.method == "POST" and form.confirm.data:
        secret = client.rotate_secret()
        audit.record("client_secret_rotated", user=g.user, client_id=client.client_id)
        flash("New secret made; the old one no longer works.")
        return _redirect_to_new_secret(client, secret)
    return render_template("clients/rotate.html", client=client, form=form)


@bp.route("/<client_id>/delete", methods=["GET", "POST"])
@login_required
def delete_client(client_id: str):
    """Ask, then delete the client with its codes and tokens."""
    client = get_own_client(client_id)
    form = ConfirmForm()
    if form.validate_on_submit():
        delete_clients(OAuth2Client.id == client.id)
        audit.record("client_deleted", user=g.user, client_id=client.client_id, client_name=client.client_name)
        db.session.commit()
        flash(f"Client {client.client_name} deleted.")
        return redirect(url_for("clients.index"))
    return render_template("clients/delete.html", client=client, form=form)


def _redirect_to_new_secret(client: OAuth2Client, secret: str | None):
    """Commit the caller's change with the new secret stashed for one view, and redirect
    (303) to that view; without a secret, to the client's page. Reloading the page redirected
    to repeats nothing."""
    if secret is None:
        db.session.commit()
        return redirect(url_for("clients.show", client_id=client.client_id), 303)
    token = stash(secret, client, g.user)
    db.session.commit()
    return redirect(url_for("clients.show_secret", client_id=client.client_id, token=token), 303)


def client_form_data(client: OAuth2Client) -> dict:
    """The client form filled with the client's settings."""
    return {
        "client_name": client.client_name,
        "client_uri": client.client_uri,
        "logo_uri": client.logo_uri,
        "redirect_uris": "\n".join(client.redirect_uris),
        "post_logout_redirect_uris": "\n".join(client.client_metadata.get("post_logout_redirect_uris", [])),
        "allowed_origins": "\n".join(client.client_metadata.get("allowed_origins", [])),
        "grant_types": client.grant_types,
        "response_types": client.response_types,
        "scope": client.scope,
        "token_endpoint_auth_method": client.token_endpoint_auth_method,
        "contacts": "\n".join(client.contacts),
        **{f"{kind}_lifetime": client.client_metadata.get(f"{kind}_lifetime") or ""
           for kind in ("access_token", "refresh_token", "id_token")},
        **{field: client.client_metadata.get(field, "")
           for field in ("id_token_signed_response_alg", "userinfo_signed_response_alg")},
        "strict_auth_method": client.strict_auth_method,
        "require_mfa": client.require_mfa,
        "require_pushed_authorization_requests":
            client.client_metadata.get("require_pushed_authorization_requests") is True,
        "request_object_signing_alg": client.client_metadata.get("request_object_signing_alg", ""),
        "dpop_bound_access_tokens": client.client_metadata.get("dpop_bound_access_tokens") is True,
        "require_verified_email": client.require_verified_email,
        "jwks_uri": client.client_metadata.get("jwks_uri"),
        "jwks": json.dumps(client.client_metadata["jwks"], indent=2) if client.client_metadata.get("jwks") else "",
        "backchannel_logout_uri": client.client_metadata.get("backchannel_logout_uri"),
        "backchannel_logout_session_required": bool(client.client_metadata.get("backchannel_logout_session_required")),
        "frontchannel_logout_uri": client.client_metadata.get("frontchannel_logout_uri"),
        "frontchannel_logout_session_required": bool(client.client_metadata.get("frontchannel_logout_session_required")),
    }
