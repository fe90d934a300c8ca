"""Blueprint: sign up, log in and log out, and the signed-in user for every request."""

import functools
from urllib.parse import unquote, urlsplit

from flask import Blueprint, current_app, flash, g, redirect, render_template, request, session, url_for
from sqlalchemy.exc import IntegrityError

from website.extensions import db
from website.forms import ConfirmForm, LoginForm, SignupForm
from website.models.users import User
from website.services.sessions import federation, log_in, log_out
from website.services.upstreams import end_session_redirect
from website.store import audit, throttle
from website.store.users import authenticate_user

bp = Blueprint("auth", __name__)


@bp.before_app_request
def load_logged_in_user() -> None:
    """Put the signed-in user (or None) on ``g.user``."""
    user_id = session.get("user_id")
    g.user = db.session.get(User, user_id) if isinstance(user_id, int) else None
    if g.user is not None and (g.user.disabled_at is not None
                               or not g.user.check_session_key(session.get("session_key"))):
        # The user logged out everywhere (or changed password, or was disabled) since this
        # cookie was made.
        g.user = None
        session.clear()


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
    """Create an account and sign in."""
    form = SignupForm()
    if form.validate_on_submit():
        user = User(username=form.username.data, email=form.email.data.strip())
        user.set_password(form.password.data, method=current_app.config["PASSWORD_HASH_METHOD"])
        db.session.add(user)
        try:
            db.session.commit()
        except IntegrityError:
            # The username was already taken, which caused the commit to fail.
            db.session.rollback()
            form.username.errors.append("That username is taken; choose another.")
        else:
            log_in(user)
            return redirect(safe_next(request.args.get("next")))
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
        if user is not None:
            attempt.succeeded()
            audit.record("login_succeeded", user=user)
            db.session.commit()
            log_in(user)
            return redirect(safe_next(request.args.get("next")))
        wait = attempt.failed()
        audit.record("login_failed", attempted_username=form.username.data[:40])
        db.session.commit()
        # One message for both cases, so the form does not reveal which usernames exist.
        form.password.errors.append(throttle.wait_message(wait) if wait else "Wrong username or password.")
        status = 429 if wait else 400
    elif form.errors:
        status = 400
    return render_template("auth/login.html", form=form), status


@bp.route("/logout", methods=["POST"])
def logout():
    """Sign out and clear the session."""
    form = ConfirmForm()
    if form.validate_on_submit():
        signed_in_with = federation()
        log_out()
        # Signed in through an upstream set to end its session too: go there (RP-Initiated Logout).
        if upstream_logout := end_session_redirect(signed_in_with):
            return redirect(upstream_logout)
        flash("You are signed out.")
    return redirect(url_for("auth.index"))
