"""/api/v2/groups: groups and their members."""

from flask import jsonify
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from website.extensions import db
from website.models.groups import Group, name_problem
from website.store import audit
from website.store import groups as store
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
from website.views.admin_api.shapes import find_group, find_user, group_shape, user_shape
from website.views.admin_api.users import caller


def _name(data: dict, required: bool) -> str | None:
    name = string_field(data, "name", 64, required=required)
    if name is not None and (problem := name_problem(name)):
        raise ApiError(400, f"'name': {problem}", "invalid_body")
    return name


def _commit_or_conflict() -> None:
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise ApiError(409, "A group with that name exists already.", "group_exists") from None


@operation("/groups", "GET", "read:groups", "List groups by name.", response="Group", list_response=True,
           query=("page", "per_page", "include_totals"))
def list_groups():
    return paged("groups", select(Group).order_by(Group.name), group_shape)


@operation("/groups", "POST", "create:groups", "Create a group.", request="GroupCreate", response="Group",
           status=201)
def create_group():
    data = json_body()
    only_fields(data, {"name", "description"})
    group = Group(name=_name(data, required=True), description=string_field(data, "description", 200) or "")
    db.session.add(group)
    audit.record("group_created", group=group.name, via="admin_api", by_client=caller())
    _commit_or_conflict()
    return with_etag(group_shape(group), 201)


@operation("/groups/<group_id>", "GET", "read:groups", "One group with its members' user_ids.", response="Group")
def get_group(group_id):
    return with_etag(group_shape(find_group(group_id)))


@operation("/groups/<group_id>", "PATCH", "update:groups", "Rename a group or change its description"
           " (If-Match refuses a concurrent change).", request="GroupUpdate", response="Group")
def update_group(group_id):
    data = json_body()
    only_fields(data, {"name", "description"})
    group = find_group(group_id)
    lock_row(Group.id, group.id)
    db.session.refresh(group)
    check_if_match(group_shape(group))
    if "name" in data:
        group.name = _name(data, required=True)
    if "description" in data:
        group.description = string_field(data, "description", 200) or ""
    audit.record("group_updated", group=group.name, via="admin_api", by_client=caller())
    _commit_or_conflict()
    return with_etag(group_shape(group))


@operation("/groups/<group_id>", "DELETE", "delete:groups",
           "Delete a group; the roles it gave are taken back (409 group_in_use while it is the only group"
           " a client is limited to).",
           status=204)
def delete_group(group_id):
    group = find_group(group_id)
    lock_row(Group.id, group.id)
    check_if_match(group_shape(group))
    try:
        store.delete_group(group)
    except store.GroupStillNeeded as error:
        raise ApiError(409, str(error), "group_in_use") from None
    audit.record("group_deleted", group=group.name, via="admin_api", by_client=caller())
    db.session.commit()
    return no_content()


def _members_from_body() -> list:
    data = json_body()
    only_fields(data, {"members"})
    ids = data.get("members")
    if not isinstance(ids, list) or not ids or len(ids) > 100 or not all(isinstance(i, str) for i in ids):
        raise ApiError(400, "'members' must be a list of 1 to 100 user_ids.", "invalid_body")
    return [find_user(user_id) for user_id in ids]


@operation("/groups/<group_id>/members", "GET", "read:groups", "The group's members.", response="User",
           list_response=True)
def group_members(group_id):
    return jsonify([user_shape(user) for user in store.members(find_group(group_id))])


@operation("/groups/<group_id>/members", "POST", "update:groups", "Add people to the group.",
           request="MemberIds", status=204)
def add_members(group_id):
    group = find_group(group_id)
    for user in _members_from_body():
        if store.add_member(group, user):
            audit.record("group_member_added", user=user, group=group.name, via="admin_api", by_client=caller())
    db.session.commit()
    return no_content()


@operation("/groups/<group_id>/members", "DELETE", "update:groups", "Take people out of the group.",
           request="MemberIds", status=204, versioned=False)
def remove_members(group_id):
    group = find_group(group_id)
    for user in _members_from_body():
        if store.remove_member(group, user):
            audit.record("group_member_removed", user=user, group=group.name, via="admin_api", by_client=caller())
    db.session.commit()
    return no_content()
