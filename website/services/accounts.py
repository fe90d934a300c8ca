"""Mail-based account features: confirming an address, changing it, resetting a forgotten
password, invitations, and the policies that depend on a verified address.

Every link is an ``AccountLink`` (store/links.py). The mail is sent *before* the caller
commits what it is about, so a mail server that refuses leaves nothing half-written: the
caller rolls back and shows MailError's message, and the person simply tries again. The one
exception is the forgot-password answer, which must not show whether the address has an
account: there a refused mail waits in the mail queue (store/mail_queue.py) and
``send_queued_mail`` sends it later with a link made then.
"""

import contextlib
import secrets
import time
from urllib.parse import urlsplit

from flask import current_app, has_request_context, render_template, request, url_for
from sqlalchemy import func, select

from website.extensions import db
from website.models.base import hash_secret, now
from website.models.clients import OAuth2Client
from website.models.links import AccountLink
from website.models.mail import QueuedMail
from website.models.usernames import canonical_username
from website.models.users import User
from website.services.mail import MailError, send_mail
from website.services.sessions import end_all_sessions
from website.services.signup import email_domain_allowed
from website.store import audit, mail_queue, throttle
from website.store.links import discard_link, find_link, is_stale, make_link, retire_links, spend_link
from website.store.tokens import revoke_user_tokens

#: The setting that holds each kind of link's lifetime in seconds.
LIFETIME_KEYS = {
    "verify_email": "EMAIL_VERIFICATION_LIFETIME",
    "change_email": "EMAIL_VERIFICATION_LIFETIME",
    "reset_password": "PASSWORD_RESET_LIFETIME",
    "invite": "INVITATION_LIFETIME",
}

#: The page each kind of link opens.
LINK_ENDPOINTS = {
    "verify_email": "links.verify_email",
    "change_email": "links.confirm_email_change",
    "reset_password": "links.reset_password",
    "invite": "links.accept_invitation",
}

#: The most accounts one address's reset request sends links to (addresses are not unique).
MAX_ACCOUNTS_PER_ADDRESS = 5


class LinkProblem(Exception):
    """A link that cannot be used: ``reason`` is unknown, used, expired or stale."""

    def __init__(self, reason: str, purpose: str):
        super().__init__(reason)
        self.reason = reason
        self.purpose = purpose


def lifetime(purpose: str) -> int:
    """How many seconds a link of this purpose works."""
    return int(current_app.config[LIFETIME_KEYS[purpose]])


def in_words(seconds: int) -> str:
    """A lifetime in words for mails and pages: "30 minutes", "24 hours", "7 days"."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    if seconds > 60:
        return f"{round(seconds / 60)} minutes"
    return f"{seconds} seconds"


def link_url(purpose: str, token: str, base_url: str | None = None) -> str:
    """The absolute URL of a link: under OAUTH2_ISSUER when it is set (the CLI has no
    request), else ``base_url`` (a queued mail's) or the URL the request came in on."""
    endpoint = LINK_ENDPOINTS[purpose]
    issuer = current_app.config.get("OAUTH2_ISSUER") or base_url
    if issuer:
        parts = urlsplit(issuer)
        adapter = current_app.url_map.bind(parts.netloc, script_name=parts.path.rstrip("/") or "/",
                                           url_scheme=parts.scheme)
        return adapter.build(endpoint, {"token": token}, force_external=True)
    if has_request_context():
        return url_for(endpoint, token=token, _external=True)
    raise MailError("Set OAUTH2_ISSUER (this site's public URL) so the link in the mail points at it.")


def mask_email(email: str) -> str:
    """An address with most of its local part hidden, for mails to someone else: a***@example.com."""
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}"


def _mail_link(purpose: str, to: str, user: User | None, subject: str, created_by: str | None = None,
               base_url: str | None = None, **context) -> None:
    """Make a link and mail it; raises MailError, taking the link back out of the transaction."""
    token = make_link(purpose, to, user, lifetime(purpose), created_by)
    try:
        send_mail(to, purpose, subject, base_url=base_url, user=user, url=link_url(purpose, token, base_url),
                  valid_for=in_words(lifetime(purpose)), **context)
    except MailError:
        discard_link(token)
        raise


def send_queued_mail(item: QueuedMail, user: User | None) -> None:
    """Send a mail from the mail queue. A mail with a link gets a new one now (the account's
    older ones stop working), so the queue never holds a link. Raises MailError (the caller
    rolls back)."""
    if item.link_purpose:
        if user is not None:
            retire_links(user, item.link_purpose)
        _mail_link(item.link_purpose, item.to_address, user, item.subject, created_by=item.created_by,
                   base_url=item.base_url, **item.context)
    else:
        send_mail(item.to_address, item.template, item.subject, base_url=item.base_url, user=user, **item.context)


def queued_mail_refusal(item: QueuedMail, user: User | None) -> str | None:
    """Why a queued mail should no longer go out (the account is gone, disabled, or its
    address changed since it was asked for), or None."""
    if item.user_id is None:
        return None
    if user is None:
        return "The account was deleted."
    if user.disabled_at is not None:
        return "The account is disabled."
    if item.link_purpose in ("reset_password", "verify_email") and \
            (user.email or "").casefold() != item.to_address.casefold():
        return "The account's email address changed."
    return None


# --- Links: opening and spending ----------------------------------------------------------

def open_link(token: str, purpose: str) -> tuple[AccountLink, User | None]:
    """The link of this purpose and its account, if it may still be used; raises LinkProblem."""
    link = find_link(token)
    if link is None or link.purpose != purpose:
        raise LinkProblem("unknown", purpose)
    if link.used_at is not None:
        raise LinkProblem("used", purpose)
    if link.expires_at <= now():
        raise LinkProblem("expired", purpose)
    user = db.session.get(User, link.user_id) if link.user_id is not None else None
    if link.user_id is not None and user is None:
        raise LinkProblem("unknown", purpose)
    if user is not None and user.disabled_at is not None:
        raise LinkProblem("disabled", purpose)
    if is_stale(link, user):
        raise LinkProblem("stale", purpose)
    return link, user


def _spend(link: AccountLink) -> None:
    if not spend_link(link):
        raise LinkProblem("used", link.purpose)


# --- Verified addresses -------------------------------------------------------------------

def send_verification(user: User, by: str | None = None) -> None:
    """Mail the account a link that confirms its address (older ones stop working)."""
    retire_links(user, "verify_email")
    _mail_link("verify_email", user.email, user, "confirm your email address", created_by=by)
    audit.record("email_verification_sent", user=user)


def confirm_email(link: AccountLink, user: User) -> None:
    """The link was followed: the address is verified. Commits."""
    _spend(link)
    user.email_verified = True
    audit.record("email_verified", user=user, by="link")
    db.session.commit()


def verify_email_by_admin(user: User, by: str) -> None:
    """An administrator vouches for the address (``flask verify-email``). Commits."""
    user.email_verified = True
    retire_links(user, "verify_email")
    audit.record("email_verified", user=user, by=by)
    db.session.commit()


def request_email_change(user: User, new_email: str) -> None:
    """Mail the new address a link; the change happens only when it is followed."""
    retire_links(user, "change_email")
    _mail_link("change_email", new_email, user, "confirm your new email address", new_email=new_email)
    audit.record("email_change_requested", user=user, new_email=new_email)


def confirm_email_change(link: AccountLink, user: User) -> str | None:
    """The new address confirmed: it replaces the old one, verified, and the old address is
    told (before anything is committed). Returns the old address. Commits."""
    _spend(link)
    old = user.email
    if old and old.casefold() != link.email.casefold():
        send_mail(old, "email_changed", "your email address was changed", user=user,
                  new_email=mask_email(link.email))
    user.email = link.email
    user.email_verified = True
    retire_links(user, "verify_email", "change_email")
    audit.record("email_changed", user=user, old_email=old, new_email=link.email)
    db.session.commit()
    return old


def email_change_refusal(email: str) -> str | None:
    """Why the account may not move to this address (SIGNUP_POLICY=domain keeps accounts under
    SIGNUP_ALLOWED_DOMAINS), or None."""
    if current_app.config["SIGNUP_POLICY"] == "domain" and not email_domain_allowed(email):
        return "Accounts here must use an address under the allowed domains."
    return None


def verification_required(client: OAuth2Client, user: User) -> bool:
    """Whether this person must verify their address before this client gets a code
    (REQUIRE_VERIFIED_EMAIL for every app, or the client's own require_verified_email)."""
    if user.email_verified:
        return False
    return bool(current_app.config["REQUIRE_VERIFIED_EMAIL"] or client.require_verified_email)


def must_verify_to_log_in(user: User) -> bool:
    """Under SIGNUP_POLICY=domain an account is used only once its address is confirmed
    (administrators excepted, so nobody locks the site)."""
    return current_app.config["SIGNUP_POLICY"] == "domain" and not user.email_verified and not user.is_admin


# --- Who may register clients -------------------------------------------------------------

def may_register_clients(user: User | None) -> bool:
    """CLIENT_REGISTRATION_POLICY: everyone, verified (a verified address) or admins."""
    if user is None:
        return False
    policy = current_app.config["CLIENT_REGISTRATION_POLICY"]
    if user.is_admin or policy == "everyone":
        return True
    return policy == "verified" and bool(user.email_verified)


def owns_clients(user: User) -> bool:
    """Whether the person has registered any client."""
    return db.session.scalar(select(OAuth2Client.id).where(OAuth2Client.owner_id == user.id).limit(1)) is not None


#: Pages that show no developer navigation to people without clients: where people sign in
#: to an app, not where they build one.
SIGN_IN_PAGES = {"oauth.authorize", "auth.login", "auth.signup"}


def shows_developer_navigation(user: User | None, endpoint: str | None) -> bool:
    """Whether the page links to "My clients": for people who have clients, and on pages other
    than signing in to an app for people who may register one."""
    if user is None:
        return False
    if endpoint not in SIGN_IN_PAGES and may_register_clients(user):
        return True
    return owns_clients(user)


# --- Forgotten passwords ------------------------------------------------------------------

def mail_throttle(*subjects: tuple) -> throttle.Attempt:
    """Count a request for a mail against the account (or what was asked for) and the client
    address; ``wait`` > 0: refuse it (throttle.wait_message says how long)."""
    return throttle.begin_attempt(*subjects, ("mail_link_address", throttle.client_address()))


def accounts_for(identifier: str) -> list[User]:
    """The accounts a forgot-password request names: by username, or every account with this
    address (at most MAX_ACCOUNTS_PER_ADDRESS)."""
    identifier = identifier.strip()
    if not identifier or "\x00" in identifier:
        return []
    if "@" in identifier:
        return list(db.session.scalars(
            select(User).where(func.lower(User.email) == identifier.lower())
            .order_by(User.id).limit(MAX_ACCOUNTS_PER_ADDRESS)))
    user = db.session.scalar(select(User).where(User.username_canonical == canonical_username(identifier)))
    return [user] if user is not None else []


@contextlib.contextmanager
def answer_no_sooner_than(seconds: float):
    """Let the block take at least ``seconds`` (also when it raises), so the answer's timing
    does not tell which branch ran."""
    started = time.monotonic()
    try:
        yield
    finally:
        left = seconds - (time.monotonic() - started)
        if left > 0:
            time.sleep(left)


def request_password_reset(identifier: str) -> None:
    """Mail a reset link to the account(s) the username or address names; for an unknown one,
    do the same work without a mail. The caller answers the same either way, so a mail the
    mail server refuses is queued (sent later, with a new link) rather than reported."""
    with answer_no_sooner_than(current_app.config["PASSWORD_RESET_MIN_SECONDS"]):
        users = [user for user in accounts_for(identifier) if user.email and user.disabled_at is None]
        for user in users:
            retire_links(user, "reset_password")
            try:
                _mail_link("reset_password", user.email, user, "reset your password")
            except MailError as error:
                # Saying so would tell anyone that this address has an account: the mail waits.
                mail_queue.enqueue(user.email, "reset_password", "reset your password", user=user,
                                   link_purpose="reset_password", error=error.detail,
                                   base_url=request.url_root if has_request_context() else None)
                audit.record("password_reset_requested", user=user, queued=True)
                continue
            audit.record("password_reset_requested", user=user)
        if not users:
            # What the known case does besides talking to the mail server: a token, its hash
            # and both parts of the mail rendered.
            token = secrets.token_urlsafe(32)
            hash_secret(token)
            for kind in ("txt", "html"):
                render_template(f"mail/reset_password.{kind}", user=None, url=token, valid_for="",
                                site_name=current_app.config["SITE_NAME"])
            audit.record("password_reset_requested", attempted_username=identifier[:40], known=False)


def reset_password(link: AccountLink, user: User, password: str) -> None:
    """Set the new password; every session ends and every token of the account is revoked.
    Following the link proved the address, so it counts as verified. Commits."""
    _spend(link)
    user.set_password(password, method=current_app.config["PASSWORD_HASH_METHOD"])
    end_all_sessions(user)
    revoke_user_tokens(user.id, "password_reset")
    retire_links(user, "reset_password")
    if user.email and user.email.casefold() == link.email.casefold():
        user.email_verified = True
    audit.record("password_reset", user=user)
    db.session.commit()


def send_password_reset(user: User, by: str) -> None:
    """Mail the account a reset link on an administrator's request (``flask send-password-reset``)."""
    retire_links(user, "reset_password")
    _mail_link("reset_password", user.email, user, "reset your password", created_by=by)
    audit.record("password_reset_requested", user=user, by=by)


# --- Invitations --------------------------------------------------------------------------

def send_invitation(email: str, by: str) -> None:
    """Mail an invitation to create an account with this address."""
    _mail_link("invite", email, None, "you are invited", created_by=by, invited_by=by)
    audit.record("invitation_sent", invited_email=email, by=by)


def accept_invitation(link: AccountLink, user: User) -> None:
    """Create the invited account (its address is verified: the invitation reached it), in
    the transaction that spends the invitation. Commits; raises LinkProblem when another
    request used it first."""
    _spend(link)
    user.email = link.email
    user.email_verified = True
    db.session.add(user)
    db.session.flush()
    audit.record("invitation_accepted", user=user, by=link.created_by)
    db.session.commit()


def existing_account_with_email(email: str) -> User | None:
    """An account that already uses this address (case-insensitive), or None."""
    return db.session.scalar(select(User).where(func.lower(User.email) == email.strip().lower()).limit(1))
