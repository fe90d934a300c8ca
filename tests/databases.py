"""Throwaway databases for tests that need one of their own (migrations, many instances):
a SQLite file, or a fresh PostgreSQL database beside TEST_DATABASE_URL, dropped afterwards."""

import os
import uuid
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa


def on_postgresql() -> bool:
    """Tell whether this test run uses PostgreSQL (TEST_DATABASE_URL is set)."""
    return bool(os.environ.get("TEST_DATABASE_URL"))


def server_url() -> sa.URL:
    """The PostgreSQL server named by TEST_DATABASE_URL, with the psycopg 3 driver."""
    url = sa.make_url(os.environ["TEST_DATABASE_URL"])
    return url.set(drivername="postgresql+psycopg")


@contextmanager
def throwaway_database(directory: Path):
    """Yield the URL of an empty database; it is dropped (or left in ``directory``) afterwards."""
    if not on_postgresql():
        yield "sqlite:///" + str(Path(directory) / f"{uuid.uuid4().hex[:8]}.sqlite")
        return
    base = server_url()
    name = f"idp_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        try:
            yield base.set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def database_exists(name: str) -> bool:
    """Tell whether the PostgreSQL server has a database of this name."""
    admin = sa.create_engine(server_url())
    try:
        with admin.connect() as conn:
            return conn.scalar(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}) == 1
    finally:
        admin.dispose()
