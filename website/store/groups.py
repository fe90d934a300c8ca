"""Reads and writes of groups, client roles and the groups allowed to use a client."""

from sqlalchemy import bindparam, delete, exists, func, or_, select

from website.extensions import db
from website.models.clients import OAuth2Client
from website.models.groups import ClientAllowedGroup, ClientRole, Group, GroupMember, RoleAssignment
from website.models.users import User
from website.store.cache import ROLES, versioned_cache


def group_names(user_id: int) -> list[str]:
    """The names of the groups the person is a member of, sorted (the ``groups`` claim)."""
    return list(db.session.scalars(
        select(Group.name).join(GroupMember, GroupMember.group_id == Group.id)
        .where(GroupMember.user_id == user_id).order_by(Group.name)))


#: Every role the client defines, each with whether the person holds it (directly or through
#: a group): one statement, built once, for a claim that goes in most tokens.
_ROLES_OF_CLIENT = (
    select(ClientRole.name, exists().where(
        RoleAssignment.role_id == ClientRole.id,
        or_(RoleAssignment.user_id == bindparam("user_id"),
            RoleAssignment.group_id.in_(select(GroupMember.group_id)
                                        .where(GroupMember.user_id == bindparam("user_id"))))).label("held"))
    .where(ClientRole.client_id == bindparam("client_id"))
    .order_by(ClientRole.name)
)


def role_names(user_id: int, client_id: str) -> list[str] | None:
    """The client's roles the person holds, directly or through a group, sorted (the ``roles``
    claim); None when the client defines no roles at all (known without a statement once this
    process has seen it: store/cache.py)."""
    defines_roles = versioned_cache().fresh(ROLES)
    if defines_roles is not None and defines_roles.get(client_id) is False:
        return None
    rows = db.session.execute(_ROLES_OF_CLIENT, {"user_id": user_id, "client_id": client_id}).all()
    if defines_roles is not None:
        defines_roles[client_id] = bool(rows)
    if not rows:
        return None
    return list(dict.fromkeys(name for name, held in rows if held))


def allowed_group_names(client_id: str) -> list[str]:
    """The groups whose members may use the client; empty: everyone may."""
    return list(db.session.scalars(
        select(Group.name).join(ClientAllowedGroup, ClientAllowedGroup.group_id == Group.id)
        .where(ClientAllowedGroup.client_id == client_id).order_by(Group.name)))


_ALLOWED_GROUPS = select(ClientAllowedGroup.group_id).where(ClientAllowedGroup.client_id == bindparam("client_id"))
#: One statement, built once (it runs on every token issued for a person).
_MAY_USE_CLIENT = select(or_(~exists(_ALLOWED_GROUPS), exists().where(
    GroupMember.user_id == bindparam("user_id"), GroupMember.group_id.in_(_ALLOWED_GROUPS))))


def may_use_client(user_id: int, client_id: str) -> bool:
    """Whether the person may sign in to the client: it names no groups, or the person is a
    member of one it names."""
    return bool(db.session.scalar(_MAY_USE_CLIENT, {"user_id": user_id, "client_id": client_id}))


def find_group(name: str) -> Group | None:
    return db.session.scalar(select(Group).where(Group.name == name))


def groups_with_counts() -> list[tuple[Group, int]]:
    """Every group with its number of members, by name."""
    rows = db.session.execute(
        select(Group, func.count(GroupMember.user_id)).outerjoin(GroupMember, GroupMember.group_id == Group.id)
        .group_by(Group.id).order_by(Group.name))
    return [(group, count) for group, count in rows]


def members(group: Group) -> list[User]:
    return list(db.session.scalars(
        select(User).join(GroupMember, GroupMember.user_id == User.id)
        .where(GroupMember.group_id == group.id).order_by(User.username)))


def is_member(group: Group, user: User) -> bool:
    return db.session.get(GroupMember, (group.id, user.id)) is not None


def add_member(group: Group, user: User) -> bool:
    """Add the person to the group (the caller commits); False if already a member."""
    if is_member(group, user):
        return False
    db.session.add(GroupMember(group_id=group.id, user_id=user.id))
    return True


def remove_member(group: Group, user: User) -> bool:
    """Take the person out of the group (the caller commits); False if not a member."""
    return db.session.execute(delete(GroupMember).where(
        GroupMember.group_id == group.id, GroupMember.user_id == user.id)).rowcount > 0


def find_role(client_id: str, name: str) -> ClientRole | None:
    return db.session.scalar(select(ClientRole).where(ClientRole.client_id == client_id, ClientRole.name == name))


def client_roles(client_id: str) -> list[ClientRole]:
    return list(db.session.scalars(select(ClientRole).where(ClientRole.client_id == client_id)
                                   .order_by(ClientRole.name)))


def holders(role: ClientRole) -> tuple[list[User], list[Group]]:
    """Who holds the role directly, and which groups give it."""
    users = db.session.scalars(select(User).join(RoleAssignment, RoleAssignment.user_id == User.id)
                               .where(RoleAssignment.role_id == role.id).order_by(User.username))
    groups = db.session.scalars(select(Group).join(RoleAssignment, RoleAssignment.group_id == Group.id)
                                .where(RoleAssignment.role_id == role.id).order_by(Group.name))
    return list(users), list(groups)


def assign_role(role: ClientRole, user: User | None = None, group: Group | None = None) -> bool:
    """Give the role to one person or one group (the caller commits); False if already given."""
    holder = RoleAssignment.user_id == user.id if user is not None else RoleAssignment.group_id == group.id
    if db.session.scalar(select(exists().where(RoleAssignment.role_id == role.id, holder))):
        return False
    db.session.add(RoleAssignment(role_id=role.id, user_id=user.id if user else None,
                                  group_id=group.id if group else None))
    return True


def unassign_role(role: ClientRole, user: User | None = None, group: Group | None = None) -> bool:
    """Take the role back from one person or group (the caller commits); False if not given."""
    holder = RoleAssignment.user_id == user.id if user is not None else RoleAssignment.group_id == group.id
    return db.session.execute(delete(RoleAssignment).where(RoleAssignment.role_id == role.id, holder)).rowcount > 0


def set_allowed_groups(client_id: str, groups: list[Group]) -> None:
    """Limit the client to members of these groups (none: everyone); the caller commits."""
    db.session.execute(delete(ClientAllowedGroup).where(ClientAllowedGroup.client_id == client_id))
    for group in groups:
        db.session.add(ClientAllowedGroup(client_id=client_id, group_id=group.id))


class GroupStillNeeded(ValueError):
    """The group is the only one some clients are limited to; the message names them."""


def delete_group(group: Group) -> None:
    """Delete the group (the caller audits and commits): its members leave it and the roles it
    gave are taken back. Refused (GroupStillNeeded) while it is the only group a client is
    limited to: a client limited to no group is open to everyone, so deleting its last group
    would let in everyone it kept out."""
    elsewhere = select(ClientAllowedGroup.client_id).where(ClientAllowedGroup.group_id != group.id)
    only_this = select(ClientAllowedGroup.client_id).where(ClientAllowedGroup.group_id == group.id,
                                                           ClientAllowedGroup.client_id.not_in(elsewhere))
    clients = db.session.scalars(select(OAuth2Client).where(OAuth2Client.client_id.in_(only_this))
                                 .order_by(OAuth2Client.client_name, OAuth2Client.client_id)).all()
    if clients:
        names = ", ".join(f"{client.client_name} ({client.client_id})" for client in clients)
        raise GroupStillNeeded(f"{group.name} is the only group allowed to use {names}: deleting it would "
                               "open that to everyone. Allow another group there, or everyone, first.")
    db.session.delete(group)


def groups_of(user: User) -> list[Group]:
    """The groups the person is a member of, by name."""
    return list(db.session.scalars(select(Group).join(GroupMember, GroupMember.group_id == Group.id)
                                   .where(GroupMember.user_id == user.id).order_by(Group.name)))


def roles_of(user: User) -> list[ClientRole]:
    """The client roles given to the person directly (not through a group)."""
    return list(db.session.scalars(select(ClientRole).join(RoleAssignment, RoleAssignment.role_id == ClientRole.id)
                                   .where(RoleAssignment.user_id == user.id)
                                   .order_by(ClientRole.client_id, ClientRole.name)))
