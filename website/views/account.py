"""Blueprint: the signed-in person's account (password, email) and connected apps (the clients
they approved, and revoking one)."""

from flask import Blueprint, abort, current_app, flash, g, redirect, render_template, session, url_for

from website.extensions import db
from website.forms import ChangeEmailForm, ChangePasswordForm, ConfirmForm
from website.oauth2.scopes import scope_descriptions
from website.services import accounts
from website.services.consent import list_consents, revoke_consent
from website.services.mail import MailError
from website.services.sessions import end_all_sessions, log_out
from website.store.apis import api_names
from website.views.auth import login_required

bp = Blueprint("account", __name__, url_prefix="/account")


def render_account(password_form=None, email_form=None):
    """The account page with both forms; the one that failed keeps its input and messages."""
    password_form = password_form or ChangePasswordForm(prefix="password", formdata=None)
    email_form = email_form or ChangeEmailForm(prefix="email", formdata=None)
    status = 400 if password_form.errors or email_form.errors or email_form.form_errors else 200
    return render_template("account/index.html", password_form=password_form, email_form=email_form,
                           sessions_form=ConfirmForm(formdata=None)), status


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
            # Sessions elsewhere (a stolen cookie, say) end; this one carries on.
            end_all_sessions(g.user)
            session["session_key"] = g.user.session_key()
            db.session.commit()
            flash("Your password was changed.")
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
    log_out(everywhere=True)
    flash("You are signed out everywhere.")
    return redirect(url_for("auth.index"))


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
