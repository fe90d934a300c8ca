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
from werkzeug.serving import make_server

from website import create_app
from website.client_metadata import validate_client_metadata
from website.models import OAuth2Client, User, db

#: Fast password hashing for tests; production uses scrypt.
TEST_PASSWORD_METHOD = "pbkdf2:sha256:1000"
PASSWORD = "correct horse battery"


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
            client, secret = OAuth2Client.register(validate_client_metadata(data), owner=owner_row)
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
        token = self.csrf_token("/")
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
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)
