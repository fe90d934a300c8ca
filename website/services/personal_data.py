"""A person's own data: everything the provider keeps about them, as one JSON document, and
deleting their account."""

from sqlalchemy import select

from website.extensions import db
from website.models.audit import AuditEvent
from website.models.base import now
from website.models.grants import Token
from website.models.users import User
from website.services.consent import list_consents
from website.services.sessions import clear_browser_session, session_records
from website.store import audit
from website.store.users import delete_user, owned_clients

#: Audit entries the download carries at most (the newest).
AUDIT_ENTRIES_KEPT = 5000


def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None


def _token_record(token: Token, stamp: int) -> dict:
    refresh_live = bool(token.refresh_token_hash) and not token.refresh_token_revoked_at and (
        token.refresh_token_expires_at is None or token.refresh_token_expires_at > stamp)
    return {
        "scope": token.scope, "audience": token.audience, "issued_at": token.issued_at,
        "expires_at": token.expires_at,
        "revoked_at": token.access_token_revoked_at or None,
        "has_refresh_token": bool(token.refresh_token_hash),
        "refresh_token_active": refresh_live,
    }


def connected_apps(user: User) -> list[dict]:
    """Each client the person approved or holds tokens at: the consent and the tokens (no
    token values: only their hashes are kept)."""
    stamp = now()
    apps: dict[str, dict] = {}
    for consent in list_consents(user):
        apps[consent.client_id] = {
            "client_id": consent.client_id,
            "client_name": consent.client.client_name if consent.client else None,
            "consent": {"scope": consent.scope, "audiences": consent.audience_list(),
                        "allowed_at": _iso(consent.created_at), "updated_at": _iso(consent.updated_at)},
            "tokens": [],
        }
    tokens = db.session.scalars(select(Token).where(Token.user_id == user.id).order_by(Token.issued_at, Token.id))
    for token in tokens:
        app = apps.setdefault(token.client_id, {
            "client_id": token.client_id,
            "client_name": token.client.client_name if token.client else None,
            "consent": None, "tokens": []})
        app["tokens"].append(_token_record(token, stamp))
    return list(apps.values())


def audit_entries(user: User) -> list[dict]:
    """The audit log's entries about the person (the newest AUDIT_ENTRIES_KEPT), oldest first."""
    events = db.session.scalars(select(AuditEvent).where(AuditEvent.user_id == user.id)
                                .order_by(AuditEvent.id.desc()).limit(AUDIT_ENTRIES_KEPT)).all()
    return [{"at": _iso(e.created_at), "event": e.event, "client_id": e.client_id,
             "ip_address": e.ip_address, "detail": e.detail or {}} for e in reversed(events)]


def personal_data(user: User) -> dict:
    """Everything about the person, for "Download my data"."""
    return {
        "profile": {
            "sub": user.sub, "username": user.username, "email": user.email,
            "email_verified": bool(user.email_verified), "name": user.name, "is_admin": bool(user.is_admin),
            "created_at": _iso(user.created_at), "updated_at": _iso(user.updated_at),
        },
        "sessions": session_records(user),
        "connected_apps": connected_apps(user),
        "owned_clients": [{"client_id": c.client_id, "client_name": c.client_name,
                           "redirect_uris": c.redirect_uris} for c in owned_clients(user)],
        "audit_entries": audit_entries(user),
        "exported_at": now(),
    }


def delete_own_account(user: User) -> list[str]:
    """Delete the person's account and the clients they own; return those clients' names.
    Every session ends (the account's session rows go with it), this browser's too.
    Committed here."""
    names = [c.client_name or c.client_id for c in owned_clients(user)]
    audit.record("account_deleted", user=user, by=user.username, clients=names)
    delete_user(user)
    db.session.commit()
    clear_browser_session()
    return names
