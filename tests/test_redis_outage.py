"""When Redis (REDIS_URL) goes away under load, the token endpoint and the log-in form keep
answering and keep throttling: the counters move to the database while Redis is away, one
warning is logged per outage, and Redis is used again once it is back. Never a 500."""

import logging
import shutil
import socket
import subprocess
import time

import pytest

from support.factories import PASSWORD
from support.pages import form_token
from website.store import throttle

redis = pytest.importorskip("redis")
pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_redis(port: int) -> subprocess.Popen:
    """A throwaway redis-server on a loopback port, with nothing saved to disk."""
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    connection = redis.Redis(port=port, socket_connect_timeout=0.2)
    for _ in range(100):
        try:
            connection.ping()
            break
        except redis.exceptions.ConnectionError:
            time.sleep(0.05)
    connection.close()
    return process


def stop(process: subprocess.Popen) -> None:
    process.kill()
    process.wait(timeout=10)


@pytest.fixture
def redis_server():
    port = free_port()
    server = {"port": port, "process": start_redis(port)}
    yield server
    stop(server["process"])


@pytest.fixture
def app_config(app_config, redis_server):
    return {**app_config, "REDIS_URL": f"redis://127.0.0.1:{redis_server['port']}/0",
            "THROTTLE_REDIS_RETRY": 1, "THROTTLE_ACCOUNT_LIMIT": 3, "THROTTLE_CLIENT_LIMIT": 3,
            "THROTTLE_ADDRESS_LIMIT": 1000}


@pytest.fixture
def app(app):
    yield app
    throttle.close(app)


def keys(port: int) -> list:
    connection = redis.Redis(port=port)
    try:
        return connection.keys("idp:throttle:*")
    finally:
        connection.close()


def test_a_redis_outage_falls_back_to_the_database_and_back(app, test_client, user, make_client,
                                                            redis_server, caplog):
    caplog.set_level(logging.WARNING, logger="website.throttle")
    client, secret = make_client(grant_types=["client_credentials"], redirect_uris=[])
    other, other_secret = make_client(grant_types=["client_credentials"], redirect_uris=[])
    data = {"grant_type": "client_credentials"}
    statuses = []
    for i in range(120):
        if i == 40:
            stop(redis_server["process"])  # mid-load
        wrong = i % 10 == 9  # a failed authentication now and then: the counters are written
        response = test_client.post("/oauth/token", data=data,
                                    auth=(other.client_id if wrong else client.client_id,
                                          "wrong" if wrong else secret))
        statuses.append(response.status_code)
        assert response.status_code == (401 if wrong else 200), (i, response.json)
    assert max(statuses) < 500

    # Throttling still works while Redis is away: the database counts.
    for _ in range(3):
        test_client.post("/oauth/token", data=data, auth=(client.client_id, "wrong"))
    locked = test_client.post("/oauth/token", data=data, auth=(client.client_id, secret))
    assert locked.status_code == 401 and "Try again in" in locked.json["error_description"]
    for _ in range(3):
        login = test_client.post("/login", data={"username": "alice", "password": "wrong",
                                                 "csrf_token": form_token(test_client, "/login")})
        assert login.status_code in (400, 429)
    right = test_client.post("/login", data={"username": "alice", "password": PASSWORD,
                                             "csrf_token": form_token(test_client, "/login")})
    assert right.status_code == 429

    # Redis comes back on the same port: after the retry interval it is used again.
    redis_server["process"] = start_redis(redis_server["port"])
    assert keys(redis_server["port"]) == []
    time.sleep(1.1)
    for _ in range(2):
        assert test_client.post("/oauth/token", data=data, auth=(other.client_id, other_secret)).status_code == 200
    test_client.post("/oauth/token", data=data, auth=(other.client_id, "wrong"))
    assert keys(redis_server["port"]), "the counters should be in Redis again"

    messages = [record.getMessage() for record in caplog.records if record.name == "website.throttle"]
    assert sum("Redis is unreachable" in m for m in messages) == 1, messages  # one per outage
    assert sum("Redis is back" in m for m in messages) == 1, messages
