"""The identity provider's Flask app factory."""

import sqlite3
from pathlib import Path

from flask import Flask, render_template
from flask_migrate import Migrate
from flask_wtf.csrf import CSRFError, CSRFProtect
from sqlalchemy import event
from sqlalchemy.engine import Engine

from . import config as default_config
from .models import db

MIGRATIONS_DIR = str(Path(__file__).resolve().parent.parent / "migrations")

csrf = CSRFProtect()
migrate = Migrate()


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


def create_app(config: dict | None = None) -> Flask:
    """Create the app: defaults, then instance/config.py, the environment, and ``config``."""
    app = Flask(__name__, instance_relative_config=True)
    app.config.from_mapping(default_config.DEFAULTS)
    app.config.from_pyfile("config.py", silent=True)
    app.config.update(default_config.from_environment())
    if config:
        app.config.update(config)

    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = default_config.read_or_create_secret_key(app.instance_path)
    uri = default_config.database_uri(app.config["DATABASE_URL"], app.instance_path)
    app.config["SQLALCHEMY_DATABASE_URI"] = uri
    engine_options = {"pool_pre_ping": True}
    if uri.startswith("sqlite"):
        Path(app.instance_path).mkdir(parents=True, exist_ok=True)
        engine_options["connect_args"] = {"timeout": app.config["SQLITE_BUSY_TIMEOUT"]}
    elif uri.startswith("postgresql"):
        # Fail fast while the database is unreachable: requests answer 503 (website/ops.py).
        engine_options["connect_args"] = {"connect_timeout": app.config["DATABASE_CONNECT_TIMEOUT"]}
    app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", engine_options)
    app.config.setdefault("SESSION_COOKIE_SAMESITE", "Lax")
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)  # tied to the session instead

    db.init_app(app)
    migrate.init_app(app, db, directory=MIGRATIONS_DIR, render_as_batch=True)
    csrf.init_app(app)

    from . import admin, api, auth, cli, clients, oauth, oauth2, ops, security

    oauth2.init_app(app)
    # Clients call these with their own credentials, not a browser session.
    csrf.exempt(oauth.issue_token)
    csrf.exempt(oauth.revoke_token)
    csrf.exempt(oauth.userinfo)
    app.register_blueprint(auth.bp)
    app.register_blueprint(clients.bp)
    app.register_blueprint(oauth.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(admin.bp)
    cli.init_app(app)
    from . import account, introspection, logout, registration, resources

    introspection.init_app(app, csrf)
    registration.init_app(app, csrf)
    logout.init_app(app, csrf)
    resources.init_app(app)
    app.register_blueprint(account.bp)
    register_error_pages(app)
    ops.init_app(app)  # /healthz, request log, proxies, 503 while the database is down
    # After the error pages: it keeps them for people and answers JSON on protocol endpoints.
    security.init_app(app)
    return app


def register_error_pages(app: Flask) -> None:
    """Show errors that reach a person as pages in the site's layout."""

    @app.errorhandler(CSRFError)
    def csrf_error(error):
        return render_template("error.html", title="Form expired", message=error.description), 400

    @app.errorhandler(404)
    def not_found(error):
        return render_template("error.html", title="Page not found",
                               message="There is nothing at this address."), 404

    @app.errorhandler(405)
    def method_not_allowed(error):
        return render_template("error.html", title="Method not allowed",
                               message="This address does not accept that kind of request."), 405
