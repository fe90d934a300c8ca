"""Blueprint: the signed-in person's account (password, email, sessions), connected apps (the
clients they approved, and revoking one), downloading their data and deleting the account."""

import hmac
import json
from datetime import datetime, timezone

from flask import Blueprint, abort, current_app, flash, g, redirect, render_template, url_for

from website.extensions import db
from website.forms import ChangeEmailForm, ChangePasswordForm, ConfirmForm, DeleteAccountForm
from website.models.usernames import canonical_username
from website.oauth2.scopes import scope_descriptions
from website.services import accounts
from website.services.consent import list_consents, revoke_consent
from website.services.mail import MailError
from website.services.mfa import available_factors
from website.services.personal_data import delete_own_account, personal_data
from website.services.sessions import end_other_sessions, end_session, list_sessions, log_out
from website.store import audit
from website.store.apis import api_names
from website.store.clients import query_client
from website.store.users import owned_clients
from website.views.auth import login_required
from website.views.logout import signed_out_page

bp = Blueprint("account", __name__, url_prefix="/account")


def render_account(password_form=None, email_form=None):
    """The account page with both forms; the one that failed keeps its input and messages."""
    password_form = password_form or ChangePasswordForm(prefix="password", formdata=None)
    email_form = email_form or ChangeEmailForm(prefix="email", formdata=None)
    status = 400 if password_form.errors or email_form.errors or email_form.form_errors else 200
    sessions = list_sessions(g.user)
    client_ids = {client_id for item in sessions for client_id in item.clients}
    clients = {client_id: client for client_id in client_ids if (client := query_client(client_id)) is not None}
    return render_template("account/index.html", password_form=password_form, email_form=email_form,
                           sessions_form=ConfirmForm(formdata=None), sessions=sessions,
                           session_clients=clients, when=when,
                           mfa_factors=available_factors(g.user)), status


def when(stamp: int) -> str:
    """A session time as the list shows it."""
    return datetime.fromtimestamp(stamp, timezone.utc).strftime("%d %B %Y, %H:%M UTC")


@bp.route("/")
@login_required
def index():
    """Show the account and its forms."""
    return render_account()


@bp.route("/password", methods=["POST"])
@login_required
def change_password():
    """Set a new password after checking the current one."""
    form = ChangePasswordForm(prefix="password")
    if form.validate_on_submit():
        if not g.user.check_password(form.current_password.data):
            form.current_password.errors.append("That is not your current password.")
        else:
            g.user.set_password(form.new_password.data, method=current_app.config["PASSWORD_HASH_METHOD"])
            # By default sessions elsewhere (a stolen cookie, say) end; this one carries on.
            ended = end_other_sessions(g.user) if form.sign_out_others.data else 0
            audit.record("password_changed", user=g.user, other_sessions_ended=ended)
            db.session.commit()
            flash("Your password was changed." + (
                f" {ended} other session{'s were' if ended != 1 else ' was'} signed out." if ended else ""))
            return redirect(url_for("account.index"))
    return render_account(password_form=form)


@bp.route("/email", methods=["POST"])
@login_required
def change_email():
    """Mail a link to the new address after checking the current password; the address
    changes only when the link is followed."""
    form = ChangeEmailForm(prefix="email")
    if form.validate_on_submit():
        new_email = form.email.data
        if not g.user.check_password(form.current_password.data):
            form.current_password.errors.append("That is not your current password.")
        elif g.user.email and new_email.casefold() == g.user.email.casefold():
            form.email.errors.append("That is your address already.")
        elif refusal := accounts.email_change_refusal(new_email):
            form.email.errors.append(refusal)
        else:
            try:
                accounts.request_email_change(g.user, new_email)
            except MailError as error:
                db.session.rollback()
                form.form_errors.append(str(error))
            else:
                db.session.commit()
                flash(f"We sent a link to {new_email}. Your address changes when you follow it;"
                      f" until then it stays {g.user.email or 'unset'}.")
                return redirect(url_for("account.index"))
    return render_account(email_form=form)


@bp.route("/sign-out-everywhere", methods=["POST"])
@login_required
def sign_out_everywhere():
    """End every session of the person, this one and those on other devices (logging out
    from an app ends only the browser it happens in)."""
    if not ConfirmForm().validate_on_submit():
        abort(400)
    if frames := log_out(everywhere=True):
        return signed_out_page(frames)  # the apps' front-channel logout frames
    flash("You are signed out everywhere.")
    return redirect(url_for("auth.index"))


@bp.route("/sessions/<sid>/end", methods=["POST"])
@login_required
def end_one_session(sid: str):
    """Sign out one session of the person (another device, or this browser)."""
    if not ConfirmForm().validate_on_submit():
        abort(400)
    if not end_session(sid):
        abort(404)  # not the person's, or already over
    if g.user is None:
        flash("You are signed out.")
        return redirect(url_for("auth.index"))
    flash("That session is signed out.")
    return redirect(url_for("account.index"))


@bp.route("/data")
@login_required
def download_data():
    """Everything kept about the person, as a JSON file to save."""
    body = json.dumps(personal_data(g.user), indent=2, ensure_ascii=False, sort_keys=False)
    audit.record("personal_data_downloaded", user=g.user)
    db.session.commit()
    filename = f"my-data-{g.user.id}.json"
    return body, 200, {"Content-Type": "application/json; charset=utf-8",
                       "Content-Disposition": f'attachment; filename="{filename}"',
                       "Cache-Control": "no-store"}


@bp.route("/delete", methods=["GET", "POST"])
@login_required
def delete_account():
    """Delete the account after saying what goes with it, with the password and the username
    typed out."""
    form = DeleteAccountForm()
    if form.validate_on_submit():
        typed = canonical_username(form.confirmation.data or "")
        if not g.user.check_password(form.password.data):
            form.password.errors.append("That is not your password.")
        elif not hmac.compare_digest(typed.encode(), g.user.username_canonical.encode()):
            form.confirmation.errors.append(f"Type your username, {g.user.username}, to confirm.")
        else:
            username = g.user.username
            names = delete_own_account(g.user)
            flash(f"The account {username} is deleted"
                  + (f", with {len(names)} app{'s' if len(names) != 1 else ''} you owned." if names else "."))
            return redirect(url_for("auth.index"))
    status = 400 if form.errors else 200
    return render_template("account/delete.html", form=form, clients=owned_clients(g.user)), status


@bp.route("/apps")
@login_required
def apps():
    """List the apps the user approved, with the scopes in words and when."""
    return render_template("account/apps.html", consents=list_consents(g.user), form=ConfirmForm(),
                           scope_descriptions=scope_descriptions(), api_names=api_names())


@bp.route("/apps/<client_id>/revoke", methods=["POST"])
@login_required
def revoke_app(client_id: str):
    """Take back an app's access: its consent goes and its tokens stop working at once."""
    if not ConfirmForm().validate_on_submit():
        abort(400)
    if not revoke_consent(g.user, client_id):
        abort(404)
    flash("Access removed. The app can no longer use your account until you allow it again.")
    return redirect(url_for("account.apps"))
