"""RFC 6819 §4.4.3.6, §5.1.4.2.3 / RFC 9700 §4.x: failed log-ins, password grants and client
authentications are throttled per account (or client) and per address, in counters every
instance shares (database by default, Redis with REDIS_URL); the lockout ends by itself."""

import threading
import time
import uuid

import pytest

from support.factories import PASSWORD
from support.pages import csrf_token, form_token
from website import create_app
from website.store import throttle
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
    token = form_token(test_client, "/login")
    return test_client.post("/login", data={"username": username, "password": password, "csrf_token": token},
                            environ_base=environ)


def test_account_locks_after_the_limit_even_for_the_right_password(test_client, user):
    for _ in range(2):
        assert log_in(test_client, password="wrong").status_code == 400
    third = log_in(test_client, password="wrong")
    assert third.status_code == 429
    assert "Too many failed attempts" in third.get_data(as_text=True)
    locked = log_in(test_client)  # the right password
    assert locked.status_code == 429
    assert "Try again in" in locked.get_data(as_text=True)
    assert 0 < int(locked.headers["Retry-After"]) <= LOCKOUT
    assert test_client.get("/clients/").status_code == 302  # not signed in


def test_failures_under_look_alike_names_count_against_the_one_account(test_client, user):
    # Otherwise every change of case would be a fresh set of guesses at alice's password. The
    # account locks per address (a stranger elsewhere cannot lock alice out), so one source.
    for name in ["Alice", "ALICE"]:
        assert log_in(test_client, username=name, password="wrong", address="192.0.2.10").status_code == 400
    assert log_in(test_client, username="ａｌｉｃｅ", password="wrong", address="192.0.2.10").status_code == 429
    assert log_in(test_client, address="192.0.2.10").status_code == 429


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
    test_client.delete_cookie("idp_session")
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


def password_grant(test_client, client, secret, password, username="alice", address="192.0.2.1"):
    return test_client.post("/oauth/token", auth=(client.client_id, secret), data={
        "grant_type": "password", "username": username, "password": password, "scope": "profile"},
        environ_base={"REMOTE_ADDR": address})


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


def test_two_client_authentication_methods_are_refused_before_any_secret_is_checked(
        test_client, make_client):
    """RFC 6749 §2.3: one method per request. Basic credentials of client A with the body
    credentials of a locked client B got B its tokens, while the throttle counted A."""
    a, a_secret = make_client(grant_types=["client_credentials"], redirect_uris=[])
    b, b_secret = make_client(grant_types=["client_credentials"], redirect_uris=[])
    data = {"grant_type": "client_credentials"}
    for _ in range(3):
        test_client.post("/oauth/token", data=data, auth=(b.client_id, "wrong"))
    assert test_client.post("/oauth/token", data=data, auth=(b.client_id, b_secret)).status_code == 401
    two_methods = [
        ({**data, "client_id": b.client_id, "client_secret": b_secret}, (a.client_id, "wrong")),
        ({**data, "client_id": b.client_id, "client_secret": b_secret}, (a.client_id, a_secret)),
        ({**data, "client_secret": a_secret}, (a.client_id, a_secret)),
        ({**data, "client_id": b.client_id}, (a.client_id, a_secret)),
        ({**data, "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
          "client_assertion": "x.y.z"}, (a.client_id, a_secret)),
        ({**data, "client_id": a.client_id, "client_secret": a_secret, "client_assertion": "x.y.z"}, None),
    ]
    for path in ("/oauth/token", "/oauth/revoke", "/oauth/introspect"):
        for body, basic in two_methods:
            if path != "/oauth/token":
                body = {**{k: v for k, v in body.items() if k != "grant_type"}, "token": "x"}
            response = test_client.post(path, data=body, auth=basic)
            assert response.status_code == 400, (path, body, response.json)
            assert response.json["error"] == "invalid_request"
    # No secret was checked: A was never counted, and its own Basic request with the same
    # client_id in the body (allowed) works.
    same = test_client.post("/oauth/token", data={**data, "client_id": a.client_id}, auth=(a.client_id, a_secret))
    assert same.status_code == 200, same.json


def test_a_stranger_cannot_lock_the_person_out(test_client, user, password_client):
    """Failures count per account *and address*: from the attacker's address the account locks
    (even for the right password); the person at their own address still signs in."""
    client, secret = password_client
    for _ in range(3):
        log_in(test_client, password="wrong", address="198.51.100.66")
    assert log_in(test_client, address="198.51.100.66").status_code == 429
    assert password_grant(test_client, client, secret, PASSWORD, address="198.51.100.66").status_code == 400
    assert password_grant(test_client, client, secret, PASSWORD, address="192.0.2.1").status_code == 200
    assert log_in(test_client, address="192.0.2.1").status_code == 302


@pytest.fixture
def locked_alice(test_client, user):
    for address in ("198.51.100.1", "198.51.100.2"):
        for _ in range(3):
            log_in(test_client, password="wrong", address=address)
        assert log_in(test_client, address=address).status_code == 429
    return user


def test_an_admin_unlocks_an_account(test_client, auth, make_user, locked_alice):
    make_user("grace", is_admin=True)
    auth.login("grace")
    page = test_client.get("/admin/users").get_data(as_text=True)
    assert f'action="/admin/users/{locked_alice.id}/unlock"' in page
    assert test_client.post(f"/admin/users/{locked_alice.id}/unlock").status_code == 400  # no CSRF token
    response = test_client.post(f"/admin/users/{locked_alice.id}/unlock",
                                data={"csrf_token": form_token(test_client, "/admin/users")})
    assert response.status_code == 302
    test_client.delete_cookie("idp_session")
    for address in ("198.51.100.1", "198.51.100.2"):
        assert log_in(test_client, address=address).status_code == 302
        test_client.delete_cookie("idp_session")
    with test_client.application.app_context():
        from website.models import AuditEvent
        event = db.session.scalar(db.select(AuditEvent).where(AuditEvent.event == "account_unlocked"))
        assert event.username == "alice" and event.detail["by"] == "grace"


def test_the_cli_unlocks_an_account(runner, test_client, locked_alice):
    result = runner.invoke(args=["unlock-user", "alice"])
    assert result.exit_code == 0, result.output
    assert "Unlocked alice" in result.output
    for address in ("198.51.100.1", "198.51.100.2"):
        assert log_in(test_client, address=address).status_code == 302
        test_client.delete_cookie("idp_session")


@pytest.mark.parametrize("way", ["form", "password_grant"])
def test_simultaneous_guesses_get_no_more_password_checks_than_the_limit(
        app, live_server, user, make_client, way):
    """16 wrong passwords at once against a limit of 5: each attempt is counted before its
    password is checked, so at most 5 checks happen (each failed check is a login_failed)."""
    import requests
    from sqlalchemy import func, select

    from test_races import settle
    from website.models import AuditEvent

    app.config["THROTTLE_ACCOUNT_LIMIT"] = 5
    app.config["THROTTLE_ADDRESS_LIMIT"] = 100
    if way == "form":
        def send(session):
            html = session.get(f"{live_server}/login", timeout=60).text
            token = csrf_token(html)
            return lambda: session.post(f"{live_server}/login", timeout=60, data={
                "username": "alice", "password": "wrong", "csrf_token": token})
    else:
        client, secret = make_client(grant_types=["password"], redirect_uris=[])

        def send(session):
            return lambda: session.post(f"{live_server}/oauth/token", auth=(client.client_id, secret), timeout=60,
                                        data={"grant_type": "password", "username": "alice", "password": "wrong"})
    sessions = [requests.Session() for _ in range(16)]
    prepared = [send(s) for s in sessions]  # each with its own cookie and CSRF token
    barrier = threading.Barrier(16)
    results = [None] * 16

    def run(i):
        barrier.wait()
        try:
            results[i] = prepared[i]()
        except Exception as error:  # noqa: BLE001 - reported by the assertion
            results[i] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    for session in sessions:
        session.close()
    settle(app)
    assert all(isinstance(r, requests.Response) and r.status_code < 500 for r in results), results
    with app.app_context():
        checks = db.session.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.event == "login_failed"))
    assert 1 <= checks <= 5, checks


def sign_in_and_out(test_client, address):
    """A successful log-in from ``address`` (so it is one of the person's known addresses)."""
    assert log_in(test_client, address=address).status_code == 302
    test_client.delete_cookie("idp_session")


def test_an_attack_from_many_addresses_locks_new_addresses_but_not_the_persons_own(app, test_client, user):
    """The account's limit over every address locks only addresses the person has not signed
    in from: the attack stops, the person still gets in from home."""
    app.config.update(THROTTLE_ACCOUNT_TOTAL_LIMIT=6, THROTTLE_NOTIFY_AFTER=0)
    sign_in_and_out(test_client, "192.0.2.1")
    for attacker in ("198.51.100.1", "198.51.100.2", "198.51.100.3"):
        for _ in range(2):  # under the per-address limit of 3
            assert log_in(test_client, password="wrong", address=attacker).status_code in (400, 429)
    fresh = log_in(test_client, address="198.51.100.99")  # the right password, a new address
    assert fresh.status_code == 429
    assert "Too many failed attempts" in fresh.get_data(as_text=True)
    assert log_in(test_client, password="wrong", address="198.51.100.98").status_code == 429
    sign_in_and_out(test_client, "192.0.2.1")  # home still works, and does not reset the attack
    assert log_in(test_client, address="198.51.100.99").status_code == 429


def test_the_account_total_limit_can_be_turned_off(app, test_client, user):
    app.config.update(THROTTLE_ACCOUNT_TOTAL_LIMIT=0, THROTTLE_NOTIFY_AFTER=0)
    for attacker in ("198.51.100.1", "198.51.100.2", "198.51.100.3", "198.51.100.4"):
        for _ in range(2):
            log_in(test_client, password="wrong", address=attacker)
    assert log_in(test_client, address="198.51.100.99").status_code == 302


def test_each_further_lockout_lasts_twice_as_long(app, test_client, user):
    app.config.update(THROTTLE_LOCKOUT=1, THROTTLE_MAX_LOCKOUT=3, THROTTLE_NOTIFY_AFTER=0, THROTTLE_ADDRESS_LIMIT=100)
    waits = []
    for _ in range(3):
        for _ in range(3):
            response = log_in(test_client, password="wrong", address="198.51.100.5")
        assert response.status_code == 429
        waits.append(int(response.headers["Retry-After"]))
        time.sleep(waits[-1] + 1.1)
    assert waits == [1, 2, 3]  # doubled, up to THROTTLE_MAX_LOCKOUT
    # A successful log-in from the address starts over.
    sign_in_and_out(test_client, "198.51.100.5")
    for _ in range(3):
        response = log_in(test_client, password="wrong", address="198.51.100.5")
    assert int(response.headers["Retry-After"]) == 1


def test_the_person_gets_one_mail_after_repeated_failures(app, test_client, make_user, mailbox):
    from support.mail import html_of, text_of

    make_user("alice", email="alice@example.com")
    app.config.update(THROTTLE_NOTIFY_AFTER=4)
    for address in ("198.51.100.1", "198.51.100.2", "198.51.100.3"):
        for _ in range(2):
            log_in(test_client, password="wrong", address=address)
    [message] = mailbox.wait_for(1)
    time.sleep(0.3)
    assert len(mailbox.messages) == 1  # six failures, one mail
    assert message["To"] == "alice@example.com"
    text = text_of(message)
    assert "wrong password 4 times" in text and "198.51.100.2" in text
    assert "your account is not locked" in text
    assert "http://localhost/account/" in text and 'href="http://localhost/account/"' in html_of(message)
    with app.app_context():
        from website.models import AuditEvent
        assert db.session.scalar(db.select(db.func.count()).select_from(AuditEvent).where(
            AuditEvent.event == "login_failures_notified")) == 1


def test_a_mail_the_server_refused_is_sent_at_a_later_failure(app, test_client, make_user, mailbox):
    make_user("alice", email="alice@example.com")
    app.config.update(THROTTLE_NOTIFY_AFTER=2)
    mailbox.refuse = True
    for _ in range(2):
        assert log_in(test_client, password="wrong", address="198.51.100.1").status_code == 400
    assert mailbox.messages == []
    mailbox.refuse = False
    log_in(test_client, password="wrong", address="198.51.100.2")
    [message] = mailbox.wait_for(1)
    assert "wrong password 3 times" in message.get_payload()[0].get_payload(decode=True).decode()


def test_unknown_usernames_send_no_mail(app, test_client, user, mailbox):
    app.config.update(THROTTLE_NOTIFY_AFTER=2)
    for _ in range(3):
        log_in(test_client, username="nobody", password="wrong", address="198.51.100.1")
    time.sleep(0.3)
    assert mailbox.messages == []


def test_unlocking_also_ends_the_lock_over_every_address(app, runner, test_client, user):
    app.config.update(THROTTLE_ACCOUNT_TOTAL_LIMIT=4, THROTTLE_NOTIFY_AFTER=0)
    for address in ("198.51.100.1", "198.51.100.2"):
        for _ in range(2):
            log_in(test_client, password="wrong", address=address)
    assert log_in(test_client, address="198.51.100.3").status_code == 429
    result = runner.invoke(args=["unlock-user", "alice"])
    assert result.exit_code == 0, result.output
    assert log_in(test_client, address="198.51.100.3").status_code == 302


def test_password_grant_failures_mail_the_person_too(app, test_client, make_user, mailbox, password_client):
    """The grant lives below services/ and reaches the mail through the throttle's signal."""
    make_user("alice", email="alice@example.com")
    app.config.update(THROTTLE_NOTIFY_AFTER=2)
    client, secret = password_client
    for address in ("198.51.100.1", "198.51.100.2"):
        assert password_grant(test_client, client, secret, "wrong", address=address).status_code == 400
    [message] = mailbox.wait_for(1)
    assert message["To"] == "alice@example.com"
