"""The Flask extensions every layer shares: the database (with the models' declarative
base), migrations and CSRF protection, bound to the app in ``create_app``."""

import sqlite3
from pathlib import Path

import click
from flask import current_app
from flask_mailman import Mail
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import MetaData, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    # Named constraints let Alembic's batch mode drop and recreate them on SQLite.
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


db = SQLAlchemy(model_class=Base)


MIGRATIONS_DIR = str(Path(__file__).resolve().parent.parent / "migrations")


csrf = CSRFProtect()


class Migrations:
    """Flask-Migrate, imported the first time a migration runs (``flask initdb``, ``flask db``,
    a restore) instead of in every serving worker: it imports alembic, 11 MiB resident per
    process. ``app.extensions["migrate"]`` and the ``flask db`` group stand in for Flask-Migrate's
    until then and hand over to them on first use."""

    def init_app(self, app, db, directory: str) -> None:
        app.extensions["migrate"] = _MigrateOnFirstUse(app, db, directory)
        app.cli.add_command(_MigrationCommands(app, db, directory, name="db",
                                               help="Perform database migrations (Flask-Migrate)."))


def _flask_migrate(app, db, directory: str):
    """Flask-Migrate on the app (once): its own extension entry and ``flask db`` group replace
    the stand-ins."""
    if isinstance(app.extensions.get("migrate"), _MigrateOnFirstUse):
        from flask_migrate import Migrate

        Migrate(app, db, directory=directory, render_as_batch=True)
    return app.extensions["migrate"]


class _MigrateOnFirstUse:
    def __init__(self, app, db, directory: str):
        self._args = (app, db, directory)

    def __getattr__(self, name: str):
        return getattr(_flask_migrate(*self._args), name)


class _MigrationCommands(click.Group):
    """``flask db``: Flask-Migrate's command group, loaded when a ``flask db`` command is parsed."""

    def __init__(self, app, db, directory: str, **kwargs):
        super().__init__(**kwargs)
        self._args = (app, db, directory)

    def make_context(self, info_name, args, parent=None, **extra):
        _flask_migrate(*self._args)
        from flask_migrate.cli import db as migration_commands

        return migration_commands.make_context(info_name, args, parent=parent, **extra)


migrate = Migrations()


def upgrade_schema() -> None:
    """Bring the app's database to the newest migration (Flask-Migrate's ``upgrade``)."""
    import flask_migrate

    flask_migrate.upgrade(directory=current_app.extensions["migrate"].directory)


mail = Mail()


@event.listens_for(Engine, "connect")
def _configure_sqlite(dbapi_connection, connection_record):
    # WAL lets readers work during a write; NORMAL sync is durable across app crashes
    # in WAL mode; foreign keys are off in SQLite unless asked for.
    if isinstance(dbapi_connection, sqlite3.Connection):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()
