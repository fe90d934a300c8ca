"""Groups of people, roles that a client defines, and which groups may use a client.

- A ``Group`` has members (``GroupMember``); its name is the value in the ``groups`` claim.
- A ``ClientRole`` belongs to one client; it is given to people directly or through a group
  (``RoleAssignment``), and appears in the ``roles`` claim of that client's tokens.
- ``ClientAllowedGroup`` rows limit a client to the members of those groups; a client with none
  is open to everyone who can sign in.
"""

import re
from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from website.extensions import db
from website.models.base import utcnow


#: Group and role names: what tokens carry, so plain and unambiguous.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")


def name_problem(name: str, what: str = "A group name") -> str | None:
    """Why a group or role name is refused, or None."""
    if not _NAME.fullmatch(name or ""):
        return (f"{what} is 1 to 64 letters, digits, dots, dashes, colons or underscores, starting"
                " with a letter or digit.")
    return None


class Group(db.Model):
    __tablename__ = "groups"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class GroupMember(db.Model):
    __tablename__ = "group_members"

    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True)
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ClientRole(db.Model):
    __tablename__ = "client_roles"
    __table_args__ = (UniqueConstraint("client_id", "name", name="uq_client_roles_client_id_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("oauth2_clients.client_id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class RoleAssignment(db.Model):
    """A role given to one person or to every member of one group."""

    __tablename__ = "role_assignments"
    __table_args__ = (
        CheckConstraint("(user_id IS NULL) <> (group_id IS NULL)", name="one_holder"),
        UniqueConstraint("role_id", "user_id", "group_id", name="uq_role_assignments_role_id_user_id_group_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    role_id: Mapped[int] = mapped_column(ForeignKey("client_roles.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    group_id: Mapped[int | None] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ClientAllowedGroup(db.Model):
    __tablename__ = "client_allowed_groups"

    client_id: Mapped[str] = mapped_column(ForeignKey("oauth2_clients.client_id", ondelete="CASCADE"),
                                           primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True, index=True)
