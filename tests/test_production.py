"""Production serving: /healthz, the one-line request log with a request id, reverse-proxy
headers, secure cookies, database URLs, and 503 answers while the database is unreachable."""

import logging
import re
import runpy
import socket
import threading
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa
from support.databases import on_postgresql
from support.factories import PASSWORD, config_for
from support.tcpproxy import TCPProxy
from werkzeug.serving import make_server

from website import create_app
from website.config import database_uri, from_environment
from website.models import Token, db, hash_secret, now

LOG_LINE = re.compile(
    r"request_id=(?P<id>\S+) method=(?P<method>\S+) path=(?P<path>\S+) status=(?P<status>\d+)"
    r" duration_ms=(?P<ms>\d+\.\d) remote_addr=(?P<addr>\S+)$"
)


def access_lines(caplog) -> list[re.Match]:
    return [LOG_LINE.match(r.getMessage()) for r in caplog.records if r.name == "website.access"]


def test_healthz_answers_ok_when_the_database_answers(test_client):
    response = test_client.get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok"}
    assert response.headers["Cache-Control"] == "no-store"


def test_each_request_logs_one_line_with_its_id_and_no_query_string(test_client, caplog):
    caplog.set_level(logging.INFO, logger="website.access")
    response = test_client.get("/oauth/authorize?code=SECRETCODE&state=s", headers={"X-Request-ID": "lb-42.a"})
    assert response.headers["X-Request-ID"] == "lb-42.a"
    [line] = access_lines(caplog)
    assert line is not None, caplog.records[-1].getMessage()
    assert line["id"] == "lb-42.a"
    assert (line["method"], line["path"], line["status"]) == ("GET", "/oauth/authorize", str(response.status_code))
    assert line["addr"] == "127.0.0.1"
    assert "SECRETCODE" not in caplog.text


@pytest.mark.parametrize("incoming", [None, "", "has space", "x" * 200, "<script>", "-leading-dash", "a\u00e9"])
def test_an_absent_or_insane_request_id_is_replaced(test_client, caplog, incoming):
    caplog.set_level(logging.INFO, logger="website.access")
    headers = {} if incoming is None else {"X-Request-ID": incoming}
    response = test_client.get("/healthz", headers=headers)
    request_id = response.headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", request_id)
    assert access_lines(caplog)[0]["id"] == request_id


def test_a_path_with_odd_characters_stays_on_one_line(test_client, caplog):
    caplog.set_level(logging.INFO, logger="website.access")
    test_client.get("/no%0Awhere here")
    [line] = access_lines(caplog)
    assert line is not None and line["status"] == "404"
    assert "\n" not in caplog.records[-1].getMessage()


@pytest.mark.parametrize("proxies, expected", [(0, "127.0.0.1"), (1, "203.0.113.9"), (2, "198.51.100.1")])
def test_proxy_count_decides_whose_forwarded_for_is_trusted(app_config, caplog, proxies, expected):
    app = create_app({**app_config, "PROXY_COUNT": proxies})
    caplog.set_level(logging.INFO, logger="website.access")
    app.test_client().get("/healthz", headers={"X-Forwarded-For": "198.51.100.1, 203.0.113.9"})
    assert access_lines(caplog)[0]["addr"] == expected
    with app.app_context():
        db.engine.dispose()


@pytest.mark.parametrize("issuer, override, secure", [
    ("https://id.example.com", None, True),
    ("http://127.0.0.1", None, False),
    ("https://id.example.com", False, False),
    ("http://127.0.0.1", True, True),
])
def test_session_cookie_is_secure_when_the_issuer_is_https(app_config, issuer, override, secure):
    config = {**app_config, "OAUTH2_ISSUER": issuer}
    if override is not None:
        config["SESSION_COOKIE_SECURE"] = override
    app = create_app(config)
    response = app.test_client().get("/login")  # the CSRF token starts a session
    cookie = response.headers["Set-Cookie"]
    assert ("; Secure" in cookie) is secure
    with app.app_context():
        db.engine.dispose()


def test_production_settings_are_read_from_the_environment():
    config = from_environment({"SESSION_COOKIE_SECURE": "off", "PROXY_COUNT": "2", "DATABASE_CONNECT_TIMEOUT": "3"})
    assert config == {"SESSION_COOKIE_SECURE": False, "PROXY_COUNT": 2, "DATABASE_CONNECT_TIMEOUT": 3}
    with pytest.raises(SystemExit, match="PROXY_COUNT must be a whole number"):
        from_environment({"PROXY_COUNT": "one"})


@pytest.mark.parametrize("url", [
    "postgres://u:p@db.example.com:5432/idp",
    "postgresql://u:p@db.example.com:5432/idp",
    "postgresql+psycopg://u:p@db.example.com:5432/idp",
])
def test_every_postgresql_url_form_uses_psycopg_3(url):
    assert database_uri(url, "/unused") == "postgresql+psycopg://u:p@db.example.com:5432/idp"


@pytest.mark.skipif(not on_postgresql(), reason="needs PostgreSQL (TEST_DATABASE_URL)")
@pytest.mark.parametrize("scheme", ["postgres://", "postgresql://"])
def test_the_app_runs_on_a_driverless_postgresql_url(app, app_config, scheme):
    url = sa.make_url(app_config["DATABASE_URL"]).render_as_string(hide_password=False)
    app = create_app({**app_config, "DATABASE_URL": url.replace("postgresql+psycopg://", scheme)})
    result = app.test_cli_runner().invoke(args=["create-user", "pguser", "--password", "long enough"])
    assert result.exit_code == 0, result.output
    assert app.test_client().get("/healthz").json == {"status": "ok"}
    with app.app_context():
        db.engine.dispose()


def unreachable_database_url(tmp_path) -> str:
    """A URL of the test run's kind whose database cannot be reached."""
    if on_postgresql():
        with socket.create_server(("127.0.0.1", 0)) as sock:
            port = sock.getsockname()[1]  # closed again: connections are refused
        return f"postgresql+psycopg://postgres@127.0.0.1:{port}/gone"
    return "sqlite:///" + str(tmp_path / "no-such-directory" / "db.sqlite")


def test_an_unreachable_database_gets_503_not_a_traceback(tmp_path, caplog):
    app = create_app(config_for(unreachable_database_url(tmp_path)))
    test_client = app.test_client()
    with test_client.session_transaction() as session:
        # A signed-in browser: every page looks the user and the session up.
        session["user_id"], session["sid"] = 1, "s" * 43

    health = test_client.get("/healthz")
    assert (health.status_code, health.json) == (503, {"status": "unavailable"})
    for response in (
        test_client.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=("c", "s")),
        test_client.get("/api/me", headers={"Authorization": "Bearer abc"}),
    ):
        assert response.status_code == 503
        assert response.json["error"] == "temporarily_unavailable"
        assert response.headers["Retry-After"]
    browser = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    for path in ("/", "/oauth/authorize?client_id=abc&response_type=code"):
        page = test_client.get(path, headers=browser)
        assert page.status_code == 503
        assert page.mimetype == "text/html"
        assert "Temporarily unavailable" in page.get_data(as_text=True)
        assert "Traceback" not in page.get_data(as_text=True)
    assert not [r for r in caplog.records if r.exc_info], "an outage should log one line, no traceback"


class LiveServer:
    """An app served by werkzeug in a thread (stands for one production worker)."""

    def __init__(self, app):
        self._server = make_server("127.0.0.1", 0, app, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_port}"

    def stop(self):
        self._server.shutdown()
        self._thread.join(timeout=5)


@pytest.mark.skipif(not on_postgresql(), reason="needs PostgreSQL (TEST_DATABASE_URL)")
def test_requests_get_503_during_a_database_outage_and_succeed_after_it(app, app_config, user, make_client,
                                                                       caplog):
    client, secret = make_client(grant_types=["client_credentials"], scope="profile")
    with app.app_context():
        db.session.add(Token(client_id=client.client_id, user_id=user.id, access_token_hash=hash_secret("tok"),
                             scope="profile", expires_in=3600, expires_at=now() + 3600, family_id="f"))
        db.session.commit()
    database = sa.make_url(app_config["DATABASE_URL"])
    proxy = TCPProxy(database.host or "127.0.0.1", database.port or 5432)
    proxied = create_app({**app_config, "DATABASE_URL": database.set(host="127.0.0.1", port=proxy.port)
                          .render_as_string(hide_password=False)})
    server = LiveServer(proxied)
    try:
        bearer = {"Authorization": "Bearer tok"}
        assert requests.get(server.url + "/api/me", headers=bearer).status_code == 200
        assert requests.get(server.url + "/healthz").json() == {"status": "ok"}

        proxy.cut()
        health = requests.get(server.url + "/healthz")
        assert (health.status_code, health.json()) == (503, {"status": "unavailable"})
        me = requests.get(server.url + "/api/me", headers=bearer)
        assert (me.status_code, me.json()["error"]) == (503, "temporarily_unavailable")
        token = requests.post(server.url + "/oauth/token", data={"grant_type": "client_credentials"},
                              auth=(client.client_id, secret))
        assert (token.status_code, token.json()["error"]) == (503, "temporarily_unavailable")

        proxy.restore()
        # The pool's connections died with the outage; the failed queries invalidated the pool,
        # so new connections replace them without a restart.
        assert requests.get(server.url + "/healthz").json() == {"status": "ok"}
        assert requests.get(server.url + "/api/me", headers=bearer).json()["username"] == "alice"
        token = requests.post(server.url + "/oauth/token", data={"grant_type": "client_credentials"},
                              auth=(client.client_id, secret))
        assert token.status_code == 200, token.text

        # A cached client's token is written on the driver (store/driver.py): its connections
        # die with a second outage and are replaced after it too.
        def client_credentials():
            return requests.post(server.url + "/oauth/token", data={"grant_type": "client_credentials"},
                                 auth=(client.client_id, secret))

        assert client_credentials().status_code == 200
        proxy.cut()
        token = client_credentials()
        assert (token.status_code, token.json()["error"]) == (503, "temporarily_unavailable")
        proxy.restore()
        token = client_credentials()
        assert token.status_code == 200, token.text
        assert requests.post(server.url + "/oauth/introspect", data={"token": token.json()["access_token"]},
                             auth=(client.client_id, secret)).json()["active"] is True
    finally:
        server.stop()
        with proxied.app_context():
            db.engine.dispose()
        proxy.close()
    assert not [r for r in caplog.records if r.exc_info], "an outage should log one line, no traceback"


@pytest.mark.skipif(not on_postgresql(), reason="needs PostgreSQL (TEST_DATABASE_URL)")
def test_connections_dropped_while_idle_cost_at_most_one_503(app, app_config, user, make_client, caplog):
    """No ping on checkout: a pooled connection the database dropped (a restart while no
    request ran) fails its first query, which answers 503 and invalidates the pool; the next
    request connects afresh. Never a 500."""
    client, _ = make_client(grant_types=["client_credentials"], scope="profile")
    with app.app_context():
        db.session.add(Token(client_id=client.client_id, user_id=user.id, access_token_hash=hash_secret("tok2"),
                             scope="profile", expires_in=3600, expires_at=now() + 3600, family_id="f2"))
        db.session.commit()
    served = create_app(app_config)
    http = served.test_client()
    bearer = {"Authorization": "Bearer tok2"}
    try:
        assert http.get("/api/me", headers=bearer).status_code == 200
        with app.app_context():
            # Every other connection to this test database: the pool's and the one the bearer
            # check keeps on the driver (store/driver.py).
            pids = db.session.scalars(sa.text(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )).all()
            assert pids, "the served app kept its connections"
            for pid in pids:
                db.session.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            db.session.commit()
        statuses = [http.get("/api/me", headers=bearer).status_code for _ in range(3)]
        assert statuses[0] in (200, 503) and statuses[1:] == [200, 200], statuses
    finally:
        with served.app_context():
            db.engine.dispose()
    assert not [r for r in caplog.records if r.exc_info], "a dropped connection should log one line, no traceback"


GUNICORN_CONF = Path(__file__).resolve().parent.parent / "gunicorn.conf.py"


def test_gunicorn_config_reads_bind_and_workers_from_the_environment(monkeypatch, tmp_path):
    for name in ("GUNICORN_BIND", "HOST", "PORT", "WEB_CONCURRENCY", "GUNICORN_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    # The config sets PROMETHEUS_MULTIPROC_DIR when it is unset, and this process's later apps
    # would then count their metrics in files nobody reads: set it here, so it is put back.
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    defaults = runpy.run_path(str(GUNICORN_CONF))
    assert defaults["bind"] == "127.0.0.1:8000"
    assert 1 <= defaults["workers"] <= 8
    assert (defaults["worker_class"], defaults["accesslog"], defaults["preload_app"]) == ("sync", None, False)
    assert defaults["wsgi_app"] == "app:app"

    monkeypatch.setenv("HOST", "0.0.0.0")
    monkeypatch.setenv("PORT", "9000")
    monkeypatch.setenv("WEB_CONCURRENCY", "3")
    monkeypatch.setenv("GUNICORN_TIMEOUT", "60")
    configured = runpy.run_path(str(GUNICORN_CONF))
    assert (configured["bind"], configured["workers"], configured["timeout"]) == ("0.0.0.0:9000", 3, 60)
    monkeypatch.setenv("GUNICORN_BIND", "unix:/run/idp.sock")
    assert runpy.run_path(str(GUNICORN_CONF))["bind"] == "unix:/run/idp.sock"

    monkeypatch.setenv("WEB_CONCURRENCY", "many")
    with pytest.raises(SystemExit, match="WEB_CONCURRENCY must be a whole number"):
        runpy.run_path(str(GUNICORN_CONF))


@pytest.mark.parametrize("size", [0, 2])
def test_database_pool_size_caps_each_process_connections(database_url, size):
    """DATABASE_POOL_SIZE=N: at most 2N connections (N kept, as many more for the transactions
    a request commits apart from its own), and one more waits for one to be returned; 0 keeps
    SQLAlchemy's pool, which opens up to 15."""
    app = create_app(config_for(database_url, DATABASE_POOL_SIZE=size))
    with app.app_context():
        engine = db.engine
        held = [engine.connect() for _ in range(4)]
        fifth = {}
        waiter = threading.Thread(target=lambda: fifth.setdefault("connection", engine.connect()))
        waiter.start()
        waiter.join(0.5)
        assert waiter.is_alive() is (size == 2)
        held.pop().close()
        waiter.join(5)
        assert not waiter.is_alive()
        fifth["connection"].close()
        for connection in held:
            connection.close()
        engine.dispose()


@pytest.fixture
def pool_of_one(app_config):
    app_config["DATABASE_POOL_SIZE"] = 1


def test_a_pool_of_one_serves_a_log_in_which_also_writes_the_throttle_apart(pool_of_one, app, user, make_client):
    """The password grant holds the request's connection while the log-in throttle commits its
    counter on a connection of its own: with room for one only, it waited on itself (30 s, 503)."""
    client, secret = make_client(grant_types=["password"], redirect_uris=[], scope="profile")
    response = app.test_client().post("/oauth/token", auth=(client.client_id, secret), data={
        "grant_type": "password", "username": user.username, "password": PASSWORD, "scope": "profile"})
    assert response.status_code == 200, response.get_data(as_text=True)


def test_a_negative_pool_size_is_refused(database_url):
    with pytest.raises(SystemExit, match="DATABASE_POOL_SIZE must be 0"):
        create_app(config_for(database_url, DATABASE_POOL_SIZE=-1))
