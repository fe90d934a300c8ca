"""Linking an upstream identity to the local account with the same verified address, proved
with a passkey of that account instead of its password: node oidc-provider (in memory) as the
upstream, headless Chromium with the DevTools virtual authenticator (support/webauthn.py) on
the live server as http://localhost:PORT (WebAuthn needs a host name)."""

import base64
import json
import os

import pytest
import requests
from playwright.sync_api import expect
from support.chromium import CHROMIUM, DESKTOP
from support.factories import PASSWORD, count_rows, update_rows
from support.upstream import UPSTREAM_SECRET, Person, drive, oidc_provider
from support.webauthn import VirtualAuthenticator

from website.models import AuditEvent, Passkey, User, db
from website.models.upstreams import NO_PASSWORD, UpstreamIdentity

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's chromium is missing at /usr/bin/chromium"),
]

CEREMONY = 15_000

ANN = {"ann": {"email": "ann@example.com", "email_verified": True, "name": "Ann Upstream"}}

WITHOUT_CONDITIONAL_UI = """if (window.PublicKeyCredential)
  PublicKeyCredential.isConditionalMediationAvailable = () => Promise.resolve(false);"""


@pytest.fixture
def site(app, live_server, mailbox):
    """The live server as http://localhost:PORT, also its issuer (so the RP id is localhost)."""
    url = live_server.replace("127.0.0.1", "localhost")
    app.config["OAUTH2_ISSUER"] = url + "/"
    return url


@pytest.fixture
def node(site, runner):
    """oidc-provider with ann (ann@example.com, verified), registered here as "node"."""
    client = {"client_id": "idp-test", "client_secret": UPSTREAM_SECRET,
              "redirect_uris": [f"{site}/login/with/node/callback"]}
    with oidc_provider(client, ANN) as issuer:
        result = runner.invoke(args=["add-upstream", "--name", "node", "--issuer", issuer, "--client-id", "idp-test",
                                     "--client-secret", UPSTREAM_SECRET])
        assert result.exit_code == 0, result.output
        yield issuer


@pytest.fixture
def alice(app, make_user):
    """The local account with ann's address, verified."""
    alice = make_user("alice", email="ann@example.com")
    update_rows(app, User, {"email_verified": True}, User.id == alice.id)
    return alice


@pytest.fixture
def page(browser, site):
    context = browser.new_context(viewport=DESKTOP, base_url=site, locale="en-GB")
    context.set_default_timeout(10_000)
    context.add_init_script(WITHOUT_CONDITIONAL_UI)
    page = context.new_page()
    yield page
    context.close()


def add_passkey_as(page, username: str) -> None:
    """Log in with the password, add a passkey in the page's authenticator, log out."""
    page.goto("/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.goto("/account/")
    page.get_by_label("Name of the new passkey").fill("Laptop")
    page.get_by_role("button", name="Add a passkey").click()
    expect(page.get_by_text("Passkey “Laptop” added.")).to_be_visible(timeout=CEREMONY)
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("navigation", name="Main").get_by_role("link", name="Log in")).to_be_visible()


def open_link_page(app, page, site) -> None:
    """Continue with the upstream as ann (her pages answered over HTTP), then carry the session
    that waits on the link page into the browser and open it."""
    session = requests.Session()
    stop = drive(session, f"{site}/login/with/node?next=/account/", Person("ann"), f"{site}/login/link")
    assert stop == f"{site}/login/link", stop
    name = app.config["SESSION_COOKIE_NAME"]
    value = next(c.value for c in session.cookies if c.name == name)
    page.context.add_cookies([{"name": name, "value": value, "url": site}])
    page.goto("/login/link")
    expect(page.get_by_role("heading", name="Link your")).to_be_visible()


def events(app, name: str) -> list[dict]:
    with app.app_context():
        return [e.detail for e in db.session.scalars(db.select(AuditEvent).where(AuditEvent.event == name))]


def session_of(app, page) -> dict:
    cookie = next(c["value"] for c in page.context.cookies() if c["name"] == app.config["SESSION_COOKIE_NAME"])
    return app.session_interface.get_signing_serializer(app).loads(cookie)


@pytest.mark.parametrize("password", [True, False], ids=["with a password", "passkey only"])
def test_a_passkey_of_the_account_proves_it_and_links(app, page, site, node, alice, password):
    VirtualAuthenticator(page)
    add_passkey_as(page, "alice")
    if not password:  # an account that signs in with its passkey only can be linked too
        update_rows(app, User, {"password_hash": NO_PASSWORD}, User.id == alice.id)
    open_link_page(app, page, site)
    expect(page.get_by_label("Password", exact=True)).to_have_count(1 if password else 0)
    page.get_by_role("button", name="Use a passkey").click()
    expect(page.get_by_text("Signed in as alice", exact=True)).to_be_visible(timeout=CEREMONY)
    assert page.url == f"{site}/account/"
    with app.app_context():
        identity = db.session.scalar(db.select(UpstreamIdentity))
        assert identity.user_id == alice.id and identity.subject == "ann"
    assert [e["proof"] for e in events(app, "upstream_linked")] == ["passkey"]
    assert events(app, "passkey_used")[-1] == {"passkey": "Laptop", "step": "link"}
    assert session_of(app, page)["amr"] == ["fed", "hwk", "user", "mfa"]


def test_the_link_page_offers_no_passkey_to_an_account_without_one(app, page, site, node, alice):
    open_link_page(app, page, site)
    expect(page.get_by_label("Password", exact=True)).to_be_visible()
    expect(page.get_by_role("button", name="Use a passkey")).to_have_count(0)


def test_a_passkey_of_another_account_is_refused_and_its_answer_cannot_be_replayed(
        app, page, site, node, alice, make_user):
    make_user("bob")
    VirtualAuthenticator(page)
    add_passkey_as(page, "bob")  # the browser holds bob's passkey only
    with app.app_context():  # alice has a passkey too (on another device), so the page offers one
        db.session.add(Passkey(user_id=alice.id, credential_id="YWxpY2UtZWxzZXdoZXJl", public_key=b"\xa5",
                               sign_count=0, transports="internal", name="Phone"))
        db.session.commit()
    open_link_page(app, page, site)

    def any_passkey(route):
        # A hostile page: ask for any passkey instead of alice's.
        options = route.fetch().json()
        route.fulfill(json={**options, "allowCredentials": []})

    answers = []
    page.route("**/login/link/passkey/options", any_passkey)
    page.route("**/login/link/passkey", lambda route: (answers.append(route.request.post_data), route.continue_()))
    page.get_by_role("button", name="Use a passkey").click()
    expect(page.get_by_role("alert")).to_have_text(
        "That passkey belongs to another account, not to alice. Use a passkey of alice, or its password.",
        timeout=CEREMONY)
    assert count_rows(app, UpstreamIdentity) == 0
    assert events(app, "upstream_link_failed")[-1]["reason"] == "passkey refused"
    assert events(app, "passkey_refused")[-1]["reason"] == "passkey of another account"

    csrf = page.locator("[data-passkey-proof]").get_attribute("data-csrf")
    headers = {"X-CSRFToken": csrf, "Content-Type": "application/json"}
    replayed = page.request.post(f"{site}/login/link/passkey", data=answers[0], headers=headers)
    assert replayed.status == 400
    assert replayed.json() == {"error": "This passkey request expired or was already used. Please try again."}
    # A challenge issued for a passwordless sign-in does not prove an account to link either.
    challenge = page.request.post(f"{site}/passkeys/sign-in/options", data="{}", headers=headers).json()["challenge"]
    client_data = base64.urlsafe_b64encode(json.dumps(
        {"type": "webauthn.get", "challenge": challenge, "origin": site}).encode()).decode().rstrip("=")
    foreign = page.request.post(f"{site}/login/link/passkey", headers=headers, data=json.dumps(
        {"credential": {**json.loads(answers[0])["credential"], "response": {"clientDataJSON": client_data}}}))
    assert foreign.status == 400 and "expired or was already used" in foreign.json()["error"]
    for body in ("[]", '{"credential": "x"}', '{"credential": {"response": {"clientDataJSON": "%%%"}}}'):
        bad = page.request.post(f"{site}/login/link/passkey", data=body, headers=headers)
        assert bad.status == 400 and bad.json()["error"].startswith("The browser's answer was not a WebAuthn")
    assert count_rows(app, UpstreamIdentity) == 0
    # The password still works afterwards; alice has a passkey, so as at the log-in page it is
    # asked for next as the second factor, and nothing is linked before it is given.
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Link and continue").click()
    expect(page).to_have_url(f"{site}/passkeys/second-factor", timeout=CEREMONY)
    assert count_rows(app, UpstreamIdentity) == 0


def test_link_passkey_starts_are_limited_per_address(app, page, site, node, alice):
    app.config["PASSKEY_SIGN_IN_ADDRESS_LIMIT"] = 2
    with app.app_context():
        db.session.add(Passkey(user_id=alice.id, credential_id="YWxpY2UtZWxzZXdoZXJl", public_key=b"\xa5",
                               sign_count=0, transports="internal", name="Phone"))
        db.session.commit()
    open_link_page(app, page, site)
    headers = {"X-CSRFToken": page.locator("[data-passkey-proof]").get_attribute("data-csrf"),
               "Content-Type": "application/json"}
    first = page.request.post(f"{site}/login/link/passkey/options", data="{}", headers=headers)
    assert first.status == 200 and first.json()["userVerification"] == "required"
    assert [c["id"] for c in first.json()["allowCredentials"]] == ["YWxpY2UtZWxzZXdoZXJl"]
    # Passwordless sign-ins started from the address count in the same limit.
    assert page.request.post(f"{site}/passkeys/sign-in/options", data="{}", headers=headers).status == 200
    refused = page.request.post(f"{site}/login/link/passkey/options", data="{}", headers=headers)
    assert refused.status == 429 and int(refused.headers["retry-after"]) > 0
    assert refused.json()["error"].startswith("Too many sign-ins started. Try again in")
