"""Blueprint: sign up, log in and log out, and the signed-in user for every request."""

import functools
from urllib.parse import unquote, urlsplit

from flask import Blueprint, current_app, flash, g, redirect, render_template, request, url_for
from sqlalchemy.exc import IntegrityError

from website.extensions import db
from website.forms import ConfirmForm, LoginForm, SignupForm
from website.http.endpoints import reads_no_session
from website.models.users import User
from website.services import accounts
from website.services.mail import MailError
from website.services.mfa import after_password
from website.services.sessions import federation_for_logout, load_session_user, log_out
from website.services.signup import signup_refusal
from website.services.upstreams import start_upstream_logout
from website.store import audit, throttle
from website.store.users import authenticate_user
from website.views.logout import signed_out_page

bp = Blueprint("auth", __name__)


@bp.before_app_request
def load_logged_in_user() -> None:
    """Put the signed-in user (or None) on ``g.user``; None without a look on JSON protocol
    endpoints, which never act for the cookie's user (``reads_no_session``)."""
    if reads_no_session():
        g.user = None
        return
    g.user = load_session_user()


@bp.app_context_processor
def navigation() -> dict:
    """What the layout's menu shows: "My clients" only where it helps (services/accounts.py),
    and "Sign up" only when people may sign up by themselves."""
    return {
        "developer_navigation": lambda: accounts.shows_developer_navigation(g.get("user"), request.endpoint),
        "self_signup": current_app.config["SIGNUP_POLICY"] in ("open", "domain"),
    }


def login_required(view):
    """Send people who are not signed in to the log-in page, then back."""

    @functools.wraps(view)
    def wrapped_view(**kwargs):
        if g.user is None:
            return redirect(url_for("auth.login", next=request.full_path))
        return view(**kwargs)

    return wrapped_view


def safe_next(target: str | None) -> str:
    """Follow ``next`` only to a local path on this site, never to another host."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        parts = urlsplit(target)
        # Browsers drop tabs and newlines inside URLs ("/\t/evil.com" is "//evil.com"), and
        # some proxies decode %2F: refuse both rather than guess how they are read.
        path = unquote(parts.path)
        if (not parts.scheme and not parts.netloc and not path.startswith("//") and "\\" not in path
                and not any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in target)):
            return target
    return url_for("auth.index")


@bp.route("/")
def index():
    """The home page."""
    return render_template("index.html")


@bp.route("/signup", methods=["GET", "POST"])
def signup():
    """Create an account (under SIGNUP_POLICY) and mail a link that confirms its address.
    Under the domain policy the account is used only once the link is followed."""
    form = SignupForm()
    policy_refusal = signup_refusal(None) if current_app.config["SIGNUP_POLICY"] in ("invite", "closed") else None
    if policy_refusal:
        return render_template("auth/signup_closed.html", message=policy_refusal), 403
    if form.validate_on_submit():
        if refusal := signup_refusal(form.email.data):
            form.email.errors.append(refusal)
            return render_template("auth/signup.html", form=form), 403
        user = User(username=form.username.data, email=form.email.data.strip())
        user.set_password(form.password.data, method=current_app.config["PASSWORD_HASH_METHOD"])
        db.session.add(user)
        try:
            db.session.flush()
        except IntegrityError:
            # The username was already taken, which caused the insert to fail.
            db.session.rollback()
            form.username.errors.append("That username is taken; choose another.")
        else:
            try:
                # Sent before the account is committed: a mail server that refuses leaves no
                # account behind, and the person can simply send the form again.
                accounts.send_verification(user)
            except MailError as error:
                db.session.rollback()
                form.form_errors.append(str(error))
                return render_template("auth/signup.html", form=form), 503
            audit.record("signup", user=user)
            db.session.commit()
            if accounts.must_verify_to_log_in(user):
                return render_template("auth/check_mail.html", email=user.email), 201
            next_url = safe_next(request.args.get("next"))
            step = after_password(user, next_url)  # the MFA policy may ask for a factor at once
            # After the log-in, which starts a fresh session (and so would drop the message).
            flash(f"We sent a link to {user.email}: follow it to confirm your address.")
            return redirect(url_for(step) if step else next_url)
    return render_template("auth/signup.html", form=form), 400 if form.errors else 200


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Sign in with username and password."""
    form = LoginForm()
    if request.method == "GET" and (login_hint := request.args.get("login_hint")):
        # An app that knows who is signing in (OpenID Connect login_hint) fills in the name.
        form.username.data = login_hint[:40]
    status = 200
    if form.validate_on_submit():
        # Counted before the password is checked, so simultaneous guesses get no extra checks.
        attempt = throttle.begin_attempt(*throttle.login_subjects(form.username.data))
        if wait := attempt.wait:
            # Even the right password is refused while locked: the lockout must hold.
            form.password.errors.append(throttle.wait_message(wait))
            audit.record("login_locked", attempted_username=form.username.data[:40])
            db.session.commit()
            return render_template("auth/login.html", form=form), 429, {"Retry-After": str(wait)}
        user = authenticate_user(form.username.data, form.password.data)
        if user is not None and accounts.must_verify_to_log_in(user):
            attempt.succeeded()
            return unverified_login(form, user)
        if user is not None:
            attempt.succeeded()
            audit.record("login_succeeded", user=user)
            db.session.commit()
            next_url = safe_next(request.args.get("next"))
            # Signed in now, or held for a second factor (services/mfa.py).
            if step := after_password(user, next_url):
                return redirect(url_for(step))
            return redirect(next_url)
        wait = attempt.failed()
        audit.record("login_failed", attempted_username=form.username.data[:40])
        db.session.commit()
        # One message for both cases, so the form does not reveal which usernames exist.
        form.password.errors.append(throttle.wait_message(wait) if wait else "Wrong username or password.")
        if wait:
            return render_template("auth/login.html", form=form), 429, {"Retry-After": str(wait)}
        status = 400
    elif form.errors:
        status = 400
    return render_template("auth/login.html", form=form), status


def unverified_login(form, user):
    """The right password for an account whose address is not confirmed yet (domain policy):
    no session; a new confirmation link (at most MAIL_LINK_LIMIT per window)."""
    attempt = accounts.mail_throttle(("mail_link", f"user:{user.id}"))
    if attempt.wait:
        message = "Confirm your email address first: follow the link we mailed you."
    else:
        attempt.failed()
        try:
            accounts.send_verification(user)
        except MailError as error:
            db.session.rollback()
            form.form_errors.append(str(error))
            return render_template("auth/login.html", form=form), 503
        message = f"Confirm your email address first: we sent a new link to {user.email}."
    audit.record("login_unverified", user=user)
    db.session.commit()
    form.form_errors.append(message)
    return render_template("auth/login.html", form=form), 403


@bp.route("/logout", methods=["POST"])
def logout():
    """Sign this browser out (the account page signs out other sessions, or all)."""
    form = ConfirmForm()
    if form.validate_on_submit():
        signed_in_with = federation_for_logout()
        frames = log_out(everywhere=False)
        # Signed in through an upstream set to end its session too: go there (RP-Initiated
        # Logout), after the apps' front-channel logout frames if there are any.
        upstream_logout = start_upstream_logout(signed_in_with, url_for("auth.index"))
        if frames:
            return signed_out_page(frames, continue_to=upstream_logout)
        if upstream_logout:
            return redirect(upstream_logout)
        flash("You are signed out.")
    return redirect(url_for("auth.index"))
