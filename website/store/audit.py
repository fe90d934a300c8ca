"""The audit log: one ``record`` function for every security-relevant event.

An event is written in the caller's database session, so it commits (or rolls back) together
with what it records: a token issued and its ``token_issued`` event are one transaction.
Callers with nothing else to commit call ``db.session.commit()`` after ``record``.

Event names in use (add new ones freely; the admin page lists whatever is stored):
``login_succeeded``, ``login_failed``, ``login_locked``, ``logout``, ``consent_granted``,
``consent_denied``, ``consent_revoked``, ``token_issued``, ``token_revoked``,
``token_family_revoked``, ``client_created``, ``client_updated``, ``client_deleted``,
``client_secret_rotated``, ``key_rotated``, ``api_client_granted``, ``api_client_revoked``, ``account_unlocked``,
``admin_granted``, ``admin_revoked``, ``device_authorized``, ``device_denied``, ``device_code_failed``,
``pushed_request_reused``; second factors (services/mfa.py): ``mfa_factor_added``,
``mfa_factor_removed``, ``mfa_used``, ``mfa_failed``, ``mfa_locked``, ``mfa_recovery_code_used``,
``mfa_recovery_codes_generated``, ``mfa_reset``, ``mfa_grace_started``, ``mfa_policy_changed``,
``login_refused`` (the password grant, for an account that needs a second factor), ``mail_failed``;
the account mails (services/accounts.py): ``signup``, ``email_verification_sent``,
``email_verified``, ``email_change_requested``, ``email_changed``, ``password_reset_requested``,
``password_reset``, ``invitation_sent``, ``invitation_accepted``, ``account_link_refused``,
``login_unverified``; the mail queue (services/queued_mail.py): ``queued_mail_sent``,
``queued_mail_failed``, ``queued_mail_given_up``; upstream sign-in: ``upstream_added``, ``upstream_removed``,
``upstream_login_failed`` (with ``reason``), ``upstream_login_refused``, ``upstream_link_proposed``,
``upstream_linked`` (with ``proof``), ``upstream_link_failed``, ``upstream_link_refused``,
``upstream_unlinked``, ``upstream_logout_failed``, ``user_created`` (``via``: upstream).
"""

from flask import has_request_context, request

from website.extensions import db
from website.http.metrics import count_event
from website.models.audit import AuditEvent
from website.models.users import User


def record(event: str, user: User | None = None, client_id: str | None = None, **detail) -> AuditEvent:
    """Add an audit event to the current transaction and return it."""
    item = AuditEvent(**_values(event, user, client_id, detail))
    db.session.add(item)
    return item


def row(event: str, user: User | None = None, client_id: str | None = None, **detail) -> dict:
    """The values of an audit event's row, for a hot path that writes it itself, as one
    INSERT with what it records (store/tokens.py ``store_token``): the same row as ``record``
    writes, without the ORM's unit of work for an object nothing reads again."""
    return _values(event, user, client_id, detail)


def _values(event: str, user: User | None, client_id: str | None, detail: dict) -> dict:
    count_event(event, detail)
    return {
        "event": event[:64],
        "user_id": user.id if user is not None else None,
        "username": user.username if user is not None else None,
        "client_id": client_id[:48] if client_id else None,
        "ip_address": (request.remote_addr or "")[:45] or None if has_request_context() else None,
        "detail": {key: _plain(value) for key, value in detail.items()},
    }


def _plain(value):
    """Keep the detail JSON-serialisable and short."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value][:50]
    return str(value)[:500]
