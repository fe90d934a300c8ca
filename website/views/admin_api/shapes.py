"""What the admin API answers for each kind of thing (Auth0's Management API field names
where they fit), and how it finds one by its id."""

from datetime import datetime, timezone

from sqlalchemy import select

from website.extensions import db
from website.models.clients import OAuth2Client
from website.models.groups import ClientRole, Group
from website.models.sessions import UserSession
from website.models.users import User
from website.services.sessions import find_live_session, idle_expiry
from website.store.clients import query_client
from website.store.groups import allowed_group_names, members
from website.views.admin_api import ApiError


def iso(value) -> str | None:
    """A stored time as ISO 8601 in UTC (SQLite returns it without a zone)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def user_shape(user: User) -> dict:
    """A person (``user_id`` is the OpenID Connect ``sub``)."""
    return {
        "user_id": user.sub,
        "username": user.username,
        "email": user.email,
        "email_verified": bool(user.email_verified),
        "name": user.name or user.username,
        "blocked": user.disabled_at is not None,
        "is_admin": bool(user.is_admin),
        "created_at": iso(user.created_at),
        "updated_at": iso(user.updated_at),
    }


def _epoch(seconds: int | None) -> str | None:
    return iso(datetime.fromtimestamp(seconds, timezone.utc)) if seconds else None


def session_shape(row: UserSession, user_id: str) -> dict:
    """A live browser session, in Auth0's session shape (``id`` is the OpenID Connect ``sid``).
    Sessions end after PERMANENT_SESSION_LIFETIME unseen and have no absolute end, so
    ``expires_at`` is null; only the browser and address it signed in from are kept."""
    return {
        "id": row.id,
        "user_id": user_id,
        "created_at": _epoch(row.created_at),
        "updated_at": _epoch(row.last_seen_at),
        "authenticated_at": _epoch(row.created_at),
        "last_interacted_at": _epoch(row.last_seen_at),
        "idle_expires_at": _epoch(idle_expiry(row)),
        "expires_at": None,
        "device": {"initial_user_agent": row.user_agent, "initial_ip": row.ip_address},
        "clients": [{"client_id": client_id} for client_id in row.clients or []],
        "authentication": {"methods": [{"name": method, "timestamp": _epoch(row.created_at)}
                                       for method in row.amr or []]},
    }


def group_shape(group: Group) -> dict:
    return {"id": str(group.id), "name": group.name, "description": group.description or "",
            "members": [user.sub for user in members(group)], "created_at": iso(group.created_at)}


def role_shape(role: ClientRole) -> dict:
    return {"id": str(role.id), "name": role.name, "description": role.description or "",
            "client_id": role.client_id}


def client_shape(client: OAuth2Client) -> dict:
    """A client: Auth0's names (``callbacks``, ``allowed_logout_urls``, ``web_origins``)
    beside RFC 7591's. The secret is never shown, except once when made or rotated."""
    extra = client.extra_metadata or {}
    return {
        "client_id": client.client_id,
        "name": client.client_name,
        "callbacks": list(client.redirect_uris or []),
        "allowed_logout_urls": list(extra.get("post_logout_redirect_uris") or []),
        "web_origins": list(extra.get("allowed_origins") or []),
        "grant_types": list(client.grant_types or []),
        "response_types": list(client.response_types or []),
        "scope": client.scope or "",
        "token_endpoint_auth_method": client.token_endpoint_auth_method,
        "logo_uri": client.logo_uri,
        "client_uri": client.client_uri,
        "owner": client.owner.sub if client.owner is not None else None,
        "allowed_groups": allowed_group_names(client.client_id),
        "created_at": client.client_id_issued_at,
    }


def find_user(user_id: str) -> User:
    user = db.session.scalar(select(User).where(User.sub == user_id)) if "\x00" not in user_id else None
    if user is None:
        raise ApiError(404, "The user does not exist.", "inexistent_user")
    return user


def find_session(session_id: str) -> tuple[UserSession, User]:
    """A live session and its person; ApiError 404 for an ended, expired or unknown one."""
    row = find_live_session(session_id)
    if row is None:
        raise ApiError(404, "The session does not exist.", "inexistent_session")
    return row, db.session.get(User, row.user_id)


#: The largest id an integer primary key holds on every database (PostgreSQL's integer).
MAX_ROW_ID = 2**31 - 1


def row_id(value) -> int | None:
    """A row id from its text, or None for anything no row has: "¹" (str.isdigit admits it,
    int() does not), signs, spaces, and numbers past the column type (PostgreSQL refuses them)."""
    if not isinstance(value, str) or not value.isascii() or not value.isdigit() or len(value) > 10:
        return None
    return int(value) if int(value) <= MAX_ROW_ID else None


def find_group(group_id: str) -> Group:
    group = db.session.get(Group, number) if (number := row_id(group_id)) is not None else None
    if group is None:
        raise ApiError(404, "The group does not exist.", "inexistent_group")
    return group


def find_role(role_id) -> ClientRole:
    role = db.session.get(ClientRole, number) if (number := row_id(role_id)) is not None else None
    if role is None:
        raise ApiError(404, f"The role {role_id!r} does not exist.", "inexistent_role")
    return role


def find_client(client_id: str) -> OAuth2Client:
    client = query_client(client_id)
    if client is None:
        raise ApiError(404, "The client does not exist.", "inexistent_client")
    return client
