"""RFC 6819 §4.4.3.6, §5.1.4.2.3 / RFC 9700 §4.x: failed log-ins, password grants and client
authentications are throttled per account (or client) and per address, in counters every
instance shares (database by default, Redis with REDIS_URL); the lockout ends by itself."""

import threading
import time
import uuid

import pytest

from conftest import PASSWORD
from oauth_helpers import csrf_token
from website import create_app, throttle
from website.models import db

LOCKOUT = 60
#: A lockout short enough to wait out in a test (whole seconds, so it lasts 1 to 2 s).
SHORT_LOCKOUT = 2


@pytest.fixture(params=["database", "redis"])
def app_config(request, app_config):
    config = {**app_config, "THROTTLE_ACCOUNT_LIMIT": 3, "THROTTLE_ADDRESS_LIMIT": 5,
              "THROTTLE_CLIENT_LIMIT": 3, "THROTTLE_WINDOW": 60, "THROTTLE_LOCKOUT": LOCKOUT}
    if request.param == "redis":
        redis = pytest.importorskip("redis")
        url = "redis://127.0.0.1:6379/0"
        prefix = f"test:{uuid.uuid4().hex}:"
        connection = redis.Redis.from_url(url)
        connection.ping()  # Redis is part of the test environment (.ci/run starts it)
        config.update(REDIS_URL=url, THROTTLE_REDIS_PREFIX=prefix)
        yield config
        for key in connection.scan_iter(f"{prefix}*"):
            connection.delete(key)
        connection.close()
    else:
        yield config


@pytest.fixture
def app(app):
    yield app
    throttle.close(app)


def log_in(test_client, username="alice", password=PASSWORD, address="192.0.2.1"):
    environ = {"REMOTE_ADDR": address}
    token = csrf_token(test_client, "/login")
    return test_client.post("/login", data={"username": username, "password": password, "csrf_token": token},
                            environ_base=environ)


def test_account_locks_after_the_limit_even_for_the_right_password(test_client, user):
    for _ in range(2):
        assert log_in(test_client, password="wrong").status_code == 400
    third = log_in(test_client, password="wrong")
    assert third.status_code == 429
    assert "Too many failed attempts" in third.get_data(as_text=True)
    locked = log_in(test_client)  # the right password, from another address
    assert locked.status_code == 429
    assert "Try again in" in locked.get_data(as_text=True)
    assert 0 < int(locked.headers["Retry-After"]) <= LOCKOUT
    assert test_client.get("/clients/").status_code == 302  # not signed in


def test_lockout_ends_by_itself(app, test_client, user):
    app.config["THROTTLE_LOCKOUT"] = SHORT_LOCKOUT
    for _ in range(3):
        log_in(test_client, password="wrong")
    assert log_in(test_client).status_code == 429
    time.sleep(SHORT_LOCKOUT + 1.1)
    assert log_in(test_client).status_code == 302


def test_unknown_usernames_are_throttled_the_same(test_client, user):
    for _ in range(3):
        log_in(test_client, username="nobody", password="wrong")
    assert log_in(test_client, username="nobody", password="wrong").status_code == 429


def test_success_resets_the_account_count(test_client, user):
    for _ in range(2):
        log_in(test_client, password="wrong")
    assert log_in(test_client).status_code == 302
    test_client.delete_cookie("session")
    for _ in range(2):
        assert log_in(test_client, password="wrong").status_code == 400


def test_address_locks_after_failures_across_accounts(test_client, make_user):
    make_user("victim")
    for i in range(5):
        log_in(test_client, username=f"guess{i}", password="wrong", address="198.51.100.7")
    assert log_in(test_client, username="victim", address="198.51.100.7").status_code == 429
    assert log_in(test_client, username="victim", address="198.51.100.8").status_code == 302


@pytest.fixture
def password_client(make_client):
    return make_client(grant_types=["password"], redirect_uris=[])


def password_grant(test_client, client, secret, password, username="alice"):
    return test_client.post("/oauth/token", auth=(client.client_id, secret), data={
        "grant_type": "password", "username": username, "password": password, "scope": "profile"})


def test_password_grant_is_throttled_with_a_spec_shaped_error(test_client, user, password_client):
    """Locked: 400 invalid_grant (RFC 6749 §5.2) saying to wait, with Retry-After."""
    client, secret = password_client
    for _ in range(2):
        response = password_grant(test_client, client, secret, "wrong")
        assert response.status_code == 400
        assert response.json["error"] == "invalid_grant"
    locked = password_grant(test_client, client, secret, "wrong")
    assert locked.status_code == 400
    assert locked.json["error"] == "invalid_grant"
    right = password_grant(test_client, client, secret, PASSWORD)
    assert right.status_code == 400
    assert right.json["error"] == "invalid_grant"
    assert "Try again in" in right.json["error_description"]
    assert int(right.headers["Retry-After"]) > 0
    assert right.headers["Cache-Control"] == "no-store"


def test_form_and_password_grant_share_the_account_count(test_client, user, password_client):
    client, secret = password_client
    for _ in range(3):
        log_in(test_client, password="wrong")
    assert password_grant(test_client, client, secret, PASSWORD).status_code == 400


def test_client_authentication_failures_lock_the_client(test_client, password_client):
    client, secret = password_client
    data = {"grant_type": "client_credentials"}
    for _ in range(2):
        wrong = test_client.post("/oauth/token", data=data, auth=(client.client_id, "wrong"))
        assert wrong.status_code == 401
        assert wrong.json["error"] == "invalid_client"
        assert "Try again" not in wrong.json["error_description"]
    test_client.post("/oauth/token", data=data, auth=(client.client_id, "wrong"))
    right = test_client.post("/oauth/token", data=data, auth=(client.client_id, secret))
    assert right.status_code == 401
    assert right.json["error"] == "invalid_client"
    assert "Try again in" in right.json["error_description"]
    assert int(right.headers["Retry-After"]) > 0
    assert right.headers["WWW-Authenticate"].startswith("Basic")


def test_client_authentication_failures_lock_the_address(test_client, password_client):
    client, secret = password_client
    for i in range(5):
        test_client.post("/oauth/revoke", data={"token": "x"}, auth=(f"guess-{i}", "wrong"),
                         environ_base={"REMOTE_ADDR": "203.0.113.9"})
    locked = test_client.post("/oauth/revoke", data={"token": "x"}, auth=(client.client_id, secret),
                              environ_base={"REMOTE_ADDR": "203.0.113.9"})
    assert locked.status_code == 401
    assert "Try again in" in locked.json["error_description"]
    # People logging in from that address are not affected by a broken service there.
    assert log_in(test_client, address="203.0.113.9").status_code in (302, 400)


def test_counters_are_shared_by_instances(app_config, app, user):
    other_instance = create_app(app_config)
    for _ in range(3):
        log_in(app.test_client(), password="wrong")
    assert log_in(other_instance.test_client()).status_code == 429
    with other_instance.app_context():
        db.engine.dispose()
    throttle.close(other_instance)


def test_concurrent_failures_are_all_counted(app):
    """40 simultaneous failures against a limit of 40 lock the subject; 39 do not."""
    app.config["THROTTLE_ACCOUNT_LIMIT"] = 40
    subject = ("account", f"race-{uuid.uuid4().hex}")
    barrier = threading.Barrier(39)
    errors = []

    def fail():
        try:
            with app.app_context():
                barrier.wait()
                throttle.record_failure(subject)
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=fail) for _ in range(39)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    with app.app_context():
        assert throttle.locked_for(subject) == 0
        assert throttle.record_failure(subject) > 0
        assert throttle.locked_for(subject) > 0
