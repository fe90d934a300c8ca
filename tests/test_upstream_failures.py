"""Sign-ins through an upstream that go wrong: a tampered, wrong-audience or wrong-nonce
id_token, a replayed state, an upstream that is down, slow or answers with an error. Each
gets a page that says what happened with the way back to the local log-in (never a 500),
and each is in the audit log. The upstream is a second instance of this server behind a
transparent proxy that can change what its token endpoint answers."""

import time
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from joserfc import jwt
from support.loopback import LoopbackServer, QuietHandler
from support.upstream import Person, drive

from website.models import AuditEvent, User, db
from website.models.upstreams import UpstreamIdentity
from website.oauth2.keys import signing_key

NEVER = "http://never.invalid/"


def start(idp, proxy, session=None):
    session = session or requests.Session()
    return session, drive(session, f"{idp}/login/with/peer?next=/account/", Person("ann", login_origin=proxy.url),
                          NEVER)


def failures(app):
    with app.app_context():
        return [e.detail for e in db.session.scalars(
            db.select(AuditEvent).where(AuditEvent.event == "upstream_login_failed").order_by(AuditEvent.id))]


def assert_failure_page(page, status, words):
    assert page.status_code == status, page.text[:800]
    assert words in page.text, page.text[page.text.find("flash-error"):][:400]
    assert 'href="/login' in page.text and "Back to log in" in page.text


def test_the_peer_upstream_signs_in_when_nothing_is_changed(app, idp, peer_upstream):
    _, page = start(idp, peer_upstream[1])
    assert page.status_code == 200 and urlsplit(page.url).path == "/account/"
    with app.app_context():
        assert db.session.scalar(db.select(UpstreamIdentity)).user.username == "ann"


def _resign(other, claims_change):
    def tamper(id_token):
        claims = jwt.decode(id_token, other_key(other)).claims
        claims.update(claims_change)
        with other.app_context():
            key = signing_key()
            return jwt.encode({"alg": "RS256", "kid": key.kid}, claims, key)
    return tamper


def other_key(other):
    with other.app_context():
        return signing_key()


@pytest.mark.parametrize("change, words", [
    ("signature", "does not check out"),
    ("audience", "its aud claim is not right"),
    # For another client, naming us as the authorized party: Authlib alone would accept it.
    ("audience with our azp", "its aud claim is not right"),
    ("nonce", "its nonce claim is not right"),
    ("expired", "does not check out"),
    ("issuer", "its iss claim is not right"),
])
def test_a_bad_id_token_gets_its_page(app, idp, peer_upstream, change, words):
    other, proxy, client_id = peer_upstream
    if change == "signature":
        proxy.tamper = lambda token: token[:-6] + ("AAAAAA" if not token.endswith("AAAAAA") else "BBBBBB")
    else:
        proxy.tamper = _resign(other, {"audience": {"aud": "another-client"},
                                       "audience with our azp": {"aud": "another-client", "azp": client_id},
                                       "nonce": {"nonce": "not-the-nonce"},
                                       "expired": {"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200},
                                       "issuer": {"iss": "https://elsewhere.example"}}[change])
    _, page = start(idp, proxy)
    assert_failure_page(page, 502, words)
    assert page.url.startswith(idp + "/login/with/peer/callback")
    assert failures(app)[-1]["reason"] == "bad_id_token"
    assert app.test_client().get("/account/").status_code == 302  # nobody signed in
    assert db_count(app, UpstreamIdentity) == 0 and db_count(app, User) == 0


def db_count(app, model):
    with app.app_context():
        return db.session.scalar(db.select(db.func.count()).select_from(model))


def test_a_replayed_callback_gets_its_page(app, idp, peer_upstream):
    other, proxy, _ = peer_upstream
    session = requests.Session()
    # Stop at the callback, and keep the cookie as it was before it.
    callback = drive(session, f"{idp}/login/with/peer?next=/account/", Person("ann", login_origin=proxy.url),
                     f"{idp}/login/with/peer/callback")
    old_cookies = session.cookies.copy()
    assert session.get(callback).url == f"{idp}/account/"
    again = session.get(callback)
    assert_failure_page(again, 400, "already used")
    # The same callback with the cookie from before it: the state was taken once, server-side.
    replay = requests.Session()
    replay.cookies = old_cookies
    assert_failure_page(replay.get(callback), 400, "already used")
    # And in another browser, which never started it.
    assert_failure_page(requests.get(callback), 400, "not one this browser started")
    assert [f["reason"] for f in failures(app)] == ["state_mismatch"] * 3


def test_an_error_from_the_upstream_gets_its_page(app, idp, peer_upstream):
    session = requests.Session()
    to_upstream = session.get(f"{idp}/login/with/peer?next=/account/", allow_redirects=False).headers["Location"]
    state = parse_qs(urlsplit(to_upstream).query)["state"][0]
    page = session.get(f"{idp}/login/with/peer/callback", params={
        "state": state, "error": "access_denied", "error_description": "The person said no"})
    assert_failure_page(page, 400, "did not sign you in (access_denied: The person said no)")
    assert "next=/account/" in page.text
    assert failures(app)[-1]["reason"] == "upstream_error"


def test_an_upstream_that_is_down_gets_its_page(app, idp, runner):
    closed = LoopbackServer(QuietHandler, poll_interval=0.05)
    closed.close()  # nothing listens on its port any more
    result = runner.invoke(args=["add-upstream", "--name", "gone", "--issuer", closed.url, "--client-id", "x",
                                 "--client-secret", "y"])
    assert result.exit_code == 0, result.output
    page = requests.get(f"{idp}/login/with/gone")
    assert_failure_page(page, 502, "could not be reached")
    assert failures(app)[-1]["reason"] == "unreachable"


class SlowHandler(QuietHandler):
    def do_GET(self):
        time.sleep(3)
        try:
            self.send_body(b"{}", "application/json")
        except OSError:
            pass  # the server here gave up waiting, as it should


def test_a_slow_upstream_is_given_up_on_after_the_timeout(app, idp, runner):
    app.config["UPSTREAM_TIMEOUT"] = 1
    slow = LoopbackServer(SlowHandler, poll_interval=0.05)
    try:
        runner.invoke(args=["add-upstream", "--name", "slow", "--issuer", slow.url, "--client-id", "x",
                            "--client-secret", "y"])
        began = time.monotonic()
        page = requests.get(f"{idp}/login/with/slow")
        assert time.monotonic() - began < 2.5
    finally:
        slow.close()
    assert_failure_page(page, 504, "did not answer within 1 seconds")
    assert failures(app)[-1]["reason"] == "timeout"


def test_a_disabled_account_is_not_signed_in_through_the_upstream(app, idp, peer_upstream, runner):
    start(idp, peer_upstream[1])  # the first sign-in makes the account
    with app.app_context():
        username = db.session.scalar(db.select(User)).username
    assert runner.invoke(args=["disable-user", username]).exit_code == 0
    _, page = start(idp, peer_upstream[1])
    assert page.status_code == 403 and "This account is disabled" in page.text and "Back to log in" in page.text
    assert app.test_client().get("/account/").status_code == 302
