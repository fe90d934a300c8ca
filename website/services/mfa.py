"""The second-factor step of signing in, TOTP and recovery codes, and the MFA policy.

The second-factor step (the interface other factor kinds, such as passkeys, plug into)
------------------------------------------------------------------------------------------
After the password is right, the log-in view calls ``after_password(user, next_url)``. When the
person must use a second factor (they have one, or the policy or the app asks for one), no
session is started yet: the browser's session holds a *pending second factor* instead
(``session["mfa_pending"]``: the user, their session key, the first factor's amr, where to go
next, when it started), and the view sends the browser to ``mfa.challenge``
(``/login/second-factor``). A signed-in person whose session is weaker than an app asks for
(``acr_values``, ``require_mfa``) gets the same pending state from ``begin_step_up``.

- ``pending_user()``: the User waiting for a second factor in this browser, or None (it
  expires after PENDING_LIFETIME seconds, and with the person's sessions).
- ``available_factors(user)``: the kinds of second factor the person has, strongest first,
  from ``store.mfa.factor_kinds`` ("totp", "recovery_code"; a new kind adds its check there
  and its page to FACTOR_PAGES here: ``FACTOR_PAGES["hwk"] = ("Passkey", "passkeys.verify")``).
- ``complete_second_factor(user, amr_value)``: the factor was proved; starts the session with
  ``log_in(user, amr=(first..., amr_value, "mfa"))``, records ``mfa_used`` in the audit log
  and mails the person; returns the URL to continue to.
- ``throttled(user)``: counts a second-factor attempt (``attempt.failed()`` /
  ``attempt.succeeded()``), shared by every kind so one lockout covers them all.

This interface was first committed in commit 805db4a on branch feat-mfa (docs/mfa-interface.md
says how a new kind of factor plugs in).
"""

import hmac
import logging
import time

import pyotp
import segno
from flask import current_app, flash, session

from website.extensions import db
from website.models.base import now
from website.models.users import User
from website.oauth2.acr import (
    grace_ends_at,
    in_grace_period,
    policy_applies,
    second_factor_required,
    start_grace_period,
)
from website.services.mail import MailError, send_mail
from website.services.sessions import federation as signed_in_through, log_in
from website.services.upstreams import link_pending
from website.store import audit, mfa, throttle

logger = logging.getLogger("website.mfa")

#: Seconds between the password and the second factor before the person starts again.
PENDING_LIFETIME = 600

#: Each kind of second factor: its name for people and the page that proves it.
FACTOR_PAGES = {
    "passkey": ("Passkey", "passkeys.second_factor"),
    "totp": ("Authenticator app", "mfa.challenge"),
    "recovery_code": ("Recovery code", "mfa.recovery"),
}

#: TOTP codes one step (30 s) either side of now are accepted, for clocks slightly off.
TOTP_WINDOW = 1


# ---- the pending second factor -------------------------------------------------------------

def _set_pending(user: User, first: list[str], next_url: str, enrol: bool = False,
                 federation: dict | None = None, link: dict | None = None) -> None:
    session["mfa_pending"] = {
        "user_id": user.id, "session_key": user.session_key(), "first": list(first),
        "next": next_url, "at": now(), "enrol": enrol, "federation": federation, "link": link,
    }


def _sign_in(user: User, amr: tuple[str, ...], federation: dict | None = None,
             link: dict | None = None) -> None:
    """``log_in``, once every factor the sign-in asks for is proved. ``link``: an upstream
    identity waiting to be linked to this account (``services.upstreams.pending_link``),
    linked only now, so that linking one never takes less than signing in; the session is
    then a sign-in through that upstream. ``federation``: a step-up's upstream sign-in, kept."""
    if link is not None:
        federation = link_pending(link, user, "password")
        if federation is None:
            amr = tuple(value for value in amr if value != "fed")
    log_in(user, amr=amr, federation=federation)
    if link is not None and federation is None:
        flash("The upstream account was not linked: it was linked to an account meanwhile.")


def _pending() -> dict | None:
    pending = session.get("mfa_pending")
    if not isinstance(pending, dict) or now() - int(pending.get("at", 0)) > PENDING_LIFETIME:
        return None
    return pending


def pending_user() -> User | None:
    """The person who gave their password in this browser and still owes a second factor."""
    pending = _pending()
    if pending is None:
        return None
    user = db.session.get(User, pending.get("user_id"))
    if user is None or user.disabled_at is not None or not user.check_session_key(pending.get("session_key")):
        return None  # deleted, disabled, or signed out everywhere / changed password since
    return user


def pending_next() -> str | None:
    """Where the pending sign-in continues to."""
    pending = _pending()
    return pending.get("next") if pending else None


def pending_enrolment() -> bool:
    """Tell whether the pending person has no second factor yet and must set one up now."""
    pending = _pending()
    return bool(pending and pending.get("enrol"))


def cancel_pending() -> None:
    session.pop("mfa_pending", None)


def available_factors(user: User) -> list[str]:
    """The kinds of second factor the person can use, strongest first."""
    return [kind for kind in mfa.factor_kinds(user) if kind in FACTOR_PAGES]


def after_password(user: User, next_url: str, first: tuple[str, ...] = ("pwd",),
                   link: dict | None = None) -> str | None:
    """The password was right: sign in, or hold the sign-in for a second factor (``link``: an
    upstream identity to link once it is done, see ``_sign_in``).

    Returns None when the person is signed in (``log_in``), or the name of the page to go to
    next ("mfa.challenge" for a second factor, "mfa.enrol_totp" to set one up first)."""
    if start_grace_period(user):
        # The policy reaches the person: audited, and they are told until when.
        audit.record("mfa_grace_started", user=user, days=current_app.config["MFA_ENROLMENT_GRACE_DAYS"])
        db.session.commit()
        notify(user, "mfa_required", "Your account now needs a second factor",
               ends=grace_ends_at(user) if in_grace_period(user) else None)
    if available_factors(user):
        _set_pending(user, list(first), next_url, link=link)
        return "mfa.challenge"
    if policy_applies(user) and not in_grace_period(user):
        _set_pending(user, list(first), next_url, enrol=True, link=link)
        return "mfa.enrol_totp"
    _sign_in(user, first, link=link)
    return None


def begin_step_up(user: User, next_url: str) -> str:
    """A signed-in person must add a second factor to this session (an app asked for more
    than the session has): the page to go to, as ``after_password``."""
    first = [value for value in session.get("amr") or ["pwd"] if value != "mfa"]
    # A session through an upstream stays one (its acr, and its id_token for the log-out there).
    upstream = signed_in_through()
    if available_factors(user):
        _set_pending(user, first, next_url, federation=upstream)
        return "mfa.challenge"
    _set_pending(user, first, next_url, enrol=True, federation=upstream)
    return "mfa.enrol_totp"


def needs_step_up(user: User, client, amr, wants_mfa: bool) -> bool:
    """Tell whether this session (signed in with ``amr``) must add a second factor before the
    client gets an authorization: the app asked for two factors (``acr_values`` or an acr
    claim naming only MFA values), or registered ``require_mfa``, or the person has a second
    factor this session did not use (it began before they set one up), or the policy requires
    one. A person without a second factor then sets one up first."""
    if "mfa" in (amr or ()):
        return False
    return wants_mfa or second_factor_required(user, client)


def complete_second_factor(user: User, amr_value: str, kind: str | None = None) -> str:
    """The person proved a second factor (``amr_value``, an RFC 8176 value such as "otp" or
    "hwk"): start their session, audited and mailed; return where to continue."""
    pending = _pending() or {}
    first = [value for value in pending.get("first") or ["pwd"] if value not in (amr_value, "mfa")]
    next_url = pending.get("next") or "/"
    amr = tuple(dict.fromkeys([*first, amr_value, "mfa"]))
    audit.record("mfa_used", user=user, factor=kind or amr_value, amr=list(amr))
    db.session.commit()
    # A step-up of this person's own session keeps the apps it signed in to (/v2/logout):
    # log_in carries them over.
    _sign_in(user, amr, federation=pending.get("federation"), link=pending.get("link"))
    notify(user, "mfa_used", "You signed in with your second factor",
           factor=FACTOR_PAGES.get(kind, (amr_value,))[0])
    return next_url


def throttled(user: User) -> throttle.Attempt:
    """Count a second-factor attempt against the account, before the code is checked."""
    return throttle.begin_attempt(("second_factor", user.id))


# ---- mail ---------------------------------------------------------------------------------

def notify(user: User, template: str, subject: str, **context) -> bool:
    """Tell the person about a change to their second factors, after it happened (a sign-in
    or a reset must not wait for the mail server): False when the mail could not be sent."""
    if not user.email:
        return False
    try:
        send_mail(user.email, template, subject, user=user, **context)
    except MailError:
        logger.warning("The %s notice to user %s could not be sent", template, user.id)
        audit.record("mail_failed", user=user, template=template)
        db.session.commit()
        return False
    return True


def notify_first(user: User, template: str, subject: str, **context) -> None:
    """Mail the person about a change they are making, before it is committed: MailError
    (shown on the form) leaves the change undone, so no factor changes unannounced."""
    if user.email:
        send_mail(user.email, template, subject, user=user, **context)


# ---- TOTP ---------------------------------------------------------------------------------

def provisioning_uri(user: User, secret: str) -> str:
    """The otpauth:// URI authenticator apps read from the QR code."""
    return pyotp.TOTP(secret).provisioning_uri(name=user.username, issuer_name=current_app.config["SITE_NAME"])


def qr_svg(uri: str) -> str:
    """The QR code of ``uri`` as inline SVG markup (drawn here; no script, no other site)."""
    svg = segno.make(uri, error="m").svg_inline(border=4, dark="#111", light="#fff", omitsize=True)
    return svg.replace("<svg ", '<svg role="img" aria-label="QR code for your authenticator app" ', 1)


def start_totp(user: User) -> str:
    """A new secret for the person's authenticator, kept unconfirmed; returns it."""
    secret = pyotp.random_base32()
    mfa.start_totp(user, secret)
    db.session.commit()
    return secret


def matching_step(secret: str, code: str) -> int | None:
    """The time step whose code ``code`` is, within TOTP_WINDOW of now; None if none."""
    code = "".join(code.split())
    if len(code) != 6 or not code.isascii() or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    current = int(time.time()) // totp.interval
    for step in range(current - TOTP_WINDOW, current + TOTP_WINDOW + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def check_totp(user: User, code: str, confirm: bool = False) -> bool:
    """Tell whether ``code`` is the person's current TOTP code, never accepted before (a code,
    or one of an earlier step, is accepted once); ``confirm`` checks the unconfirmed
    authenticator of an enrolment and confirms it."""
    factor = mfa.totp_factor(user)
    if factor is None or (factor.confirmed_at is None) != confirm:
        return False
    step = matching_step(mfa.totp_secret(factor), code)
    return step is not None and mfa.claim_totp_step(factor, step, confirm=confirm)


def confirm_totp(user: User) -> list[str]:
    """The enrolment code was right (``check_totp(..., confirm=True)``): the authenticator
    counts from now on; the person gets fresh recovery codes, returned to show once."""
    codes = mfa.replace_recovery_codes(user)
    user.mfa_grace_started_at = None
    audit.record("mfa_factor_added", user=user, factor="totp")
    audit.record("mfa_recovery_codes_generated", user=user, count=len(codes))
    db.session.commit()
    return codes


def remove_totp(user: User) -> bool:
    """Remove the person's authenticator (and, with no other factor left, their recovery
    codes); True if there was one. The mail goes first (MailError changes nothing)."""
    if mfa.confirmed_totp(user) is None:
        return False
    notify_first(user, "mfa_removed", "A second factor was removed from your account",
                 factor=FACTOR_PAGES["totp"][0])
    mfa.delete_totp(user)
    if not mfa.has_second_factor(user):
        mfa.delete_recovery_codes(user)
    audit.record("mfa_factor_removed", user=user, factor="totp")
    db.session.commit()
    return True


# ---- recovery codes -------------------------------------------------------------------------

def use_recovery_code(user: User, code: str) -> int | None:
    """Spend a recovery code of the person: how many are left, or None if it was not one."""
    if not mfa.claim_recovery_code(user, code):
        db.session.rollback()
        return None
    left = mfa.recovery_codes_left(user)
    audit.record("mfa_recovery_code_used", user=user, left=left)
    db.session.commit()
    notify(user, "mfa_recovery_code_used", "A recovery code was used", left=left)
    return left


def regenerate_recovery_codes(user: User) -> list[str]:
    """New recovery codes for the person (the old ones stop working), mailed about first."""
    notify_first(user, "mfa_recovery_codes_generated", "New recovery codes for your account")
    codes = mfa.replace_recovery_codes(user)
    audit.record("mfa_recovery_codes_generated", user=user, count=len(codes))
    db.session.commit()
    return codes


# ---- administration -------------------------------------------------------------------------

def reset_factors(user: User, admin: User) -> list[str]:
    """An administrator removes every second factor of the person (they lost their phone and
    their codes); audited with who did it, and mailed to the person."""
    removed = mfa.reset_factors(user)
    audit.record("mfa_reset", user=admin, target_user_id=user.id, target_username=user.username,
                 removed=removed)
    db.session.commit()
    notify(user, "mfa_reset", "Your second factors were reset", admin=admin.username)
    return removed


def status(user: User) -> dict:
    """What the account's security page shows."""
    return {
        "totp": mfa.confirmed_totp(user),
        "recovery_codes_left": mfa.recovery_codes_left(user),
        "factors": available_factors(user),
        "policy": policy_applies(user),
        "grace_ends_at": grace_ends_at(user),
    }
