"""Blueprint: the second factor at sign-in (TOTP code, recovery code) and the account's
security page (set up an authenticator, recovery codes, remove a factor).

The rules live in services/mfa.py; these views only show and ask."""

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from markupsafe import Markup

from website.extensions import db
from website.forms import ConfirmForm, PasswordConfirmForm, RecoveryCodeForm, TotpCodeForm
from website.services import mfa
from website.services.mail import MailError
from website.store import audit, throttle
from website.store.mfa import confirmed_totp, totp_factor, totp_secret
from website.views.auth import login_required, safe_next

bp = Blueprint("mfa", __name__)


def _locked(form, wait: int):
    form.code.errors.append(throttle.wait_message(wait))
    return wait


def _factor_links(user, current: str) -> list[tuple[str, str]]:
    """The other kinds of second factor the person could use instead, as (label, URL)."""
    return [(mfa.FACTOR_PAGES[kind][0], url_for(mfa.FACTOR_PAGES[kind][1]))
            for kind in mfa.available_factors(user) if kind != current]


@bp.route("/login/second-factor", methods=["GET", "POST"])
def challenge():
    """After the password: the code from the person's authenticator app."""
    user = mfa.pending_user()
    if user is None:
        flash("Your sign-in timed out. Please log in again.")
        return redirect(url_for("auth.login"))
    if mfa.pending_enrolment():
        return redirect(url_for("mfa.enrol_totp"))
    kinds = mfa.available_factors(user)
    if not kinds or kinds[0] != "totp":
        # A stronger kind first (a passkey), or another kind only: go to its page.
        return redirect(url_for(mfa.FACTOR_PAGES[kinds[0]][1])) if kinds else redirect(url_for("auth.login"))
    form = TotpCodeForm()
    status, headers = 200, {}
    if form.validate_on_submit():
        attempt = mfa.throttled(user)
        if attempt.wait:
            audit.record("mfa_locked", user=user)
            db.session.commit()
            headers["Retry-After"] = str(_locked(form, attempt.wait))
            status = 429
        elif mfa.check_totp(user, form.code.data):
            next_url = mfa.complete_second_factor(user, "otp", kind="totp")
            attempt.succeeded()  # after the commit: on SQLite the counters share the write lock
            return redirect(safe_next(next_url))
        else:
            db.session.rollback()
            wait = attempt.failed()
            audit.record("mfa_failed", user=user, factor="totp")
            db.session.commit()
            if wait:
                headers["Retry-After"] = str(_locked(form, wait))
                status = 429
            else:
                form.code.errors.append("That code is not right (or was already used). "
                                        "Enter the code your app shows now.")
                status = 400
    elif form.errors:
        status = 400
    return render_template("mfa/challenge.html", form=form, user=user,
                           others=_factor_links(user, "totp")), status, headers


@bp.route("/login/recovery-code", methods=["GET", "POST"])
def recovery():
    """After the password: one of the person's recovery codes instead of the app's code."""
    user = mfa.pending_user()
    if user is None:
        flash("Your sign-in timed out. Please log in again.")
        return redirect(url_for("auth.login"))
    if "recovery_code" not in mfa.available_factors(user):
        return redirect(url_for("mfa.challenge"))
    form = RecoveryCodeForm()
    status, headers = 200, {}
    if form.validate_on_submit():
        attempt = mfa.throttled(user)
        if attempt.wait:
            audit.record("mfa_locked", user=user)
            db.session.commit()
            headers["Retry-After"] = str(_locked(form, attempt.wait))
            status = 429
        elif (left := mfa.use_recovery_code(user, form.code.data)) is not None:
            next_url = mfa.complete_second_factor(user, "otp", kind="recovery_code")
            attempt.succeeded()
            flash(f"Recovery code accepted. You have {left} recovery code{'s' if left != 1 else ''} left"
                  + (": make new ones on your security page." if left < 3 else "."))
            return redirect(safe_next(next_url))
        else:
            wait = attempt.failed()
            audit.record("mfa_failed", user=user, factor="recovery_code")
            db.session.commit()
            if wait:
                headers["Retry-After"] = str(_locked(form, wait))
                status = 429
            else:
                form.code.errors.append("That is not one of your unused recovery codes.")
                status = 400
    elif form.errors:
        status = 400
    return render_template("mfa/recovery.html", form=form, user=user,
                           others=_factor_links(user, "recovery_code")), status, headers


@bp.route("/login/second-factor/cancel", methods=["POST"])
def cancel():
    """Give up the pending sign-in (start again with another account)."""
    if not ConfirmForm().validate_on_submit():
        abort(400)
    mfa.cancel_pending()
    return redirect(url_for("auth.login"))


def _enrolling_user():
    """Who is setting up an authenticator: the signed-in person, or the one whose sign-in
    waits for it (the policy or an app requires a second factor they do not have yet)."""
    if mfa.pending_enrolment() and (user := mfa.pending_user()) is not None:
        return user, True
    return g.user, False


@bp.route("/account/security/totp", methods=["GET", "POST"])
def enrol_totp():
    """Set up an authenticator app: scan the QR code (or type the secret), then prove it with
    a code; only then does it count."""
    user, pending = _enrolling_user()
    if user is None:
        return redirect(url_for("auth.login", next=request.full_path))
    if confirmed_totp(user) is not None:
        flash("You already use an authenticator app. Remove it first to set up another.")
        return redirect(url_for("mfa.security"))
    form = TotpCodeForm()
    status, headers = 200, {}
    if request.method == "POST":
        factor = totp_factor(user)
        if factor is None:
            return redirect(url_for("mfa.enrol_totp"))
        # The secret the page showed is kept until a code proves it (or the page is reopened).
        secret = totp_secret(factor)
        status = 400
        if form.validate_on_submit():
            attempt = mfa.throttled(user)
            if attempt.wait:
                headers["Retry-After"] = str(_locked(form, attempt.wait))
                status = 429
            elif mfa.check_totp(user, form.code.data, confirm=True):
                try:
                    mfa.notify_first(user, "mfa_added", "A second factor was added to your account",
                                     factor=mfa.FACTOR_PAGES["totp"][0])
                except MailError as error:
                    db.session.rollback()  # not confirmed: the person tries again once mail works
                    attempt.succeeded()
                    form.code.errors.append(str(error))
                    status = 503
                else:
                    codes = mfa.confirm_totp(user)
                    attempt.succeeded()
                    next_url = mfa.complete_second_factor(user, "otp", kind="totp") if pending else None
                    return render_template("mfa/recovery_codes.html", codes=codes, first=True,
                                           next_url=safe_next(next_url) if next_url else url_for("mfa.security"))
            else:
                db.session.rollback()
                if wait := attempt.failed():
                    headers["Retry-After"] = str(_locked(form, wait))
                    status = 429
                else:
                    form.code.errors.append("That code is not right. Check the time on your phone, and "
                                            "enter the code the app shows now.")
    else:
        # A fresh secret each time the page is opened: a secret shown earlier is never reused.
        secret = mfa.start_totp(user)
    uri = mfa.provisioning_uri(user, secret)
    return render_template("mfa/enrol_totp.html", form=form, secret=secret, pending=pending, user=user,
                           qr=Markup(mfa.qr_svg(uri))), status, headers


@bp.route("/account/security")
@login_required
def security():
    """The person's second factors: what they have, set one up, recovery codes."""
    return render_template("mfa/security.html", status=mfa.status(g.user),
                           remove_form=PasswordConfirmForm(prefix="remove", formdata=None),
                           codes_form=PasswordConfirmForm(prefix="codes", formdata=None))


def _password_confirmed(form) -> bool:
    if not form.validate_on_submit():
        return False
    if not g.user.check_password(form.current_password.data):
        form.current_password.errors.append("That is not your current password.")
        return False
    return True


@bp.route("/account/security/totp/remove", methods=["POST"])
@login_required
def remove_totp():
    """Remove the authenticator, after the password."""
    form = PasswordConfirmForm(prefix="remove")
    if _password_confirmed(form):
        try:
            removed = mfa.remove_totp(g.user)
        except MailError as error:
            flash(str(error), "error")
            return redirect(url_for("mfa.security"))
        flash("Your authenticator app was removed." if removed else "You had no authenticator app.")
        return redirect(url_for("mfa.security"))
    return render_template("mfa/security.html", status=mfa.status(g.user), remove_form=form,
                           codes_form=PasswordConfirmForm(prefix="codes", formdata=None)), 400


@bp.route("/account/security/recovery-codes", methods=["POST"])
@login_required
def regenerate_codes():
    """New recovery codes, after the password; shown once."""
    form = PasswordConfirmForm(prefix="codes")
    if not mfa.available_factors(g.user):
        flash("Recovery codes come with a second factor: set up an authenticator app first.", "error")
        return redirect(url_for("mfa.security"))
    if _password_confirmed(form):
        try:
            codes = mfa.regenerate_recovery_codes(g.user)
        except MailError as error:
            flash(str(error), "error")
            return redirect(url_for("mfa.security"))
        return render_template("mfa/recovery_codes.html", codes=codes, first=False,
                               next_url=url_for("mfa.security"))
    return render_template("mfa/security.html", status=mfa.status(g.user), codes_form=form,
                           remove_form=PasswordConfirmForm(prefix="remove", formdata=None)), 400
