"""Blueprint: signing in through an upstream provider ("Continue with ..."), confirming a link
with the local password or a passkey of the account, linking and unlinking on the account page, and the admin's list of
upstreams."""

import json
from urllib.parse import parse_qs, urlsplit

from flask import Blueprint, abort, flash, g, jsonify, redirect, render_template, request, session, url_for

from website.extensions import db
from website.forms import ConfirmForm, LinkUpstreamForm, UpstreamEditForm, UpstreamForm
from website.models.base import now
from website.models.upstreams import UpstreamIdentity, has_password
from website.models.users import User
from website.oauth2.acr import requested_acr
from website.services import passkeys
from website.services.mfa import after_password
from website.services.sessions import log_in
from website.services.upstreams import (
    CALLBACK_PATH,
    PRESETS,
    SIGNED_OUT_PATH,
    UpstreamFailure,
    UpstreamSettingsError,
    begin,
    can_passkey_prove,
    can_unlink,
    finish,
    finish_upstream_logout,
    link_pending,
    parse_claim_map,
    pending_link,
    redirect_uri,
    resolve,
    save_upstream,
    upstream_settings,
)
from website.store import audit, throttle
from website.store.upstreams import all_upstreams, find_identity, find_upstream, identities_of
from website.views.admin import admin_required
from website.views.auth import login_required, safe_next
from website.views.logout import signed_out_page
from website.store.clients import query_client
from website.views.passkeys import json_body, options_response, problem, start_refused

bp = Blueprint("upstream", __name__)

#: The session key of an upstream identity waiting for the person to prove the local account.
PENDING = "upstream_link"

NOTHING_TO_LINK = "There is nothing to link (it took too long, or it was done). Start again from the log-in page."


@bp.app_context_processor
def upstream_templates():
    """What the log-in, sign-up and account pages' includes read."""
    return {"login_upstreams": all_upstreams, "linked_identities": identities_of}


def _failure_page(upstream, failure: UpstreamFailure, next_url: str | None):
    """The page for a sign-in that failed, audited, with the way back to the local log-in."""
    audit.record("upstream_login_failed", user=g.user, upstream=upstream.name if upstream else None,
                 reason=failure.reason, message=failure.message)
    db.session.commit()
    return render_template("auth/upstream_error.html", upstream=upstream, message=failure.message,
                           next_url=next_url), failure.status


def _acr_values(next_url: str) -> str | None:
    """The acr values the authorization request the person will continue asks for (its
    acr_values, or the values of an acr claim in its claims parameter), if any."""
    query = {key: values[0] for key, values in parse_qs(urlsplit(next_url).query).items()}
    try:
        claims = json.loads(query.get("claims") or "{}")
    except ValueError:
        claims = {}
    id_token = claims.get("id_token") if isinstance(claims, dict) else None
    acr_claim = id_token.get("acr") if isinstance(id_token, dict) else None
    asked = requested_acr(query, acr_claim if isinstance(acr_claim, dict) else None)
    values = [value for value in asked.values if isinstance(value, str)]
    return " ".join(values) or None


@bp.route("/login/with/<name>")
def start(name: str):
    """Send the person to the upstream to sign in, then back to ``next``."""
    upstream = find_upstream(name)
    next_url = safe_next(request.args.get("next"))
    if upstream is None:
        return _failure_page(None, UpstreamFailure("unknown_upstream", "There is no such sign-in provider here.", 404),
                             next_url)
    try:
        url = begin(upstream, {"intent": "login", "next": next_url}, login_hint=request.args.get("login_hint"),
                    acr_values=_acr_values(next_url))
    except UpstreamFailure as failure:
        return _failure_page(upstream, failure, next_url)
    return redirect(url)


@bp.route(CALLBACK_PATH.replace("{name}", "<name>"))
def callback(name: str):
    """The upstream's answer: sign in, propose a link, or say why not."""
    upstream = find_upstream(name)
    if upstream is None:
        return _failure_page(None, UpstreamFailure("unknown_upstream", "There is no such sign-in provider here.", 404),
                             None)
    try:
        assertion = finish(upstream, request.args)
    except UpstreamFailure as failure:
        return _failure_page(upstream, failure, getattr(failure, "next_url", None))
    next_url = safe_next(assertion.data.get("next"))
    outcome = resolve(upstream, assertion, g.user)
    if outcome.refusal:
        db.session.commit()
        return render_template("auth/upstream_error.html", upstream=upstream, message=outcome.refusal,
                               next_url=next_url), 403
    if outcome.link is not None:
        audit.record("upstream_link_proposed", user=outcome.link, upstream=upstream.name, subject=assertion.subject)
        db.session.commit()
        session[PENDING] = pending_link(assertion, upstream, outcome.link)
        return redirect(url_for("upstream.link"))
    user = outcome.user
    if assertion.data.get("intent") == "link":
        db.session.commit()
        flash(f"{upstream.display_name} is linked: you can sign in with it.")
        return redirect(url_for("account.index"))
    audit.record("login_succeeded", user=user, method="upstream", upstream=upstream.name, created=outcome.created)
    db.session.commit()
    log_in(user, amr=("fed",), federation={"upstream": upstream.name, "acr": assertion.acr,
                                           "id_token": assertion.id_token})
    return redirect(next_url)


def _pending_link():
    """The link waiting in the session, with its account and upstream; Nones when there is
    none (or it expired, or either is gone)."""
    pending = session.get(PENDING)
    if isinstance(pending, dict) and pending.get("expires", 0) > now():
        user = db.session.get(User, pending.get("user_id"))
        upstream = find_upstream(pending.get("upstream"))
        if user is not None and upstream is not None:
            return pending, user, upstream
    session.pop(PENDING, None)
    return None, None, None


def _link_passkey(pending: dict, user: User, upstream, amr: tuple[str, ...]) -> str | None:
    """Link the identity to the account the person just proved with a passkey (it needs no
    second factor) and sign them in; where to go next, or None (and nothing linked) when that
    identity was linked meanwhile."""
    if (signed_in_with := link_pending(pending, user, "passkey")) is None:
        session.pop(PENDING, None)
        db.session.commit()
        return None
    audit.record("login_succeeded", user=user, method="upstream", upstream=upstream.name)
    db.session.commit()
    log_in(user, amr=("fed", *amr), federation=signed_in_with)
    return safe_next(pending.get("next"))


def _linked_meanwhile(upstream) -> str:
    return f"That {upstream.display_name} account was linked meanwhile."


@bp.route("/login/link", methods=["GET", "POST"])
def link():
    """Link the upstream identity to the account with the same verified address, once the
    person gives that account's password and then, as at the log-in, its second factor (or
    uses one of its passkeys: link_passkey)."""
    pending, user, upstream = _pending_link()
    if user is None:
        return render_template("auth/upstream_error.html", upstream=None, next_url=None,
                               message=NOTHING_TO_LINK), 400
    form = LinkUpstreamForm()
    status = 200
    page = {"form": form, "user": user, "upstream": upstream, "pending": pending,
            "offer_passkey": can_passkey_prove(user), "offer_password": has_password(user)}
    if form.validate_on_submit():
        attempt = throttle.begin_attempt(*throttle.login_subjects(user.username))
        if wait := attempt.wait:
            form.password.errors.append(throttle.wait_message(wait))
            audit.record("login_locked", attempted_username=user.username)
            db.session.commit()
            return render_template("auth/upstream_link.html", **page), 429, {"Retry-After": str(wait)}
        if has_password(user) and user.check_password(form.password.data) and user.disabled_at is None:
            attempt.succeeded()
            if find_identity(upstream, pending["subject"]) is not None:
                session.pop(PENDING, None)
                db.session.commit()
                return render_template("auth/upstream_error.html", upstream=upstream, next_url=None,
                                       message=_linked_meanwhile(upstream)), 409
            audit.record("login_succeeded", user=user, method="upstream", upstream=upstream.name)
            db.session.commit()
            # Linked once the sign-in is complete: a second factor first, when the account has
            # one or the policy asks for one (services/mfa.py), as at the log-in page.
            next_url = safe_next(pending.get("next"))
            if step := after_password(user, next_url, first=("fed", "pwd"), link=pending):
                return redirect(url_for(step))
            return redirect(next_url)
        wait = attempt.failed()
        audit.record("upstream_link_failed", user=user, upstream=upstream.name, reason="wrong password")
        db.session.commit()
        form.password.errors.append(throttle.wait_message(wait) if wait else "That is not the account's password.")
        status = 429 if wait else 400
    elif form.errors:
        status = 400
    return render_template("auth/upstream_link.html", **page), status


@bp.post("/login/link/passkey/options")
def link_passkey_options():
    """Start proving the account to link with one of its passkeys (counted per address like a
    passwordless sign-in: each start stores a challenge)."""
    if refused := start_refused():
        return refused
    pending, user, upstream = _pending_link()
    if user is None:
        return problem(NOTHING_TO_LINK)
    try:
        return options_response(passkeys.authentication_options(user, passkeys.LINK))
    except passkeys.PasskeyError as error:
        return problem(str(error))


@bp.post("/login/link/passkey")
def link_passkey():
    """Verify a passkey of the account (not of another one), then link as after the password."""
    pending, user, upstream = _pending_link()
    if user is None:
        return problem(NOTHING_TO_LINK)
    try:
        amr = passkeys.prove_account(user, json_body().get("credential"))
    except passkeys.PasskeyError as error:
        audit.record("upstream_link_failed", user=user, upstream=upstream.name, reason="passkey refused")
        db.session.commit()
        return problem(str(error))
    if (next_url := _link_passkey(pending, user, upstream, amr)) is None:
        return problem(_linked_meanwhile(upstream), 409)
    response = jsonify(redirect=next_url)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/account/sign-in/<name>/link", methods=["POST"])
@login_required
def link_from_account(name: str):
    """Link an upstream account to the signed-in account (a round trip to the upstream)."""
    upstream = find_upstream(name)
    if upstream is None or not ConfirmForm().validate_on_submit():
        abort(400)
    try:
        url = begin(upstream, {"intent": "link", "user_id": g.user.id, "next": url_for("account.index")})
    except UpstreamFailure as failure:
        return _failure_page(upstream, failure, url_for("account.index"))
    return redirect(url)


@bp.route("/account/sign-in/<int:identity_id>/unlink", methods=["POST"])
@login_required
def unlink(identity_id: int):
    """Unlink an upstream identity, unless it is the last way to sign in."""
    identity = db.session.get(UpstreamIdentity, identity_id)
    if identity is None or identity.user_id != g.user.id or not ConfirmForm().validate_on_submit():
        abort(404)
    if not can_unlink(g.user):
        flash(f"{identity.upstream.display_name} is your only way to sign in, so it stays linked.", "error")
        return redirect(url_for("account.index")), 303
    audit.record("upstream_unlinked", user=g.user, upstream=identity.upstream.name, subject=identity.subject)
    db.session.delete(identity)
    db.session.commit()
    flash(f"{identity.upstream.display_name} is unlinked.")
    return redirect(url_for("account.index"))


@bp.route(SIGNED_OUT_PATH)
def signed_out():
    """Where an upstream sends the browser back after ending its session too: on to where the
    log-out here was going (the state is taken once; without it, the signed-out page)."""
    going = finish_upstream_logout(request.args.get("state"))
    if going is None:
        return signed_out_page([])
    if going.get("continue"):
        if going["continue"] == url_for("auth.index"):
            flash("You are signed out.")
        return redirect(going["continue"])
    return signed_out_page([], client=query_client(going.get("client_id") or ""))


# --- Admin ------------------------------------------------------------------------------------

@bp.route("/admin/upstreams", methods=["GET", "POST"])
@admin_required
def admin_list():
    """The upstream providers, and the form to add one."""
    form = UpstreamForm()
    status = 200
    if form.validate_on_submit():
        try:
            values = upstream_settings(
                form.name.data, form.client_id.data, form.client_secret.data, preset=form.preset.data or None,
                display_name=form.display_name.data, issuer=form.issuer.data, tenant=form.tenant.data,
                scope=form.scope.data, kind=None if form.preset.data else form.kind.data,
                authorize_url=form.authorize_url.data, token_url=form.token_url.data,
                userinfo_url=form.userinfo_url.data, emails_url=form.emails_url.data,
                claim_map=parse_claim_map(form.claim_map.data or ""),
                overwrite_claims=[c for c, on in (("name", form.overwrite_name.data),
                                                  ("email", form.overwrite_email.data),
                                                  ("groups", form.overwrite_groups.data)) if on],
                end_upstream_session=form.end_upstream_session.data)
            if find_upstream(values["name"]) is not None:
                raise UpstreamSettingsError("An upstream of that name exists; choose another name.", "name")
        except UpstreamSettingsError as error:
            getattr(form, error.field_name if error.field_name in form else "name").errors.append(str(error))
            status = 400
        else:
            upstream = save_upstream(values)
            db.session.flush()
            audit.record("upstream_added", user=g.user, upstream=upstream.name, issuer=upstream.issuer)
            db.session.commit()
            flash(f"Added {upstream.display_name}. Register the redirect URI {redirect_uri(upstream.name)} there.")
            return redirect(url_for("upstream.admin_list"))
    elif form.errors:
        status = 400
    return render_template("admin/upstreams.html", form=form, upstreams=all_upstreams(), presets=PRESETS,
                           redirect_uri=redirect_uri, delete_form=ConfirmForm(formdata=None)), status


@bp.route("/admin/upstreams/<name>", methods=["GET", "POST"])
@admin_required
def admin_edit(name: str):
    """Change an upstream's scope, claim mapping, overwritable claims, logout option, or
    rotate its client secret; linked identities stay."""
    upstream = find_upstream(name)
    if upstream is None:
        abort(404)
    form = UpstreamEditForm(obj=None if request.method == "POST" else upstream)
    if request.method == "GET":
        form.claim_map.data = "\n".join(f"{local}={source}" for local, source in (upstream.claim_map or {}).items()
                                        if local != source)
        for claim in ("name", "email", "groups"):
            getattr(form, f"overwrite_{claim}").data = claim in (upstream.overwrite_claims or [])
    status = 200
    if form.validate_on_submit():
        try:
            values = upstream_settings(
                upstream.name, upstream.client_id, form.client_secret.data or None,
                display_name=form.display_name.data or upstream.display_name, issuer=upstream.issuer,
                scope=form.scope.data, kind=upstream.kind, authorize_url=upstream.authorize_url,
                token_url=upstream.token_url, userinfo_url=upstream.userinfo_url, emails_url=upstream.emails_url,
                claim_map=parse_claim_map(form.claim_map.data or ""),
                overwrite_claims=[c for c in ("name", "email", "groups") if getattr(form, f"overwrite_{c}").data],
                end_upstream_session=form.end_upstream_session.data, require_secret=False)
        except UpstreamSettingsError as error:
            getattr(form, error.field_name if error.field_name in form else "scope").errors.append(str(error))
            status = 400
        else:
            values["preset"] = upstream.preset
            new_secret = bool(values["secret"])
            save_upstream(values, upstream)
            audit.record("upstream_updated", user=g.user, upstream=upstream.name, new_secret=new_secret,
                         scope=upstream.scope, overwrite_claims=upstream.overwrite_claims,
                         end_upstream_session=upstream.end_upstream_session)
            db.session.commit()
            flash(f"Saved {upstream.display_name}." + (" The new client secret is in use." if new_secret else ""))
            return redirect(url_for("upstream.admin_edit", name=upstream.name))
    elif form.errors:
        status = 400
    return render_template("admin/upstream_edit.html", form=form, upstream=upstream,
                           redirect_uri=redirect_uri), status


@bp.route("/admin/upstreams/<name>/delete", methods=["POST"])
@admin_required
def admin_delete(name: str):
    """Remove an upstream; its linked identities go with it (accounts stay)."""
    upstream = find_upstream(name)
    if upstream is None or not ConfirmForm().validate_on_submit():
        abort(404)
    audit.record("upstream_removed", user=g.user, upstream=upstream.name)
    db.session.delete(upstream)
    db.session.commit()
    flash(f"Removed {upstream.display_name}.")
    return redirect(url_for("upstream.admin_list"))
