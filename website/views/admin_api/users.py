"""/api/v2/users: people's accounts, their groups, roles and sessions."""

from flask import current_app, g, jsonify, request
from sqlalchemy import or_, select

from website.extensions import db
from website.forms import EMAIL_RULE
from website.models.clients import OAuth2Client
from website.models.groups import ClientRole
from website.models.usernames import canonical_username, normalize_username, username_problem
from website.models.users import User
from website.services.administration import disable_account, enable_account
from website.services.sessions import end_all_sessions
from website.store import audit, groups
from website.store.clients import delete_clients
from website.views.admin_api import (
    ApiError,
    bool_field,
    check_if_match,
    json_body,
    lock_row,
    no_content,
    only_fields,
    operation,
    paged,
    string_field,
    with_etag,
)
from website.views.admin_api.shapes import find_role, find_user, group_shape, role_shape, user_shape

MIN_PASSWORD_LENGTH = 8


def _email(data: dict) -> str | None:
    email = string_field(data, "email", 254)
    if email is not None and not EMAIL_RULE.regex.match(email.strip()):
        raise ApiError(400, "'email' is not an email address.", "invalid_body")
    return email.strip() if email is not None else None


def _password(data: dict) -> str | None:
    password = string_field(data, "password", 1024)
    if password is not None and len(password) < MIN_PASSWORD_LENGTH:
        raise ApiError(400, f"'password' must be at least {MIN_PASSWORD_LENGTH} characters.", "password_too_short")
    return password


def _username(data: dict, required: bool) -> str | None:
    username = string_field(data, "username", 100, required=required)
    if username is None:
        return None
    username = normalize_username(username)
    if problem := username_problem(username):
        raise ApiError(400, f"'username': {problem}", "invalid_body")
    taken = db.session.scalar(select(User.id).where(User.username_canonical == canonical_username(username)))
    if taken is not None:
        raise ApiError(409, "The user already exists.", "user_exists")
    return username


@operation("/users", "GET", "read:users", "List people (newest first); q filters by username or email.",
           response="User", list_response=True, query=("q", "page", "per_page", "include_totals"))
def list_users():
    statement = select(User).order_by(User.id.desc())
    if q := request.args.get("q", "").strip()[:100].replace("\x00", ""):
        statement = statement.where(or_(User.username_canonical.contains(canonical_username(q), autoescape=True),
                                        User.email.icontains(q, autoescape=True)))
    return paged("users", statement, user_shape)


@operation("/users-by-email", "GET", "read:users", "The people with this email address.",
           response="User", list_response=True, query=("email",))
def users_by_email():
    email = request.args.get("email", "").strip()
    if not email or "\x00" in email:
        raise ApiError(400, "Give ?email=.", "invalid_query_string")
    users = db.session.scalars(select(User).where(User.email.ilike(email.replace("%", r"\%").replace("_", r"\_"),
                                                                  escape="\\")))
    return jsonify([user_shape(user) for user in users])


@operation("/users", "POST", "create:users", "Create an account.", request="UserCreate", response="User",
           status=201)
def create_user():
    data = json_body()
    only_fields(data, {"username", "email", "password", "name", "email_verified", "connection", "blocked"})
    user = User(username=_username(data, required=True), email=_email(data),
                name=string_field(data, "name", 100))
    password = _password(data)
    if password is None:
        raise ApiError(400, "'password' is required.", "invalid_body")
    user.set_password(password, method=current_app.config["PASSWORD_HASH_METHOD"])
    user.email_verified = bool(bool_field(data, "email_verified"))
    db.session.add(user)
    db.session.flush()
    audit.record("user_created", user=user, via="admin_api", by_client=caller())
    db.session.commit()
    if bool_field(data, "blocked"):
        disable_account(user, by=None, via="admin_api")
    return with_etag(user_shape(user), 201)


@operation("/users/<user_id>", "GET", "read:users", "One person.", response="User")
def get_user(user_id):
    return with_etag(user_shape(find_user(user_id)))


@operation("/users/<user_id>", "PATCH", "update:users",
           "Change an account; send If-Match with the ETag you read to refuse a concurrent change.",
           request="UserUpdate", response="User")
def update_user(user_id):
    data = json_body()
    only_fields(data, {"username", "email", "password", "name", "email_verified", "blocked", "is_admin"})
    user = find_user(user_id)
    lock_row(User.id, user.id)
    db.session.refresh(user)
    check_if_match(user_shape(user))
    if "username" in data:
        if normalize_username(str(data["username"])) != user.username:
            user.username = _username(data, required=True)
    if "email" in data:
        user.email = _email(data)
    if "name" in data:
        user.name = string_field(data, "name", 100)
    for flag in ("email_verified", "is_admin"):
        if (value := bool_field(data, flag)) is not None:
            setattr(user, flag, value)
    if (password := _password(data)) is not None:
        user.set_password(password, method=current_app.config["PASSWORD_HASH_METHOD"])
        end_all_sessions(user)
    blocked = bool_field(data, "blocked")
    audit.record("user_updated", user=user, via="admin_api", by_client=caller(), fields=sorted(data))
    db.session.commit()
    if blocked is True:
        disable_account(user, by=None, via="admin_api")
    elif blocked is False:
        enable_account(user, by=None, via="admin_api")
    return with_etag(user_shape(user))


@operation("/users/<user_id>", "DELETE", "delete:users",
           "Delete an account. If the person owns clients, say what happens to them:"
           " ?owned_clients=delete, or transfer them with ?transfer_clients_to=USER_ID.",
           status=204, query=("owned_clients", "transfer_clients_to"))
def delete_user(user_id):
    user = find_user(user_id)
    lock_row(User.id, user.id)
    check_if_match(user_shape(user))
    owned = OAuth2Client.owner_id == user.id
    count = db.session.scalar(select(db.func.count()).select_from(OAuth2Client).where(owned))
    heir_id = request.args.get("transfer_clients_to")
    if count and heir_id:
        heir = find_user(heir_id)
        if heir.id == user.id:
            raise ApiError(400, "Transfer the clients to someone else.", "invalid_query_string")
        db.session.execute(db.update(OAuth2Client).where(owned).values(owner_id=heir.id))
    elif count and request.args.get("owned_clients") == "delete":
        delete_clients(owned)
    elif count:
        raise ApiError(409, f"The user owns {count} client(s): add ?owned_clients=delete, or"
                            " ?transfer_clients_to=USER_ID to give them to someone else.", "owns_clients")
    audit.record("user_deleted", user=None, deleted_username=user.username, via="admin_api", by_client=caller(),
                 clients=count, clients_to=heir_id)
    db.session.delete(user)
    db.session.commit()
    return no_content()


@operation("/users/<user_id>/sessions", "DELETE", "delete:sessions", "Sign the person out everywhere.",
           status=204, versioned=False)
def delete_sessions(user_id):
    user = find_user(user_id)
    end_all_sessions(user)
    audit.record("sessions_ended", user=user, via="admin_api", by_client=caller())
    db.session.commit()
    return no_content()


@operation("/users/<user_id>/groups", "GET", "read:users", "The groups the person is in.",
           response="Group", list_response=True)
def user_groups(user_id):
    user = find_user(user_id)
    return jsonify([group_shape(group) for group in groups.groups_of(user)])


@operation("/users/<user_id>/roles", "GET", "read:users", "The client roles given to the person directly.",
           response="Role", list_response=True)
def user_roles(user_id):
    user = find_user(user_id)
    return jsonify([role_shape(role) for role in groups.roles_of(user)])


def _roles_from_body() -> list[ClientRole]:
    data = json_body()
    only_fields(data, {"roles"})
    ids = data.get("roles")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids) or len(ids) > 100:
        raise ApiError(400, "'roles' must be a list of 1 to 100 role ids.", "invalid_body")
    return [find_role(role_id) for role_id in ids]


@operation("/users/<user_id>/roles", "POST", "update:users", "Give the person client roles.",
           request="RoleIds", status=204)
def assign_user_roles(user_id):
    user = find_user(user_id)
    for role in _roles_from_body():
        if groups.assign_role(role, user=user):
            audit.record("role_assigned", user=user, client_id=role.client_id, role=role.name, via="admin_api")
    db.session.commit()
    return no_content()


@operation("/users/<user_id>/roles", "DELETE", "update:users", "Take client roles back from the person.",
           request="RoleIds", status=204, versioned=False)
def remove_user_roles(user_id):
    user = find_user(user_id)
    for role in _roles_from_body():
        if groups.unassign_role(role, user=user):
            audit.record("role_unassigned", user=user, client_id=role.client_id, role=role.name, via="admin_api")
    db.session.commit()
    return no_content()


def caller() -> str | None:
    """The client_id of the token calling the API (for the audit log)."""
    token = g.get("management_token")
    return token.client_id if token is not None else None
