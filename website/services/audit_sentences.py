"""The audit log in sentences for people: "alice signed in to Team Wiki". Each event kind has
a sentence built from the event's person, client and details; a kind without one still reads
as words ("alice: client access refused")."""

from sqlalchemy import select

from website.extensions import db
from website.models.audit import AuditEvent
from website.models.clients import OAuth2Client


def client_names(events: list[AuditEvent]) -> dict[str, str]:
    """The names of the clients the events mention (one query)."""
    ids = {event.client_id for event in events if event.client_id}
    if not ids:
        return {}
    rows = db.session.execute(select(OAuth2Client.client_id, OAuth2Client.client_name)
                              .where(OAuth2Client.client_id.in_(ids)))
    return {client_id: name for client_id, name in rows}


def _grant(detail: dict) -> str:
    return {"authorization_code": "a sign-in", "refresh_token": "a refresh", "client_credentials": "its own credentials",
            "password": "a password", "implicit": "a sign-in (implicit)"}.get(str(detail.get("grant_type")),
                                                                               str(detail.get("grant_type") or "a grant"))


#: Event kind -> a function of (who, client, detail) giving the sentence.
SENTENCES = {
    "login_succeeded": lambda who, client, d: f"{who} signed in",
    "login_failed": lambda who, client, d: (f"A sign-in as {d.get('attempted_username') or who} failed"
                                            + (f" at {client}" if client else "")),
    "login_locked": lambda who, client, d: f"Sign-in as {d.get('attempted_username') or who} was refused while locked",
    "logout": lambda who, client, d: f"{who} signed out" + (" everywhere" if d.get("everywhere") else ""),
    "consent_granted": lambda who, client, d: f"{who} allowed {client} ({d.get('scope') or 'no scope'})",
    "consent_denied": lambda who, client, d: f"{who} denied {client}",
    "consent_revoked": lambda who, client, d: f"{who} took access back from {client}",
    "token_issued": lambda who, client, d: (f"{who} signed in to {client}" if d.get("grant_type") == "authorization_code"
                                            else f"{client} got a token{' for ' + who if who != 'Someone' else ''}"
                                                 f" through {_grant(d)}"),
    "token_revoked": lambda who, client, d: f"{client} revoked a token" + (f" of {who}" if who != "Someone" else ""),
    "token_family_revoked": lambda who, client, d: f"The tokens of one sign-in were revoked ({d.get('reason', 'revoked')})",
    "user_tokens_revoked": lambda who, client, d: f"Every token of {who} was revoked ({d.get('reason', '')})",
    "client_created": lambda who, client, d: f"{who} registered {client}",
    "client_updated": lambda who, client, d: f"{who} changed the settings of {client}",
    "client_deleted": lambda who, client, d: f"{who} deleted {client}",
    "client_secret_rotated": lambda who, client, d: f"{who} gave {client} a new secret",
    "client_access_refused": lambda who, client, d: f"{who} was turned away from {client} (not in its groups)",
    "client_access_limited": lambda who, client, d: (f"{client} is now only for "
                                                     + (", ".join(d.get("groups") or []) or "everyone")),
    "account_unlocked": lambda who, client, d: f"{d.get('attempted_username') or who}'s failed sign-ins were forgotten",
    "account_disabled": lambda who, client, d: f"{who}'s account was disabled" + (f" by {d['by']}" if d.get("by") else ""),
    "account_enabled": lambda who, client, d: f"{who}'s account was enabled again" + (f" by {d['by']}" if d.get("by") else ""),
    "admin_granted": lambda who, client, d: f"{who} was made an administrator" + (f" by {d['by']}" if d.get("by") else ""),
    "admin_revoked": lambda who, client, d: (f"{who} is no longer an administrator"
                                             + (f" (by {d['by']})" if d.get("by") else "")),
    "key_rotated": lambda who, client, d: "The signing key was rotated",
    "key_encryption_key_rotated": lambda who, client, d: "The stored secrets were re-encrypted with a new key",
    "group_created": lambda who, client, d: f"Group {d.get('group')} was created",
    "group_deleted": lambda who, client, d: f"Group {d.get('group')} was deleted",
    "group_member_added": lambda who, client, d: f"{who} was added to group {d.get('group')}",
    "group_member_removed": lambda who, client, d: f"{who} was taken out of group {d.get('group')}",
    "role_assigned": lambda who, client, d: (f"{d.get('group') and 'Group ' + d['group'] or who} got the role"
                                             f" {d.get('role')} in {client}"),
    "role_unassigned": lambda who, client, d: (f"{d.get('group') and 'Group ' + d['group'] or who} lost the role"
                                               f" {d.get('role')} in {client}"),
    "branding_changed": lambda who, client, d: f"{who} changed the branding",
    "user_created": lambda who, client, d: f"The account {who} was created",
    "user_updated": lambda who, client, d: f"{who}'s account was changed ({', '.join(d.get('fields') or [])})",
    "user_deleted": lambda who, client, d: f"The account {d.get('deleted_username') or who} was deleted",
    "sessions_ended": lambda who, client, d: f"{who} was signed out everywhere",
}


def sentence(event: AuditEvent, names: dict[str, str]) -> str:
    """The event as one sentence."""
    who = event.username or "Someone"
    detail = event.detail or {}
    client = (names.get(event.client_id) or detail.get("client_name")
              or (f"client {event.client_id}" if event.client_id else "an app"))
    describe = SENTENCES.get(event.event)
    if describe is not None:
        try:
            return describe(who, client, detail)
        except (KeyError, TypeError, AttributeError):
            pass  # an older event without the details its sentence needs
    words = event.event.replace("_", " ")
    return f"{who}: {words}" + (f" ({client})" if event.client_id else "")
