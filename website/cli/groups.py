"""`flask` commands for groups, the roles a client defines, and who may use a client."""

import json

import click
from flask.cli import with_appcontext
from sqlalchemy.exc import IntegrityError

from website.cli.accounts import user_named
from website.extensions import db
from website.models.groups import ClientRole, Group, name_problem
from website.store import audit, groups
from website.store.clients import query_client


def _group(name: str) -> Group:
    group = groups.find_group(name)
    if group is None:
        raise click.ClickException(f"No group named {name!r} (flask list-groups lists them).")
    return group


def _client(client_id: str):
    client = query_client(client_id)
    if client is None:
        raise click.ClickException(f"No client with client_id {client_id!r}.")
    return client


def _role(client_id: str, name: str):
    role = groups.find_role(_client(client_id).client_id, name)
    if role is None:
        raise click.ClickException(f"The client {client_id} has no role {name!r}.")
    return role


@click.command("create-group")
@with_appcontext
@click.argument("name")
@click.option("--description", default="", help="What the group is for (shown to admins).")
def create_group_command(name, description):
    """Create a group; its NAME is what the groups claim carries."""
    if problem := name_problem(name):
        raise click.ClickException(problem)
    if len(description) > 200:
        raise click.ClickException("The description is at most 200 characters.")
    db.session.add(Group(name=name, description=description))
    audit.record("group_created", group=name)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise click.ClickException(f"A group named {name!r} exists already.") from None
    click.echo(f"Created group {name}.")


@click.command("delete-group")
@with_appcontext
@click.argument("name")
def delete_group_command(name):
    """Delete a group: its members leave it, and the roles it gave are taken back."""
    group = _group(name)
    try:
        groups.delete_group(group)
    except groups.GroupStillNeeded as error:
        raise click.ClickException(f"{error} (flask limit-client)") from None
    audit.record("group_deleted", group=name)
    db.session.commit()
    click.echo(f"Deleted group {name}.")


@click.command("list-groups")
@with_appcontext
@click.option("--json", "as_json", is_flag=True, help="Print JSON: a list of {name, description, members}.")
def list_groups_command(as_json):
    """List the groups and their members."""
    rows = [{"name": group.name, "description": group.description,
             "members": [user.username for user in groups.members(group)]}
            for group, _ in groups.groups_with_counts()]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("No groups (flask create-group NAME makes one).")
    for row in rows:
        click.echo(f"{row['name']}: {', '.join(row['members']) or '(no members)'}")


@click.command("add-to-group")
@with_appcontext
@click.argument("group")
@click.argument("usernames", nargs=-1, required=True)
def add_to_group_command(group, usernames):
    """Add people (by username) to a group."""
    found = _group(group)
    people = [user_named(username) for username in usernames]  # all found, or nothing changes
    for user in people:
        if groups.add_member(found, user):
            audit.record("group_member_added", user=user, group=found.name)
            click.echo(f"Added {user.username} to {found.name}.")
        else:
            click.echo(f"{user.username} is already in {found.name}.")
    db.session.commit()


@click.command("remove-from-group")
@with_appcontext
@click.argument("group")
@click.argument("username")
def remove_from_group_command(group, username):
    """Take a person out of a group."""
    found, user = _group(group), user_named(username)
    if not groups.remove_member(found, user):
        raise click.ClickException(f"{user.username} is not in {found.name}.")
    audit.record("group_member_removed", user=user, group=found.name)
    db.session.commit()
    click.echo(f"Removed {user.username} from {found.name}.")


@click.command("create-role")
@with_appcontext
@click.argument("client_id")
@click.argument("name")
@click.option("--description", default="", help="What the role allows in the app (shown to admins).")
def create_role_command(client_id, name, description):
    """Define a role of a client; its tokens then carry a roles claim."""
    client = _client(client_id)
    if problem := name_problem(name, "A role name"):
        raise click.ClickException(problem)
    if groups.find_role(client.client_id, name) is not None:
        raise click.ClickException(f"The client {client_id} has a role {name!r} already.")
    db.session.add(ClientRole(client_id=client.client_id, name=name, description=description[:200]))
    audit.record("role_created", client_id=client.client_id, role=name)
    db.session.commit()
    click.echo(f"Created role {name} of {client.client_name or client.client_id}.")


@click.command("delete-role")
@with_appcontext
@click.argument("client_id")
@click.argument("name")
def delete_role_command(client_id, name):
    """Delete a role of a client; nobody holds it any more."""
    role = _role(client_id, name)
    db.session.delete(role)
    audit.record("role_deleted", client_id=role.client_id, role=name)
    db.session.commit()
    click.echo(f"Deleted role {name}.")


def _holder(user, group):
    if (user is None) == (group is None):
        raise click.ClickException("Name exactly one holder: --user USERNAME or --group GROUP.")
    return (user_named(user), None) if user is not None else (None, _group(group))


def _role_change_command(name: str, assign: bool):
    """The assign-role / unassign-role command: the same arguments, one change each way."""

    @click.command(name, help="Give a client's role to a person or a group." if assign
                   else "Take a client's role back from a person or a group.")
    @with_appcontext
    @click.argument("client_id")
    @click.argument("name")
    @click.option("--user", default=None, help=f"{'Give the role to' if assign else 'Take the role from'} this person.")
    @click.option("--group", default=None,
                  help="Give the role to every member of this group." if assign else "Take the role from this group.")
    def command(client_id, name, user, group):
        role = _role(client_id, name)
        person, team = _holder(user, group)
        holder = person.username if person else team.name
        change = groups.assign_role if assign else groups.unassign_role
        if not change(role, user=person, group=team):
            raise click.ClickException(f"{holder} has the role {name} already." if assign
                                       else f"{holder} does not have the role {name}.")
        audit.record("role_assigned" if assign else "role_unassigned", user=person, client_id=role.client_id,
                     role=name, group=team.name if team else None)
        db.session.commit()
        holder = f"group {team.name}" if team else person.username
        click.echo(f"Gave {name} to {holder}." if assign else f"Took {name} from {holder}.")

    return command


assign_role_command = _role_change_command("assign-role", assign=True)
unassign_role_command = _role_change_command("unassign-role", assign=False)


@click.command("limit-client")
@with_appcontext
@click.argument("client_id")
@click.option("--group", "group_names", multiple=True, help="A group whose members may use the client (repeatable).")
@click.option("--everyone", is_flag=True, help="Remove the limit: everyone who can sign in may use it.")
def limit_client_command(client_id, group_names, everyone):
    """Say who may use a client: the members of the given groups, or everyone."""
    if bool(group_names) == everyone:
        raise click.ClickException("Give --group GROUP (repeatable) or --everyone.")
    client = _client(client_id)
    chosen = [_group(name) for name in group_names]
    groups.set_allowed_groups(client.client_id, chosen)
    audit.record("client_access_limited", client_id=client.client_id, groups=[g.name for g in chosen])
    db.session.commit()
    if chosen:
        click.echo(f"Only members of {', '.join(g.name for g in chosen)} may use {client.client_name or client_id}.")
    else:
        click.echo(f"Everyone may use {client.client_name or client_id}.")
