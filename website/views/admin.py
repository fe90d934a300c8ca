"""Blueprint: the admin area: every user (make or revoke admin, reset second factors, delete),
every client, and the audit log."""

import functools
import json
from datetime import datetime, timedelta, timezone

from flask import Blueprint, Response, abort, flash, g, redirect, render_template, request, stream_with_context, url_for
from sqlalchemy import func, or_, select

from website.extensions import db
from website.forms import BrandingForm, ConfirmForm, InviteForm
from website.models.audit import AuditEvent
from website.models.clients import OAuth2Client
from website.models.usernames import canonical_username
from website.models.users import User
from website.services import accounts
from website.services.mail import MailError
from website.services.audit_sentences import client_names, sentence
from website.services.mfa import reset_factors
from website.services.mfa import status as mfa_status
from website.store import audit as audit_log
from website.store import throttle
from website.store.branding import branding, save_branding
from website.store.links import pending_invitations
from website.views.auth import login_required

bp = Blueprint("admin", __name__, url_prefix="/admin")


PER_PAGE = 20


#: Audit events shown per page.
AUDIT_PAGE_SIZE = 25


def admin_required(view):
    """Let only administrators in; others get a 403 page."""

    @functools.wraps(view)
    @login_required
    def wrapped_view(**kwargs):
        if not g.user.is_admin:
            abort(403)
        return view(**kwargs)

    return wrapped_view


#: No list has this many pages; a larger ?page= is a 404 before it reaches SQL.
MAX_PAGE = 1_000_000


def search_term() -> str:
    """The list's search text from ``?q=``, trimmed to a sane length."""
    return request.args.get("q", "").strip()[:100]


def paginate(statement):
    """One page of rows from ``?page=``; a page past the end or not a number is a 404."""
    page = request.args.get("page", 1, type=int)
    if page is not None and page > MAX_PAGE:
        abort(404)  # far past any end, and past what SQL's OFFSET takes (a 500 on PostgreSQL)
    return db.paginate(statement, page=page, per_page=PER_PAGE, max_per_page=PER_PAGE)


@bp.route("/")
@admin_required
def index():
    """The admin area starts at the user list."""
    return redirect(url_for("admin.users"))


@bp.route("/users")
@admin_required
def users():
    """List users, newest first, optionally filtered by username or email."""
    q = search_term()
    statement = select(User).order_by(User.id.desc())
    if q:
        statement = statement.where(
            or_(User.username_canonical.contains(canonical_username(q), autoescape=True),
                User.email.icontains(q, autoescape=True))
        )
    return render_users(page=paginate(statement), q=q)


def render_users(invite_form=None, status=200, **context):
    """The user list with the invitation form and the invitations not yet accepted."""
    context.setdefault("page", paginate(select(User).order_by(User.id.desc())))
    context.setdefault("q", "")
    invite_form = invite_form or InviteForm(formdata=None)
    return render_template("admin/users.html", form=ConfirmForm(), invite_form=invite_form,
                           invitations=pending_invitations(), **context), status


@bp.route("/invitations", methods=["POST"])
@admin_required
def invite():
    """Mail an invitation to create an account (works under every SIGNUP_POLICY)."""
    form = InviteForm()
    if form.validate_on_submit():
        if (existing := accounts.existing_account_with_email(form.email.data)) is not None:
            form.email.errors.append(f"{existing.username} already has an account with this address.")
        else:
            try:
                accounts.send_invitation(form.email.data, by=g.user.username)
            except MailError as error:
                db.session.rollback()
                form.form_errors.append(str(error))
            else:
                db.session.commit()
                flash(f"Invitation sent to {form.email.data}. It works for "
                      f"{accounts.in_words(accounts.lifetime('invite'))}.")
                return redirect(url_for("admin.users"))
    return render_users(invite_form=form, status=503 if form.form_errors else 400)


@bp.route("/users/<int:user_id>/admin", methods=["GET", "POST"])
@admin_required
def set_admin(user_id: int):
    """Make a user an administrator after asking (a POST without the confirmation page's
    ``confirm`` only shows that page), or take that right away."""
    user = db.get_or_404(User, user_id)
    form = ConfirmForm()
    back = request.values.get("back")
    back = back if _is_admin_path(back) else url_for("admin.users")
    if request.method == "POST" and not form.validate_on_submit():
        abort(400)
    make_admin = request.form.get("make_admin") == "1"
    if request.method == "GET" or (make_admin and not form.confirm.data):
        if user.is_admin:
            flash(f"{user.username} is already an administrator.")
            return redirect(back)
        return render_template("admin/make_admin.html", user=user, back=back, form=form)
    if user.id == g.user.id and not make_admin:
        # Otherwise the last administrator could lock everyone out of this area.
        flash("You cannot revoke your own admin rights; ask another administrator.", "error")
    else:
        if user.is_admin != make_admin:
            user.is_admin = make_admin
            audit_log.record("admin_granted" if make_admin else "admin_revoked", user=user,
                             by=g.user.username)
        db.session.commit()
        flash(f"{user.username} is {'now' if make_admin else 'no longer'} an administrator.")
    return redirect(back)


@bp.route("/users/<int:user_id>/unlock", methods=["POST"])
@admin_required
def unlock_user(user_id: int):
    """Forget the user's failed log-ins from every address, so a lockout ends now."""
    user = db.get_or_404(User, user_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    removed = throttle.unlock_account(user.username)
    audit_log.record("account_unlocked", user=user, by=g.user.username, counters=removed)
    db.session.commit()
    flash(f"{user.username} can log in again: failed log-ins forgotten.")
    back = request.form.get("back")
    return redirect(back if _is_admin_path(back) else url_for("admin.users"))


@bp.route("/users/<int:user_id>/reset-mfa", methods=["GET", "POST"])
@admin_required
def reset_mfa(user_id: int):
    """Ask, then remove every second factor of a person who lost theirs (audited, mailed)."""
    user = db.get_or_404(User, user_id)
    # Back to the page it was asked from (the user list or the person's page), the form's
    # POST keeping the query string.
    back = request.args.get("back")
    back = back if _is_admin_path(back) else url_for("admin.users")
    if user.id == g.user.id:
        flash("You cannot reset your own second factors here; use your security page.", "error")
        return redirect(back)
    form = ConfirmForm()
    if form.validate_on_submit():
        removed = reset_factors(user, g.user)
        flash(f"{user.username}'s second factors were reset." if removed
              else f"{user.username} had no second factor; nothing to reset.")
        return redirect(back)
    return render_template("admin/reset_mfa.html", user=user, status=mfa_status(user), form=form, back=back)


@bp.route("/clients")
@admin_required
def clients():
    """List every client, newest first, optionally filtered by name or client id."""
    q = search_term()
    statement = select(OAuth2Client).order_by(OAuth2Client.id.desc())
    if q:
        statement = statement.where(or_(
            OAuth2Client.client_name.icontains(q, autoescape=True),
            OAuth2Client.client_id.icontains(q, autoescape=True),
        ))
    return render_template("admin/clients.html", page=paginate(statement), q=q)


#: How many audit events one exported file holds at most (newest first).
AUDIT_EXPORT_LIMIT = 100_000


def _audit_filters() -> tuple[list, dict]:
    """The audit log's filters from the query string (person, client, kind, time range, free
    text), as SQL conditions and as the values to show back in the form."""
    args = {key: request.args.get(key, "").strip()[:200] for key in ("q", "person", "client", "kind", "since", "until")}
    conditions = []
    if args["q"]:
        # A plain substring, case-insensitive, with LIKE's wildcards matched literally.
        conditions.append(or_(*(
            column.icontains(args["q"], autoescape=True)
            for column in (AuditEvent.event, AuditEvent.username, AuditEvent.client_id, AuditEvent.ip_address)
        )))
    if args["person"]:
        conditions.append(AuditEvent.username.icontains(args["person"], autoescape=True))
    if args["client"]:
        named = select(OAuth2Client.client_id).where(OAuth2Client.client_name.icontains(args["client"], autoescape=True))
        conditions.append(or_(AuditEvent.client_id == args["client"], AuditEvent.client_id.in_(named)))
    if args["kind"]:
        conditions.append(AuditEvent.event == args["kind"])
    for key, compare in (("since", AuditEvent.created_at.__ge__), ("until", AuditEvent.created_at.__lt__)):
        if args[key]:
            try:
                day = datetime.strptime(args[key], "%Y-%m-%d").replace(tzinfo=timezone.utc)
            except ValueError:
                abort(400, description=f"'{key}' must be a date such as 2026-12-01.")
            conditions.append(compare(day + timedelta(days=1) if key == "until" else day))
    return conditions, args


@bp.route("/audit")
@admin_required
def audit():
    """The audit log in sentences, newest first, filtered by person, client, kind and time."""
    conditions, filters = _audit_filters()
    page = request.args.get("page", "1")
    # isascii: str.isdigit() also admits digits such as "²" that int() refuses.
    page = max(1, int(page)) if page.isascii() and page.isdigit() and len(page) < 7 else 1
    total = db.session.scalar(select(func.count()).select_from(AuditEvent).where(*conditions))
    events = db.session.scalars(
        select(AuditEvent).where(*conditions).order_by(AuditEvent.id.desc())
        .limit(AUDIT_PAGE_SIZE).offset((page - 1) * AUDIT_PAGE_SIZE)
    ).all()
    names = client_names(events)
    pages = max(1, -(-total // AUDIT_PAGE_SIZE))
    kinds = db.session.scalars(select(AuditEvent.event).distinct().order_by(AuditEvent.event)).all()
    active = {key: value for key, value in filters.items() if value}
    return render_template("admin/audit.html", rows=[(event, sentence(event, names)) for event in events],
                           filters=filters, active=active, kinds=kinds, page=page, pages=pages, total=total)


@bp.route("/audit/<int:event_id>")
@admin_required
def audit_event(event_id: int):
    """One audit event with every raw value."""
    event = db.session.get(AuditEvent, event_id) or abort(404)
    return render_template("admin/audit_event.html", event=event, text=sentence(event, client_names([event])))


@bp.route("/audit.jsonl")
@admin_required
def audit_export():
    """The filtered audit log as JSON lines (newest first), for tools and archives."""
    conditions, _ = _audit_filters()
    statement = (select(AuditEvent).where(*conditions).order_by(AuditEvent.id.desc())
                 .limit(AUDIT_EXPORT_LIMIT).execution_options(yield_per=500))

    def lines():
        # A server-side cursor on PostgreSQL (yield_per): closed even when the download stops early.
        rows = db.session.scalars(statement)
        try:
            for event in rows:
                yield json.dumps({"id": event.id, "time": event.created_at.isoformat(), "event": event.event,
                                  "user_id": event.user_id, "username": event.username,
                                  "client_id": event.client_id, "ip_address": event.ip_address,
                                  "detail": event.detail or {}}) + "\n"
        finally:
            rows.close()

    audit_log.record("audit_exported", user=g.user, filters={k: v for k, v in request.args.items()})
    db.session.commit()
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return Response(stream_with_context(lines()), mimetype="application/x-ndjson", headers={
        "Content-Disposition": f'attachment; filename="audit-{stamp}.jsonl"', "Cache-Control": "no-store"})


def _is_admin_path(target: str | None) -> bool:
    # Only a path inside the admin area, so a form cannot send people elsewhere.
    return bool(target) and target.startswith("/admin/") and "//" not in target and "\\" not in target


@bp.route("/branding", methods=["GET", "POST"])
@admin_required
def branding_page():
    """The site's name, logo, primary colour and support address, for every page and mail."""
    brand = branding()
    form = BrandingForm(data={"site_name": brand.name, "logo_url": brand.logo_url or "",
                              "primary_color": brand.primary_color, "support_email": brand.support_email or ""})
    if form.validate_on_submit():
        values = {"SITE_NAME": form.site_name.data, "SITE_LOGO_URL": form.logo_url.data or None,
                  "SITE_PRIMARY_COLOR": form.primary_color.data.lower(),
                  "SITE_SUPPORT_EMAIL": form.support_email.data or None}
        save_branding(values)
        audit_log.record("branding_changed", user=g.user, **{key.lower(): value for key, value in values.items()})
        db.session.commit()
        flash("Branding saved: every page and mail uses it now.")
        return redirect(url_for("admin.branding_page"))
    return render_template("admin/branding.html", form=form), 400 if form.errors else 200
