"""Blueprint: /device, where a person types the code a device shows (RFC 8628 §3.3), sees
the app and what it asks for, and allows or denies it."""

from flask import Blueprint, abort, current_app, g, render_template, request, session

from website.forms import DeviceConsentForm, UserCodeForm
from website.oauth2.scopes import scope_descriptions
from website.services.consent import remember_consent
from website.services.device import (
    UserCodeRefused,
    answer_device_request,
    find_device_request,
    format_user_code,
)
from website.store.clients import query_client
from website.views.auth import login_required

bp = Blueprint("device", __name__)


@bp.before_request
def device_flow_on():
    """While the device flow is off, /device is not there."""
    if not current_app.config["OAUTH2_DEVICE_FLOW"]:
        abort(404)


@bp.route("/device", methods=["GET", "POST"])
@login_required
def verify():
    """Ask for the user code (prefilled from verification_uri_complete), then Allow or Deny."""
    if request.method == "POST" and ("allow" in request.form or "deny" in request.form):
        return _decide()
    form = UserCodeForm(formdata=None) if request.method == "GET" else UserCodeForm()
    if request.method == "GET" and request.args.get("user_code"):
        form.user_code.data = request.args["user_code"][:40]
    if not form.validate_on_submit():
        return render_template("device/code.html", form=form), 400 if form.errors else 200
    try:
        item = find_device_request(form.user_code.data, g.user)
    except UserCodeRefused as refused:
        form.user_code.errors.append(str(refused))
        return render_template("device/code.html", form=form), 400
    consent = DeviceConsentForm(formdata=None, user_code=format_user_code(form.user_code.data))
    return _consent_page(item, consent)


def _consent_page(item, form, status=200):
    """The device's app and what it asks for, with Allow and Deny."""
    client = query_client(item.client_id)
    return render_template("device/authorize.html", client=client, form=form, user_code=form.user_code.data,
                           scopes=item.scope.split(), scope_descriptions=scope_descriptions()), status


def _code_page(user_code, message: str):
    """The code form again, with the code typed and why it did not work."""
    form = UserCodeForm(formdata=None, user_code=user_code)
    form.user_code.errors = [message]
    return render_template("device/code.html", form=form), 400


def _decide():
    """Record Allow or Deny for the user code in the form."""
    form = DeviceConsentForm()
    if not form.validate_on_submit():
        return _code_page(form.user_code.data, "The form expired: type the code again.")
    try:
        # Looked up (and throttled) again: the code in the form is what the person saw.
        item = find_device_request(form.user_code.data, g.user)
    except UserCodeRefused as refused:
        return _code_page(form.user_code.data, str(refused))
    allowed = bool(form.allow.data)
    client = query_client(item.client_id)
    if not answer_device_request(item, g.user, allowed, session.get("auth_time")):
        return _code_page(form.user_code.data, "This request was answered already or has expired.")
    if allowed:
        # Listed under Connected apps, where the person can disconnect the device.
        remember_consent(g.user, client, item.scope)
    return render_template("device/done.html", client=client, allowed=allowed)
