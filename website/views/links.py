"""Blueprint: the pages the links mailed to people open (confirm an address, confirm a new
address, reset a password, accept an invitation), the forgot-password page, and sending the
confirmation link again.

A link opens a page with a button or a form; only that POST spends it, so a mail scanner that
fetches every link in a mail uses none of them up.
"""

import functools

from flask import Blueprint, abort, current_app, flash, g, redirect, render_template, request, url_for
from sqlalchemy.exc import IntegrityError

from website.extensions import db
from website.forms import ConfirmForm, ForgotPasswordForm, InvitationSignupForm, ResetPasswordForm
from website.models.users import User
from website.services import accounts
from website.services.accounts import LinkProblem
from website.services.mail import MailError
from website.services.sessions import log_in
from website.services.signup import signup_refusal
from website.store import audit, throttle
from website.views.auth import login_required, safe_next

bp = Blueprint("links", __name__)


#: Per purpose: what the link was for, and where to get a new one.
WHAT_TO_DO = {
    "verify_email": ("confirm your email address", "account.index",
                     "Sign in and send a new confirmation link from your account page."),
    "change_email": ("confirm your new email address", "account.index",
                     "Sign in and enter the new address on your account page again: a new link is sent."),
    "reset_password": ("reset your password", "links.forgot_password",
                       "Ask for a new link on the forgot-password page."),
    "invite": ("accept an invitation", "auth.login",
               "Ask the administrator who invited you for a new invitation."),
}

#: Why a link does not work, in words.
REASONS = {
    "unknown": "This link is not valid. It may have been copied incompletely.",
    "used": "This link was already used. Each link works once.",
    "expired": "This link has expired.",
    "disabled": "The account is disabled, so its links do not work. Ask an administrator.",
    "stale": "This link no longer matches the account: its password or email address changed after"
             " the link was sent.",
}


def link_problem_page(problem: LinkProblem):
    """The page for a link that cannot be used: what went wrong and what to do."""
    audit.record("account_link_refused", purpose=problem.purpose, reason=problem.reason,
                 user=g.get("user"))
    db.session.commit()
    what, endpoint, advice = WHAT_TO_DO[problem.purpose]
    return render_template("links/problem.html", what=what, reason=REASONS[problem.reason], advice=advice,
                           next_url=url_for(endpoint)), 410 if problem.reason != "unknown" else 404


def mail_failed(form, error: MailError):
    """Undo what the request wrote and put the mail server's failure on the form."""
    db.session.rollback()
    form.form_errors.append(str(error))


def send_and_flash(send, sent: str) -> bool:
    """Run ``send`` (it writes and mails); commit and flash ``sent``, or, when the mail server
    refuses, undo what it wrote and flash the failure. Tells whether it was sent."""
    try:
        send()
    except MailError as error:
        db.session.rollback()
        flash(str(error), "error")
        return False
    db.session.commit()
    flash(sent)
    return True


@bp.route("/forgot-password", methods=["GET", "POST"])
def forgot_password():
    """Ask for a reset link. The answer is the same page whether or not an account matches, and
    whether or not the mail server took the mail."""
    form = ForgotPasswordForm()
    if form.validate_on_submit():
        identifier = form.identifier.data
        attempt = accounts.mail_throttle(("mail_link", "forgot:" + identifier.casefold()))
        if wait := attempt.wait:
            form.identifier.errors.append(throttle.wait_message(wait, "Too many reset requests"))
            return render_template("links/forgot.html", form=form), 429, {"Retry-After": str(wait)}
        attempt.failed()  # every request counts; the last allowed one starts the pause
        accounts.request_password_reset(identifier)  # a refused mail is queued: the answer is the same
        db.session.commit()
        return render_template("links/forgot_sent.html", valid_for=accounts.in_words(
            accounts.lifetime("reset_password")))
    return render_template("links/forgot.html", form=form), 400 if form.errors else 200


def link_page(purpose: str):
    """Open the link of this purpose before the view runs (the view gets the link and its
    account): a link that cannot be used, or that another request spends first while the
    view spends it, gets the page that says what to do."""
    def decorate(view):
        @functools.wraps(view)
        def opened(token: str):
            try:
                link, user = accounts.open_link(token, purpose)
                return view(link, user)
            except LinkProblem as problem:
                db.session.rollback()
                return link_problem_page(problem)
        return opened
    return decorate


@bp.route("/reset-password/<token>", methods=["GET", "POST"])
@link_page("reset_password")
def reset_password(link, user):
    """Choose a new password through a mailed link."""
    form = ResetPasswordForm()
    if form.validate_on_submit():
        accounts.reset_password(link, user, form.password.data)
        flash("Your password was changed, and every session of your account was ended. Log in with"
              " the new password.")
        return redirect(url_for("auth.login"))
    return render_template("links/reset.html", form=form, user=user), 400 if form.errors else 200


@bp.route("/verify-email/<token>", methods=["GET", "POST"])
@link_page("verify_email")
def verify_email(link, user):
    """Confirm an address through a mailed link (a button, so a mail scanner spends nothing)."""
    return _confirm_address(link, lambda: accounts.confirm_email(link, user), f"Thank you: {user.email} is confirmed.")


@bp.route("/confirm-email-change/<token>", methods=["GET", "POST"])
@link_page("change_email")
def confirm_email_change(link, user):
    """Confirm a new address: only now does it replace the old one, which is told."""
    return _confirm_address(link, lambda: accounts.confirm_email_change(link, user),
                            f"Your email address is now {link.email}.", change=True)


def _confirm_address(link, confirm, done: str, change: bool = False):
    """The page of a link that confirms an address: a button; its POST runs ``confirm``."""
    form = ConfirmForm()
    if request.method == "POST":
        if not form.validate_on_submit():
            abort(400)
        try:
            confirm()
        except MailError as error:  # the old address could not be told: nothing changes yet
            mail_failed(form, error)
            return render_template("links/confirm.html", form=form, email=link.email, change=change), 503
        flash(done)
        return redirect(url_for("account.index") if g.user is not None else url_for("auth.login"))
    return render_template("links/confirm.html", form=form, email=link.email, change=change)


@bp.route("/invitation/<token>", methods=["GET", "POST"])
@link_page("invite")
def accept_invitation(link, _):
    """Create an account through an invitation (under any SIGNUP_POLICY)."""
    form = InvitationSignupForm()
    if form.validate_on_submit():
        refusal = signup_refusal(link.email, invited=True)
        if refusal:  # no policy refuses an invited person today; keep the one rule anyway
            form.form_errors.append(refusal)
        else:
            user = User(username=form.username.data)
            user.set_password(form.password.data, method=current_app.config["PASSWORD_HASH_METHOD"])
            try:
                accounts.accept_invitation(link, user)
            except IntegrityError:
                db.session.rollback()
                form.username.errors.append("That username is taken; choose another.")
            else:
                log_in(user)
                flash(f"Welcome, {user.username}: your account is ready.")
                return redirect(safe_next(None))
    status = 400 if form.errors or form.form_errors else 200
    return render_template("links/invitation.html", form=form, email=link.email), status


@bp.route("/account/verify-email", methods=["POST"])
@login_required
def resend_verification():
    """Send the signed-in person a new confirmation link for their address."""
    if not ConfirmForm().validate_on_submit():
        abort(400)
    if g.user.email_verified or not g.user.email:
        flash("Your email address is already confirmed." if g.user.email else "Your account has no email address.")
        return redirect(url_for("account.index"))
    attempt = accounts.mail_throttle(("mail_link", f"user:{g.user.id}"))
    if wait := attempt.wait:
        flash(throttle.wait_message(wait, "Too many mails asked for"), "error")
        return redirect(url_for("account.index"))
    attempt.failed()
    send_and_flash(lambda: accounts.send_verification(g.user), f"We sent a new confirmation link to {g.user.email}.")
    return redirect(url_for("account.index"))
