"""A person's browser session: signing in, signing out, ending every session."""

from flask import g, session

from website.extensions import db
from website.models.base import now
from website.models.users import User
from website.store import audit


def log_in(user: User, amr: tuple[str, ...] = ("pwd",), federation: dict | None = None) -> None:
    """Start a fresh session for the user (a new session on log-in prevents fixation).

    ``amr`` says how the person proved who they are (RFC 8176 values: ``pwd``, ``otp``,
    ``hwk``, ``mfa``, ``fed``, ...); id_tokens of this session carry it. ``federation``: for a
    sign-in through an upstream provider, which one (``upstream``), its ``acr`` and the
    ``id_token`` it sent (the hint for ending the session there too at log-out)."""
    session.clear()
    session["user_id"] = user.id
    session["session_key"] = user.session_key()
    session["auth_time"] = now()
    session["amr"] = list(amr)
    if federation:
        session["federation"] = federation
    session.permanent = True


def federation() -> dict | None:
    """The upstream sign-in of this session (see ``log_in``), or None."""
    value = session.get("federation")
    return value if isinstance(value, dict) else None


def log_out(everywhere: bool = True) -> None:
    """Sign the current user out, and by default everywhere else too (their older cookies stop
    working). ``everywhere=False`` ends only this browser's session."""
    if g.get("user") is not None:
        if everywhere:
            end_all_sessions(g.user)
        audit.record("logout", user=g.user, everywhere=everywhere)
        db.session.commit()
    session.clear()
    g.user = None  # the page this request still renders shows the person signed out


#: How many client_ids a session remembers having signed in to (the newest are kept).
_SESSION_CLIENTS_KEPT = 20


def remember_client_in_session(client_id: str) -> None:
    """Note that this browser session signed in to the client (an authorization was issued):
    Auth0's /v2/logout may then send the browser back to that client without asking."""
    used = [c for c in session.get("clients", []) if c != client_id]
    session["clients"] = (used + [client_id])[-_SESSION_CLIENTS_KEPT:]


def session_used_client(client_id: str | None) -> bool:
    """Whether the signed-in person signed in to this client in this browser session."""
    used = session.get("clients")
    return bool(g.get("user") is not None and client_id and isinstance(used, list) and client_id in used)


def end_all_sessions(user: User) -> None:
    """Make every session cookie of the user invalid (log-out, password change)."""
    user.end_all_sessions()
