"""Blueprint: pages for administrators (User.is_admin): the audit log."""

import functools

from flask import Blueprint, abort, g, render_template, request
from sqlalchemy import func, or_, select

from .auth import login_required
from .models import AuditEvent, db

bp = Blueprint("admin", __name__, url_prefix="/admin")

#: Audit events shown per page.
PAGE_SIZE = 50


def admin_required(view):
    """Let only signed-in administrators through; others get 403."""

    @functools.wraps(view)
    @login_required
    def wrapped_view(**kwargs):
        if not g.user.is_admin:
            abort(403, "Only administrators can see this page.")
        return view(**kwargs)

    return wrapped_view


def _like_pattern(text: str) -> str:
    # The search is a plain substring: LIKE's wildcards in it are matched literally.
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


@bp.route("/audit")
@admin_required
def audit():
    """The audit log, newest first, with paging and a search over event, user, client and address."""
    query = request.args.get("q", "").strip()[:200]
    page = request.args.get("page", "1")
    page = max(1, int(page)) if page.isdigit() and len(page) < 7 else 1
    conditions = []
    if query:
        pattern = _like_pattern(query.lower())
        conditions.append(or_(*(
            func.lower(column).like(pattern, escape="\\")
            for column in (AuditEvent.event, AuditEvent.username, AuditEvent.client_id, AuditEvent.ip_address)
        )))
    total = db.session.scalar(select(func.count()).select_from(AuditEvent).where(*conditions))
    events = db.session.scalars(
        select(AuditEvent).where(*conditions).order_by(AuditEvent.id.desc())
        .limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE)
    ).all()
    pages = max(1, -(-total // PAGE_SIZE))
    return render_template("admin/audit.html", events=events, query=query, page=page, pages=pages, total=total)
