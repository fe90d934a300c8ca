"""/api/v2/clients: clients, their secrets, owners, roles and who may use them."""

from flask import jsonify
from sqlalchemy import select

from website.extensions import db
from website.models.clients import OAuth2Client
from website.models.groups import ClientRole, name_problem
from website.oauth2.client_metadata import ClientMetadataError, validate_client_metadata
from website.store import audit
from website.store import groups as store
from website.store.clients import delete_clients
from website.views.admin_api import (
    ApiError,
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
from website.views.admin_api.shapes import client_shape, find_client, find_group, find_role, find_user, role_shape
from website.views.admin_api.users import caller

#: The admin API's field names (Auth0's) and the RFC 7591 metadata each stands for.
FIELDS = {
    "name": "client_name",
    "callbacks": "redirect_uris",
    "allowed_logout_urls": "post_logout_redirect_uris",
    "web_origins": "allowed_origins",
    "grant_types": "grant_types",
    "response_types": "response_types",
    "scope": "scope",
    "token_endpoint_auth_method": "token_endpoint_auth_method",
    "logo_uri": "logo_uri",
    "client_uri": "client_uri",
}


def _metadata(data: dict, current: dict | None = None) -> dict:
    """The body as validated RFC 7591 metadata (over the client's current metadata)."""
    metadata = dict(current or {})
    for field, key in FIELDS.items():
        if field in data:
            metadata[key] = data[field]
    try:
        return validate_client_metadata(metadata, allow_api_scopes=True)
    except ClientMetadataError as error:
        name = next((field for field, key in FIELDS.items() if key == error.field), error.field)
        raise ApiError(400, f"{name}: {error.message}", "invalid_body") from None


def _owner(data: dict):
    owner = data.get("owner")
    if owner is None:
        return None
    if not isinstance(owner, str):
        raise ApiError(400, "'owner' must be a user_id or null.", "invalid_body")
    return find_user(owner)


def _allowed_groups(data: dict):
    names = data.get("allowed_groups")
    if names is None:
        return None
    if not isinstance(names, list) or len(names) > 100 or not all(isinstance(n, str) for n in names):
        raise ApiError(400, "'allowed_groups' must be a list of group names.", "invalid_body")
    found = []
    for name in names:
        group = store.find_group(name)
        if group is None:
            raise ApiError(404, f"The group {name!r} does not exist.", "inexistent_group")
        found.append(group)
    return found


def _with_secret(client: OAuth2Client, secret: str | None, status: int):
    """The client, with its new secret when it has one (shown this once; only its hash is
    kept); the ETag is the client's without the secret."""
    shape = client_shape(client)
    response = with_etag(shape, status)
    if secret is not None:
        etag = response.headers["ETag"]
        response = with_etag({**shape, "client_secret": secret}, status)
        response.headers["ETag"] = etag
    return response


@operation("/clients", "GET", "read:clients", "List clients.", response="Client", list_response=True,
           query=("page", "per_page", "include_totals"))
def list_clients():
    return paged("clients", select(OAuth2Client).order_by(OAuth2Client.id.desc()), client_shape)


@operation("/clients", "POST", "create:clients", "Register a client; the answer holds its client_secret,"
           " the only time it is shown.", request="ClientCreate", response="ClientWithSecret", status=201)
def create_client():
    data = json_body()
    only_fields(data, set(FIELDS) | {"owner", "allowed_groups"})
    if "name" not in data:
        raise ApiError(400, "'name' is required.", "invalid_body")
    metadata = _metadata(data)
    groups = _allowed_groups(data)
    client, secret = OAuth2Client.register(metadata, owner=_owner(data))
    db.session.add(client)
    db.session.flush()
    if groups is not None:
        store.set_allowed_groups(client.client_id, groups)
    audit.record("client_created", client_id=client.client_id, via="admin_api", by_client=caller())
    db.session.commit()
    return _with_secret(client, secret, 201)


@operation("/clients/<client_id>", "GET", "read:clients", "One client (never its secret).", response="Client")
def get_client(client_id):
    return with_etag(client_shape(find_client(client_id)))


@operation("/clients/<client_id>", "PATCH", "update:clients", "Change a client's settings, owner or allowed"
           " groups (If-Match refuses a concurrent change).", request="ClientUpdate", response="Client")
def update_client(client_id):
    data = json_body()
    only_fields(data, set(FIELDS) | {"owner", "allowed_groups"})
    client = find_client(client_id)
    lock_row(OAuth2Client.id, client.id)
    db.session.refresh(client)
    check_if_match(client_shape(client))
    had_secret = client.has_secret
    client.set_client_metadata({**client.extra_metadata, **_metadata(data, client.client_metadata)})
    if "owner" in data:
        client.owner = _owner(data)
    groups = _allowed_groups(data)
    if groups is not None:
        store.set_allowed_groups(client.client_id, groups)
    secret = client.rotate_secret() if had_secret != client.has_secret else None
    audit.record("client_updated", client_id=client.client_id, via="admin_api", by_client=caller(),
                 fields=sorted(data))
    db.session.commit()
    return _with_secret(client, secret, 200)


@operation("/clients/<client_id>", "DELETE", "delete:clients", "Delete a client with its tokens and codes.",
           status=204)
def delete_client(client_id):
    client = find_client(client_id)
    lock_row(OAuth2Client.id, client.id)
    check_if_match(client_shape(client))
    audit.record("client_deleted", client_id=client.client_id, via="admin_api", by_client=caller())
    delete_clients(OAuth2Client.id == client.id)
    db.session.commit()
    return no_content()


@operation("/clients/<client_id>/rotate-secret", "POST", "update:clients",
           "Replace the client's secret (the old one stops at once); the answer holds the new one.",
           response="ClientWithSecret")
def rotate_client_secret(client_id):
    client = find_client(client_id)
    if not client.has_secret:
        raise ApiError(400, "This client has no secret to rotate (it is public or uses keys).", "no_secret")
    secret = client.rotate_secret()
    audit.record("client_secret_rotated", client_id=client.client_id, via="admin_api", by_client=caller())
    db.session.commit()
    return _with_secret(client, secret, 200)


@operation("/clients/<client_id>/roles", "GET", "read:clients", "The roles the client defines.",
           response="Role", list_response=True)
def client_roles(client_id):
    return jsonify([role_shape(role) for role in store.client_roles(find_client(client_id).client_id)])


@operation("/clients/<client_id>/roles", "POST", "update:clients", "Define a role of the client.",
           request="RoleCreate", response="Role", status=201)
def create_client_role(client_id):
    client = find_client(client_id)
    data = json_body()
    only_fields(data, {"name", "description"})
    name = string_field(data, "name", 64, required=True)
    if problem := name_problem(name, "A role name"):
        raise ApiError(400, f"'name': {problem}", "invalid_body")
    if store.find_role(client.client_id, name) is not None:
        raise ApiError(409, "The client has a role with that name already.", "role_exists")
    role = ClientRole(client_id=client.client_id, name=name, description=string_field(data, "description", 200) or "")
    db.session.add(role)
    audit.record("role_created", client_id=client.client_id, role=name, via="admin_api", by_client=caller())
    db.session.commit()
    return with_etag(role_shape(role), 201)


@operation("/clients/<client_id>/roles/<role_id>", "DELETE", "update:clients",
           "Delete a role of the client; nobody holds it any more.", status=204,
           versioned=False)  # a role is never edited: there is no other version to refuse
def delete_client_role(client_id, role_id):
    client = find_client(client_id)
    role = find_role(role_id)
    if role.client_id != client.client_id:
        raise ApiError(404, f"The role {role_id!r} does not exist.", "inexistent_role")
    audit.record("role_deleted", client_id=client.client_id, role=role.name, via="admin_api", by_client=caller())
    db.session.delete(role)
    db.session.commit()
    return no_content()


@operation("/clients/<client_id>/roles/<role_id>/groups", "POST", "update:clients",
           "Give the role to every member of these groups.", request="GroupIds", status=204)
def assign_role_to_groups(client_id, role_id):
    client = find_client(client_id)
    role = find_role(role_id)
    if role.client_id != client.client_id:
        raise ApiError(404, f"The role {role_id!r} does not exist.", "inexistent_role")
    data = json_body()
    only_fields(data, {"groups"})
    ids = data.get("groups")
    if not isinstance(ids, list) or not ids or len(ids) > 100 or not all(isinstance(i, str) for i in ids):
        raise ApiError(400, "'groups' must be a list of 1 to 100 group ids.", "invalid_body")
    for group in [find_group(group_id) for group_id in ids]:
        if store.assign_role(role, group=group):
            audit.record("role_assigned", client_id=client.client_id, role=role.name, group=group.name,
                         via="admin_api", by_client=caller())
    db.session.commit()
    return no_content()
