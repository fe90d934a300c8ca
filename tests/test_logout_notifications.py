"""Telling apps that a person logged out: OpenID Connect Back-Channel Logout (a signed
logout_token POSTed to each app the session signed in to, from a queue in the database, with
retries off the request path) and Front-Channel Logout (frames on the signed-out page)."""

import socket
import threading
import time
from urllib.parse import parse_qs, urlencode

import jwt
import pytest
from sqlalchemy import select
from support.factories import detached_rows, update_rows
from support.flows import get_user_token
from support.loopback import LoopbackServer, QuietHandler
from support.pages import csrf_token

from website import create_app
from website.models import AuditEvent, LogoutDelivery, OAuth2Client, db
from website.oauth2 import logout as notifications
from website.store import logout_deliveries as queue

ISSUER = "http://127.0.0.1"  # config_for's OAUTH2_ISSUER
BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"


class Receiver(QuietHandler):
    """A client's back-channel logout endpoint: keeps what was POSTed; ``delay`` seconds late."""

    received: list
    delay = 0.0

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        time.sleep(self.delay)
        self.received.append({"path": self.path, "content_type": self.headers.get("Content-Type"),
                              "form": parse_qs(body.decode())})
        try:
            self.send_body(b"", "text/plain")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server stopped waiting (its timeout), as it should


@pytest.fixture
def receiver():
    handler = type("ClientEndpoint", (Receiver,), {"received": []})
    server = LoopbackServer(handler, poll_interval=0.05)
    server.received = handler.received
    server.handler = handler
    yield server
    server.close()


def dead_url() -> str:
    """A loopback URL where nothing listens (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/backchannel-logout"


def events(app, kind: str) -> list[dict]:
    with app.app_context():
        return [dict(e.detail or {}, client_id=e.client_id)
                for e in db.session.scalars(select(AuditEvent).where(AuditEvent.event == kind).order_by(AuditEvent.id))]


def deliveries(app) -> list[LogoutDelivery]:
    return detached_rows(app, LogoutDelivery)


def deliver(runner) -> str:
    result = runner.invoke(args=["deliver-logouts"])
    assert result.exit_code == 0, result.output
    return result.output.strip()


def verify_logout_token(test_client, token: str, client_id: str, alg: str = "RS256") -> dict:
    """What a relying party does (Back-Channel Logout §2.6), with PyJWT and the JWKS: the
    algorithm its id_tokens are signed with."""
    header = jwt.get_unverified_header(token)
    assert header["typ"] == "logout+jwt" and header["alg"] == alg
    key_set = jwt.PyJWKSet.from_dict(test_client.get("/.well-known/jwks.json").json)
    key = next(k for k in key_set.keys if k.key_id == header["kid"])
    claims = jwt.decode(token, key, algorithms=[alg], audience=client_id, issuer=ISSUER,
                        options={"require": ["iss", "aud", "iat", "exp", "jti", "events"]})
    assert claims["events"] == {BACKCHANNEL_EVENT: {}}
    assert "nonce" not in claims
    return claims


def test_logging_out_sends_a_logout_token_the_client_verifies(app, test_client, auth, user, make_client,
                                                              runner, receiver):
    client, secret = make_client(backchannel_logout_uri=receiver.url + "/bc?tenant=1",
                                 backchannel_logout_session_required=True)
    auth.login()
    tokens = get_user_token(test_client, client, secret, scope="openid profile")
    id_token = jwt.decode(tokens["id_token"], options={"verify_signature": False})
    assert id_token["sid"]

    auth.logout()
    assert receiver.received == []  # nothing is sent while the person waits
    assert deliver(runner) == "Delivered 1, will retry 0, gave up on 0."
    [post] = receiver.received
    assert post["path"] == "/bc?tenant=1"
    assert post["content_type"] == "application/x-www-form-urlencoded"
    claims = verify_logout_token(test_client, post["form"]["logout_token"][0], client.client_id)
    assert claims["sid"] == id_token["sid"] and claims["sub"] == id_token["sub"]
    assert claims["exp"] > claims["iat"] >= time.time() - 60
    [delivered] = events(app, "backchannel_logout_delivered")
    assert delivered["client_id"] == client.client_id and delivered["attempts"] == 1

    assert deliver(runner) == "Delivered 0, will retry 0, gave up on 0."  # sent once only
    assert len(receiver.received) == 1


@pytest.mark.parametrize("alg", ["ES256", "EdDSA"])
def test_the_logout_token_is_signed_as_the_clients_id_tokens_are(app, test_client, auth, user, make_client,
                                                                 runner, receiver, alg):
    client, secret = make_client(backchannel_logout_uri=receiver.url + "/bc", id_token_signed_response_alg=alg)
    auth.login()
    get_user_token(test_client, client, secret, scope="openid")
    auth.logout()
    assert deliver(runner) == "Delivered 1, will retry 0, gave up on 0."
    [post] = receiver.received
    verify_logout_token(test_client, post["form"]["logout_token"][0], client.client_id, alg)


def test_only_clients_this_session_signed_in_to_are_told(app, test_client, auth, user, make_client, runner,
                                                         receiver):
    used, secret = make_client(backchannel_logout_uri=receiver.url + "/used")
    make_client(client_name="Unused App", backchannel_logout_uri=receiver.url + "/unused")
    plain, plain_secret = make_client(client_name="No Back-Channel App")
    auth.login()
    get_user_token(test_client, used, secret, scope="openid")
    get_user_token(test_client, plain, plain_secret, scope="openid")
    auth.logout()
    deliver(runner)
    assert [post["path"] for post in receiver.received] == ["/used"]


def test_a_dead_endpoint_is_retried_with_backoff_then_given_up(app, test_client, auth, user, make_client, runner):
    app.config.update(LOGOUT_DELIVERY_MAX_ATTEMPTS=3, LOGOUT_DELIVERY_BACKOFF=60, LOGOUT_DELIVERY_TIMEOUT=1)
    client, secret = make_client(backchannel_logout_uri=dead_url())
    auth.login()
    get_user_token(test_client, client, secret, scope="openid")
    auth.logout()

    assert deliver(runner) == "Delivered 0, will retry 1, gave up on 0."
    [row] = deliveries(app)
    assert row.attempts == 1 and row.state == "pending" and row.next_attempt_at >= time.time() + 55
    assert deliver(runner) == "Delivered 0, will retry 0, gave up on 0."  # not due yet: backoff
    update_rows(app, LogoutDelivery, {"next_attempt_at": 0})
    assert deliver(runner) == "Delivered 0, will retry 1, gave up on 0."
    assert deliveries(app)[0].next_attempt_at >= time.time() + 115  # the delay doubles
    update_rows(app, LogoutDelivery, {"next_attempt_at": 0})
    assert deliver(runner) == "Delivered 0, will retry 0, gave up on 1."
    update_rows(app, LogoutDelivery, {"next_attempt_at": 0})
    assert deliver(runner) == "Delivered 0, will retry 0, gave up on 0."  # given up for good
    failed = events(app, "backchannel_logout_failed")
    assert [e["attempts"] for e in failed] == [1, 2] and [e["retry_in"] for e in failed] == [60, 120]
    assert "ConnectionRefusedError" in failed[0]["error"]
    [given_up] = events(app, "backchannel_logout_given_up")
    assert given_up["attempts"] == 3 and given_up["client_id"] == client.client_id
    assert deliveries(app)[0].state == "given_up"


def test_purge_expired_deletes_finished_deliveries_after_a_day(app, test_client, auth, user, make_client, runner,
                                                               receiver):
    client, secret = make_client(backchannel_logout_uri=receiver.url + "/bc")
    auth.login()
    get_user_token(test_client, client, secret, scope="openid")
    auth.logout()
    deliver(runner)
    assert "logout deliveries" not in runner.invoke(args=["purge-expired"]).output  # kept for a day
    update_rows(app, LogoutDelivery, {"created_at": int(time.time()) - 24 * 3600 - 5})
    assert "Deleted 1 finished back-channel logout deliveries." in runner.invoke(args=["purge-expired"]).output
    assert deliveries(app) == []


def test_the_worker_thread_delivers_while_a_slow_client_never_slows_the_log_out(app, test_client, auth, user,
                                                                                make_client, receiver):
    app.config.update(LOGOUT_DELIVERY_WORKER=True, LOGOUT_DELIVERY_TIMEOUT=1, LOGOUT_DELIVERY_MAX_ATTEMPTS=2,
                      LOGOUT_DELIVERY_BACKOFF=0)
    receiver.handler.delay = 3  # answers after the timeout, every time
    slow, slow_secret = make_client(client_name="Slow App", backchannel_logout_uri=receiver.url + "/slow")
    worker = app.extensions["logout_delivery_worker"]
    try:
        auth.login()
        get_user_token(test_client, slow, slow_secret, scope="openid")
        started = time.monotonic()
        response = auth.logout()
        assert time.monotonic() - started < 0.9  # well under the 1 s delivery timeout
        assert response.status_code == 302
        deadline = time.monotonic() + 20
        while not events(app, "backchannel_logout_given_up") and time.monotonic() < deadline:
            time.sleep(0.2)
        [given_up] = events(app, "backchannel_logout_given_up")
        assert given_up["attempts"] == 2 and "timed out" in given_up["error"]
        assert len(events(app, "backchannel_logout_failed")) == 1
    finally:
        worker.stop()


def test_two_workers_never_send_the_same_delivery(app, test_client, auth, user, make_client, receiver):
    client, secret = make_client(backchannel_logout_uri=receiver.url + "/bc")
    auth.login()
    get_user_token(test_client, client, secret, scope="openid")
    auth.logout()
    [row] = deliveries(app)
    results = []

    def one_worker():
        with app.app_context():
            results.append(notifications.deliver_one(row.id))

    workers = [threading.Thread(target=one_worker) for _ in range(4)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(timeout=30)
    assert results.count("delivered") == 1 and results.count(None) == 3
    assert len(receiver.received) == 1


def test_a_claimed_delivery_is_left_to_its_worker(app, make_client, user, receiver, test_client, auth):
    client, secret = make_client(backchannel_logout_uri=receiver.url + "/bc")
    auth.login()
    get_user_token(test_client, client, secret, scope="openid")
    auth.logout()
    [row] = deliveries(app)
    with app.app_context():
        assert queue.claim(row.id, 60) is not None  # another instance is sending it
        assert notifications.deliver_due() == {"delivered": 0, "pending": 0, "given_up": 0}
    assert receiver.received == []


def sessions_of(app, make_client, receiver, test_client, auth, path="/bc"):
    client, secret = make_client(backchannel_logout_uri=receiver.url + path)
    auth.login()
    tokens = get_user_token(test_client, client, secret, scope="openid")
    return client, jwt.decode(tokens["id_token"], options={"verify_signature": False})["sid"]


def test_ending_a_session_from_another_device_tells_its_apps(app, make_client, user, receiver, runner,
                                                            test_client, auth):
    client, sid = sessions_of(app, make_client, receiver, test_client, auth)
    laptop = app.test_client()
    from_laptop = type(auth)(laptop)
    from_laptop.login()
    page = laptop.get("/account/sessions").get_data(as_text=True)
    response = laptop.post(f"/account/sessions/{sid}/end", data={"csrf_token": csrf_token(page)})
    assert response.status_code in (302, 303)
    deliver(runner)
    [post] = receiver.received
    assert verify_logout_token(test_client, post["form"]["logout_token"][0], client.client_id)["sid"] == sid


@pytest.mark.parametrize("how", ["disable-user", "rp-initiated", "auth0", "sign-out-everywhere"])
def test_every_way_of_ending_the_session_tells_the_app(app, make_client, user, receiver, runner, test_client,
                                                       auth, how):
    client, sid = sessions_of(app, make_client, receiver, test_client, auth)
    if how == "disable-user":
        assert runner.invoke(args=["disable-user", "alice"]).exit_code == 0
    elif how == "rp-initiated":
        page = test_client.get("/oauth/logout?" + urlencode({"client_id": client.client_id}))
        test_client.post("/oauth/logout", data={"csrf_token": csrf_token(page.get_data(as_text=True)),
                                                "confirm": "yes", "client_id": client.client_id})
    elif how == "auth0":
        test_client.get("/v2/logout?" + urlencode({"client_id": client.client_id}))
    else:
        page = test_client.get("/account/sessions").get_data(as_text=True)
        test_client.post("/account/sign-out-everywhere", data={"csrf_token": csrf_token(page)})
    assert deliver(runner) == "Delivered 1, will retry 0, gave up on 0."
    claims = verify_logout_token(test_client, receiver.received[0]["form"]["logout_token"][0], client.client_id)
    assert claims["sid"] == sid


def test_refreshed_id_tokens_keep_the_sessions_sid(app, make_client, user, test_client, auth):
    client, secret = make_client()
    auth.login()
    tokens = get_user_token(test_client, client, secret, scope="openid")
    refreshed = test_client.post("/oauth/token", data={"grant_type": "refresh_token",
                                                       "refresh_token": tokens["refresh_token"]},
                                 auth=(client.client_id, secret)).json
    first, second = (jwt.decode(t, options={"verify_signature": False})
                     for t in (tokens["id_token"], refreshed["id_token"]))
    assert first["sid"] == second["sid"]


FRONT = "https://app.example.com/frontchannel-logout"


def test_the_signed_out_page_frames_front_channel_urls_and_allows_only_their_origin(app, make_client, user,
                                                                                   test_client, auth):
    client, secret = make_client(frontchannel_logout_uri=FRONT, frontchannel_logout_session_required=True)
    other, other_secret = make_client(client_name="Other", redirect_uris=["https://other.example.org/cb"],
                                      frontchannel_logout_uri="https://other.example.org/fc")
    auth.login()
    tokens = get_user_token(test_client, client, secret, scope="openid")
    get_user_token(test_client, other, other_secret, scope="openid")
    sid = jwt.decode(tokens["id_token"], options={"verify_signature": False})["sid"]
    response = auth.logout()
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    query = urlencode({"iss": ISSUER, "sid": sid}).replace("&", "&amp;")
    assert f'<iframe class="frontchannel-logout" src="{FRONT}?{query}"' in page
    assert '<iframe class="frontchannel-logout" src="https://other.example.org/fc"' in page
    policy = response.headers["Content-Security-Policy"]
    assert policy.endswith("; frame-src https://app.example.com https://other.example.org")
    assert test_client.get("/account/apps").status_code != 200  # signed out


def test_without_front_channel_clients_the_page_frames_nothing(app, make_client, user, test_client, auth):
    client, secret = make_client()
    auth.login()
    get_user_token(test_client, client, secret, scope="openid")
    response = auth.logout()
    assert response.status_code == 302
    assert "frame-src" not in test_client.get("/").headers["Content-Security-Policy"]


def test_rp_initiated_logout_frames_first_then_goes_on_to_the_app(app, make_client, user, test_client, auth):
    bye = "https://app.example.com/bye"
    client, secret = make_client(frontchannel_logout_uri=FRONT, post_logout_redirect_uris=[bye])
    auth.login()
    tokens = get_user_token(test_client, client, secret, scope="openid")
    response = test_client.get("/oauth/logout?" + urlencode({
        "id_token_hint": tokens["id_token"], "post_logout_redirect_uri": bye, "state": "xyz"}))
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert f'src="{FRONT}"' in page
    assert f'<meta http-equiv="refresh" content="2;url={bye}?state=xyz">' in page
    assert "frame-src https://app.example.com" in response.headers["Content-Security-Policy"]


def test_discovery_advertises_logout_notifications_exactly_when_on(app_config, app, test_client):
    metadata = test_client.get("/.well-known/openid-configuration").json
    for name in ("backchannel_logout_supported", "backchannel_logout_session_supported",
                 "frontchannel_logout_supported", "frontchannel_logout_session_supported"):
        assert metadata[name] is True
    assert "sid" in metadata["claims_supported"]
    switched_off = create_app({**app_config, "BACKCHANNEL_LOGOUT": False, "FRONTCHANNEL_LOGOUT": False})
    metadata = switched_off.test_client().get("/.well-known/openid-configuration").json
    with switched_off.app_context():
        db.engine.dispose()
    assert not any(name.endswith("channel_logout_supported") or "channel_logout_session" in name
                   for name in metadata)


REGISTERED = {"client_name": "Registered", "redirect_uris": ["https://app.example.com/cb"], "scope": "openid"}


@pytest.fixture
def initial_token(runner):
    return runner.invoke(args=["create-initial-access-token"]).output.strip()


def test_dynamic_registration_takes_the_logout_metadata(test_client, initial_token):
    response = test_client.post("/oauth/register", headers={"Authorization": f"Bearer {initial_token}"}, json={
        **REGISTERED, "backchannel_logout_uri": "https://app.example.com/bc",
        "backchannel_logout_session_required": True, "frontchannel_logout_uri": FRONT,
        "frontchannel_logout_session_required": True})
    assert response.status_code == 201, response.json
    assert response.json["backchannel_logout_uri"] == "https://app.example.com/bc"
    assert response.json["backchannel_logout_session_required"] is True
    assert response.json["frontchannel_logout_uri"] == FRONT


@pytest.mark.parametrize(("change", "message"), [
    ({"backchannel_logout_uri": "https://app.example.com/bc#frag"}, "fragment"),
    ({"backchannel_logout_uri": "http://app.example.com/bc"}, "loopback"),
    ({"backchannel_logout_uri": "javascript:alert(1)"}, "absolute https"),
    ({"backchannel_logout_uri": 5}, "must be a string"),
    ({"backchannel_logout_session_required": "yes", "backchannel_logout_uri": "https://a.example/b"}, "true or false"),
    ({"backchannel_logout_session_required": True}, "needs a backchannel_logout_uri"),
    ({"frontchannel_logout_uri": "https://elsewhere.example.net/fc"}, "redirect URIs"),
])
def test_bad_logout_metadata_is_refused(test_client, initial_token, change, message):
    response = test_client.post("/oauth/register", headers={"Authorization": f"Bearer {initial_token}"},
                                json={**REGISTERED, **change})
    assert response.status_code == 400
    assert response.json["error"] == "invalid_client_metadata"
    assert message in response.json["error_description"]


def test_logout_metadata_is_refused_when_switched_off(app, test_client, initial_token):
    app.config["BACKCHANNEL_LOGOUT"] = False
    response = test_client.post("/oauth/register", headers={"Authorization": f"Bearer {initial_token}"},
                                json={**REGISTERED, "backchannel_logout_uri": "https://app.example.com/bc"})
    assert response.status_code == 400 and "switched off" in response.json["error_description"]


def test_cli_create_client_takes_the_logout_flags(app, runner):
    result = runner.invoke(args=["create-client", "--name", "CLI App", "--redirect-uri", "https://app.example.com/cb",
                                 "--backchannel-logout-uri", "https://app.example.com/bc",
                                 "--backchannel-logout-session-required", "--frontchannel-logout-uri", FRONT,
                                 "--json"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        from_db = db.session.scalars(select(OAuth2Client.extra_metadata)).one()
    assert from_db["backchannel_logout_uri"] == "https://app.example.com/bc"
    assert from_db["backchannel_logout_session_required"] is True
    assert from_db["frontchannel_logout_uri"] == FRONT
    bad = runner.invoke(args=["create-client", "--name", "Bad", "--redirect-uri", "https://app.example.com/cb",
                              "--backchannel-logout-uri", "https://app.example.com/bc#x"])
    assert bad.exit_code != 0 and "fragment" in bad.output


def test_the_client_form_edits_the_logout_urls(app, test_client, auth, user, make_client):
    client, _ = make_client(owner=user)
    auth.login()
    path = f"/clients/{client.client_id}/edit"
    page = test_client.get(path).get_data(as_text=True)
    assert 'name="backchannel_logout_uri"' in page and 'name="frontchannel_logout_uri"' in page
    form = {"client_name": "Test App", "redirect_uris": "https://app.example.com/callback",
            "grant_types": ["authorization_code"], "scope": "openid", "csrf_token": csrf_token(page),
            "token_endpoint_auth_method": "client_secret_basic"}
    bad = test_client.post(path, data={**form, "backchannel_logout_uri": "https://app.example.com/bc#x"})
    assert bad.status_code == 400 and "must not contain a fragment" in bad.get_data(as_text=True)
    good = test_client.post(path, data={**form, "backchannel_logout_uri": "https://app.example.com/bc",
                                        "backchannel_logout_session_required": "y"})
    assert good.status_code in (302, 303)
    page = test_client.get(path).get_data(as_text=True)
    assert 'value="https://app.example.com/bc"' in page
    shown = test_client.get(f"/clients/{client.client_id}").get_data(as_text=True)
    assert "<code>https://app.example.com/bc</code> (with the session id)" in shown


def test_signing_in_again_as_the_same_person_keeps_the_session_and_tells_no_app(app, test_client, auth, user,
                                                                               make_user, make_client, runner,
                                                                               receiver):
    """A step-up (the same person proving themselves again) must not log them out of their apps;
    signing in as someone else in the same browser ends the first person's session."""
    client, secret = make_client(backchannel_logout_uri=receiver.url + "/bc")
    auth.login()
    first = jwt.decode(get_user_token(test_client, client, secret, scope="openid")["id_token"],
                       options={"verify_signature": False})
    auth.login()  # the same person again
    again = jwt.decode(get_user_token(test_client, client, secret, scope="openid")["id_token"],
                       options={"verify_signature": False})
    assert again["sid"] == first["sid"]
    assert deliveries(app) == []
    make_user("bob")
    auth.login("bob")  # someone else in the same browser
    assert deliver(runner) == "Delivered 1, will retry 0, gave up on 0."
    [post] = receiver.received
    assert verify_logout_token(test_client, post["form"]["logout_token"][0], client.client_id)["sid"] == first["sid"]
