"""The breached-password check (PWNED_PASSWORDS_CHECK): off by default; when on, a new password
listed by a k-anonymity range API (here a loopback server speaking it) is refused, only the
SHA-1 prefix is sent, and an API that does not answer lets the password through."""

import hashlib
import threading

import pytest
from support.factories import PASSWORD, count_rows
from support.loopback import LoopbackServer, QuietHandler
from support.pages import form_token

from website.models import User

BREACHED = "password123456"


class RangeApi:
    """A loopback server answering GET /range/<prefix> as api.pwnedpasswords.com does, with
    padding lines (count 0); ``delay`` makes it slow."""

    def __init__(self, leaked: list[str]):
        self.requests: list[tuple[str, str | None]] = []
        self.delay = 0.0
        self.hashes = {hashlib.sha1(p.encode()).hexdigest().upper(): 3730471 for p in leaked}
        api = self
        release = self.release = threading.Event()

        class Handler(QuietHandler):
            def do_GET(self):
                api.requests.append((self.path, self.headers.get("Add-Padding")))
                if api.delay:
                    release.wait(api.delay)
                prefix = self.path.rsplit("/", 1)[-1]
                lines = [f"{h[5:]}:{n}" for h, n in api.hashes.items() if h.startswith(prefix)]
                lines += ["0" * 35 + ":0", "F" * 35 + ":0"]
                self.send_body("\r\n".join(lines).encode(), "text/plain")

        self.loopback = LoopbackServer(Handler, poll_interval=0.05)
        self.url = self.loopback.url

    def close(self):
        self.release.set()
        self.loopback.close()


@pytest.fixture
def range_api(app):
    api = RangeApi([BREACHED])
    app.config.update(PWNED_PASSWORDS_CHECK=True, PWNED_PASSWORDS_URL=api.url, PWNED_PASSWORDS_TIMEOUT=1)
    yield api
    api.close()


def signup(test_client, password):
    return test_client.post("/signup", data={
        "username": "bob", "email": "bob@example.com", "password": password, "confirm": password,
        "csrf_token": form_token(test_client, "/signup")})


def test_a_breached_password_is_refused_and_only_the_prefix_is_sent(app, test_client, range_api):
    response = signup(test_client, BREACHED)
    assert response.status_code == 400
    assert "appears in a list of passwords leaked from other sites" in response.get_data(as_text=True)
    assert count_rows(app, User) == 0
    digest = hashlib.sha1(BREACHED.encode()).hexdigest().upper()
    assert range_api.requests == [(f"/range/{digest[:5]}", "true")]
    assert signup(test_client, PASSWORD).status_code == 302


def test_the_check_is_off_by_default(app, test_client):
    assert app.config["PWNED_PASSWORDS_CHECK"] is False
    assert signup(test_client, BREACHED).status_code == 302


def test_a_new_password_on_the_account_page_is_checked_too(app, test_client, auth, user, range_api):
    auth.login()
    response = test_client.post("/account/password", data={
        "password-csrf_token": form_token(test_client, "/account/", "password-csrf_token"),
        "password-current_password": PASSWORD, "password-new_password": BREACHED,
        "password-confirm": BREACHED})
    assert response.status_code == 400
    assert "leaked from other sites" in response.get_data(as_text=True)


def test_an_api_that_does_not_answer_in_time_lets_the_password_through(app, test_client, range_api, caplog):
    range_api.delay = 5
    app.config["PWNED_PASSWORDS_TIMEOUT"] = 0.3
    assert signup(test_client, BREACHED).status_code == 302
    assert "did not answer" in caplog.text


def test_an_unreachable_api_lets_the_password_through(app, test_client, range_api):
    range_api.close()
    assert signup(test_client, BREACHED).status_code == 302
