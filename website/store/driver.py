"""Statements run on the database driver itself, for the hottest paths: reads for the checks
on every API call (a bearer token, introspection, a client's throttle lock), and the rows a
token issuance writes when its request has nothing else in a transaction (client credentials).

A statement is compiled once per engine to the driver's SQL and run on a DBAPI connection
kept here, outside SQLAlchemy's pool: no pool checkout and reset, no Connection or Result
object, no compilation-cache lookup. The column types' own result processors still apply
(SQLite's 0/1 become booleans as through the ORM). On PostgreSQL the connection is in
autocommit (a read needs no transaction) with ``prepare_threshold=0``: psycopg prepares
each statement on the server at its first run. On SQLite, sqlite3 keeps its own prepared
statements.

A write (``insert_rows``) is its own transaction, committed before the call returns, with
the column defaults and bind conversions SQLAlchemy's Core INSERT would apply. On
PostgreSQL the rows go as one statement (each row but the last in a data-modifying WITH),
which autocommit makes a transaction of its own: one round trip instead of four (BEGIN,
two INSERTs, COMMIT), the same one commit. A request
whose ORM session has a transaction open writes through the session instead
(``may_write_alone``), so what it already changed commits with its rows or not at all.

Nothing is cached but the statements: every call reads the database, so a revocation
committed by any instance is seen by the next check. A connection that fails is closed and
the error raised as SQLAlchemy's (OperationalError answers 503, ops.py); the next call
connects afresh. A disconnect (the server went away) also closes the idle connections and
marks the pool's stale. ``engine.dispose()`` closes the idle connections here too.
"""

import os
import threading
import weakref

from sqlalchemy import bindparam, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import SingletonThreadPool, StaticPool

from website.extensions import db


class _Compiled:
    __slots__ = ("names", "positional", "processors", "sql")

    def __init__(self, statement, dialect):
        compiled = statement.compile(dialect=dialect)
        self.sql = compiled.string
        self.positional = compiled.positional
        self.names = list(compiled.positiontup or ()) if compiled.positional else None
        processors = [(index, process) for index, column in enumerate(statement.selected_columns)
                      if (process := column.type.dialect_impl(dialect).result_processor(dialect, None))]
        self.processors = processors or None  # only the columns that convert (a token row: 4 of 33)

    def parameters(self, values: dict):
        return [values[name] for name in self.names] if self.positional else values

    def row(self, raw):
        if raw is None or self.processors is None:
            return raw
        row = list(raw)
        for index, process in self.processors:
            row[index] = process(row[index])
        return tuple(row)


class _CompiledInsert:
    """An INSERT of one table's row with a given set of columns, plus those with a Python
    default (applied here as the Core INSERT applies them). ``prefix`` starts its parameters'
    names, so that several rows' INSERTs can make one statement (``_CompiledInserts``)."""

    __slots__ = ("defaults", "keys", "positional", "prefix", "processors", "sql", "statement")

    def __init__(self, table, keys: frozenset, dialect, prefix: str = ""):
        columns = [column for column in table.columns
                   if column.key in keys or (column.default is not None and column is not table.autoincrement_column)]
        self.statement = table.insert().values({column.key: bindparam(prefix + column.key, type_=column.type)
                                                for column in columns})
        compiled = self.statement.compile(dialect=dialect)
        self.sql = compiled.string
        self.positional = compiled.positional
        self.prefix = prefix
        self.keys = ([name[len(prefix):] for name in compiled.positiontup] if compiled.positional
                     else [column.key for column in columns])
        by_key = {column.key: column for column in columns}
        self.defaults = {key: by_key[key].default for key in self.keys if key not in keys}
        self.processors = {key: process for key in self.keys
                           if (process := by_key[key].type.dialect_impl(dialect).bind_processor(dialect))}

    def parameters(self, values: dict):
        row = {}
        for key in self.keys:
            if key in values:
                value = values[key]
            else:
                default = self.defaults[key]
                value = default.arg(None) if default.is_callable else default.arg
            process = self.processors.get(key)
            row[self.prefix + key] = process(value) if process is not None else value
        return list(row.values()) if self.positional else row


class _CompiledInserts:
    """Several rows' INSERTs as one PostgreSQL statement: each row but the last in a
    data-modifying WITH clause (they all run, in one snapshot, and commit or fail together)."""

    __slots__ = ("parts", "sql")

    def __init__(self, shape, dialect):
        self.parts = [_CompiledInsert(table, keys, dialect, prefix=f"r{index}_")
                      for index, (table, keys) in enumerate(shape)]
        *first, last = [part.statement for part in self.parts]
        statement = last.add_cte(*(insert.cte(f"r{index}") for index, insert in enumerate(first)))
        self.sql = statement.compile(dialect=dialect).string

    def parameters(self, rows) -> dict:
        merged = {}
        for part, (_, values) in zip(self.parts, rows, strict=True):
            merged.update(part.parameters(values))
        return merged


class _Connections:
    """The idle driver connections and compiled statements of one engine in one process."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.pid = os.getpid()
        self.idle: list = []
        self.compiled: dict = {}
        self.postgresql = engine.dialect.name == "postgresql"

    def connect(self):
        # Through the pool once (its connect events set SQLite's pragmas), then detached:
        # the connection is this module's from now on.
        proxied = self.engine.raw_connection()
        connection = proxied.driver_connection
        proxied.detach()
        if self.postgresql:
            connection.autocommit = True
            connection.prepare_threshold = 0
        return connection

    def close_idle(self) -> None:
        idle, self.idle = self.idle, []
        for connection in idle:
            _close_quietly(connection)


def _close_quietly(connection) -> None:
    try:
        connection.close()
    except Exception:  # noqa: BLE001, S110 - a connection that cannot close is gone anyway
        pass


_STATE: "weakref.WeakKeyDictionary[Engine, _Connections]" = weakref.WeakKeyDictionary()
_STATE_LOCK = threading.Lock()


def _connections(engine: Engine) -> _Connections:
    state = _STATE.get(engine)
    if state is None or state.pid != os.getpid():
        with _STATE_LOCK:
            state = _STATE.get(engine)
            if state is None or state.pid != os.getpid():
                # A forked worker never uses its parent's sockets: start empty.
                if not event.contains(engine, "engine_disposed", _disposed):
                    event.listen(engine, "engine_disposed", _disposed)
                state = _STATE[engine] = _Connections(engine)
    return state


def _disposed(engine: Engine) -> None:
    state = _STATE.pop(engine, None)
    if state is not None and state.pid == os.getpid():
        state.close_idle()


def _shares_one_connection(engine: Engine) -> bool:
    # An in-memory SQLite database lives in its pool's one connection: no second one.
    return isinstance(engine.pool, (SingletonThreadPool, StaticPool))


def fetch_one(statement, values: dict):
    """The first row of a read-only ``statement`` (a SELECT) with its ``values``, or None."""
    engine = db.engine
    if _shares_one_connection(engine):
        with engine.connect() as connection:
            return connection.execute(statement, values).first()
    state = _connections(engine)
    compiled = state.compiled.get(id(statement))
    if compiled is None:
        compiled = state.compiled[id(statement)] = _Compiled(statement, engine.dialect)

    def run(connection):
        cursor = connection.cursor()
        try:
            cursor.execute(compiled.sql, compiled.parameters(values))
            raw = cursor.fetchone()
        finally:
            cursor.close()
        if not state.postgresql and connection.in_transaction:
            connection.rollback()
        return raw

    return compiled.row(_on_a_connection(engine, state, run, compiled.sql, values))


def may_write_alone(session) -> bool:
    """Whether ``insert_rows`` may write for a request whose ORM session is ``session``: it
    has no transaction open and nothing waiting to flush, so a transaction of its own loses
    no atomicity."""
    return not (session.in_transaction() or session.new or session.dirty or session.deleted
                or _shares_one_connection(db.engine))


def insert_rows(rows) -> None:
    """Insert each (table, values) of ``rows`` in one transaction of its own, committed before
    this returns (see ``may_write_alone``); nothing is written if any row fails."""
    engine = db.engine
    state = _connections(engine)
    if state.postgresql and len(rows) > 1:
        _insert_as_one_statement(engine, state, rows)
        return
    statements = []
    for table, values in rows:
        key = (id(table), frozenset(values))
        compiled = state.compiled.get(key)
        if compiled is None:
            compiled = state.compiled[key] = _CompiledInsert(table, key[1], engine.dialect)
        statements.append((compiled.sql, compiled.parameters(values)))

    def run(connection):
        cursor = connection.cursor()
        try:
            if state.postgresql:  # one row: the statement is its own transaction (autocommit)
                cursor.execute(*statements[0])
            else:
                try:
                    for sql, parameters in statements:
                        cursor.execute(sql, parameters)  # sqlite3 begins the transaction
                    connection.commit()
                except BaseException:
                    connection.rollback()
                    raise
        finally:
            cursor.close()

    _on_a_connection(engine, state, run, "; ".join(sql for sql, _ in statements), rows)


def _compiled_inserts(engine: Engine, state: _Connections, rows) -> _CompiledInserts:
    shape = tuple((table, frozenset(values)) for table, values in rows)
    key = tuple((id(table), keys) for table, keys in shape)
    compiled = state.compiled.get(key)
    if compiled is None:
        compiled = state.compiled[key] = _CompiledInserts(shape, engine.dialect)
    return compiled


def _insert_as_one_statement(engine: Engine, state: _Connections, rows) -> None:
    compiled = _compiled_inserts(engine, state, rows)
    parameters = compiled.parameters(rows)

    def run(connection):
        cursor = connection.cursor()
        try:
            cursor.execute(compiled.sql, parameters)  # autocommit: its own transaction
        finally:
            cursor.close()

    _on_a_connection(engine, state, run, compiled.sql, parameters)


#: One Core INSERT per table, for ``insert_rows_in`` elsewhere than on PostgreSQL.
_CORE_INSERTS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def insert_rows_in(session, rows) -> None:
    """Insert each (table, values) of ``rows`` in ``session``'s transaction, which the caller
    commits with the rest of the request's changes: on PostgreSQL one statement (as
    ``insert_rows``) on the session's own connection, one round trip; elsewhere a Core
    INSERT each."""
    engine = db.engine
    if engine.dialect.name != "postgresql" or len(rows) < 2:
        for table, values in rows:
            statement = _CORE_INSERTS.get(table)
            if statement is None:
                statement = _CORE_INSERTS[table] = table.insert()
            session.execute(statement, values)
        return
    compiled = _compiled_inserts(engine, _connections(engine), rows)
    session.connection().exec_driver_sql(compiled.sql, compiled.parameters(rows))


def _on_a_connection(engine: Engine, state: _Connections, run, sql: str, values):
    """``run(connection)`` on an idle driver connection (or a new one); a connection whose
    statement fails is closed and the error raised as SQLAlchemy's."""
    try:
        connection = state.idle.pop()
    except IndexError:
        connection = None
    try:
        if connection is None:
            connection = state.connect()
        result = run(connection)
    except engine.dialect.loaded_dbapi.Error as error:
        if connection is not None:
            disconnected = engine.dialect.is_disconnect(error, connection, None)  # before close()
            _close_quietly(connection)
            if disconnected:
                # The server went away, and every connection with it: close the idle ones here,
                # and mark the pool's (which the next connect() would be handed) as SQLAlchemy
                # does on a disconnect of its own, so the next calls connect afresh.
                state.close_idle()
                engine.pool._invalidate(None, error, _checkin=False)
        raise DBAPIError.instance(sql, values, error, engine.dialect.loaded_dbapi.Error,
                                  dialect=engine.dialect) from error
    if _STATE.get(engine) is state:
        state.idle.append(connection)
    else:
        _close_quietly(connection)  # the engine was disposed meanwhile
    return result
