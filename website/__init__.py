"""The identity provider's Flask app factory."""

import secrets
import sqlite3
from pathlib import Path
from urllib.parse import urlsplit

from flask import Flask, current_app, render_template, request
from flask_migrate import Migrate
from flask_wtf.csrf import CSRFError, CSRFProtect
from sqlalchemy import event
from sqlalchemy.engine import Engine
from werkzeug.exceptions import InternalServerError

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
    if uri.startswith("sqlite"):
        Path(app.instance_path).mkdir(parents=True, exist_ok=True)
        # A file has no connection to lose: no ping (a query) on every checkout.
        engine_options = {"connect_args": {"timeout": app.config["SQLITE_BUSY_TIMEOUT"]}}
    else:
        engine_options = {"pool_pre_ping": True}
        if uri.startswith("postgresql"):
            # Fail fast while the database is unreachable: requests answer 503 (website/ops.py).
            engine_options["connect_args"] = {"connect_timeout": app.config["DATABASE_CONNECT_TIMEOUT"]}
    app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", engine_options)
    app.config.setdefault("SESSION_COOKIE_SAMESITE", "Lax")
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)  # tied to the session instead

    db.init_app(app)
    migrate.init_app(app, db, directory=MIGRATIONS_DIR, render_as_batch=True)
    csrf.init_app(app)

    from . import (
        account, admin, api, auth, cli, clients, introspection, logout, oauth, oauth2, ops,
        registration, resources, security,
    )

    oauth2.init_app(app)
    # Clients call these with their own credentials, not a browser session.
    csrf.exempt(oauth.issue_token)
    csrf.exempt(oauth.revoke_token)
    csrf.exempt(oauth.userinfo)
    for blueprint in (auth.bp, clients.bp, admin.bp, oauth.bp, api.bp, account.bp):
        app.register_blueprint(blueprint)
    cli.init_app(app)
    introspection.init_app(app, csrf)
    registration.init_app(app, csrf)
    logout.init_app(app, csrf)
    resources.init_app(app)
    register_error_pages(app)
    app.add_template_filter(url_host, "urlhost")
    ops.init_app(app)  # /healthz, request log, proxies, 503 while the database is down
    # After the error pages: it keeps them for people and answers JSON on protocol endpoints.
    security.init_app(app)
    return app


def url_host(uri: str) -> str:
    """The host (and port) of a URI, to tell people where they are being sent."""
    try:
        return urlsplit(uri).netloc or uri
    except ValueError:
        return uri


def register_error_pages(app: Flask) -> None:
    """Show errors that reach a person as pages in the site's layout."""

    @app.errorhandler(CSRFError)
    def csrf_error(error):
        return render_template(
            "error.html", code=400, title="This form has expired",
            message="The page was open too long or your session changed. Go back, reload the page "
                    "and send the form again.",
            detail=error.description,
        ), 400

    @app.errorhandler(403)
    def forbidden(error):
        return render_template(
            "error.html", code=403, title="You cannot open this page",
            message="Your account does not have access to it. If you think it should, ask an "
                    "administrator.",
        ), 403

    @app.errorhandler(404)
    def not_found(error):
        return render_template(
            "error.html", code=404, title="Page not found",
            message="There is nothing at this address. Check the link for typing mistakes, or "
                    "start again from the home page.",
        ), 404

    @app.errorhandler(405)
    def method_not_allowed(error):
        return render_template("error.html", code=405, title="Method not allowed",
                               message="This address does not accept that kind of request."), 405

    @app.errorhandler(InternalServerError)
    def internal_error(error):
        # Flask has already logged the traceback; this line ties it to the reference the
        # person sees, so a report of the page finds the log entry.
        reference = secrets.token_hex(4)
        original = getattr(error, "original_exception", None)
        current_app.logger.error("Internal error %s on %s %s: %r", reference, request.method,
                                 request.path, original or error)
        return render_template(
            "error.html", code=500, title="Something went wrong on our side",
            message="The server could not finish your request. It was not your fault. Try again in "
                    "a moment; if it keeps happening, tell the site's administrator this reference.",
            reference=reference,
        ), 500
