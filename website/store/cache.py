"""In-process caches of clients and APIs for the token endpoint, and of which clients define
roles, kept true across instances.

Each cache has a version row (models/cache_versions.py). Every write to what a cache holds
bumps its row in the write's own transaction: the session events below see every flushed
OAuth2Client, ResourceServer, ApiClientGrant, ClientRole or User (a user's clients go with it) and every
bulk UPDATE, DELETE or INSERT on their tables, so no write path has to remember to. A process
reads the version rows (one statement) at most every CLIENT_CACHE_CHECK_INTERVAL seconds
and drops a cache whose version moved; a commit of this process drops its own at once.

What a cache hands out is a read-only snapshot (ClientSnapshot, ApiSnapshot), never a row
of a session: code that changes a client or an API (rotation, editing, deletion, the CLI)
reads the row itself, with store/clients.query_client or store/apis.find_api.
"""

import threading
import time

from flask import current_app, has_app_context
from sqlalchemy import event, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from website.extensions import db
from website.models.apis import ApiClientGrant, ResourceServer
from website.models.cache_versions import CacheVersion
from website.models.clients import OAuth2Client
from website.models.groups import ClientRole
from website.models.users import User

CLIENTS, APIS = "clients", "apis"
#: client_id -> whether the client defines roles (the roles claim's statement is skipped for
#: the many that define none). A client's deletion takes its roles (ON DELETE CASCADE) without
#: a bump: "defines roles" kept for a client that is gone only costs that statement.
ROLES = "client_roles"

#: What each table's writes make stale. A user's deletion takes the clients they own
#: (ON DELETE CASCADE); a client's takes its API grants and empties introspection_client_id.
_TABLE_CACHES = {
    OAuth2Client.__tablename__: (CLIENTS, APIS),
    User.__tablename__: (CLIENTS, APIS),
    ResourceServer.__tablename__: (APIS,),
    ApiClientGrant.__tablename__: (APIS,),
    ClientRole.__tablename__: (ROLES,),
}

#: Tables whose rows matter to the caches only when deleted: a user's sign-in, password or
#: profile change touches no client, and bumping there would make every log-in wait on the
#: version row's lock (PostgreSQL) and empty every instance's cache.
_DELETES_ONLY = frozenset({User.__tablename__})

#: Entries kept per cache before it starts again (unknown values are never kept).
MAX_ENTRIES = 10_000

_PENDING = "cache_versions_pending"


class VersionedCache:
    """One process's copies of what the version rows guard, for one app."""

    def __init__(self):
        self._lock = threading.Lock()
        self._versions: dict[str, int] = {}
        self._checked_at = float("-inf")
        self.entries: dict[str, dict] = {CLIENTS: {}, APIS: {}, ROLES: {}}

    def drop(self, names) -> None:
        """Forget the named caches (this process changed what they hold)."""
        with self._lock:
            for name in names:
                self.entries[name] = {}

    def fresh(self, name: str) -> dict | None:
        """The named cache's entries, after reading the version rows if the interval passed;
        None while this session has uncommitted writes to what it holds (the session sees
        them, other requests must not)."""
        # Without creating the request's session when there is none yet (nothing pending then).
        registry = db.session.registry
        if registry.has() and registry().info.get(_PENDING):
            return None
        checked = time.monotonic()
        if checked - self._checked_at >= current_app.config["CLIENT_CACHE_CHECK_INTERVAL"]:
            versions = dict(db.session.execute(select(CacheVersion.name, CacheVersion.version)).all())
            with self._lock:
                for cache in self.entries:
                    if versions.get(cache, 0) != self._versions.get(cache):
                        self.entries[cache] = {}
                self._versions = versions
                self._checked_at = checked
        entries = self.entries[name]
        if len(entries) >= MAX_ENTRIES:
            entries = self.entries[name] = {}
        return entries


def versioned_cache() -> VersionedCache:
    cache = current_app.extensions.get("versioned_cache")
    if cache is None:
        cache = current_app.extensions.setdefault("versioned_cache", VersionedCache())
    return cache


def bump(session: Session, names) -> None:
    """Move the version of each named cache, on the session's connection (so in the
    transaction of the write that made it stale); an upsert, so a missing row is no hole."""
    names = sorted(set(names))
    if not names:
        return
    connection = session.connection()
    insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
    table = CacheVersion.__table__
    statement = insert(table).values([{"name": name, "version": 1} for name in names])
    connection.execute(statement.on_conflict_do_update(
        index_elements=[table.c.name], set_={"version": table.c.version + 1}))
    session.info.setdefault(_PENDING, set()).update(names)


@event.listens_for(Session, "after_flush")
def _flushed(session, _context) -> None:
    names = set()
    for instances in (session.new, session.dirty, session.deleted):
        for instance in instances:
            table = getattr(instance, "__tablename__", None)
            if instances is session.deleted or table not in _DELETES_ONLY:
                names.update(_TABLE_CACHES.get(table, ()))
    bump(session, names)


@event.listens_for(Session, "do_orm_execute")
def _executed(state) -> None:
    if not (state.is_update or state.is_delete or state.is_insert):
        return
    table = getattr(getattr(state.statement, "table", None), "name", None)
    if table in _DELETES_ONLY and not state.is_delete:
        return
    names = _TABLE_CACHES.get(table, ())
    # A no-op UPDATE that only takes the row lock (admin_api.lock_row) is a write all the same:
    # it precedes one, and one bump too many costs one reload.
    bump(state.session, names)


@event.listens_for(Session, "after_commit")
def _committed(session) -> None:
    names = session.info.pop(_PENDING, None)
    if names and has_app_context():
        versioned_cache().drop(names)


@event.listens_for(Session, "after_rollback")
def _rolled_back(session) -> None:
    names = session.info.pop(_PENDING, None)
    if names and has_app_context():
        versioned_cache().drop(names)
