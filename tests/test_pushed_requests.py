"""Pushed authorization requests (RFC 9126) against a live server: the client pushes its
request with its credentials and sends the browser with the request_uri alone; the
request_uri is single-use, short-lived and bound to the client; clients (or the whole site)
may be required to push."""

import json
import time
from urllib.parse import urlencode

import pytest
import requests
from support.factories import count_rows, update_rows
from support.flows import pkce_pair
from support.oidc import CALLBACK, Browser, authorization_url
from support.pages import csrf_token, query_params

from website.models import PushedAuthorizationRequest, hash_secret


@pytest.fixture
def web_app(make_client):
    return make_client(redirect_uris=[CALLBACK])


def push(idp, client, secret, **params):
    """POST an authorization request to the PAR endpoint with HTTP Basic."""
    verifier, challenge = pkce_pair()
    data = {"response_type": "code", "redirect_uri": CALLBACK, "scope": "openid profile", "state": "s1",
            "nonce": "n1", "code_challenge": challenge, "code_challenge_method": "S256"}
    data.update(params)
    return requests.post(f"{idp}/oauth/par", auth=(client.client_id, secret),
                         data={k: v for k, v in data.items() if v is not None}, timeout=5), verifier


def pushed_url(idp, client, request_uri, **extra) -> str:
    return f"{idp}/authorize?" + urlencode({"client_id": client.client_id, "request_uri": request_uri, **extra})


def test_discovery_advertises_par(idp):
    doc = requests.get(f"{idp}/.well-known/openid-configuration", timeout=5).json()
    assert doc["pushed_authorization_request_endpoint"] == f"{idp}/oauth/par"
    assert doc["require_pushed_authorization_requests"] is False


def test_a_pushed_request_signs_in_once(app, idp, user, web_app):
    client, secret = web_app
    response, verifier = push(idp, client, secret)
    assert response.status_code == 201, response.text
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json()
    assert body["request_uri"].startswith("urn:ietf:params:oauth:request_uri:")
    assert body["expires_in"] == app.config["OAUTH2_PAR_LIFETIME"]
    assert count_rows(app, PushedAuthorizationRequest,
                      PushedAuthorizationRequest.request_uri_hash == hash_secret(body["request_uri"])) == 1

    browser = Browser(idp)
    # Query parameters besides client_id and request_uri do not change the pushed request.
    location = browser.authorize(pushed_url(idp, client, body["request_uri"], scope="openid email", state="x"))
    params = query_params(location)
    assert location.startswith(CALLBACK) and params["state"] == "s1"
    token = requests.post(f"{idp}/oauth/token", auth=(client.client_id, secret), data={
        "grant_type": "authorization_code", "code": params["code"], "redirect_uri": CALLBACK,
        "code_verifier": verifier}, timeout=5)
    assert token.status_code == 200, token.text
    assert token.json()["scope"] == "openid profile"

    # Spent: the same request_uri again is refused with a page, never a second code.
    again = browser.session.get(pushed_url(idp, client, body["request_uri"]), allow_redirects=False)
    assert again.status_code == 400 and "<code>invalid_request_uri</code>" in again.text


def test_a_request_uri_is_reusable_until_answered(idp, user, web_app):
    # Reloading the consent page (or logging in first) reads the request again (RFC 9126 §4).
    client, secret = web_app
    request_uri = push(idp, client, secret)[0].json()["request_uri"]
    browser = Browser(idp)
    browser.login()
    url = pushed_url(idp, client, request_uri)
    assert 'name="allow"' in browser.session.get(url).text
    assert 'name="allow"' in browser.session.get(url).text
    assert "code" in query_params(browser.authorize(url))


def test_a_request_uri_is_bound_to_its_client(idp, user, web_app, make_client):
    client, secret = web_app
    request_uri = push(idp, client, secret)[0].json()["request_uri"]
    other, _ = make_client(redirect_uris=[CALLBACK])
    browser = Browser(idp)
    browser.login()
    response = browser.session.get(pushed_url(idp, other, request_uri), allow_redirects=False)
    assert response.status_code == 400 and "<code>invalid_request_uri</code>" in response.text
    assert "Location" not in response.headers


def test_an_expired_request_uri(app, idp, user, web_app):
    client, secret = web_app
    request_uri = push(idp, client, secret)[0].json()["request_uri"]
    update_rows(app, PushedAuthorizationRequest, {"expires_at": int(time.time()) - 1})
    browser = Browser(idp)
    browser.login()
    response = browser.session.get(pushed_url(idp, client, request_uri), allow_redirects=False)
    assert response.status_code == 400 and "<code>invalid_request_uri</code>" in response.text


def test_a_request_uri_answered_twice_at_once_gives_one_code(app, idp, user, web_app):
    # Two consent pages open for one request_uri: the first answer spends it.
    client, secret = web_app
    request_uri = push(idp, client, secret)[0].json()["request_uri"]
    browser = Browser(idp)
    browser.login()
    url = pushed_url(idp, client, request_uri)
    first, second = browser.session.get(url), browser.session.get(url)
    answers = [browser.session.post(url, data={"csrf_token": csrf_token(page.text), "allow": "Allow"},
                                    allow_redirects=False) for page in (first, second)]
    assert "code" in query_params(answers[0].headers["Location"])
    assert answers[1].status_code == 400 and "<code>invalid_request_uri</code>" in answers[1].text
    assert "Location" not in answers[1].headers


@pytest.mark.parametrize("change, error, status", [
    ({"redirect_uri": "https://evil.example.com/cb"}, "invalid_request", 400),
    ({"response_type": "token"}, "unauthorized_client", 400),
    ({"request_uri": "urn:ietf:params:oauth:request_uri:abc"}, "invalid_request", 400),
    ({"code_challenge": None, "code_challenge_method": None, "scope": "nope"}, "invalid_scope", 400),
])
def test_the_push_is_validated_like_the_authorization_request(idp, web_app, change, error, status):
    client, secret = web_app
    response, _ = push(idp, client, secret, **change)
    assert response.status_code == status, response.text
    assert response.json()["error"] == error
    assert "Location" not in response.headers


def test_pushing_needs_client_authentication(app, idp, web_app):
    client, _ = web_app
    wrong, _ = push(idp, client, "wrong-secret")
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    anonymous = requests.post(f"{idp}/oauth/par", data={"client_id": client.client_id, "response_type": "code",
                                                        "redirect_uri": CALLBACK}, timeout=5)
    assert anonymous.status_code == 401
    assert count_rows(app, PushedAuthorizationRequest) == 0


def test_a_public_client_pushes_with_its_client_id(idp, user, make_client):
    client, _ = make_client(redirect_uris=[CALLBACK], token_endpoint_auth_method="none")
    verifier, challenge = pkce_pair()
    response = requests.post(f"{idp}/oauth/par", data={
        "client_id": client.client_id, "response_type": "code", "redirect_uri": CALLBACK, "scope": "openid",
        "code_challenge": challenge, "code_challenge_method": "S256"}, timeout=5)
    assert response.status_code == 201, response.text
    assert "code" in query_params(Browser(idp).authorize(pushed_url(idp, client, response.json()["request_uri"])))


def test_a_client_that_must_push(idp, user, runner, app):
    result = runner.invoke(args=["create-client", "--name", "Strict", "--redirect-uri", CALLBACK,
                                 "--scope", "openid profile", "--require-par", "--json"])
    assert result.exit_code == 0, result.output
    created = json.loads(result.output)
    assert created["require_pushed_authorization_requests"] is True

    class Client:
        client_id = created["client_id"]
    browser = Browser(idp)
    browser.login()
    refused = query_params(browser.authorize(authorization_url(idp, Client, code_challenge=pkce_pair()[1],
                                                               code_challenge_method="S256")))
    assert refused["error"] == "invalid_request" and "push" in refused["error_description"]
    response, _ = push(idp, Client, created["client_secret"])
    assert "code" in query_params(browser.authorize(pushed_url(idp, Client, response.json()["request_uri"])))


@pytest.fixture
def par_required_everywhere(app_config):
    app_config["OAUTH2_REQUIRE_PAR"] = True


def test_par_required_site_wide(par_required_everywhere, idp, user, web_app):
    client, secret = web_app
    doc = requests.get(f"{idp}/.well-known/openid-configuration", timeout=5).json()
    assert doc["require_pushed_authorization_requests"] is True
    browser = Browser(idp)
    browser.login()
    refused = query_params(browser.authorize(authorization_url(idp, client, code_challenge=pkce_pair()[1],
                                                               code_challenge_method="S256")))
    assert refused["error"] == "invalid_request"
    request_uri = push(idp, client, secret)[0].json()["request_uri"]
    assert "code" in query_params(browser.authorize(pushed_url(idp, client, request_uri)))


def test_registration_and_the_form_set_require_par(app, idp, auth, test_client, user):
    app.config["OAUTH2_OPEN_REGISTRATION"] = True
    registered = requests.post(f"{idp}/oauth/register", json={
        "client_name": "Pusher", "redirect_uris": [CALLBACK], "require_pushed_authorization_requests": True},
        timeout=5)
    assert registered.status_code == 201, registered.text
    assert registered.json()["require_pushed_authorization_requests"] is True
    bad = requests.post(f"{idp}/oauth/register", json={
        "client_name": "Pusher", "redirect_uris": [CALLBACK], "require_pushed_authorization_requests": "yes"},
        timeout=5)
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_client_metadata"


@pytest.fixture
def par_off(app_config):
    app_config["OAUTH2_PAR"] = False


def test_turned_off_it_is_not_there(par_off, idp, user, web_app):
    client, secret = web_app
    doc = requests.get(f"{idp}/.well-known/openid-configuration", timeout=5).json()
    assert "pushed_authorization_request_endpoint" not in doc
    assert "require_pushed_authorization_requests" not in doc
    assert push(idp, client, secret)[0].status_code == 404
    browser = Browser(idp)
    browser.login()
    refused = query_params(browser.authorize(pushed_url(idp, client, "urn:ietf:params:oauth:request_uri:x",
                                                        redirect_uri=CALLBACK, response_type="code")))
    assert refused["error"] == "request_uri_not_supported"
