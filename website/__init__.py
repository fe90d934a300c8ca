"""The identity provider's Flask app factory."""

from flask import Flask

from website import cli, config, http, views
from website.extensions import MIGRATIONS_DIR, csrf, db, mail, migrate
from website.http.guard import DatabaseIntegerConverter
from website.oauth2 import logout, server
from website.services import branding, lockout, queued_mail


def create_app(test_config: dict | None = None) -> Flask:
    """Create the app: defaults, then instance/config.py, the environment, and ``test_config``."""
    app = Flask(__name__, instance_relative_config=True)
    config.load(app, test_config)
    branding.check_configuration(app.config)
    db.init_app(app)
    migrate.init_app(app, db, directory=MIGRATIONS_DIR)
    csrf.init_app(app)
    mail.init_app(app)
    # Before any route is added: every <int:...> then fits the database's INTEGER.
    app.url_map.converters["int"] = DatabaseIntegerConverter
    server.init_app(app)
    lockout.init_app(app)
    logout.init_worker(app)  # back-channel logout tokens, sent off the request path
    queued_mail.init_worker(app)  # mail the mail server refused, where the person may not be told
    views.init_app(app)
    cli.init_app(app)
    http.init_app(app, csrf)
    return app
