"""A person's browser sessions: signing in, signing out, listing and ending them.

The session cookie (signed by Flask) carries the user id, a digest of the user's session
secret and the id of a row in ``user_sessions`` (the ``sid``). A request is signed in only while
that row is live, so ending a row (here, on the account page, on any instance) signs that
browser out at once; ``end_all_sessions`` also replaces the session secret, which voids every
cookie of the person even without its row.
"""

import re
from dataclasses import dataclass

from flask import current_app, g, has_request_context, request, session

from website.extensions import db
from website.models.base import now
from website.models.users import User
from website.oauth2.logout import frontchannel_logout_urls
from website.store import audit
from website.store import sessions as rows


def _lifetime() -> int:
    """Seconds a session lives after the browser was last seen (PERMANENT_SESSION_LIFETIME)."""
    return int(current_app.permanent_session_lifetime.total_seconds())


#: The authorization request a person was sent to log in for (see ``expect_login_for``).
_LOGIN_FOR = "login_for_request"


def log_in(user: User, amr: tuple[str, ...] = ("pwd",), federation: dict | None = None) -> None:
    """Start a fresh session for the user (a new session on log-in prevents fixation), with its
    row on the server (committed here).

    ``amr`` says how the person proved who they are (RFC 8176 values: ``pwd``, ``otp``,
    ``hwk``, ``mfa``, ``fed``, ...); id_tokens of this session carry it. ``federation``: for a
    sign-in through an upstream provider, which one (``upstream``), its ``acr`` (kept in the
    cookie) and the ``id_token`` it sent (kept sealed with the session's row: the hint for
    ending the session there too at log-out)."""
    federation = dict(federation or {})
    # A federation without an id_token (a step-up of a session through an upstream) keeps the
    # one the session's row has.
    keep_token = bool(federation) and "id_token" not in federation
    upstream_token = federation.pop("id_token", None)
    old = current_session_id()
    # Signing in again as the same person (a step-up, say) keeps this browser's session: its
    # sid, and so the apps it signed in to, which are not told it ended (back-channel logout).
    same_person = old is not None and g.user.id == user.id
    # A log-in for a request object's or pushed request's prompt=login survives the new session.
    login_for = session.get(_LOGIN_FOR)
    session.clear()
    if login_for is not None:
        session[_LOGIN_FOR] = login_for
    if same_person:
        row = rows.renew_session(g.user_session, list(amr))
    else:
        if old:
            rows.end_session(g.user.id, old)  # signing in as another account ends the old session
        address = request.remote_addr if has_request_context() else None
        agent = request.headers.get("User-Agent") if has_request_context() else None
        row = rows.create_session(user, list(amr), address, agent)
    if not (same_person and keep_token):
        rows.keep_upstream_id_token(row, upstream_token)
    db.session.commit()
    session["user_id"] = user.id
    session["session_key"] = user.session_key()
    session["sid"] = row.id
    session["auth_time"] = row.created_at
    session["amr"] = list(amr)
    if federation:
        session["federation"] = federation
    session.permanent = True
    g.user, g.user_session = user, row


def load_session_user() -> User | None:
    """The user the request's session cookie signs in, or None (and the cookie is cleared when
    its session has ended, expired, or the person signed out everywhere). One query."""
    user_id, sid = session.get("user_id"), session.get("sid")
    g.user_session = None
    if not isinstance(user_id, int) or not isinstance(sid, str) or len(sid) > 64:
        if "user_id" in session:
            session.clear()
        return None
    found = rows.live_user_and_session(sid, user_id, _lifetime())
    if found is None or found[0].disabled_at is not None or not found[0].check_session_key(session.get("session_key")):
        # Signed out on another device, everywhere, by a password change, expired, or disabled.
        session.clear()
        return None
    user, g.user_session = found
    rows.touch(g.user_session, current_app.config["SESSION_TOUCH_INTERVAL"])
    return user


def current_session_id() -> str | None:
    """The ``sid`` of the signed-in browser session (stable and random: the OpenID Connect
    ``sid`` claim), or None when nobody is signed in."""
    row = g.get("user_session")
    return row.id if row is not None and g.get("user") is not None else None


def federation() -> dict | None:
    """The upstream sign-in of this session (see ``log_in``): ``upstream`` and ``acr``, or None."""
    value = session.get("federation")
    return value if isinstance(value, dict) and g.get("user") is not None else None


def federation_for_logout() -> dict | None:
    """Before this browser's log-out: the upstream sign-in of the session with the upstream's
    id_token (unsealed from the session's row), or None when it did not sign in through one."""
    value = federation()
    if value is None:
        return None
    return {**value, "id_token": rows.upstream_id_token(g.get("user_session"))}


def log_out(everywhere: bool = True) -> list[str]:
    """Sign the current user out, and by default everywhere else too (their older cookies stop
    working). ``everywhere=False`` ends only this browser's session.

    The apps each ended session signed in to with a back-channel logout URI get a logout
    token (queued with the session's end, see store/sessions.py). Returns the front-channel
    logout URLs of the apps this browser signed in to, for the signed-out page to frame."""
    frames = frontchannel_logout_urls(used_clients(), current_session_id())
    if g.get("user") is not None:
        if everywhere:
            end_all_sessions(g.user)
        elif (sid := current_session_id()) is not None:
            rows.end_session(g.user.id, sid)
        audit.record("logout", user=g.user, everywhere=everywhere)
        db.session.commit()
    clear_browser_session()
    return frames


def clear_browser_session() -> None:
    """Forget the session in this browser's cookie (its row is left as it is)."""
    session.clear()
    g.user = None  # the page this request still renders shows the person signed out
    g.user_session = None


def remember_client_in_session(client_id: str) -> None:
    """Note that this browser session signed in to the client (an authorization was issued;
    written with it): Auth0's /v2/logout may then send the browser back to that client
    without asking, and the account page names the apps of each session."""
    if (sid := current_session_id()) is not None:
        rows.add_client(sid, client_id)


def used_clients() -> list[str]:
    """The client_ids this browser session signed in to, oldest first (empty when signed out)."""
    sid = current_session_id()
    return rows.session_clients(sid) if sid else []


def session_used_client(client_id: str | None) -> bool:
    """Whether the signed-in person signed in to this client in this browser session."""
    sid = current_session_id()
    return bool(sid and client_id and client_id in rows.session_clients(sid))


def end_all_sessions(user: User) -> None:
    """End every session of the user, on every device and instance (log-out everywhere): the
    rows end and the session secret changes, so no cookie made before signs anyone in.
    Committed by the caller."""
    user.end_all_sessions()
    rows.end_user_sessions(user.id)


def end_other_sessions(user: User) -> int:
    """End every session of the user but this browser's (a password change); return how many.
    Committed by the caller."""
    return rows.end_user_sessions(user.id, keep=current_session_id())


def end_session(sid: str, user: User | None = None, by: User | None = None, **detail) -> bool:
    """End one session of the signed-in person (from the account page), or of ``user`` (an
    administrator, ``by``, from the console; the admin API names itself in ``detail``); tell
    whether it was theirs and live. Ending this browser's own session signs it out. Committed
    here."""
    user = user or g.get("user")
    if user is None or not isinstance(sid, str) or not rows.end_session(user.id, sid[:64]):
        return False
    current = by is None and sid == current_session_id()
    audit.record("session_ended", user=user, current=current, by=by.username if by else None, **detail)
    db.session.commit()
    if current:
        clear_browser_session()
    return True


@dataclass
class SessionView:
    """One session as the account page lists it."""

    id: str
    browser: str
    ip_address: str | None
    created_at: int
    last_seen_at: int
    amr: list
    clients: list
    current: bool


def list_sessions(user: User) -> list[SessionView]:
    """The user's live sessions, the most recently used first, this browser's marked."""
    current = current_session_id()
    return [SessionView(row.id, describe_browser(row.user_agent), row.ip_address, row.created_at,
                        row.last_seen_at, list(row.amr or []), list(row.clients or []), row.id == current)
            for row in rows.live_sessions(user.id, _lifetime())]


def live_session_rows(user: User, limit: int, offset: int = 0) -> list:
    """``limit`` of the user's live session rows from ``offset``, the most recently used first
    (the admin API)."""
    return rows.live_sessions(user.id, _lifetime(), limit, offset)


def find_live_session(sid: str):
    """The live session row with this sid, or None (also for a sid no session could have)."""
    if not isinstance(sid, str) or not 0 < len(sid) <= 64 or "\x00" in sid:
        return None
    return rows.live_session(sid, _lifetime())


def idle_expiry(row) -> int:
    """When the session ends if its browser is not seen again (seconds since the epoch)."""
    return row.last_seen_at + _lifetime()


def session_records(user: User) -> list[dict]:
    """Every session row kept for the user, as plain data (the personal data download)."""
    lifetime, stamp = _lifetime(), now()
    return [{
        "sid": row.id, "browser": describe_browser(row.user_agent), "user_agent": row.user_agent,
        "ip_address": row.ip_address, "signed_in_at": row.created_at, "last_seen_at": row.last_seen_at,
        "ended_at": row.ended_at or None, "amr": list(row.amr or []), "clients": list(row.clients or []),
        "live": not row.ended_at and row.last_seen_at > stamp - lifetime,
    } for row in rows.all_sessions(user.id)]


def purge_ended_sessions(batch: int) -> int:
    """Delete the rows of sessions that ended or expired (``flask purge-expired``), ``batch``
    rows per transaction."""
    return rows.purge_sessions(_lifetime(), batch)


# Order matters: Edge and Opera say "Chrome", Chrome says "Safari".
_BROWSERS = (("Edg", "Edge"), ("OPR", "Opera"), ("Firefox", "Firefox"), ("FxiOS", "Firefox"),
             ("CriOS", "Chrome"), ("Chromium", "Chromium"), ("Chrome", "Chrome"), ("Safari", "Safari"),
             ("curl", "curl"), ("python-requests", "Python requests"))
_SYSTEMS = (("iPhone", "iOS"), ("iPad", "iPadOS"), ("Android", "Android"), ("CrOS", "ChromeOS"),
            ("Windows", "Windows"), ("Mac OS X", "macOS"), ("Macintosh", "macOS"), ("Linux", "Linux"))


def describe_browser(user_agent: str | None) -> str:
    """A readable summary of a User-Agent header: "Firefox 133 on Linux"."""
    if not user_agent:
        return "Unknown browser"
    browser = "Unknown browser"
    for token, name in _BROWSERS:
        version = r"Version/(\d+)" if name == "Safari" else re.escape(token) + r"[/ ](\d+)"
        if token in user_agent and (match := re.search(version, user_agent)):
            browser = f"{name} {match.group(1)}"
            break
        if token in user_agent:
            browser = name
            break
    system = next((name for token, name in _SYSTEMS if token in user_agent), None)
    return f"{browser} on {system}" if system else browser


def expect_login_for(url: str) -> None:
    """Note that the person is sent to log in for this authorization request because its
    prompt=login or max_age asks so, from a request object or a pushed request: the way back
    cannot drop those parameters as it does from a plain query."""
    session[_LOGIN_FOR] = {"url": url, "at": now()}


def logged_in_for(url: str) -> bool:
    """Tell whether the person logged in after being sent to log in for this request."""
    mark = session.get(_LOGIN_FOR)
    return (isinstance(mark, dict) and mark.get("url") == url
            and (session.get("auth_time") or 0) >= (mark.get("at") or 0) and g.get("user") is not None)


__all__ = ["clear_browser_session", "current_session_id", "end_all_sessions", "end_other_sessions", "end_session",
           "expect_login_for", "federation", "federation_for_logout", "find_live_session", "idle_expiry", "list_sessions", "live_session_rows", "load_session_user", "log_in", "log_out", "logged_in_for", "remember_client_in_session",
           "session_records", "session_used_client", "used_clients"]
