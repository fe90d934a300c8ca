"""Blueprint: the signed-in user's connected apps (the clients they approved), and revoking one."""

from flask import Blueprint, abort, flash, g, redirect, render_template, url_for

from .auth import login_required
from .consent import list_consents, revoke_consent
from .forms import ConfirmForm
from .resources import scope_descriptions

bp = Blueprint("account", __name__, url_prefix="/account")


@bp.route("/apps")
@login_required
def apps():
    """List the apps the user approved, with the scopes in words and when."""
    return render_template("account/apps.html", consents=list_consents(g.user), form=ConfirmForm(),
                           scope_descriptions=scope_descriptions())


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
