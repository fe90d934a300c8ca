"""Shared fixtures: the app on a fresh database (SQLite, or PostgreSQL from
TEST_DATABASE_URL), Flask's test client, the CLI runner, and factories."""

import base64
import hashlib
import os
import re
import secrets
import threading
import uuid
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet
from werkzeug.serving import make_server

from website import create_app
from website.oauth2.client_metadata import validate_client_metadata
from website.models import OAuth2Client, User, db

#: Fast password hashing for tests; production uses scrypt.
TEST_PASSWORD_METHOD = "pbkdf2:sha256:1000"
PASSWORD = "correct horse battery"
#: The key that encrypts the private signing keys, one for the whole run: the session's database
#: is made by one app and used by many.
TEST_KEY_ENCRYPTION_KEY = Fernet.generate_key().decode()


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
    app = create_app(_test_config(url))
    runner = app.test_cli_runner()
    result = runner.invoke(args=["initdb"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        db.engine.dispose()


def _test_config(url: str, **overrides) -> dict:
    return {
        "TESTING": True,
        "SECRET_KEY": "test-" + secrets.token_hex(8),
        "KEY_ENCRYPTION_KEYS": TEST_KEY_ENCRYPTION_KEY,
        "DATABASE_URL": url,
        "PASSWORD_HASH_METHOD": TEST_PASSWORD_METHOD,
        "OAUTH2_ISSUER": "http://127.0.0.1",
        **overrides,
    }


@pytest.fixture
def app_config(database_url):
    """The config dict the ``app`` fixture is made with; tests may change it first."""
    return _test_config(database_url)


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


def detached(obj):
    """Load every column of a committed row and detach it, for use outside the app context."""
    db.session.refresh(obj)
    db.session.expunge(obj)
    return obj


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


class AuthActions:
    """Log in and out through the real pages."""

    def __init__(self, test_client):
        self._client = test_client

    def csrf_token(self, path="/login"):
        html = self._client.get(path).get_data(as_text=True)
        # Any attribute order: WTForms' hidden_tag and the layout's log-out form differ.
        return re.search(r'<input[^>]*name="csrf_token"[^>]*value="([^"]+)"', html).group(1)

    def login(self, username="alice", password=PASSWORD):
        token = self.csrf_token("/login")
        return self._client.post(
            "/login", data={"username": username, "password": password, "csrf_token": token}
        )

    def logout(self):
        token = self.csrf_token("/login")  # any form of the session carries the token
        return self._client.post("/logout", data={"csrf_token": token})


@pytest.fixture
def auth(test_client):
    return AuthActions(test_client)


def pkce_pair() -> tuple[str, str]:
    """A PKCE (verifier, S256 challenge) pair."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def query_params(location: str) -> dict:
    """The query (or fragment) parameters of a redirect, one value each."""
    parts = urlsplit(location)
    return {k: v[0] for k, v in parse_qs(parts.query or parts.fragment).items()}


@pytest.fixture
def live_server(app):
    """The app served over HTTP on a free loopback port, in a thread; yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    # A short poll interval makes shutdown quick at the end of each test.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)


def authorize_url(client, **params) -> str:
    """An /oauth/authorize URL for the client; ``None`` values leave a parameter out."""
    from urllib.parse import urlencode

    values = {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": client.redirect_uris[0],
        "scope": "profile",
        "state": "xyz",
    }
    values.update(params)
    return "/oauth/authorize?" + urlencode({k: v for k, v in values.items() if v is not None})


def approve(test_client, url, button="allow"):
    """Open the consent page and press Allow (or Deny); return the response. When the user
    already allowed these scopes, the page redirects at once and that redirect is returned."""
    page = test_client.get(url)
    if page.status_code == 302:
        return page
    token = csrf_from(page.get_data(as_text=True))
    return test_client.post(url, data={"csrf_token": token, button: button.title()})


def bearer(access_token: str) -> dict:
    """The Authorization header for a bearer token."""
    return {"Authorization": f"Bearer {access_token}"}


def get_code(test_client, auth, client, **params) -> tuple[str, str]:
    """Log in (as alice), approve a PKCE code request; return (code, verifier)."""
    verifier, challenge = pkce_pair()
    params.setdefault("code_challenge", challenge)
    params.setdefault("code_challenge_method", "S256")
    auth.login()
    response = approve(test_client, authorize_url(client, **params))
    assert response.status_code == 302, response.get_data(as_text=True)
    return query_params(response.headers["Location"])["code"], verifier


def exchange_code(test_client, client, secret, code, verifier, **extra):
    """POST the code to the token endpoint with HTTP Basic client authentication."""
    data = {"grant_type": "authorization_code", "code": code,
            "redirect_uri": client.redirect_uris[0], "code_verifier": verifier, **extra}
    return test_client.post("/oauth/token", data=data, auth=(client.client_id, secret))


def csrf_from(html: str) -> str:
    """The CSRF token in a rendered form."""
    return html.split('name="csrf_token" type="hidden" value="', 1)[1].split('"', 1)[0]


def count_rows(app, model, *conditions) -> int:
    """How many rows of a model (matching the conditions) the database holds."""
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(model).where(*conditions))


def update_rows(app, model, values: dict, *conditions) -> None:
    """Change rows directly in the database, e.g. to make a token expire."""
    with app.app_context():
        db.session.execute(sa.update(model).where(*conditions).values(**values))
        db.session.commit()


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
    as behind a load balancer; yields two ``instances.Instance`` (``.url``, ``.log()``).

    Started once per module (a start costs seconds); use it with the ``app`` fixture, which
    empties the tables after each test, and the factories to make users and clients.
    """
    from instances import instance_environment, server_instances

    env = {**instance_environment(_test_config(database_url)), **instance_env}
    with server_instances(2, env, tmp_path_factory.mktemp("instances")) as both:
        yield tuple(both)
