"""Passkeys in a real browser: headless Chromium with the Chrome DevTools Protocol's virtual
authenticator (support/webauthn.py) against the live server, served on http://localhost:PORT
(WebAuthn needs a host name: an IP address cannot be a relying-party id).

Screenshots of the passkey pages go to docs/screenshots/ with UPDATE_SCREENSHOTS=1.
"""

import base64
import json
import os
import uuid

import jwt
import pytest
import requests
from playwright.sync_api import expect
from support.chromium import CHROMIUM, DESKTOP, PHONE, SCREENSHOT_DIR, axe_violations
from support.factories import PASSWORD, count_rows, update_rows
from support.mail import text_of
from support.oidc import CALLBACK, authorization_url
from support.pages import query_params
from support.webauthn import VirtualAuthenticator

from website.models import AuditEvent, Passkey, User, WebAuthnChallenge, db, utcnow
from website.oauth2.acr import ACR_MFA
from website.store import passkeys as passkey_store

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's chromium is missing at /usr/bin/chromium"),
]

#: Milliseconds an assertion waits after a WebAuthn ceremony: the options, the authenticator,
#: the answer and a page load in a row take a few seconds on a busy machine.
CEREMONY = 15_000

#: Browsers without conditional UI: only the button asks for a passkey (the virtual
#: authenticator would otherwise answer the username field's request as soon as a page loads).
WITHOUT_CONDITIONAL_UI = """if (window.PublicKeyCredential)
  PublicKeyCredential.isConditionalMediationAvailable = () => Promise.resolve(false);"""

#: Notes, across page loads, the mediation of every navigator.credentials.get call.
RECORD_MEDIATION = """if (navigator.credentials) {
  const get = navigator.credentials.get.bind(navigator.credentials);
  navigator.credentials.get = (options) => {
    const seen = JSON.parse(sessionStorage.getItem("mediations") || "[]");
    sessionStorage.setItem("mediations", JSON.stringify(seen.concat([options.mediation || "optional"])));
    return get(options);
  };
}"""


@pytest.fixture
def site(app, live_server, mailbox):
    """The live server as http://localhost:PORT, which is also its issuer (so the RP id is
    ``localhost``); its mail goes to ``mailbox``."""
    url = live_server.replace("127.0.0.1", "localhost")
    app.config["OAUTH2_ISSUER"] = url + "/"
    return url


def new_page(browser, site, conditional_ui=False, viewport=DESKTOP):
    context = browser.new_context(viewport=viewport, base_url=site, locale="en-GB")
    context.set_default_timeout(10_000)
    context.add_init_script(RECORD_MEDIATION if conditional_ui else WITHOUT_CONDITIONAL_UI)
    return context.new_page()


@pytest.fixture
def page(browser, site):
    page = new_page(browser, site)
    yield page
    page.context.close()


@pytest.fixture
def authenticator(page):
    return VirtualAuthenticator(page)


def log_in_with_password(page, username="alice"):
    page.goto("/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("button", name="Log out")).to_be_visible(timeout=CEREMONY)


def add_passkey(page, name="Laptop"):
    page.goto("/account/")
    page.get_by_label("Name of the new passkey").fill(name)
    page.get_by_role("button", name="Add a passkey").click()
    expect(page.get_by_text(f"Passkey “{name}” added.")).to_be_visible(timeout=CEREMONY)


def expect_signed_out(page):
    expect(page.get_by_role("navigation", name="Main").get_by_role("link", name="Log in")).to_be_visible(timeout=CEREMONY)


def log_out(page):
    page.get_by_role("button", name="Log out").click()
    expect_signed_out(page)


def sign_in_with_passkey(page):
    page.goto("/login")
    page.get_by_role("button", name="Sign in with a passkey").click()


def events(app, name: str) -> list[dict]:
    with app.app_context():
        return [{"username": e.username, **e.detail}
                for e in db.session.scalars(db.select(AuditEvent).where(AuditEvent.event == name))]


def session_of(app, page) -> dict:
    """The Flask session the browser's cookie carries (signed, not encrypted)."""
    cookie = next(c["value"] for c in page.context.cookies() if c["name"] == "idp_session")
    return app.session_interface.get_signing_serializer(app).loads(cookie)


def test_register_a_passkey_sign_out_and_sign_in_with_it_and_no_password(app, page, authenticator, user, mailbox):
    log_in_with_password(page)
    add_passkey(page, "Laptop")
    item = page.locator(".passkey-item")
    expect(item).to_have_count(1)
    expect(item).to_contain_text("Laptop")
    expect(item).to_contain_text("not used yet")
    [stored] = authenticator.credentials()
    assert stored["rpId"] == "localhost" and stored["isResidentCredential"]  # discoverable
    added = mailbox.wait_for(1)[-1]
    assert added["To"] == "alice@example.com" and "a passkey was added" in added["Subject"]
    assert "“Laptop” was added" in text_of(added)
    assert events(app, "passkey_added") == [{"username": "alice", "passkey": "Laptop"}]

    log_out(page)
    sign_in_with_passkey(page)
    expect(page.get_by_role("button", name="Log out")).to_be_visible(timeout=CEREMONY)
    expect(page.get_by_text("Signed in as alice")).to_be_visible(timeout=CEREMONY)
    # Device-bound key, user verified by the authenticator: multi-factor by itself.
    assert session_of(app, page)["amr"] == ["hwk", "user", "mfa"]
    assert events(app, "login_succeeded")[-1] == {"username": "alice", "method": "passkey"}
    assert events(app, "passkey_used") == [{"username": "alice", "passkey": "Laptop", "step": "sign-in"}]
    used = mailbox.wait_for(2)[-1]
    assert "your passkey was used to sign in" in used["Subject"] and "“Laptop”" in text_of(used)
    page.goto("/account/")
    expect(page.locator(".passkey-item")).to_contain_text("last used")
    with app.app_context():
        assert db.session.scalar(db.select(Passkey.sign_count)) == authenticator.credentials()[0]["signCount"] > 0


def test_apps_see_a_passkey_sign_in_as_multi_factor(app, page, authenticator, user, make_client, site):
    oauth_client, secret = make_client(redirect_uris=[CALLBACK], scope="openid profile")
    log_in_with_password(page)
    add_passkey(page)
    log_out(page)
    sign_in_with_passkey(page)
    expect(page.get_by_role("button", name="Log out")).to_be_visible(timeout=CEREMONY)
    callbacks = []
    page.route(CALLBACK + "*", lambda route: (callbacks.append(route.request.url), route.fulfill(body="done")))
    page.goto(authorization_url(site, oauth_client, scope="openid", nonce="n-1"))
    page.get_by_role("button", name="Allow").click()
    expect(page.get_by_text("done")).to_be_visible(timeout=CEREMONY)
    response = requests.post(f"{site}/oauth/token", auth=(oauth_client.client_id, secret), timeout=10, data={
        "grant_type": "authorization_code", "code": query_params(callbacks[0])["code"], "redirect_uri": CALLBACK})
    id_token = response.json()["id_token"]
    key = jwt.PyJWKClient(f"{site}/.well-known/jwks.json").get_signing_key_from_jwt(id_token)
    claims = jwt.decode(id_token, key.key, algorithms=["RS256"], audience=oauth_client.client_id, issuer=site + "/")
    assert claims["amr"] == ["hwk", "user", "mfa"] and claims["acr"] == ACR_MFA


def test_sign_in_goes_where_the_log_in_page_would_have(app, page, authenticator, user):
    log_in_with_password(page)
    add_passkey(page)
    log_out(page)
    page.goto("/login?next=/account/apps")
    page.get_by_role("button", name="Sign in with a passkey").click()
    expect(page.get_by_role("heading", name="Connected apps", exact=True)).to_be_visible(timeout=CEREMONY)


def test_the_username_field_offers_passkeys_conditional_ui(app, browser, site, user):
    page = new_page(browser, site, conditional_ui=True)
    try:
        VirtualAuthenticator(page)
        # Checked while the authenticator holds no passkey, so the field's request waits: with
        # one, it answers at once and the page may have left before the attribute is read.
        page.goto("/login")
        expect(page.get_by_label("Username")).to_have_attribute("autocomplete", "username webauthn")
        log_in_with_password(page)
        add_passkey(page)
        log_out(page)
        page.goto("/login")
        # The virtual authenticator answers the field's request at once, as a person picking
        # the passkey from the username field's suggestions would: no button, no password.
        expect(page.get_by_role("button", name="Log out")).to_be_visible(timeout=CEREMONY)
        assert "conditional" in json.loads(page.evaluate("sessionStorage.getItem('mediations')"))
        assert events(app, "login_succeeded")[-1]["method"] == "passkey"
    finally:
        page.context.close()


def test_a_removed_passkey_no_longer_works(app, page, authenticator, user, mailbox):
    log_in_with_password(page)
    add_passkey(page, "Old phone")
    page.get_by_role("button", name="Remove the passkey Old phone").click()
    expect(page.get_by_text("Passkey “Old phone” removed.")).to_be_visible(timeout=CEREMONY)
    expect(page.get_by_text("You have no passkeys yet.")).to_be_visible(timeout=CEREMONY)
    removed = mailbox.wait_for(2)[-1]
    assert "a passkey was removed" in removed["Subject"] and "“Old phone” was removed" in text_of(removed)
    assert events(app, "passkey_removed") == [{"username": "alice", "passkey": "Old phone"}]

    log_out(page)
    assert len(authenticator.credentials()) == 1  # the device still holds it
    sign_in_with_passkey(page)
    expect(page.get_by_role("alert")).to_contain_text("This passkey is not registered here", timeout=CEREMONY)
    expect_signed_out(page)
    assert events(app, "passkey_refused")[-1]["reason"] == "unknown credential"
    assert events(app, "passkey_used") == []


def test_the_passkey_of_a_disabled_account_signs_in_nobody(app, page, authenticator, user):
    log_in_with_password(page)
    add_passkey(page)
    log_out(page)
    update_rows(app, User, {"disabled_at": utcnow()})
    sign_in_with_passkey(page)
    expect(page.get_by_role("alert")).to_contain_text("This passkey cannot sign you in", timeout=CEREMONY)
    expect_signed_out(page)
    assert events(app, "passkey_refused")[-1]["reason"] == "account disabled"


def test_an_answer_for_another_origin_is_refused(app, page, authenticator, user):
    log_in_with_password(page)
    add_passkey(page)
    log_out(page)
    # The site now lives at another origin: this page's genuine answer names the old one.
    app.config["WEBAUTHN_ORIGINS"] = "https://login.example.com"
    sign_in_with_passkey(page)
    expect(page.get_by_role("alert")).to_contain_text("The passkey could not be verified", timeout=CEREMONY)
    expect_signed_out(page)
    refused = events(app, "passkey_refused")[-1]
    assert "origin" in refused["reason"] and refused["passkey"] == "Laptop"


def rewrite_client_data(route, change):
    """Let the browser's sign-in answer through with its clientDataJSON changed by ``change``."""
    body = route.request.post_data_json
    response = body["credential"]["response"]
    client_data = json.loads(base64.urlsafe_b64decode(response["clientDataJSON"] + "=="))
    change(client_data)
    response["clientDataJSON"] = base64.urlsafe_b64encode(json.dumps(client_data).encode()).decode().rstrip("=")
    route.continue_(post_data=json.dumps(body))


def test_a_response_claiming_another_origin_is_refused(app, page, authenticator, user):
    log_in_with_password(page)
    add_passkey(page)
    log_out(page)
    page.route("**/passkeys/sign-in", lambda route: rewrite_client_data(
        route, lambda data: data.update(origin="https://evil.example")))
    sign_in_with_passkey(page)
    expect(page.get_by_role("alert")).to_contain_text("The passkey could not be verified", timeout=CEREMONY)
    assert "evil.example" in events(app, "passkey_refused")[-1]["reason"]
    expect_signed_out(page)


@pytest.fixture(params=["database", "redis"])
def challenge_store(request, app):
    """Where challenges are kept: the database, or the Redis on 127.0.0.1:6379 (REDIS_URL)."""
    if request.param == "redis":
        app.config.update(REDIS_URL="redis://127.0.0.1:6379/0",
                          WEBAUTHN_REDIS_PREFIX=f"idp:test-webauthn:{uuid.uuid4().hex}:")
    yield request.param
    passkey_store.close(app)


def test_an_answer_is_good_for_one_sign_in_only(app, page, authenticator, user, challenge_store):
    log_in_with_password(page)
    add_passkey(page)
    log_out(page)
    with page.expect_request("**/passkeys/sign-in") as sent:
        sign_in_with_passkey(page)
    expect(page.get_by_role("button", name="Log out")).to_be_visible(timeout=CEREMONY)
    log_out(page)
    page.goto("/login")
    csrf = page.locator("[data-passkey-sign-in]").get_attribute("data-csrf")
    replay = page.request.post("/passkeys/sign-in", data=sent.value.post_data,
                               headers={"Content-Type": "application/json", "X-CSRFToken": csrf})
    assert replay.status == 400
    assert replay.json() == {"error": "This passkey request expired or was already used. Please try again."}
    page.goto("/")
    expect_signed_out(page)
    assert count_rows(app, WebAuthnChallenge) == 0  # each spent (with Redis, none was ever stored here)


def test_an_expired_challenge_is_refused(app, page, authenticator, user):
    log_in_with_password(page)
    add_passkey(page)
    log_out(page)

    def expire_then_send(route):
        update_rows(app, WebAuthnChallenge, {"expires_at": 0})
        route.continue_()

    page.route("**/passkeys/sign-in", expire_then_send)
    sign_in_with_passkey(page)
    expect(page.get_by_role("alert")).to_contain_text("This passkey request expired or was already used", timeout=CEREMONY)
    expect_signed_out(page)


def test_a_sign_counter_that_did_not_grow_is_refused(app, page, authenticator, user):
    log_in_with_password(page)
    add_passkey(page)
    log_out(page)
    # As if a clone of the authenticator had already signed in further along its counter.
    update_rows(app, Passkey, {"sign_count": 1000})
    sign_in_with_passkey(page)
    expect(page.get_by_role("alert")).to_contain_text("The passkey could not be verified", timeout=CEREMONY)
    assert "sign count" in events(app, "passkey_refused")[-1]["reason"]
    expect_signed_out(page)


def test_passwordless_sign_in_needs_user_verification(app, page, authenticator, user):
    log_in_with_password(page)
    add_passkey(page)
    log_out(page)
    authenticator.set_user_verified(False)
    # A page that asked the authenticator for less than the server requires.
    def ask_for_less(route):
        response = route.fetch()
        route.fulfill(response=response, json={**response.json(), "userVerification": "discouraged"})

    page.route("**/passkeys/sign-in/options", ask_for_less)
    sign_in_with_passkey(page)
    expect(page.get_by_role("alert")).to_contain_text("The passkey could not be verified", timeout=CEREMONY)
    assert "User verification is required" in events(app, "passkey_refused")[-1]["reason"]
    expect_signed_out(page)


def test_no_passkey_is_added_when_its_mail_cannot_be_sent(app, page, authenticator, user, mailbox):
    log_in_with_password(page)
    mailbox.refuse = True
    page.goto("/account/")
    page.get_by_label("Name of the new passkey").fill("Laptop")
    page.get_by_role("button", name="Add a passkey").click()
    expect(page.get_by_role("alert")).to_contain_text("The mail could not be sent just now", timeout=CEREMONY)
    assert count_rows(app, Passkey) == 0
    assert events(app, "passkey_added") == []
    mailbox.refuse = False
    page.get_by_role("button", name="Add a passkey").click()  # the person simply tries again
    expect(page.get_by_text("Passkey “Laptop” added.")).to_be_visible(timeout=CEREMONY)
    assert count_rows(app, Passkey) == 1


def test_two_passkeys_and_one_cannot_be_added_twice(app, page, authenticator, user):
    log_in_with_password(page)
    add_passkey(page, "Laptop")
    # The same authenticator again: the options exclude its credential, so the browser refuses.
    page.get_by_label("Name of the new passkey").fill("Laptop again")
    page.get_by_role("button", name="Add a passkey").click()
    expect(page.get_by_role("alert")).to_contain_text("This device already holds a passkey for your account", timeout=CEREMONY)
    second = VirtualAuthenticator(page, transport="usb")  # a security key plugged in beside it
    page.get_by_label("Name of the new passkey").fill("Security key")
    page.get_by_role("button", name="Add a passkey").click()
    expect(page.get_by_text("Passkey “Security key” added.")).to_be_visible(timeout=CEREMONY)
    expect(page.locator(".passkey-name")).to_have_text(["Laptop", "Security key"])
    assert len(second.credentials()) == 1


def test_a_passkey_is_the_second_factor_after_the_password(app, page, authenticator, user, mailbox):
    log_in_with_password(page)  # no second factor yet: the password alone signs in
    add_passkey(page, "Laptop")
    log_out(page)
    page.goto("/login?next=/account/apps")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    # The password is no longer enough: the sign-in waits for the passkey.
    expect(page.get_by_role("heading", name="Use your passkey")).to_be_visible(timeout=CEREMONY)
    expect_signed_out(page)
    assert page.request.get("/account/", max_redirects=0).status == 302
    page.get_by_role("button", name="Use a passkey").click()
    expect(page.get_by_role("heading", name="Connected apps", exact=True)).to_be_visible(timeout=CEREMONY)
    assert session_of(app, page)["amr"] == ["pwd", "hwk", "mfa"]
    assert events(app, "passkey_used") == [{"username": "alice", "passkey": "Laptop", "step": "second factor"}]
    assert events(app, "mfa_used")[-1]["factor"] == "passkey"
    assert "second factor" in mailbox.wait_for(2)[-1]["Subject"]


def test_a_second_factor_passkey_that_does_not_verify_counts_as_a_failure(app, page, authenticator, user):
    log_in_with_password(page)
    add_passkey(page)
    log_out(page)
    update_rows(app, Passkey, {"sign_count": 1000})
    page.goto("/login")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("button", name="Use a passkey").click()
    expect(page.get_by_role("alert")).to_contain_text("The passkey could not be verified", timeout=CEREMONY)
    expect_signed_out(page)
    assert events(app, "mfa_failed") == [{"username": "alice", "factor": "passkey"}]


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_passkey_pages_are_accessible_and_photographed(app, browser, site, user, viewport, tmp_path):
    out = SCREENSHOT_DIR if os.environ.get("UPDATE_SCREENSHOTS") == "1" else tmp_path
    out.mkdir(parents=True, exist_ok=True)
    suffix = "" if viewport is DESKTOP else "-phone"
    page = new_page(browser, site, viewport=viewport)
    try:
        VirtualAuthenticator(page)
        page.goto("/login")
        expect(page.get_by_role("button", name="Sign in with a passkey")).to_be_visible(timeout=CEREMONY)
        assert not axe_violations(page)
        page.screenshot(path=str(out / f"passkey-login{suffix}.png"), full_page=True)
        log_in_with_password(page)
        add_passkey(page, "Laptop")
        VirtualAuthenticator(page, transport="usb")
        add_passkey(page, "Security key")
        section = page.locator("section[aria-labelledby=passkeys-title]")
        assert not axe_violations(page)
        section.scroll_into_view_if_needed()
        section.screenshot(path=str(out / f"passkeys-account{suffix}.png"))
        log_out(page)
        page.goto("/login")
        page.get_by_label("Username").fill("alice")
        page.get_by_label("Password", exact=True).fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("button", name="Use a passkey")).to_be_visible(timeout=CEREMONY)
        assert not axe_violations(page)
        page.screenshot(path=str(out / f"passkey-second-factor{suffix}.png"), full_page=True)
    finally:
        page.context.close()
