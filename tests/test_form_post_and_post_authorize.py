"""response_mode=form_post (OAuth 2.0 Form Post Response Mode) and authorization requests
sent by POST (OIDC Core §3.1.2.1), as a client and a person's browser see them."""

import html
import os
import re
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit

import pytest
from support.chromium import CHROMIUM, CHROMIUM_ARGS
from support.factories import PASSWORD
from support.flows import authorize_url, pkce_pair, redeem
from support.loopback import FAKE_APP_PAGE, LoopbackServer, QuietHandler
from support.pages import csrf_token, query_params

ISSUER = "https://id.example.com/"


@pytest.fixture
def app_config(app_config):
    app_config["OAUTH2_ISSUER"] = ISSUER
    return app_config


@pytest.fixture
def oidc_client(make_client):
    return make_client(
        grant_types=["authorization_code", "implicit", "refresh_token"],
        response_types=["code", "id_token", "code id_token"],
    )


def form_of(page: str) -> tuple[str, list[tuple[str, str]]]:
    """The action and hidden inputs of the (first) form on a page that posts elsewhere."""
    form = re.search(r'<form[^>]*method="post" action="([^"]+)"[^>]*>(.*?)</form>', page, re.S)
    assert form, page[:2000]
    inputs = re.findall(r'<input type="hidden" name="([^"]*)" value="([^"]*)">', form.group(2))
    return html.unescape(form.group(1)), [(html.unescape(k), html.unescape(v)) for k, v in inputs]


def assert_no_inline_script(page: str) -> None:
    for tag in re.findall(r"<script[^>]*>", page):
        assert "src=" in tag, tag
    assert not re.search(r"<script[^>]*>\s*[^<\s]", page), "inline script"
    assert not re.search(r"\son[a-z]+=", page), "inline event handler"


def consent(test_client, url: str, button="allow", method="get"):
    """Open the authorization request (by GET or POST) and press Allow or Deny on its consent page."""
    if method == "get":
        page = test_client.get(url)
    else:
        path, _, query = url.partition("?")
        page = test_client.post(path, data=dict(parse_qsl(query)))
    assert page.status_code == 200, page.get_data(as_text=True)[:500]
    text = page.get_data(as_text=True)
    form = re.search(r'<form method="post" action="([^"]+)">\s*<input id="csrf_token"', text)
    action = html.unescape(form.group(1))
    return test_client.post(action, data={"csrf_token": csrf_token(text), button: button.title()})


# form_post ---------------------------------------------------------------------------------


@pytest.mark.parametrize("response_type", ["code", "id_token", "code id_token"])
def test_form_post_answers_with_a_page_that_posts_the_response(app, test_client, auth, user, oidc_client,
                                                               response_type):
    client, secret = oidc_client
    verifier, challenge = pkce_pair()
    auth.login()
    response = consent(test_client, authorize_url(client, response_type=response_type, scope="openid profile",
                                                  nonce="n-1", code_challenge=challenge,
                                                  code_challenge_method="S256", response_mode="form_post"))
    assert response.status_code == 200
    assert "Location" not in response.headers
    page = response.get_data(as_text=True)
    action, params = form_of(page)
    assert action == client.redirect_uris[0]
    values = dict(params)
    assert values["state"] == "xyz"
    assert values["iss"] == ISSUER
    assert set(response_type.split()) <= set(values)
    assert "error" not in values
    # Submitted by an external script (the CSP allows 'self' scripts only), or by the button.
    assert_no_inline_script(page)
    assert '<script src="/static/form_post.js" defer></script>' in page
    assert re.search(r'<button type="submit"[^>]*>Continue</button>', page)
    assert response.headers["Content-Security-Policy"] == app.config["CONTENT_SECURITY_POLICY"]
    assert response.headers["Cache-Control"] == "no-store"
    script = test_client.get("/static/form_post.js")
    assert script.status_code == 200
    script.close()
    if "code" in values:
        assert redeem(test_client, client, values["code"], verifier, secret).status_code == 200


def test_form_post_keeps_the_redirect_uris_own_query_in_the_action(test_client, auth, user, make_client):
    client, _ = make_client(redirect_uris=["https://app.example.com/callback?tenant=a%20b"])
    _, challenge = pkce_pair()
    auth.login()
    response = consent(test_client, authorize_url(client, code_challenge=challenge,
                                                  code_challenge_method="S256", response_mode="form_post"))
    action, params = form_of(response.get_data(as_text=True))
    assert action == "https://app.example.com/callback?tenant=a%20b"
    assert [name for name, _ in params] == ["code", "state", "iss"]


def test_a_denied_request_goes_back_by_form_post_too(test_client, auth, user, oidc_client):
    client, _ = oidc_client
    auth.login()
    response = consent(test_client, authorize_url(client, response_type="id_token", scope="openid", nonce="n",
                                                  response_mode="form_post"), button="deny")
    assert response.status_code == 200
    action, params = form_of(response.get_data(as_text=True))
    assert action == client.redirect_uris[0]
    assert dict(params) == {"error": "access_denied", "error_description": dict(params)["error_description"],
                            "state": "xyz", "iss": ISSUER}


def test_a_signed_in_persons_error_is_form_posted(test_client, auth, user, oidc_client):
    client, _ = oidc_client
    auth.login()
    # A hybrid request without a nonce: the error goes to the validated redirect URI.
    response = test_client.get(authorize_url(client, response_type="code id_token", scope="openid",
                                             response_mode="form_post"))
    assert response.status_code == 200
    action, params = form_of(response.get_data(as_text=True))
    assert action == client.redirect_uris[0]
    assert dict(params)["error"] == "invalid_request"
    assert dict(params)["state"] == "xyz"
    assert dict(params)["iss"] == ISSUER


def test_a_visitors_error_is_a_button_to_press_never_sent_by_itself(test_client, user, oidc_client):
    client, _ = oidc_client
    url = authorize_url(client, scope="openid", prompt="none", response_mode="form_post")
    response = test_client.get(url)
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "form_post.js" not in page
    action, params = form_of(page)
    assert action == client.redirect_uris[0]
    assert dict(params) == {"error": "login_required", "state": "xyz", "iss": ISSUER}
    assert "Continue to app.example.com</button>" in page


def test_form_post_needs_an_http_redirect_uri(test_client, auth, user, make_client):
    client, _ = make_client(redirect_uris=["com.example.app:/callback"], token_endpoint_auth_method="none")
    _, challenge = pkce_pair()
    auth.login()
    response = test_client.get(authorize_url(client, code_challenge=challenge, code_challenge_method="S256",
                                             response_mode="form_post"))
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert "form_post needs an http or https redirect URI" in response.get_data(as_text=True)


def test_discovery_lists_form_post_and_the_claims_parameter(test_client):
    metadata = test_client.get("/.well-known/openid-configuration").get_json()
    assert metadata["response_modes_supported"] == ["query", "fragment", "form_post"]
    assert metadata["claims_parameter_supported"] is True


# Authorization requests by POST ------------------------------------------------------------


def test_a_posted_authorization_request_needs_no_csrf_token(test_client, auth, user, make_client):
    client, secret = make_client()
    verifier, challenge = pkce_pair()
    auth.login()
    url = authorize_url(client, code_challenge=challenge, code_challenge_method="S256")
    response = consent(test_client, url, method="post")
    assert response.status_code == 302
    params = query_params(response.headers["Location"])
    assert params["state"] == "xyz"
    assert redeem(test_client, client, params["code"], verifier, secret).status_code == 200
    # The consent is remembered: a second POSTed request is answered at once, as a GET would be.
    path, _, query = url.partition("?")
    again = test_client.post(path, data=dict(parse_qsl(query)))
    assert again.status_code == 302
    assert "code" in query_params(again.headers["Location"])


def test_a_posted_request_from_a_visitor_comes_back_from_log_in_as_a_get(test_client, user, make_client):
    client, _ = make_client()
    _, challenge = pkce_pair()
    url = authorize_url(client, code_challenge=challenge, code_challenge_method="S256", login_hint="alice")
    path, _, query = url.partition("?")
    response = test_client.post(path, data=dict(parse_qsl(query)))
    assert response.status_code == 302
    login = urlsplit(response.headers["Location"])
    assert login.path == "/login"
    args = parse_qs(login.query)
    assert args["login_hint"] == ["alice"]
    back = urlsplit(args["next"][0])
    assert back.path == "/oauth/authorize"
    assert dict(parse_qsl(back.query)) == dict(parse_qsl(query))
    page = test_client.get("/login?" + login.query)
    done = test_client.post("/login?" + login.query, data={
        "csrf_token": csrf_token(page.get_data(as_text=True)), "username": "alice", "password": PASSWORD})
    assert done.status_code == 302
    assert done.headers["Location"] == args["next"][0]


@pytest.mark.parametrize("token", [None, "forged"])
@pytest.mark.parametrize("where", ["query", "body"])
def test_the_consent_decision_still_needs_its_csrf_token(test_client, auth, user, make_client, token, where):
    client, _ = make_client()
    _, challenge = pkce_pair()
    auth.login()
    url = authorize_url(client, code_challenge=challenge, code_challenge_method="S256")
    data = {"allow": "Allow", **({"csrf_token": token} if token else {})}
    if where == "body":
        path, _, query = url.partition("?")
        url, data = path, {**dict(parse_qsl(query)), **data}
    response = test_client.post(url, data=data)
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert "This form has expired" in response.get_data(as_text=True)


# In a real browser -------------------------------------------------------------------------


class ReceivingApp:
    """A client app on loopback whose /callback records the form posted to it."""

    def __init__(self):
        self.posts: list[dict] = []
        app = self

        class Handler(QuietHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                app.posts.append(dict(parse_qsl(body, keep_blank_values=True)))
                self.send_body(FAKE_APP_PAGE)

        self.loopback = LoopbackServer(Handler)
        self.redirect_uri = self.loopback.url + "/callback"

    def close(self):
        self.loopback.close()


@pytest.mark.browser
@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's chromium is missing at /usr/bin/chromium")
@pytest.mark.parametrize("scripts", [True, False], ids=["scripts", "no-scripts"])
def test_chromium_posts_the_response_under_the_sites_csp(live_server, user, make_client, scripts):
    from playwright.sync_api import expect, sync_playwright

    receiver = ReceivingApp()
    try:
        client, _ = make_client(redirect_uris=[receiver.redirect_uri])
        _, challenge = pkce_pair()
        url = live_server + authorize_url(client, code_challenge=challenge, code_challenge_method="S256",
                                          response_mode="form_post")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            context = browser.new_context(java_script_enabled=scripts)
            context.set_default_timeout(10_000)
            page = context.new_page()
            violations = []
            page.on("console", lambda m: violations.append(m.text) if "Content Security" in m.text else None)
            parts = urlsplit(url)
            page.goto(f"{live_server}/login?" + urlencode({"next": parts.path + "?" + parts.query}))
            page.get_by_label("Username").fill("alice")
            page.get_by_label("Password", exact=True).fill(PASSWORD)
            page.get_by_role("button", name="Log in").click()
            page.get_by_role("button", name="Allow").click()
            if not scripts:
                expect(page.get_by_role("heading", name="Returning to 127.0.0.1")).to_be_visible()
                page.get_by_role("button", name="Continue").click()
            expect(page.get_by_role("heading", name="Back at the Fake App")).to_be_visible()
            context.close()
            browser.close()
        assert len(receiver.posts) == 1
        posted = receiver.posts[0]
        assert posted["state"] == "xyz"
        assert posted["iss"] == ISSUER
        assert posted["code"]
        assert violations == []
    finally:
        receiver.close()
