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

from website import config as default_config
from website.extensions import MIGRATIONS_DIR, csrf, db, migrate
from website.http.errors import register_error_pages
from website.oauth2.server import init_app
from website.views import url_host
from website.views.protocol import bp, issue_token, revoke_token, userinfo


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
        account,
        admin,
        api,
        auth,
        cli,
        clients,
        introspection,
        logout,
        oauth,
        oauth2,
        ops,
        registration,
        resources,
        security,
    )

    init_app(app)
    # Clients call these with their own credentials, not a browser session.
    csrf.exempt(issue_token)
    csrf.exempt(revoke_token)
    csrf.exempt(userinfo)
    for blueprint in (bp, bp, bp, bp, bp, bp):
        app.register_blueprint(blueprint)
    cli.init_app(app)
    init_app(app, csrf)
    init_app(app, csrf)
    init_app(app, csrf)
    resources.init_app(app)
    register_error_pages(app)
    app.add_template_filter(url_host, "urlhost")
    init_app(app)  # /healthz, request log, proxies, 503 while the database is down
    # After the error pages: it keeps them for people and answers JSON on protocol endpoints.
    init_app(app)
    return app
