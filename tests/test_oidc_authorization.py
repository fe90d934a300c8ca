"""The authorization endpoint under OpenID Connect: implicit and hybrid response types,
prompt, max_age, login_hint, audience, RFC 9207 iss, PKCE, and the errors it redirects."""

import html
import re
from urllib.parse import urlsplit

import jwt
import pytest
import requests
from support.flows import pkce_pair
from support.oidc import CALLBACK, Browser, authorization_url, half_hash
from support.pages import query_params


def verify(idp, id_token, client):
    key = jwt.PyJWKClient(idp + "/.well-known/jwks.json").get_signing_key_from_jwt(id_token)
    return jwt.decode(id_token, key, algorithms=["RS256"], audience=client.client_id, issuer=idp + "/")


def error_link_of(url: str) -> str:
    """A visitor who is not signed in sends a failing authorization request: the server shows
    a page, never a redirect (anyone can register a client: RFC 9700 §4.11.2), whose
    "Continue" link names the client's host and carries the error. That link's URL."""
    response = requests.get(url, allow_redirects=False)
    assert response.status_code == 400, response.text[:300]
    assert "Location" not in response.headers
    link = re.search(r'<a[^>]*href="([^"]+)"[^>]*>Continue to ([^<]+)</a>', response.text)
    assert link, response.text[:1000]
    location = html.unescape(link.group(1))
    assert location.startswith(CALLBACK)
    assert link.group(2) == urlsplit(CALLBACK).netloc
    return location


def redirect_of(url: str) -> dict:
    """The parameters of the error the page's link would carry to the client."""
    return query_params(error_link_of(url))


@pytest.fixture
def oidc_client(make_client):
    """A confidential client registered for every OpenID Connect response type."""
    return make_client(
        redirect_uris=[CALLBACK], grant_types=["authorization_code", "implicit", "refresh_token"],
        response_types=["code", "id_token", "id_token token", "code id_token", "code token",
                        "code id_token token"],
    )


# Negative cases ---------------------------------------------------------------------------


def test_prompt_none_without_a_session_is_login_required(idp, oidc_client):
    client, _ = oidc_client
    params = redirect_of(authorization_url(idp, client, prompt="none", state="s1"))
    assert params["error"] == "login_required"
    assert params["state"] == "s1"
    assert params["iss"] == idp + "/"


def test_prompt_none_with_a_session_but_no_consent_is_consent_required(idp, user, oidc_client):
    client, _ = oidc_client
    browser = Browser(idp)
    browser.login()
    location = browser.authorize(authorization_url(idp, client, prompt="none"))
    assert browser.pages == []  # no page was shown
    assert query_params(location)["error"] == "consent_required"


@pytest.mark.parametrize("response_type", ["id_token", "id_token token", "code id_token"])
def test_implicit_and_hybrid_need_a_nonce(idp, oidc_client, response_type):
    client, _ = oidc_client
    url = authorization_url(idp, client, response_type=response_type)
    sent = error_link_of(url)
    location = urlsplit(sent)
    assert not location.query  # the error comes in the fragment, like the tokens would
    params = query_params(sent)
    assert params["error"] == "invalid_request"
    assert "nonce" in params["error_description"]
    assert params["iss"] == idp + "/"


def test_unknown_response_type_is_redirected_as_unsupported(idp, oidc_client):
    client, _ = oidc_client
    params = redirect_of(authorization_url(idp, client, response_type="code id_token bogus"))
    assert params["error"] == "unsupported_response_type"
    assert params["iss"] == idp + "/"


def test_response_type_the_client_did_not_register_is_unauthorized(idp, make_client):
    client, _ = make_client(redirect_uris=[CALLBACK])  # code only
    params = redirect_of(authorization_url(idp, client, response_type="id_token", nonce="n"))
    assert params["error"] == "unauthorized_client"


def test_unknown_client_gets_a_page_not_a_redirect(idp):
    response = requests.get(f"{idp}/authorize?response_type=code&client_id=nope&redirect_uri={CALLBACK}",
                            allow_redirects=False)
    assert response.status_code == 400
    assert "invalid_client" in response.text


@pytest.fixture
def no_request_objects(app_config):
    app_config["OAUTH2_REQUEST_OBJECTS"] = False


@pytest.mark.parametrize("parameter, value, error, response_type", [
    ("request", "eyJhbGciOiJub25lIn0.eyJzY29wZSI6Im9wZW5pZCJ9.", "request_not_supported", "code"),
    ("request", "eyJhbGciOiJub25lIn0.eyJzY29wZSI6Im9wZW5pZCJ9.", "request_not_supported", "id_token token"),
    ("request_uri", "https://app.example.com/request.jwt", "request_uri_not_supported", "code"),
    ("request_uri", "https://app.example.com/request.jwt", "request_uri_not_supported", "code id_token"),
])
def test_request_objects_are_refused_not_ignored(no_request_objects, idp, user, oidc_client, parameter, value,
                                                 error, response_type):
    # OIDC Core §6.1, §6.2: an OP without request objects (turned off; a request_uri on another
    # server is never fetched, on or off) answers with these errors.
    client, _ = oidc_client
    browser = Browser(idp)
    browser.login()
    location = browser.authorize(authorization_url(idp, client, response_type=response_type, nonce="n",
                                                   state="s2", **{parameter: value}))
    assert location.startswith(CALLBACK)
    assert browser.pages == []  # refused before any page, consent included
    assert bool(urlsplit(location).fragment) == (response_type != "code")
    params = query_params(location)
    assert params["error"] == error
    assert params["state"] == "s2"
    assert params["iss"] == idp + "/"
    assert "code" not in params and "id_token" not in params and "access_token" not in params


def test_request_object_with_an_unregistered_redirect_uri_gets_a_page(idp, oidc_client):
    client, _ = oidc_client
    url = authorization_url(idp, client, redirect_uri="https://evil.example.com/cb", request="x.y.z")
    response = requests.get(url, allow_redirects=False)
    assert response.status_code == 400
    assert "Location" not in response.headers


def test_invalid_max_age_is_an_invalid_request(idp, user, oidc_client):
    client, _ = oidc_client
    browser = Browser(idp)
    browser.login()
    params = query_params(browser.authorize(authorization_url(idp, client, max_age="soon")))
    assert params["error"] == "invalid_request"
    assert params["iss"] == idp + "/"


def test_denied_consent_redirects_access_denied_with_iss(idp, user, oidc_client):
    client, _ = oidc_client
    params = query_params(Browser(idp).authorize(authorization_url(idp, client), allow=False))
    assert params["error"] == "access_denied"
    assert params["iss"] == idp + "/"


# Implicit and hybrid ---------------------------------------------------------------------


def test_implicit_id_token_only(idp, user, oidc_client):
    client, _ = oidc_client
    location = Browser(idp).authorize(authorization_url(idp, client, response_type="id_token", nonce="abc"))
    assert urlsplit(location).fragment and not urlsplit(location).query
    params = query_params(location)
    assert "access_token" not in params
    assert params["iss"] == idp + "/"
    claims = verify(idp, params["id_token"], client)
    assert claims["nonce"] == "abc"
    assert claims["sub"] == user.sub
    assert "at_hash" not in claims
    assert claims["email"] == "alice@example.com"  # no UserInfo call possible: claims come here


def test_implicit_id_token_token_has_at_hash_and_a_working_token(idp, user, oidc_client):
    client, _ = oidc_client
    browser = Browser(idp)
    browser.login()
    params = query_params(browser.authorize(
        authorization_url(idp, client, response_type="token id_token", nonce="n2")))
    claims = verify(idp, params["id_token"], client)
    assert claims["at_hash"] == half_hash(params["access_token"])
    # auth_time is when the person logged in, not when the token was made.
    assert claims["auth_time"] <= claims["iat"]
    userinfo = requests.get(idp + "/userinfo", headers={"Authorization": f"Bearer {params['access_token']}"})
    assert userinfo.json()["sub"] == user.sub


def test_hybrid_code_id_token_has_c_hash_and_the_code_redeems(idp, user, oidc_client):
    client, secret = oidc_client
    verifier, challenge = pkce_pair()
    params = query_params(Browser(idp).authorize(authorization_url(
        idp, client, response_type="code id_token", nonce="n3", code_challenge=challenge,
        code_challenge_method="S256")))
    claims = verify(idp, params["id_token"], client)
    assert claims["c_hash"] == half_hash(params["code"])
    token = requests.post(idp + "/oauth/token", auth=(client.client_id, secret), data={
        "grant_type": "authorization_code", "code": params["code"], "redirect_uri": CALLBACK,
        "code_verifier": verifier})
    assert token.status_code == 200, token.text
    second = verify(idp, token.json()["id_token"], client)
    assert second["sub"] == claims["sub"] and second["nonce"] == "n3"


def test_hybrid_code_id_token_token(idp, user, oidc_client):
    client, _ = oidc_client
    params = query_params(Browser(idp).authorize(
        authorization_url(idp, client, response_type="code id_token token", nonce="n4")))
    claims = verify(idp, params["id_token"], client)
    assert claims["c_hash"] == half_hash(params["code"])
    assert claims["at_hash"] == half_hash(params["access_token"])


# prompt, max_age, login_hint, audience ---------------------------------------------------


def test_login_hint_fills_in_the_username(idp, user, oidc_client):
    client, _ = oidc_client
    browser = Browser(idp)
    browser.authorize(authorization_url(idp, client, login_hint="alice"), username="alice")
    assert 'value="alice"' in browser.last_login_page


def test_prompt_login_asks_again_then_continues_to_consent(idp, user, oidc_client):
    client, secret = oidc_client
    browser = Browser(idp)
    browser.login()
    location = browser.authorize(authorization_url(idp, client, prompt="login consent"))
    assert browser.pages[0] == "/login"
    assert browser.pages[-1] == "consent"
    assert "code" in query_params(location)


def test_prompt_consent_shows_the_consent_page(idp, user, oidc_client):
    client, _ = oidc_client
    browser = Browser(idp)
    browser.login()
    browser.authorize(authorization_url(idp, client, prompt="consent"))
    assert browser.pages == ["consent"]


def test_audience_is_accepted(idp, user, oidc_client, runner):
    # An audience names an API registered on this server (unknown ones get invalid_target).
    client, _ = oidc_client
    assert runner.invoke(args=["create-api", "--identifier", "https://api.example.com", "--name", "API",
                               "--allow-client", client.client_id]).exit_code == 0
    params = query_params(Browser(idp).authorize(
        authorization_url(idp, client, audience="https://api.example.com")))
    assert "code" in params


def test_max_age_sends_an_old_session_to_log_in_again(app, test_client, auth, user, make_client):
    client, secret = make_client(redirect_uris=[CALLBACK])
    auth.login()
    with test_client.session_transaction() as session:
        session["auth_time"] -= 1000
    url = authorization_url("", client, max_age="600")
    response = test_client.get(url)
    assert response.status_code == 302
    location = response.headers["Location"]
    assert urlsplit(location).path == "/login"
    assert "max_age" not in location  # the fresh log-in answers it
    # A young enough session goes straight to the consent page.
    auth.login()
    assert test_client.get(url).status_code == 200


# PKCE ------------------------------------------------------------------------------------


def test_public_client_must_use_pkce(idp, make_client):
    client, _ = make_client(redirect_uris=[CALLBACK], token_endpoint_auth_method="none")
    params = redirect_of(authorization_url(idp, client))
    assert params["error"] == "invalid_request"
    assert "PKCE" in params["error_description"]


def test_plain_pkce_is_refused(idp, make_client):
    client, _ = make_client(redirect_uris=[CALLBACK], token_endpoint_auth_method="none")
    verifier, _ = pkce_pair()
    url = authorization_url(idp, client, code_challenge=verifier, code_challenge_method="plain")
    params = redirect_of(url)
    assert params["error"] == "invalid_request"
    discovery = requests.get(idp + "/.well-known/openid-configuration").json()
    assert discovery["code_challenge_methods_supported"] == ["S256"]


@pytest.fixture
def plain_pkce_config(app_config):
    app_config["OAUTH2_PKCE_ALLOW_PLAIN"] = True
    return app_config


def test_plain_pkce_works_when_configured(plain_pkce_config, idp, user, make_client):
    client, _ = make_client(redirect_uris=[CALLBACK], token_endpoint_auth_method="none")
    verifier, _ = pkce_pair()
    params = query_params(Browser(idp).authorize(
        authorization_url(idp, client, code_challenge=verifier, code_challenge_method="plain")))
    token = requests.post(idp + "/oauth/token", data={
        "grant_type": "authorization_code", "code": params["code"], "redirect_uri": CALLBACK,
        "client_id": client.client_id, "code_verifier": verifier})
    assert token.status_code == 200, token.text
    discovery = requests.get(idp + "/.well-known/openid-configuration").json()
    assert discovery["code_challenge_methods_supported"] == ["S256", "plain"]


def test_wrong_code_verifier_is_invalid_grant(idp, user, make_client):
    client, _ = make_client(redirect_uris=[CALLBACK], token_endpoint_auth_method="none")
    _, challenge = pkce_pair()
    params = query_params(Browser(idp).authorize(
        authorization_url(idp, client, code_challenge=challenge, code_challenge_method="S256")))
    other_verifier, _ = pkce_pair()
    token = requests.post(idp + "/oauth/token", data={
        "grant_type": "authorization_code", "code": params["code"], "redirect_uri": CALLBACK,
        "client_id": client.client_id, "code_verifier": other_verifier})
    assert token.status_code == 400
    assert token.json()["error"] == "invalid_grant"


# form_post is accepted for every response type now (tests/test_form_post_and_post_authorize.py);
# a mode this server does not know is refused like a tokens-in-the-query request.
@pytest.mark.parametrize("response_type, response_mode, in_fragment", [
    ("code", "web_message", False),
    ("code", "fragment", False),
    ("id_token token", "query", True),
])
def test_other_response_modes_are_refused(idp, oidc_client, response_type, response_mode, in_fragment):
    client, _ = oidc_client
    sent = error_link_of(authorization_url(idp, client, response_type=response_type, nonce="n",
                                           response_mode=response_mode))
    location = urlsplit(sent)
    assert bool(location.fragment) == in_fragment
    params = query_params(sent)
    assert params["error"] == "invalid_request"
    assert "response_mode" in params["error_description"]
