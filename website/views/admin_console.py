"""The admin console's pages for one person, one client, and groups (on the admin blueprint):
everything an administrator does to them, each destructive step confirmed, each audited with
who did it."""

from flask import abort, flash, g, redirect, render_template, request, url_for
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from website.extensions import db
from website.forms import (
    AdminUserForm,
    AllowedGroupsForm,
    AssignRoleForm,
    ClientForm,
    ConfirmForm,
    DeleteUserForm,
    GroupForm,
    MemberForm,
    RoleForm,
    TransferOwnerForm,
)
from website.models.audit import AuditEvent
from website.models.clients import OAuth2Client
from website.models.grants import AuthorizationCode, Token
from website.models.groups import ClientRole, Group
from website.models.users import User
from website.oauth2.client_metadata import ClientMetadataError, validate_client_metadata
from website.services.accounts import send_password_reset
from website.services.administration import disable_account, enable_account
from website.services.audit_sentences import client_names, sentence
from website.services.consent import list_consents
from website.services.sessions import end_all_sessions, end_session, list_sessions
from website.store import audit as audit_log
from website.store import groups as group_store
from website.store.clients import delete_clients, query_client
from website.store.users import find_user
from website.views.admin import admin_required, bp
from website.views.account import when
from website.views.clients import client_form_data
from website.views.links import send_and_flash

#: Audit entries shown on a person's or a client's page (the audit log has the rest).
RECENT_EVENTS = 10


def _user(user_id: int) -> User:
    return db.get_or_404(User, user_id)


def _client(client_id: str) -> OAuth2Client:
    return query_client(client_id) or abort(404)


def _recent(condition) -> list[tuple[AuditEvent, str]]:
    events = db.session.scalars(select(AuditEvent).where(condition).order_by(AuditEvent.id.desc())
                                .limit(RECENT_EVENTS)).all()
    names = client_names(events)
    return [(event, sentence(event, names)) for event in events]


def _confirmed() -> bool:
    """A POST from a confirmation page (CSRF checked); a bad token is a 400."""
    form = ConfirmForm()
    if request.method == "POST" and not form.validate_on_submit():
        abort(400)
    return request.method == "POST"


# --- people ----------------------------------------------------------------------------------

@bp.route("/users/<int:user_id>", methods=["GET", "POST"])
@admin_required
def user_page(user_id: int):
    """A person: profile (editable), state, groups, connected apps, clients and recent events."""
    user = _user(user_id)
    form = AdminUserForm(data={"name": user.name or "", "email": user.email or "",
                               "email_verified": bool(user.email_verified)})
    if form.validate_on_submit():
        changed = sorted(field for field, value in (("name", form.name.data or None), ("email", form.email.data or None),
                                                    ("email_verified", bool(form.email_verified.data)))
                         if getattr(user, field) != value)
        user.name, user.email = form.name.data or None, form.email.data or None
        user.email_verified = bool(form.email_verified.data) and bool(user.email)
        audit_log.record("user_updated", user=user, by=g.user.username, via="admin_console", fields=changed)
        db.session.commit()
        flash(f"Saved {user.username}'s profile.")
        return redirect(url_for("admin.user_page", user_id=user.id))
    clients = db.session.scalars(select(OAuth2Client).where(OAuth2Client.owner_id == user.id)).all()
    return render_template("admin/user.html", user=user, form=form, confirm=ConfirmForm(),
                           sessions=list_sessions(user), when=when,
                           member_form=MemberForm(), groups=group_store.groups_of(user),
                           consents=list_consents(user), clients=clients,
                           events=_recent(AuditEvent.user_id == user.id)), 400 if form.errors else 200


@bp.route("/users/<int:user_id>/disable", methods=["GET", "POST"])
@admin_required
def disable_user(user_id: int):
    """Ask, then disable (or enable again) an account."""
    user = _user(user_id)
    enabling = user.disabled_at is not None
    if user.id == g.user.id:
        flash("You cannot disable your own account.", "error")
        return redirect(url_for("admin.user_page", user_id=user.id))
    if not _confirmed():
        return render_template("admin/confirm.html", form=ConfirmForm(), danger=not enabling,
                               title=f"{'Enable' if enabling else 'Disable'} {user.username}?",
                               text=(f"{user.username} will be able to sign in again. Their old sessions and"
                                     " tokens stay ended." if enabling else
                                     f"{user.username} will not be able to sign in; every session of theirs ends"
                                     " and every app's token for them stops working now."),
                               button="Enable account" if enabling else "Disable account",
                               back=url_for("admin.user_page", user_id=user.id))
    if enabling:
        enable_account(user, by=g.user, via="admin_console")
        flash(f"{user.username} can sign in again.")
    else:
        disable_account(user, by=g.user, via="admin_console")
        flash(f"{user.username} is disabled: signed out everywhere, every token revoked.")
    return redirect(url_for("admin.user_page", user_id=user.id))


@bp.route("/users/<int:user_id>/password-reset", methods=["POST"])
@admin_required
def send_user_password_reset(user_id: int):
    """Mail the person a link to choose a new password (their current one keeps working until
    they do); a mail server that refuses is a message on the page."""
    user = _user(user_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    if not user.email:
        flash(f"{user.username} has no email address to send the link to.", "error")
    elif user.disabled_at is not None:
        flash(f"{user.username} is disabled; enable the account first.", "error")
    else:
        send_and_flash(lambda: send_password_reset(user, by=g.user.username),
                       f"A password-reset link was sent to {user.email}.")
    return redirect(url_for("admin.user_page", user_id=user.id))


@bp.route("/users/<int:user_id>/sessions/end", methods=["GET", "POST"])
@admin_required
def end_user_sessions(user_id: int):
    """Ask, then sign the person out of every browser."""
    user = _user(user_id)
    if not _confirmed():
        return render_template("admin/confirm.html", form=ConfirmForm(), danger=True,
                               title=f"Sign {user.username} out everywhere?",
                               text=f"Every browser where {user.username} is signed in is signed out now. Apps"
                                    " keep their tokens until they expire or are revoked.",
                               button="Sign out everywhere", back=url_for("admin.user_page", user_id=user.id))
    end_all_sessions(user)
    audit_log.record("sessions_ended", user=user, by=g.user.username, via="admin_console")
    db.session.commit()
    flash(f"{user.username} is signed out everywhere.")
    return redirect(url_for("admin.user_page", user_id=user.id))


@bp.route("/users/<int:user_id>/sessions/<sid>/end", methods=["POST"])
@admin_required
def end_one_user_session(user_id: int, sid: str):
    """Sign the person out of one browser."""
    user = _user(user_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    if not end_session(sid, user=user, by=g.user):
        abort(404)
    flash(f"That session of {user.username} is signed out.")
    return redirect(url_for("admin.user_page", user_id=user.id))


@bp.route("/users/<int:user_id>/delete", methods=["GET", "POST"])
@admin_required
def delete_user(user_id: int):
    """Ask, then delete a person; their clients are deleted or given to someone else, as the
    administrator chooses."""
    user = _user(user_id)
    if user.id == g.user.id:
        flash("You cannot delete your own account here.", "error")
        return redirect(url_for("admin.users"))
    clients = db.session.scalars(select(OAuth2Client).where(OAuth2Client.owner_id == user.id)).all()
    form = DeleteUserForm()
    if form.validate_on_submit():
        heir = None
        if clients and form.clients.data not in ("delete", "transfer"):
            form.clients.errors.append("Choose what happens to their clients.")
        elif clients and form.clients.data == "transfer":
            heir = find_user(form.heir.data)
            if heir is None or heir.id == user.id:
                form.heir.errors.append("Name another person's username.")
        if not form.errors:
            owned = OAuth2Client.owner_id == user.id
            if heir is not None:
                db.session.execute(db.update(OAuth2Client).where(owned).values(owner_id=heir.id))
            else:
                delete_clients(owned)
            # The user's own tokens and codes at other clients (the foreign keys cascade too).
            db.session.execute(db.delete(Token).where(Token.user_id == user.id))
            db.session.execute(db.delete(AuthorizationCode).where(AuthorizationCode.user_id == user.id))
            audit_log.record("user_deleted", deleted_username=user.username, by=g.user.username,
                             via="admin_console", clients=len(clients),
                             clients_to=heir.username if heir else None)
            db.session.delete(user)
            db.session.commit()
            flash(f"User {user.username} deleted" + (f"; their clients now belong to {heir.username}." if heir else "."))
            return redirect(url_for("admin.users"))
    return render_template("admin/delete_user.html", user=user, clients=clients, form=form), \
        400 if form.errors else 200


@bp.route("/users/<int:user_id>/groups", methods=["POST"])
@admin_required
def user_groups(user_id: int):
    """Add the person to a group, or take them out of one (``remove``)."""
    user = _user(user_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    group = group_store.find_group(request.form.get("group", "")[:64])
    if group is None:
        flash("No such group.", "error")
    elif request.form.get("remove"):
        if group_store.remove_member(group, user):
            audit_log.record("group_member_removed", user=user, group=group.name, by=g.user.username)
    elif group_store.add_member(group, user):
        audit_log.record("group_member_added", user=user, group=group.name, by=g.user.username)
    db.session.commit()
    return redirect(url_for("admin.user_page", user_id=user.id))


# --- clients ---------------------------------------------------------------------------------

@bp.route("/clients/<client_id>")
@admin_required
def client_page(client_id: str):
    """A client: every setting, owner, roles, who may use it, recent events."""
    client = _client(client_id)
    roles = group_store.client_roles(client.client_id)
    assign = AssignRoleForm()
    assign.role.choices = [(str(role.id), role.name) for role in roles]
    allowed = AllowedGroupsForm(data={"groups": group_store.allowed_group_names(client.client_id)})
    allowed.groups.choices = [(group.name, group.name) for group, _ in group_store.groups_with_counts()]
    return render_template("admin/client.html", client=client, confirm=ConfirmForm(),
                           owner_form=TransferOwnerForm(data={"owner": client.owner.username if client.owner else ""}),
                           role_form=RoleForm(), assign_form=assign, allowed_form=allowed,
                           roles=[(role, *group_store.holders(role)) for role in roles],
                           events=_recent(AuditEvent.client_id == client.client_id))


@bp.route("/clients/<client_id>/edit", methods=["GET", "POST"])
@admin_required
def edit_client(client_id: str):
    """Change every setting of any client (API scopes allowed)."""
    client = _client(client_id)
    form = ClientForm(data=client_form_data(client))
    if form.validate_on_submit():
        try:
            metadata = validate_client_metadata(form.to_metadata(), allow_api_scopes=True)
        except ClientMetadataError as error:
            getattr(form, error.field, form.client_name).errors.append(error.message)
        else:
            had_secret = client.has_secret
            client.set_client_metadata({**client.extra_metadata, **metadata})
            secret = client.rotate_secret() if had_secret != client.has_secret else None
            audit_log.record("client_updated", user=g.user, client_id=client.client_id,
                             client_name=client.client_name, via="admin_console")
            db.session.commit()
            if secret:
                return _show_secret(client, secret)
            flash("Client saved.")
            return redirect(url_for("admin.client_page", client_id=client.client_id))
    return render_template("clients/form.html", form=form, client=client, admin=True), 400 if form.errors else 200


def _show_secret(client: OAuth2Client, secret: str):
    """The new secret, shown on this one answer (never stored in plain), never cached."""
    return render_template("admin/client_secret.html", client=client, secret=secret), 200, {
        "Cache-Control": "no-store"}


@bp.route("/clients/<client_id>/rotate-secret", methods=["GET", "POST"])
@admin_required
def rotate_client_secret(client_id: str):
    """Ask, then replace the client's secret; the old one stops at once."""
    client = _client(client_id)
    if not client.has_secret:
        flash("This client has no secret to rotate.", "error")
        return redirect(url_for("admin.client_page", client_id=client.client_id))
    if not _confirmed():
        return render_template("admin/confirm.html", form=ConfirmForm(), danger=True,
                               title=f"Replace the secret of {client.client_name}?",
                               text="The old secret stops working at once: the app fails until its"
                                    " configuration has the new one.",
                               button="Replace the secret", back=url_for("admin.client_page", client_id=client.client_id))
    secret = client.rotate_secret()
    audit_log.record("client_secret_rotated", user=g.user, client_id=client.client_id, via="admin_console")
    db.session.commit()
    return _show_secret(client, secret)


@bp.route("/clients/<client_id>/delete", methods=["GET", "POST"])
@admin_required
def delete_client(client_id: str):
    """Ask, then delete a client with its tokens and codes."""
    client = _client(client_id)
    if not _confirmed():
        return render_template("admin/confirm.html", form=ConfirmForm(), danger=True,
                               title=f"Delete {client.client_name}?",
                               text="The client, its tokens, codes and remembered consents are deleted; people"
                                    " signed in through it are signed out of it. This cannot be undone.",
                               button="Delete client", back=url_for("admin.client_page", client_id=client.client_id))
    audit_log.record("client_deleted", user=g.user, client_id=client.client_id, client_name=client.client_name,
                     via="admin_console")
    delete_clients(OAuth2Client.id == client.id)
    db.session.commit()
    flash(f"Client {client.client_name} deleted.")
    return redirect(url_for("admin.clients"))


@bp.route("/clients/<client_id>/owner", methods=["POST"])
@admin_required
def transfer_client(client_id: str):
    """Give the client to another person (or to nobody)."""
    client = _client(client_id)
    form = TransferOwnerForm()
    if not form.validate_on_submit():
        abort(400)
    owner = find_user(form.owner.data) if form.owner.data else None
    if form.owner.data and owner is None:
        flash(f"No user named {form.owner.data}.", "error")
    else:
        client.owner = owner
        audit_log.record("client_owner_changed", user=owner, client_id=client.client_id, by=g.user.username)
        db.session.commit()
        flash(f"{client.client_name} now belongs to {owner.username if owner else 'nobody'}.")
    return redirect(url_for("admin.client_page", client_id=client.client_id))


@bp.route("/clients/<client_id>/roles", methods=["POST"])
@admin_required
def client_roles(client_id: str):
    """Add a role, give one to a person or group, take one back, or delete one."""
    client = _client(client_id)
    back = redirect(url_for("admin.client_page", client_id=client.client_id))
    action = request.form.get("action")
    if action == "create":
        form = RoleForm()
        if not form.validate_on_submit():
            flash(next(iter(form.errors.values()))[0], "error")
        elif group_store.find_role(client.client_id, form.name.data):
            flash(f"{client.client_name} has a role {form.name.data} already.", "error")
        else:
            db.session.add(ClientRole(client_id=client.client_id, name=form.name.data,
                                      description=form.description.data or ""))
            audit_log.record("role_created", client_id=client.client_id, role=form.name.data, by=g.user.username)
        db.session.commit()
        return back
    if not ConfirmForm().validate_on_submit():
        abort(400)
    role = db.session.get(ClientRole, request.form.get("role", type=int) or 0)
    if role is None or role.client_id != client.client_id:
        abort(404)
    if action == "delete":
        audit_log.record("role_deleted", client_id=client.client_id, role=role.name, by=g.user.username)
        db.session.delete(role)
    elif action in ("assign", "unassign"):
        holder = request.form.get("holder", "").strip()[:80]
        group = group_store.find_group(holder.removeprefix("group:").strip()) if holder.startswith("group:") else None
        person = find_user(holder) if group is None and not holder.startswith("group:") else None
        if group is None and person is None:
            flash(f"No person or group named {holder!r} (write group:NAME for a group).", "error")
            return back
        change = group_store.assign_role if action == "assign" else group_store.unassign_role
        if change(role, user=person, group=group):
            audit_log.record("role_assigned" if action == "assign" else "role_unassigned", user=person,
                             client_id=client.client_id, role=role.name, group=group.name if group else None,
                             by=g.user.username)
    else:
        abort(400)
    db.session.commit()
    return back


@bp.route("/clients/<client_id>/allowed-groups", methods=["POST"])
@admin_required
def client_allowed_groups(client_id: str):
    """Limit the client to members of the ticked groups (none ticked: everyone)."""
    client = _client(client_id)
    form = AllowedGroupsForm()
    form.groups.choices = [(group.name, group.name) for group, _ in group_store.groups_with_counts()]
    if not form.validate_on_submit():
        abort(400)
    chosen = [group_store.find_group(name) for name in form.groups.data or []]
    group_store.set_allowed_groups(client.client_id, chosen)
    audit_log.record("client_access_limited", client_id=client.client_id, groups=[g.name for g in chosen],
                     by=g.user.username)
    db.session.commit()
    flash(f"Only members of {', '.join(g.name for g in chosen)} may use {client.client_name}." if chosen
          else f"Everyone may use {client.client_name}.")
    return redirect(url_for("admin.client_page", client_id=client.client_id))


# --- groups ----------------------------------------------------------------------------------

@bp.route("/groups", methods=["GET", "POST"])
@admin_required
def groups():
    """Every group with its number of members; create one."""
    form = GroupForm()
    if form.validate_on_submit():
        db.session.add(Group(name=form.name.data, description=form.description.data or ""))
        audit_log.record("group_created", group=form.name.data, by=g.user.username)
        try:
            db.session.commit()
        except IntegrityError:
            db.session.rollback()
            form.name.errors.append("A group with that name exists already.")
        else:
            flash(f"Group {form.name.data} created.")
            return redirect(url_for("admin.groups"))
    return render_template("admin/groups.html", form=form, groups=group_store.groups_with_counts()), \
        400 if form.errors else 200


@bp.route("/groups/<int:group_id>", methods=["GET", "POST"])
@admin_required
def group_page(group_id: int):
    """A group's members: add by username, remove."""
    group = db.get_or_404(Group, group_id)
    form = MemberForm()
    if form.validate_on_submit():
        user = find_user(form.username.data)
        if user is None:
            form.username.errors.append(f"No user named {form.username.data}.")
        else:
            if group_store.add_member(group, user):
                audit_log.record("group_member_added", user=user, group=group.name, by=g.user.username)
                db.session.commit()
            flash(f"{user.username} is in {group.name}.")
            return redirect(url_for("admin.group_page", group_id=group.id))
    return render_template("admin/group.html", group=group, form=form, confirm=ConfirmForm(),
                           members=group_store.members(group)), 400 if form.errors else 200


@bp.route("/groups/<int:group_id>/remove/<int:user_id>", methods=["POST"])
@admin_required
def remove_member(group_id: int, user_id: int):
    group, user = db.get_or_404(Group, group_id), _user(user_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    if group_store.remove_member(group, user):
        audit_log.record("group_member_removed", user=user, group=group.name, by=g.user.username)
        db.session.commit()
    flash(f"{user.username} is no longer in {group.name}.")
    return redirect(url_for("admin.group_page", group_id=group.id))


@bp.route("/groups/<int:group_id>/delete", methods=["GET", "POST"])
@admin_required
def delete_group(group_id: int):
    """Ask, then delete a group; the roles it gave are taken back."""
    group = db.get_or_404(Group, group_id)
    if not _confirmed():
        return render_template("admin/confirm.html", form=ConfirmForm(), danger=True,
                               title=f"Delete group {group.name}?",
                               text="Its members leave it, the roles it gave are taken back, and apps limited"
                                    " to it are closed to its members.",
                               button="Delete group", back=url_for("admin.group_page", group_id=group.id))
    try:
        group_store.delete_group(group)
    except group_store.GroupStillNeeded as error:
        flash(str(error), "error")
        return redirect(url_for("admin.group_page", group_id=group.id))
    audit_log.record("group_deleted", group=group.name, by=g.user.username)
    db.session.commit()
    flash(f"Group {group.name} deleted.")
    return redirect(url_for("admin.groups"))
