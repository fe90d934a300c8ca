"""Blueprint: passkeys. JSON endpoints the page script (static/passkeys.js) calls around the
browser's WebAuthn ceremonies (CSRF-protected through the X-CSRFToken header), removing a
passkey from the account page, and the second-factor page (services/mfa.py's step)."""

from flask import Blueprint, Response, abort, flash, g, jsonify, redirect, render_template, request, url_for

from website.extensions import db
from website.forms import ConfirmForm
from website.services import mfa, passkeys
from website.services.mail import MailError
from website.services.sessions import log_in
from website.store import audit, throttle
from website.store.passkeys import list_passkeys, user_passkey
from website.views.auth import safe_next

bp = Blueprint("passkeys", __name__, url_prefix="/passkeys")

SIGNED_OUT = "You are signed out. Sign in again, then add the passkey."
TIMED_OUT = "Your sign-in timed out. Reload the page and log in again."


@bp.app_context_processor
def passkey_templates() -> dict:
    """Let the account page's passkey section list the person's passkeys."""
    return {"list_passkeys": list_passkeys, "passkeys_unavailable": passkeys.unavailable_reason}


def _no_store(response: Response, status: int = 200) -> Response:
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response


def options_response(options_json: str) -> Response:
    """WebAuthn options as py_webauthn serialised them (base64url for every binary value)."""
    return _no_store(Response(options_json, mimetype="application/json"))


def problem(message: str, status: int = 400) -> Response:
    """A failed step, in words for the person; the script shows ``error`` beside the button."""
    return _no_store(jsonify(error=message), status)


def json_body() -> dict:
    data = request.get_json(silent=True)
    return data if isinstance(data, dict) else {}


@bp.post("/register/options")
def register_options():
    """Start adding a passkey to the signed-in person's account."""
    if g.user is None:
        return problem(SIGNED_OUT, 401)
    try:
        return options_response(passkeys.registration_options(g.user))
    except passkeys.PasskeyError as error:
        return problem(str(error))


@bp.post("/register")
def register():
    """Verify the new passkey and add it; the answer says where the page goes next."""
    if g.user is None:
        return problem(SIGNED_OUT, 401)
    body = json_body()
    try:
        passkey = passkeys.register(g.user, body.get("credential"), body.get("name"))
    except (passkeys.PasskeyError, MailError) as error:
        return problem(str(error))
    flash(f"Passkey “{passkey.name}” added. You can now sign in with it, without your password.")
    return _no_store(jsonify(redirect=url_for("account.index")))


def start_refused() -> Response | None:
    """Count one passkey sign-in started from this address (each stores a challenge, so every
    start counts, like mails: PASSKEY_SIGN_IN_ADDRESS_LIMIT); the 429 when there were too many."""
    attempt = throttle.begin_attempt(("passkey_sign_in_address", throttle.client_address()))
    if wait := attempt.wait:
        response = problem(throttle.wait_message(wait, "Too many sign-ins started"), 429)
        response.headers["Retry-After"] = str(wait)
        return response
    attempt.failed()
    return None


@bp.post("/sign-in/options")
def sign_in_options():
    """Start a passwordless sign-in with any passkey of this site (conditional UI or button),
    counted per address."""
    if refused := start_refused():
        return refused
    try:
        return options_response(passkeys.authentication_options())
    except passkeys.PasskeyError as error:
        return problem(str(error))


@bp.post("/sign-in")
def sign_in():
    """Verify the passkey and sign its owner in, then go where the log-in page would have."""
    body = json_body()
    try:
        user, amr = passkeys.sign_in(body.get("credential"))
    except passkeys.PasskeyError as error:
        return problem(str(error))
    log_in(user, amr=amr)
    next_url = body.get("next")
    return _no_store(jsonify(redirect=safe_next(next_url if isinstance(next_url, str) else None)))


@bp.post("/<int:passkey_id>/remove")
def remove(passkey_id: int):
    """Remove one of the person's passkeys (from the account page)."""
    if g.user is None:
        return redirect(url_for("auth.login", next=url_for("account.index")))
    if not ConfirmForm().validate_on_submit():
        abort(400)
    passkey = user_passkey(g.user, passkey_id)
    if passkey is None:
        abort(404)
    name = passkey.name
    try:
        passkeys.remove(g.user, passkey)
    except MailError as error:
        flash(str(error), "error")
    else:
        flash(f"Passkey “{name}” removed. It no longer signs you in.")
    return redirect(url_for("account.index") + "#passkeys-title")


@bp.route("/second-factor")
def second_factor():
    """After the password: the page that asks for one of the person's passkeys."""
    user = mfa.pending_user()
    if user is None:
        flash("Your sign-in timed out. Please log in again.")
        return redirect(url_for("auth.login"))
    if "passkey" not in mfa.available_factors(user):
        return redirect(url_for("mfa.challenge"))
    others = [(mfa.FACTOR_PAGES[kind][0], url_for(mfa.FACTOR_PAGES[kind][1]))
              for kind in mfa.available_factors(user) if kind != "passkey"]
    return render_template("passkeys/second_factor.html", user=user, others=others,
                           unavailable=passkeys.unavailable_reason())


@bp.post("/second-factor/options")
def second_factor_options():
    """Start the second factor: a challenge for one of the pending person's passkeys."""
    user = mfa.pending_user()
    if user is None:
        return problem(TIMED_OUT, 401)
    try:
        return options_response(passkeys.authentication_options(user))
    except passkeys.PasskeyError as error:
        return problem(str(error))


@bp.post("/second-factor")
def second_factor_answer():
    """Verify the passkey and finish the sign-in the password began (counted by the same
    throttle as every second factor)."""
    user = mfa.pending_user()
    if user is None:
        return problem(TIMED_OUT, 401)
    attempt = mfa.throttled(user)
    if wait := attempt.wait:
        audit.record("mfa_locked", user=user)
        db.session.commit()
        return problem(throttle.wait_message(wait), 429)
    try:
        amr_value = passkeys.second_factor(user, json_body().get("credential"))
    except passkeys.PasskeyError as error:
        attempt.failed()
        audit.record("mfa_failed", user=user, factor="passkey")
        db.session.commit()
        return problem(str(error))
    next_url = mfa.complete_second_factor(user, amr_value, kind="passkey")
    attempt.succeeded()
    return _no_store(jsonify(redirect=safe_next(next_url)))
