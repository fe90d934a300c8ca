"""Fixtures only: the app on a fresh database (SQLite, or PostgreSQL from TEST_DATABASE_URL),
Flask's test client, the CLI runner, the factories, live servers. Nothing imports from here:
the helpers tests import are in tests/support/."""

import os
import uuid
from contextlib import ExitStack

import pytest
import sqlalchemy as sa

from support.factories import PASSWORD, TEST_PASSWORD_METHOD, config_for, detached
from support.instances import instance_environment, server_instances
from support.databases import empty_database
from support.loopback import WSGIServer
from support.mail import smtp_server
from support.upstream import UPSTREAM_SECRET, TamperingProxy, make_person_at, oidc_provider, register_client_at
from support.pages import AuthActions
from website import create_app
from website.oauth2.client_metadata import validate_client_metadata
from website.models import OAuth2Client, User, db


@pytest.fixture(scope="session")
def database_url(tmp_path_factory):
    """A database for this test run, migrated to the newest revision, dropped at the end.

    With TEST_DATABASE_URL (PostgreSQL) a throwaway database is created beside the one named,
    so parallel runs never share tables.
    """
    server_url = os.environ.get("TEST_DATABASE_URL")
    if not server_url:
        url = "sqlite:///" + str(tmp_path_factory.mktemp("db") / "test.sqlite")
        _migrate(url)
        yield url
        return
    base = sa.make_url(server_url.replace("postgresql://", "postgresql+psycopg://", 1))
    name = f"idp_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = base.set(database=name).render_as_string(hide_password=False)
    try:
        _migrate(url)
        yield url
    finally:
        sa.create_engine(url).dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _migrate(url: str) -> None:
    app = create_app(config_for(url))
    runner = app.test_cli_runner()
    result = runner.invoke(args=["initdb"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        db.engine.dispose()


@pytest.fixture
def app_config(database_url):
    """The config dict the ``app`` fixture is made with; tests may change it first."""
    return config_for(database_url)


@pytest.fixture
def app(app_config):
    """The app on the test database; every table is emptied after the test.

    No app context stays pushed during the test: requests would share it (and ``g``).
    Use ``with app.app_context():`` to query the database from a test.
    """
    app = create_app(app_config)
    yield app
    with app.app_context():
        db.session.remove()
        _empty_tables()
        db.engine.dispose()


def _empty_tables() -> None:
    tables = [t for t in reversed(db.metadata.sorted_tables)]
    with db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            names = ", ".join(f'"{t.name}"' for t in tables)
            conn.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                conn.execute(table.delete())
            # Planner statistics a test made with ANALYZE (bench's bulk fill) would outlive its
            # rows and steer later tests' query plans.
            if conn.exec_driver_sql("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'").first():
                conn.exec_driver_sql("DELETE FROM sqlite_stat1")


@pytest.fixture
def test_client(app):
    """Flask's test client (a browser or HTTP client talking to the app)."""
    return app.test_client()


@pytest.fixture
def runner(app):
    """The CLI runner for `flask` commands."""
    return app.test_cli_runner()


@pytest.fixture
def make_user(app):
    """Create a user: ``make_user("alice", password=..., email=...)``."""

    def make(username="alice", password=PASSWORD, email=None, is_admin=False):
        with app.app_context():
            user = User(username=username, email=email or f"{username}@example.com", is_admin=is_admin)
            user.set_password(password, method=TEST_PASSWORD_METHOD)
            db.session.add(user)
            db.session.commit()
            return detached(user)

    return make


@pytest.fixture
def user(make_user):
    return make_user()


@pytest.fixture
def make_client(app):
    """Register a client: returns ``(client, secret)``; metadata overrides the defaults."""
    def make(owner=None, **metadata):
        data = {
            "client_name": "Test App",
            "redirect_uris": ["https://app.example.com/callback"],
            "grant_types": ["authorization_code", "refresh_token"],
            "scope": "openid profile email",
            "token_endpoint_auth_method": "client_secret_basic",
        }
        data.update(metadata)
        with app.app_context():
            owner_row = db.session.get(User, owner.id) if owner is not None else None
            client, secret = OAuth2Client.register(validate_client_metadata(data, allow_api_scopes=True), owner=owner_row)
            db.session.add(client)
            db.session.commit()
            return detached(client), secret

    return make


@pytest.fixture
def auth(test_client):
    return AuthActions(test_client)


@pytest.fixture
def mailbox(app):
    """A real SMTP server on loopback that the app sends its mail to; yields its Mailbox
    (``mailbox.messages``, ``wait_for``, ``last_to``; ``refuse = True`` makes it fail)."""
    with smtp_server() as (box, port):
        app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=port, MAIL_TIMEOUT=5)
        yield box


@pytest.fixture
def live_server(app):
    """The app served over HTTP on a free loopback port, in a thread; yields its base URL."""
    server = WSGIServer(app)
    yield server.url
    server.close()


@pytest.fixture
def idp(app, live_server):
    """The live server with OAUTH2_ISSUER set to its own URL, Auth0-style with a trailing slash."""
    app.config["OAUTH2_ISSUER"] = live_server + "/"
    return live_server


@pytest.fixture(scope="module")
def instance_env():
    """Extra environment for the ``two_instances`` processes; override it in a test module
    (e.g. ``REDIS_URL``) to run both instances with a feature switched on."""
    return {}


@pytest.fixture(scope="module")
def two_instances(database_url, instance_env, tmp_path_factory):
    """Two gunicorn server processes (gunicorn.conf.py) on the test database with one SECRET_KEY,
    as behind a load balancer; yields two ``support.instances.Instance`` (``.url``, ``.log()``).

    Started once per module (a start costs seconds); use it with the ``app`` fixture, which
    empties the tables after each test, and the factories to make users and clients.
    """
    env = {**instance_environment(config_for(database_url)), **instance_env}
    with server_instances(2, env, tmp_path_factory.mktemp("instances")) as both:
        yield tuple(both)


@pytest.fixture
def oidc_upstream(idp):
    """Start panva's oidc-provider as an upstream with a client for this server's upstream
    "node": ``oidc_upstream(accounts)`` returns its issuer (stopped after the test)."""
    with ExitStack() as stack:
        def start(accounts: dict, name: str = "node") -> str:
            client = {"client_id": "idp-test", "client_secret": UPSTREAM_SECRET,
                      "redirect_uris": [f"{idp}/login/with/{name}/callback"],
                      "post_logout_redirect_uris": [f"{idp}/logout/upstream"]}
            return stack.enter_context(oidc_provider(client, accounts))

        yield start


@pytest.fixture
def upstream_instance(database_url, tmp_path):
    """A second instance of this server on its own database, served on loopback: yields
    ``(app, url)``; the test makes its users and clients with ``app.app_context()``."""
    with empty_database(database_url, tmp_path) as config:
        # Its own cookie name: cookies do not keep ports apart, and both servers are on 127.0.0.1.
        other = create_app(config_for(config["DATABASE_URL"], SESSION_COOKIE_NAME="upstream_session", **config))
        assert other.test_cli_runner().invoke(args=["initdb"]).exit_code == 0
        server = WSGIServer(other)
        url = server.url
        other.config["OAUTH2_ISSUER"] = url
        try:
            yield other, url
        finally:
            server.close()
            with other.app_context():
                db.session.remove()
                db.engine.dispose()


@pytest.fixture
def peer_upstream(app, idp, runner, upstream_instance):
    """The upstream instance behind a TamperingProxy (its issuer), registered here as "peer"."""
    other, url = upstream_instance
    proxy = TamperingProxy(url)
    other.config["OAUTH2_ISSUER"] = proxy.url
    make_person_at(other, "ann", "ann@example.com")
    client_id, secret = register_client_at(other, [f"{idp}/login/with/peer/callback"],
                                           post_logout_redirect_uris=[f"{idp}/logout/upstream"])
    result = runner.invoke(args=["add-upstream", "--name", "peer", "--preset", "idp", "--issuer", proxy.url,
                                 "--client-id", client_id, "--client-secret", secret])
    assert result.exit_code == 0, result.output
    yield other, proxy, client_id
    proxy.close()


@pytest.fixture(scope="module")
def browser():
    """One headless Debian Chromium for the module's browser tests (support/chromium.py)."""
    from playwright.sync_api import sync_playwright
    from support.chromium import launch

    with sync_playwright() as playwright:
        browser = launch(playwright)
        yield browser
        browser.close()


@pytest.fixture
def flask_requests(app):
    """The paths of the requests Flask itself handled (its hooks ran), not the front
    (website/http/front.py). Ask for it before the first request of the app."""
    seen = []

    def record(error):
        from flask import request
        seen.append(request.path)

    app.teardown_request(record)
    return seen
