"""The web UI in a real browser: headless Chromium (Debian's, at /usr/bin/chromium) driven by
Playwright against the live server; axe-core checks every page for accessibility problems.

Screenshots of the main pages go to docs/screenshots/ with UPDATE_SCREENSHOTS=1, otherwise to
a temporary folder, so a normal run never changes the tree.
"""

import json
import os
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest
import requests
from playwright.sync_api import expect
from support.chromium import CHROMIUM, DESKTOP, PHONE, SCREENSHOT_DIR, axe_violations
from support.factories import PASSWORD
from support.flows import pkce_pair
from support.loopback import FAKE_APP_PAGE, LoopbackServer, QuietHandler
from support.mail import link_path, links_in
from support.pages import query_params

IPHONE_SAFARI = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
                 "Version/17.5 Mobile/15E148 Safari/604.1")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not os.path.exists(CHROMIUM),
        reason="Debian's chromium is missing at /usr/bin/chromium (apt-get install chromium; .ci/run does)",
    ),
]


@pytest.fixture
def page(browser, live_server):
    """A fresh browser tab (own cookies) on a desktop-sized window."""
    context = browser.new_context(viewport=DESKTOP, base_url=live_server, locale="en-GB")
    context.set_default_timeout(10_000)
    yield context.new_page()
    context.close()


class FakeApp:
    """A tiny client app: an HTTP server whose /callback records the query it was sent back with
    (and /frontchannel-logout the queries it was loaded with)."""

    def __init__(self):
        self.queries: list[str] = []
        self.frontchannel: list[str] = []
        app = self

        class Handler(QuietHandler):
            def do_GET(self):
                path, _, query = self.path.partition("?")
                if path == "/frontchannel-logout":
                    app.frontchannel.append(query)
                    self.send_body(b"<!doctype html><title>Signed out of the Fake App</title>")
                    return
                if path != "/callback":
                    self.send_error(404)
                    return
                app.queries.append(query)
                self.send_body(FAKE_APP_PAGE)

        self.loopback = LoopbackServer(Handler)
        self.url = self.loopback.url
        self.redirect_uri = self.url + "/callback"

    def close(self):
        self.loopback.close()


@pytest.fixture
def fake_app():
    app = FakeApp()
    yield app
    app.close()


def log_in(page, username="alice", password=PASSWORD):
    page.goto("/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()


def sign_up(page, username, password=PASSWORD):
    page.goto("/signup")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Email").fill(f"{username}@example.com")
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_label("Repeat password").fill(password)
    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_role("heading", name=f"Welcome, {username}")).to_be_visible()


def register_client(page, name, redirect_uri, **fields):
    """Fill in and send the client form; return the new client's id and secret from the page."""
    page.goto("/clients/")
    page.get_by_role("link", name="Register a new client").click()
    page.get_by_label("Name").fill(name)
    page.get_by_label("Redirect URIs").fill(redirect_uri)
    for label, value in fields.items():
        page.get_by_label(label).fill(value)
    page.get_by_role("button", name="Register client").click()
    expect(page.get_by_role("heading", name=name)).to_be_visible()
    return page.locator("#client-id").inner_text(), page.locator("#client-secret").inner_text()


def authorize_path(client_id, redirect_uri, challenge, scope="profile email", state="s-123"):
    return "/oauth/authorize?" + urlencode({
        "response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri,
        "scope": scope, "state": state, "code_challenge": challenge, "code_challenge_method": "S256",
    })


def test_sign_up_register_client_and_run_the_code_flow(page, live_server, fake_app):
    sign_up(page, "ada")
    client_id, secret = register_client(page, "Fake App", fake_app.redirect_uri)
    assert client_id and len(secret) > 40
    page.reload()  # the page after a redirect: reloading repeats no POST and shows no secret
    expect(page.get_by_text("This secret was shown once; rotate it if you lost it.")).to_be_visible()
    expect(page.locator("#client-secret")).to_have_count(0)
    page.goto("/clients/")
    expect(page.get_by_role("link", name="Fake App")).to_have_count(1)
    page.goto(f"/clients/{client_id}")  # shown once: a second look shows no secret
    expect(page.locator("#client-secret")).to_have_count(0)

    verifier, challenge = pkce_pair()
    page.goto(authorize_path(client_id, fake_app.redirect_uri, challenge))
    expect(page.get_by_role("heading", name="Fake App wants to access your account")).to_be_visible()
    expect(page.get_by_text("See your email address.")).to_be_visible()
    page.get_by_role("button", name="Allow").click()
    page.wait_for_url(fake_app.redirect_uri + "?*")
    params = query_params(page.url)
    assert params["state"] == "s-123"

    token = requests.post(f"{live_server}/oauth/token", data={
        "grant_type": "authorization_code", "code": params["code"],
        "redirect_uri": fake_app.redirect_uri, "code_verifier": verifier,
    }, auth=(client_id, secret), timeout=10)
    assert token.status_code == 200, token.text
    me = requests.get(f"{live_server}/api/me", timeout=10,
                      headers={"Authorization": f"Bearer {token.json()['access_token']}"})
    assert me.status_code == 200
    assert me.json()["username"] == "ada"

    page.goto("/")
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("status")).to_have_text("You are signed out.")
    expect(page.get_by_role("link", name="Log in").first).to_be_visible()


def test_rotate_secret_and_make_admin_ask_first(page, live_server, make_user, make_client):
    admin = make_user("grace", is_admin=True)
    make_user("bob")
    client, old_secret = make_client(owner=admin, client_name="Weather Station")
    log_in(page, "grace")
    page.goto(f"/clients/{client.client_id}")
    page.get_by_role("link", name="Rotate secret").click()
    expect(page.get_by_text("The old secret stops working at once")).to_be_visible()
    page.get_by_role("link", name="Cancel").click()
    expect(page.get_by_role("heading", name="Weather Station")).to_be_visible()
    page.get_by_role("link", name="Rotate secret").click()
    page.get_by_role("button", name="Rotate secret").click()
    expect(page.get_by_text("New secret made; the old one no longer works.")).to_be_visible()
    new_secret = page.locator("#client-secret").inner_text()
    assert new_secret and new_secret != old_secret
    data = {"grant_type": "refresh_token", "refresh_token": "x"}
    old = requests.post(f"{live_server}/oauth/token", data=data, auth=(client.client_id, old_secret), timeout=10)
    assert old.status_code == 401

    page.goto("/admin/users")
    page.get_by_role("link", name="Make admin").click()  # bob's: grace is an admin already
    expect(page.get_by_text("bob will be able to see every user and client")).to_be_visible()
    page.get_by_role("button", name="Make admin").click()
    expect(page.get_by_text("bob is now an administrator.")).to_be_visible()
    expect(page.get_by_role("button", name="Revoke admin")).to_be_visible()


def test_denying_consent_sends_access_denied_back_to_the_app(page, user, make_client, fake_app):
    client, _ = make_client(owner=user, client_name="Fake App", redirect_uris=[fake_app.redirect_uri])
    log_in(page)
    _, challenge = pkce_pair()
    page.goto(authorize_path(client.client_id, fake_app.redirect_uri, challenge, state="deny-me"))
    page.get_by_role("button", name="Deny").click()
    page.wait_for_url(fake_app.redirect_uri + "?*")
    params = query_params(page.url)
    assert params["error"] == "access_denied"
    assert params["state"] == "deny-me"
    assert "code" not in params
    assert fake_app.queries and "error=access_denied" in fake_app.queries[-1]


def test_bad_input_shows_the_message_next_to_the_field(page, user):
    log_in(page)
    page.goto("/clients/new")
    # Caught in the browser (static/app.js) before anything is sent.
    page.get_by_role("button", name="Register client").click()
    name = page.get_by_label("Name")
    expect(name).to_have_attribute("aria-invalid", "true")
    expect(name).to_be_focused()
    expect(page.locator(".field:has(#client_name) .error")).to_have_text("This field is required.")
    assert page.url.endswith("/clients/new")

    # Caught by the server: the page comes back with the message beside the field.
    name.fill("Example")
    page.get_by_label("Redirect URIs").fill("http://app.example.com/callback")
    with page.expect_response(lambda r: r.request.method == "POST") as response:
        page.get_by_role("button", name="Register client").click()
    assert response.value.status == 400
    error = page.locator(".field:has(#redirect_uris) .error")
    expect(error).to_contain_text("Plain http redirect URIs are allowed only for loopback hosts")
    expect(page.get_by_label("Redirect URIs")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Redirect URIs")).to_be_focused()
    expect(page.get_by_label("Name")).to_have_value("Example")


def test_wrong_password_message_on_the_login_page(page, user):
    page.goto("/login")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password", exact=True).fill("not the password")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator(".field:has(#password) .error")).to_have_text("Wrong username or password.")
    expect(page.get_by_label("Password", exact=True)).to_be_focused()
    expect(page.get_by_label("Username")).to_have_value("alice")


def focused(page) -> list[str]:
    """The focused element's text, id and outline style."""
    return page.evaluate("[document.activeElement.textContent.trim(), document.activeElement.id, "
                         "getComputedStyle(document.activeElement).outlineStyle]")


def test_keyboard_only_log_in(page, user):
    page.goto("/")
    page.keyboard.press("Tab")
    # The first stop skips the navigation, and focus is visible.
    assert focused(page) == ["Skip to content", "", "solid"]
    for _ in range(6):
        page.keyboard.press("Tab")
        if focused(page)[0] == "Log in":
            break
    assert focused(page) == ["Log in", "", "solid"]
    page.keyboard.press("Enter")
    page.wait_for_url("**/login")
    assert focused(page)[1] == "username"
    page.keyboard.type("alice")
    page.keyboard.press("Tab")
    assert focused(page)[1:] == ["password", "solid"]
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Welcome, alice")).to_be_visible()


def test_copy_button_puts_the_client_id_on_the_clipboard(page, live_server, user, make_client):
    client, _ = make_client(owner=user)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server)
    log_in(page)
    page.goto(f"/clients/{client.client_id}")
    page.get_by_role("button", name="Copy client ID").click()
    expect(page.get_by_role("button", name="Copy client ID")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == client.client_id


def test_revoking_a_connected_app_stops_its_token(page, live_server, fake_app):
    sign_up(page, "ada")
    client_id, secret = register_client(page, "Fake App", fake_app.redirect_uri)
    verifier, challenge = pkce_pair()
    page.goto(authorize_path(client_id, fake_app.redirect_uri, challenge))
    page.get_by_role("button", name="Allow").click()
    page.wait_for_url(fake_app.redirect_uri + "?*")
    token = requests.post(f"{live_server}/oauth/token", data={
        "grant_type": "authorization_code", "code": query_params(page.url)["code"],
        "redirect_uri": fake_app.redirect_uri, "code_verifier": verifier,
    }, auth=(client_id, secret), timeout=10).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert requests.get(f"{live_server}/api/me", headers=headers, timeout=10).status_code == 200

    page.goto("/")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Connected apps").click()
    app_card = page.locator("section", has=page.get_by_role("heading", name="Fake App"))
    expect(app_card).to_contain_text("See your email address.")
    app_card.get_by_role("button", name="Remove access").click()
    expect(page.get_by_role("heading", name="Fake App")).to_have_count(0)
    assert requests.get(f"{live_server}/api/me", headers=headers, timeout=10).status_code == 401


def test_the_signed_out_page_loads_the_apps_front_channel_logout_frame(page, live_server, user, make_client,
                                                                        fake_app):
    client, _ = make_client(redirect_uris=[fake_app.redirect_uri], scope="openid",
                            frontchannel_logout_uri=fake_app.url + "/frontchannel-logout",
                            frontchannel_logout_session_required=True)
    log_in(page)
    page.goto(authorize_path(client.client_id, fake_app.redirect_uri, pkce_pair()[1], scope="openid"))
    page.get_by_role("button", name="Allow").click()
    page.wait_for_url(fake_app.redirect_uri + "?*")
    page.goto("/")
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("heading", name="You are signed out")).to_be_visible()
    # Chromium loads the frame only because the page's CSP frame-src names the app's origin.
    for _ in range(50):
        if fake_app.frontchannel:
            break
        page.wait_for_timeout(100)
    assert len(fake_app.frontchannel) == 1
    assert query_params("?" + fake_app.frontchannel[0])["iss"] == "http://127.0.0.1"


def test_pages_work_without_javascript(browser, live_server, user):
    context = browser.new_context(viewport=DESKTOP, base_url=live_server, java_script_enabled=False)
    page = context.new_page()
    try:
        log_in(page)
        page.goto("/clients/new")
        page.get_by_role("button", name="Register client").click()  # nothing checks it in the page
        expect(page.locator(".field:has(#client_name) .error")).to_have_text("This field is required.")
        page.get_by_label("Name").fill("No Script App")
        page.get_by_label("Redirect URIs").fill("https://app.example.com/callback")
        page.get_by_role("button", name="Register client").click()
        expect(page.locator("#client-secret")).to_be_visible()
        # The copy buttons need the script, so they stay out of the way.
        expect(page.locator(".copy-button").first).to_be_hidden()
    finally:
        context.close()


def test_sessions_data_download_and_deleting_the_account(browser, page, live_server, user, make_client):
    """Sign out the phone from the laptop, change the password keeping no other session,
    download my data, then delete the account after seeing the app that goes with it."""
    make_client(owner=user, client_name="Garden Planner")
    phone = browser.new_context(base_url=live_server, user_agent=IPHONE_SAFARI)
    phone_page = phone.new_page()
    try:
        log_in(phone_page)
        log_in(page)
        page.goto("/account/")
        sessions = page.locator("li.session")
        expect(sessions).to_have_count(2)
        expect(page.locator("li.session.current")).to_contain_text("This browser")
        page.get_by_role("button", name="Sign out Safari 17 on iOS").click()
        expect(page.get_by_text("That session is signed out.")).to_be_visible()
        expect(sessions).to_have_count(1)
        phone_page.goto("/account/")
        expect(phone_page.get_by_role("heading", name="Log in")).to_be_visible()

        log_in(phone_page)
        page.goto("/account/")
        expect(page.get_by_label("Sign out my other sessions")).to_be_checked()
        page.get_by_label("Current password").last.fill("wrong password")
        page.get_by_label("New password", exact=True).fill("another long passphrase")
        page.get_by_label("Repeat new password").fill("another long passphrase")
        page.get_by_role("button", name="Change password").click()
        expect(page.locator(".error")).to_have_text("That is not your current password.")
        page.get_by_label("Current password").last.fill(PASSWORD)
        page.get_by_label("New password", exact=True).fill("another long passphrase")
        page.get_by_label("Repeat new password").fill("another long passphrase")
        page.get_by_role("button", name="Change password").click()
        expect(page.get_by_text("1 other session was signed out")).to_be_visible()
        phone_page.goto("/account/")
        expect(phone_page.get_by_role("heading", name="Log in")).to_be_visible()

        with page.expect_download() as download_info:
            page.get_by_role("link", name="Download my data").click()
        download = download_info.value
        assert download.suggested_filename == f"my-data-{user.id}.json"
        data = json.loads(Path(download.path()).read_text())
        assert data["profile"]["username"] == "alice"
        # The phone's two sessions ended, this laptop's is live. Rows are newest first by the
        # second they began: rows made in the same second come in either order.
        assert sorted((s["user_agent"] == IPHONE_SAFARI, s["live"]) for s in data["sessions"]) == [
            (False, True), (True, False), (True, False)]

        page.get_by_role("link", name="Delete my account…").click()
        expect(page.locator(".deleted-clients")).to_contain_text("Garden Planner")
        page.get_by_role("button", name="Delete my account").click()
        expect(page.locator(".field:has(#password) .error")).to_have_text("This field is required.")
        page.get_by_label("Your password").fill("another long passphrase")
        page.get_by_label("Type your username to confirm").fill("alice")
        page.get_by_role("button", name="Delete my account").click()
        expect(page.get_by_text("The account alice is deleted, with 1 app you owned.")).to_be_visible()
        expect(page.get_by_role("navigation", name="Main").get_by_role("link", name="Log in")).to_be_visible()
    finally:
        phone.close()


def test_sign_up_confirm_by_mail_and_recover_the_account_in_the_browser(page, app, live_server, mailbox,
                                                                         fake_app):
    app.config["OAUTH2_ISSUER"] = live_server  # the links in the mails point at the live server
    sign_up(page, "ada")
    expect(page.get_by_text("We sent a link to ada@example.com")).to_be_visible()
    client_id, secret = register_client(page, "Fake App", fake_app.redirect_uri)
    [link] = links_in(mailbox.wait_for(1)[0])
    assert link.startswith(live_server + "/verify-email/")
    page.goto(link)
    page.get_by_role("button", name="Confirm my address").click()
    expect(page.get_by_text("Thank you: ada@example.com is confirmed.")).to_be_visible()
    expect(page.get_by_text("Confirmed", exact=True)).to_be_visible()

    verifier, challenge = pkce_pair()
    page.goto(authorize_path(client_id, fake_app.redirect_uri, challenge, scope="openid email offline_access"))
    page.get_by_role("button", name="Allow").click()
    page.wait_for_url(fake_app.redirect_uri + "?*")
    tokens = requests.post(f"{live_server}/oauth/token", data={
        "grant_type": "authorization_code", "code": query_params(page.url)["code"],
        "redirect_uri": fake_app.redirect_uri, "code_verifier": verifier,
    }, auth=(client_id, secret), timeout=10).json()
    userinfo = requests.get(f"{live_server}/oauth/userinfo", timeout=10,
                            headers={"Authorization": f"Bearer {tokens['access_token']}"}).json()
    assert userinfo["email_verified"] is True

    # Forgot the password: in a second browser, through the log-in page's link.
    other = page.context.browser.new_context(viewport=DESKTOP, base_url=live_server)
    try:
        stranger = other.new_page()
        stranger.goto("/login")
        stranger.get_by_role("link", name="Forgot password?").click()
        stranger.get_by_label("Username or email").fill("ada@example.com")
        stranger.get_by_role("button", name="Send reset link").click()
        expect(stranger.get_by_role("heading", name="Check your mail")).to_be_visible()
        stranger.goto(link_path(mailbox.wait_for(2)[1]))
        stranger.get_by_label("New password", exact=True).fill("short")
        stranger.get_by_label("Repeat new password").fill("short")
        stranger.get_by_role("button", name="Set new password").click()
        expect(stranger.locator(".error")).to_contain_text("at least 8 characters")
        stranger.get_by_label("New password", exact=True).fill("a brand new passphrase")
        stranger.get_by_label("Repeat new password").fill("a brand new passphrase")
        stranger.get_by_role("button", name="Set new password").click()
        expect(stranger.get_by_text("Your password was changed")).to_be_visible()
        log_in(stranger, "ada", "a brand new passphrase")
    finally:
        other.close()
    page.goto("/account/")  # the first browser's session ended with the reset
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    refused = requests.post(f"{live_server}/oauth/token", data={
        "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}, auth=(client_id, secret),
        timeout=10)
    assert refused.status_code == 400


def tour(page, make_user, make_client, fake_app, mailbox):
    """Visit every page a person meets, in its interesting states; yield a name at each stop."""
    page.goto("/")
    yield "home"
    page.goto("/login")
    yield "login"
    page.get_by_label("Username").fill("nobody")
    page.get_by_label("Password", exact=True).fill("wrong password")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator(".error")).to_be_visible()
    yield "login-error"
    page.goto("/signup")
    yield "signup"
    make_user("ada")
    page.goto("/login")
    page.get_by_role("link", name="Forgot password?").click()
    yield "forgot-password"
    page.get_by_label("Username or email").fill("ada")
    page.get_by_role("button", name="Send reset link").click()
    expect(page.get_by_role("heading", name="Check your mail")).to_be_visible()
    yield "forgot-password-sent"
    page.goto(link_path(mailbox.wait_for(1)[0]))
    yield "reset-password"
    page.goto("/reset-password/no-such-link")
    yield "link-problem"
    page.goto("/oauth/authorize?response_type=code&client_id=unknown")
    yield "oauth-error"
    page.goto("/no-such-page")
    yield "not-found"

    admin = make_user("grace", is_admin=True)
    for i in range(3):
        owner = make_user(f"user{i}")
        make_client(owner=owner, client_name=f"Demo App {i}")
    make_client(owner=admin, client_name="Weather Station", token_endpoint_auth_method="none",
                redirect_uris=["http://127.0.0.1/weather/callback"])
    log_in(page, "grace")
    yield "home-signed-in"
    page.goto("/clients/")
    yield "clients-one"
    page.get_by_role("link", name="Register a new client").click()
    page.get_by_label("Name").fill("Photo Gallery")
    page.get_by_label("Home page").fill("https://photos.example.com")
    page.get_by_label("Redirect URIs").fill("http://photos.example.com/callback")
    page.get_by_role("button", name="Register client").click()
    expect(page.locator(".error")).to_be_visible()
    yield "client-form-error"
    page.get_by_label("Redirect URIs").fill(fake_app.redirect_uri)
    page.get_by_role("button", name="Register client").click()
    expect(page.locator("#client-secret")).to_be_visible()
    yield "client-secret"
    client_id = page.locator("#client-id").inner_text()
    page.reload()
    expect(page.get_by_text("This secret was shown once")).to_be_visible()
    yield "client-secret-shown"
    page.goto("/clients/")
    yield "clients"
    page.goto(f"/clients/{client_id}/edit")
    yield "client-edit"
    page.goto(f"/clients/{client_id}/delete")
    yield "client-delete"
    page.goto(f"/clients/{client_id}/rotate-secret")
    yield "client-rotate-secret"

    _, challenge = pkce_pair()
    page.goto(authorize_path(client_id, fake_app.redirect_uri, challenge, scope="openid profile email"))
    yield "consent"
    page.get_by_role("button", name="Allow").click()
    page.wait_for_url(fake_app.redirect_uri + "?*")
    page.goto("/account/")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Connected apps").click()
    expect(page.get_by_role("heading", name="Photo Gallery")).to_be_visible()
    yield "connected-apps"
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(page.url))
    phone = page.context.browser.new_context(base_url=origin, user_agent=IPHONE_SAFARI)
    log_in(phone.new_page(), "grace")  # a second session, for the sessions list
    phone.close()

    # The device flow: a TV app's code, typed (prefilled here) at /device, then Allow.
    tv, _ = make_client(client_name="Living Room TV", grant_types=["urn:ietf:params:oauth:grant-type:device_code"],
                        redirect_uris=[], token_endpoint_auth_method="none", scope="openid profile")
    codes = page.request.post("/oauth/device/code", form={"client_id": tv.client_id, "scope": "openid profile"}).json()
    # verification_uri_complete, on the live server (the test issuer names no port).
    page.goto(urlsplit(codes["verification_uri_complete"])._replace(scheme="", netloc="").geturl())
    yield "device-code"
    page.get_by_role("button", name="Continue").click()
    expect(page.locator(".user-code")).to_have_text(codes["user_code"])
    yield "device-consent"
    page.get_by_role("button", name="Allow").click()
    expect(page.get_by_role("heading", name="Your device is connected")).to_be_visible()
    yield "device-done"
    page.goto("/account/")
    expect(page.get_by_role("button", name="Sign out Safari 17 on iOS")).to_be_visible()
    yield "account"
    expect(page.get_by_role("heading", name="Your account")).to_be_visible()
    page.get_by_label("Current password").first.fill("wrong password")
    page.get_by_label("New email").fill("grace@example.org")
    page.get_by_role("button", name="Change email").click()
    expect(page.locator(".error")).to_be_visible()
    yield "account-error"
    page.goto("/account/delete")
    expect(page.get_by_text("Weather Station")).to_be_visible()
    yield "account-delete"
    page.get_by_label("Your password").fill(PASSWORD)
    page.get_by_label("Type your username to confirm").fill("not grace")
    page.get_by_role("button", name="Delete my account").click()
    expect(page.locator(".error")).to_have_text("Type your username, grace, to confirm.")
    yield "account-delete-error"
    page.goto("/admin/users")
    yield "admin-users"
    page.get_by_label("Email address to invite").fill("newcomer@example.org")
    page.get_by_role("button", name="Send invitation").click()
    expect(page.get_by_text("Invitation sent to newcomer@example.org.")).to_be_visible()
    page.goto(link_path(mailbox.wait_for(2)[1]))
    yield "invitation"
    page.goto("/account/")
    page.get_by_role("button", name="Send the confirmation link again").click()
    page.goto(link_path(mailbox.wait_for(3)[2]))
    yield "verify-email"
    page.goto("/admin/clients?q=demo")
    yield "admin-clients"
    page.get_by_role("link", name="Audit log").click()
    expect(page.get_by_text("grace signed in").first).to_be_visible()
    yield "admin-audit"
    page.get_by_role("link", name="Details").first.click()
    expect(page.get_by_text("When (UTC)")).to_be_visible()
    yield "admin-audit-event"
    page.goto("/admin/branding")
    yield "admin-branding"
    page.goto("/admin/groups")
    page.get_by_label("Name").fill("engineering")
    page.get_by_role("button", name="Create group").click()
    yield "admin-groups"
    page.get_by_role("link", name="engineering", exact=True).click()
    page.get_by_label("Username").fill("user0")
    page.get_by_role("button", name="Add member").click()
    yield "admin-group"
    page.goto("/admin/users")
    page.get_by_role("link", name="user1", exact=True).click()
    expect(page.get_by_role("heading", name="Connected apps")).to_be_visible()
    yield "admin-user"
    page.get_by_role("link", name="Disable account").click()
    yield "admin-confirm"
    page.goto("/admin/clients")
    page.get_by_role("link", name="Weather Station", exact=True).click()
    expect(page.get_by_role("heading", name="Roles")).to_be_visible()
    yield "admin-client"
    page.get_by_role("link", name="Edit settings").click()
    expect(page.get_by_label("Redirect URIs")).to_be_visible()
    yield "admin-client-edit"
    other = make_user("mallory")
    page.goto(f"/admin/users/{other.id}/delete")
    yield "admin-delete-user"
    page.goto(f"/admin/users/{other.id}/admin")
    yield "admin-make-admin"

    page.goto("/oauth/logout?client_id=unknown")
    yield "logout-error"
    page.goto("/oauth/logout?" + urlencode({"client_id": client_id}))
    yield "logout-confirm"
    page.get_by_role("button", name="Log out").last.click()
    expect(page.get_by_role("heading", name="You are signed out")).to_be_visible()
    yield "logout-done"
    assert admin.is_admin


#: The pages the README shows, and those also shown at phone width.
SCREENSHOTS = {"login", "signup", "consent", "clients", "client-secret", "account", "admin-users", "admin-user",
               "admin-client", "admin-client-edit", "admin-branding",
               "client-form-error", "oauth-error", "connected-apps", "logout-confirm", "admin-audit",
               "account-delete", "forgot-password", "forgot-password-sent", "reset-password", "link-problem",
               "invitation", "verify-email"}
PHONE_SCREENSHOTS = {"login", "consent", "client-secret", "admin-users", "admin-audit", "admin-user", "admin-client"}

#: Inline scripts, inline styles and event-handler attributes, which a strict CSP blocks, and
#: scripts or stylesheets from another origin (a CDN).
INLINE_CODE = """[...document.querySelectorAll('script:not([src]), style, [style]')].length
  + [...document.querySelectorAll('*')].filter(e => [...e.attributes].some(a => a.name.startsWith('on'))).length
  + [...document.querySelectorAll('script[src], link[href]')]
      .filter(e => new URL(e.src || e.href).origin !== location.origin).length"""


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_every_page_is_accessible_and_self_contained(page, viewport, make_user, make_client, fake_app,
                                                           mailbox, tmp_path):
    """Tour every page: axe-core finds no serious or critical violation, no page carries inline
    code or loads code from elsewhere, and the main pages are photographed (into docs/screenshots with UPDATE_SCREENSHOTS=1)."""
    out = SCREENSHOT_DIR if os.environ.get("UPDATE_SCREENSHOTS") == "1" else tmp_path
    out.mkdir(parents=True, exist_ok=True)
    names, suffix = (SCREENSHOTS, "") if viewport is DESKTOP else (PHONE_SCREENSHOTS, "-phone")
    page.set_viewport_size(viewport)
    violations, inline, photographed = {}, [], []
    stops = []
    for stop in tour(page, make_user, make_client, fake_app, mailbox):
        stops.append(stop)
        if found := axe_violations(page):
            violations[stop] = found
        if page.evaluate(INLINE_CODE):
            inline.append(stop)
        if stop in names:
            path = out / f"{stop}{suffix}.png"
            page.screenshot(path=str(path), full_page=True)
            assert path.stat().st_size > 5000
            photographed.append(stop)
    # The whole tour ran (to its last stop), each stop once, past every page photographed.
    assert stops[-1] == "logout-done" and len(stops) == len(set(stops)) and names <= set(stops), stops
    assert not violations, json.dumps(violations, indent=2)
    assert not inline, f"inline or external scripts or styles on: {inline}"
    assert sorted(photographed) == sorted(names)


def test_continue_with_an_upstream_provider_in_chromium(page, idp, runner, oidc_upstream, make_client, fake_app,
                                                        tmp_path):
    """The log-in page's "Continue with" button, oidc-provider's own log-in and consent pages,
    Allow here, and the app gets a code for the new local account (photographed for the
    README with UPDATE_SCREENSHOTS=1)."""
    issuer = oidc_upstream({"ann": {"email": "ann@example.com", "email_verified": True, "name": "Ann"}})
    for name, display in (("node", "Corporate SSO"), ("google", "Google")):
        result = runner.invoke(args=["add-upstream", "--name", name, "--display-name", display, "--issuer",
                                     issuer if name == "node" else "https://accounts.google.com",
                                     "--client-id", "idp-test", "--client-secret", "upstream-client-secret-for-tests"])
        assert result.exit_code == 0, result.output
    oauth_client, secret = make_client(redirect_uris=[fake_app.redirect_uri], scope="openid profile email")
    verifier, challenge = pkce_pair()
    page.goto(authorize_path(oauth_client.client_id, fake_app.redirect_uri, challenge, scope="openid email"))
    expect(page.get_by_role("link", name="Continue with Corporate SSO")).to_be_visible()
    out = SCREENSHOT_DIR if os.environ.get("UPDATE_SCREENSHOTS") == "1" else tmp_path
    assert not axe_violations(page) and not page.evaluate(INLINE_CODE)
    page.screenshot(path=str(out / "login-upstreams.png"), full_page=True)
    page.get_by_role("link", name="Continue with Corporate SSO").click()
    page.locator("input[name=login]").fill("ann")
    page.locator("input[name=password]").fill("anything")
    page.locator("button[type=submit]").click()
    page.get_by_role("button", name="Continue").click()  # oidc-provider's consent
    page.get_by_role("button", name="Allow").click()  # consent here
    expect(page.get_by_role("heading", name="Back at the Fake App")).to_be_visible()
    code = query_params("?" + fake_app.queries[-1])["code"]
    tokens = requests.post(f"{idp}/oauth/token", auth=(oauth_client.client_id, secret), data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": fake_app.redirect_uri,
        "code_verifier": verifier}).json()
    assert "id_token" in tokens, tokens
    # The account page lists the linked provider; a failed sign-in's page is accessible too.
    page.goto("/account/")
    expect(page.get_by_role("button", name="Unlink")).to_be_visible()
    expect(page.get_by_role("button", name="Link Google")).to_be_visible()
    assert not axe_violations(page) and not page.evaluate(INLINE_CODE)
    page.goto("/login/with/nobody")
    expect(page.get_by_role("link", name="Back to log in")).to_be_visible()
    assert not axe_violations(page) and not page.evaluate(INLINE_CODE)
