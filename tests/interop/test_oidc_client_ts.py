"""oidc-client-ts (npm, v3, pinned in tests/interop/package.json) in a single-page app served
from another origin (a second loopback port), in headless Chromium, against the live server.

The SPA (tests/interop/spa/) loads the library's own browser build from node_modules and a
UserManager in its default configuration (plus loadUserInfo). The test plays the person (log
in, Allow) and checks at the server what the library did from script: sign-in with code +
PKCE, UserInfo, renewal with the refresh token and in a hidden iframe (prompt=none), and
revocation of both tokens, every cross-origin answer carrying the SPA's origin in
Access-Control-Allow-Origin. Without node_modules the test is skipped, except in CI."""

import json
import os
from pathlib import Path

import pytest
import requests
from playwright.sync_api import sync_playwright
from support.chromium import CHROMIUM, CHROMIUM_ARGS
from support.factories import PASSWORD
from support.loopback import LoopbackServer, QuietHandler

HERE = Path(__file__).parent
SPA = HERE / "spa"
LIBRARY = HERE / "node_modules" / "oidc-client-ts" / "dist" / "browser" / "oidc-client-ts.min.js"
SCOPE = "openid profile email offline_access"


def _requirements_or_skip() -> None:
    missing = [reason for ok, reason in [
        (LIBRARY.is_file(),
         "tests/interop/node_modules is missing: run `npm ci --prefix tests/interop` (make test does)"),
        (os.path.exists(CHROMIUM), f"Debian's chromium is missing at {CHROMIUM} (.ci/run installs it)"),
    ] if not ok]
    if not missing:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"the interop test must run in CI, but {missing[0]}")
    pytest.skip(missing[0])


class SinglePageApp:
    """The SPA's static files on their own loopback origin; ``config`` becomes /config.js."""

    def __init__(self):
        self.config: dict = {}
        spa = self
        files = {f"/{name}": SPA / name for name in ("index.html", "callback.html", "silent.html", "app.js")}
        files["/oidc-client-ts.js"] = LIBRARY

        class Handler(QuietHandler):
            def do_GET(self):
                path = self.path.partition("?")[0].partition("#")[0]
                if path == "/config.js":
                    script = f"window.SPA_CONFIG = {json.dumps(spa.config)};"
                    self.send_body(script.encode(), "text/javascript")
                elif path in files:
                    kind = "text/javascript" if path.endswith(".js") else "text/html; charset=utf-8"
                    self.send_body(files[path].read_bytes(), kind)
                else:
                    self.send_error(404)

        self.loopback = LoopbackServer(Handler, poll_interval=0.05)
        self.url = self.loopback.url

    def close(self):
        self.loopback.close()


@pytest.fixture
def spa():
    app = SinglePageApp()
    yield app
    app.close()


@pytest.fixture
def chromium_page():
    _requirements_or_skip()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context()
        context.set_default_timeout(10_000)
        try:
            yield context.new_page()
        finally:
            context.close()
            browser.close()


def test_oidc_client_ts_spa_from_another_origin(idp, user, make_client, spa, chromium_page):
    client, _ = make_client(redirect_uris=[spa.url + "/callback.html", spa.url + "/silent.html"],
                            token_endpoint_auth_method="none", scope=SCOPE)
    spa.config = {"authority": idp + "/", "client_id": client.client_id, "scope": SCOPE,
                  "redirect_uri": spa.url + "/callback.html", "silent_redirect_uri": spa.url + "/silent.html"}
    page = chromium_page
    calls = []  # (method, path, Access-Control-Allow-Origin) of the SPA's calls to the provider
    page.on("response", lambda response: response.url.startswith(idp + "/") and calls.append(
        (response.request.method, response.url.removeprefix(idp).partition("?")[0],
         response.headers.get("access-control-allow-origin"))))
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    # Sign in: signinRedirect sends the browser to the provider; log in, Allow, and back.
    page.goto(spa.url + "/index.html")
    page.evaluate("() => { spa.signIn() }")  # not awaited: it navigates away
    page.wait_for_url(lambda url: url.startswith(idp + "/login?"))
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("button", name="Allow").click()
    page.wait_for_url(lambda url: url.startswith(spa.url + "/index.html"))
    assert page.locator("#status").text_content() == ""  # or the library's error
    signed_in = page.evaluate("spa.user()")
    assert signed_in is not None, errors
    assert signed_in["token_type"] == "Bearer" and signed_in["refresh_token"]
    profile = signed_in["profile"]
    assert profile["iss"] == idp + "/" and profile["aud"] == client.client_id
    # loadUserInfo: the profile has UserInfo's claims, fetched from script with the token.
    assert profile["preferred_username"] == "alice" and profile["email"] == "alice@example.com"

    # Renew with the refresh token (the token endpoint, from script): new tokens, same person.
    renewed = page.evaluate("spa.renew()")
    assert renewed["access_token"] != signed_in["access_token"]
    assert renewed["refresh_token"] != signed_in["refresh_token"]  # rotated
    assert renewed["profile"]["sub"] == profile["sub"]

    # Renew in a hidden iframe (prompt=none on the provider's session cookie, no refresh token).
    framed = page.evaluate("spa.renew(true)")
    assert framed["access_token"] not in (signed_in["access_token"], renewed["access_token"])
    assert framed["profile"]["sub"] == profile["sub"]

    # Revoke: revokeTokens posts both of the current tokens to the revocation endpoint.
    access_token, refresh_token = framed["access_token"], framed["refresh_token"]
    assert requests.get(idp + "/userinfo", headers={"Authorization": f"Bearer {access_token}"},
                        timeout=5).status_code == 200
    after = page.evaluate("spa.revoke()")
    assert after["refresh_token"] is None
    userinfo = requests.get(idp + "/userinfo", headers={"Authorization": f"Bearer {access_token}"}, timeout=5)
    assert userinfo.status_code == 401 and "invalid_token" in userinfo.headers["WWW-Authenticate"]
    refreshed = requests.post(idp + "/oauth/token", timeout=5, data={
        "grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": client.client_id})
    assert refreshed.status_code == 400 and refreshed.json()["error"] == "invalid_grant"

    # Every call the SPA made from script crossed origins and was allowed for the SPA alone.
    metadata = requests.get(idp + "/.well-known/openid-configuration", timeout=5).json()
    endpoints = {name: metadata[name].removeprefix(idp) for name in
                 ("token_endpoint", "userinfo_endpoint", "revocation_endpoint")}
    by_path = {path: [(method, allowed) for method, called, allowed in calls if called == path]
               for path in endpoints.values()}
    origin = spa.url
    # Sign-in, refresh and iframe renewal each redeem at the token endpoint and load UserInfo.
    assert by_path[endpoints["token_endpoint"]] == [("POST", origin)] * 3, calls
    assert by_path[endpoints["userinfo_endpoint"]] == [("GET", origin)] * 3, calls
    assert by_path[endpoints["revocation_endpoint"]] == [("POST", origin)] * 2, calls
    assert not errors
