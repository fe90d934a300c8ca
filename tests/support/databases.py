"""Helpers for tests that need a database of their own (migrations): an empty SQLite file, or an
empty schema in the run's PostgreSQL database (creating and dropping whole databases forces
checkpoints, which take seconds on a busy server; a schema is as empty and costs nothing)."""

import os
import uuid
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa


def on_postgresql() -> bool:
    """Tell whether this test run uses PostgreSQL (TEST_DATABASE_URL is set)."""
    return bool(os.environ.get("TEST_DATABASE_URL"))


@contextmanager
def empty_database(database_url: str, directory: Path):
    """Yield config keys for ``create_app`` that point at an empty database; remove it afterwards."""
    if not database_url.startswith("postgresql"):
        yield {"DATABASE_URL": "sqlite:///" + str(Path(directory) / f"{uuid.uuid4().hex[:8]}.sqlite")}
        return
    schema = f"empty_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        # Every connection of the app sees only this schema: tables, alembic_version, sequences.
        yield {"DATABASE_URL": database_url,
               "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True,
                                             "connect_args": {"options": f"-csearch_path={schema}"}}}
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


def database_exists(name: str) -> bool:
    """Tell whether the PostgreSQL server of TEST_DATABASE_URL has a database of this name."""
    server = sa.make_url(os.environ["TEST_DATABASE_URL"]).set(drivername="postgresql+psycopg")
    admin = sa.create_engine(server)
    try:
        with admin.connect() as conn:
            return conn.scalar(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}) == 1
    finally:
        admin.dispose()
