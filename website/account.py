"""Blueprint: the signed-in person's account: see it, change the password, change the email."""

from flask import Blueprint, current_app, flash, g, redirect, render_template, url_for

from .auth import login_required
from .forms import ChangeEmailForm, ChangePasswordForm
from .models import db

bp = Blueprint("account", __name__, url_prefix="/account")


def render_account(password_form=None, email_form=None):
    """The account page with both forms; the one that failed keeps its input and messages."""
    password_form = password_form or ChangePasswordForm(prefix="password", formdata=None)
    email_form = email_form or ChangeEmailForm(prefix="email", formdata=None)
    status = 400 if password_form.errors or email_form.errors else 200
    return render_template("account/index.html", password_form=password_form, email_form=email_form), status


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
            db.session.commit()
            flash("Your password was changed.")
            return redirect(url_for("account.index"))
    return render_account(password_form=form)


@bp.route("/email", methods=["POST"])
@login_required
def change_email():
    """Set a new email address after checking the current password."""
    form = ChangeEmailForm(prefix="email")
    if form.validate_on_submit():
        if not g.user.check_password(form.current_password.data):
            form.current_password.errors.append("That is not your current password.")
        else:
            g.user.email = form.email.data.strip()
            db.session.commit()
            flash("Your email address was changed.")
            return redirect(url_for("account.index"))
    return render_account(email_form=form)
