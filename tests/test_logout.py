"""Logging out from an app: RP-Initiated Logout at /oauth/logout and Auth0's /v2/logout."""

import html
import re
import time
from urllib.parse import quote_plus, urlencode

import pytest
import requests
from joserfc import jwt
from joserfc.jwk import RSAKey
from support.flows import get_user_token
from support.pages import form_token
from website.oauth2.keys import get_issuer
from website.oauth2.keys import ID_TOKEN_ALG, get_signing_keyset

LOGOUT_URI = "https://app.example.com/logged-out"


@pytest.fixture
def rp(make_client):
    """A client that registered a logout URL, with its secret."""
    return make_client(post_logout_redirect_uris=[LOGOUT_URI])


def signed_in(test_client) -> bool:
    return test_client.get("/account/apps").status_code == 200


def id_token_for(test_client, auth, client, secret) -> str:
    auth.login()
    return get_user_token(test_client, client, secret, scope="openid profile")["id_token"]


def continue_link(page: str) -> tuple[str, str] | None:
    """The page's "Continue to HOST" link or button: (where it leads, the host it names)."""
    link = re.search(r'<a[^>]*href="([^"]+)"[^>]*>Continue to ([^<]+)</a>', page)
    return (html.unescape(link.group(1)), link.group(2)) if link else None


def confirmation_destination_host(page: str) -> str | None:
    """The host the confirmation page says the person goes to afterwards."""
    named = re.search(r"Afterwards you go to <strong>([^<]+)</strong>", page)
    return named.group(1) if named else None


def test_logout_with_id_token_hint_returns_to_the_registered_uri_with_state(test_client, auth, user, rp):
    client, secret = rp
    id_token = id_token_for(test_client, auth, client, secret)
    assert signed_in(test_client)
    response = test_client.get("/oauth/logout?" + urlencode({
        "id_token_hint": id_token, "client_id": client.client_id,
        "post_logout_redirect_uri": LOGOUT_URI, "state": "s 1"}))
    assert response.status_code == 302
    assert response.headers["Location"] == LOGOUT_URI + "?state=s+1"
    assert not signed_in(test_client)


def test_id_token_hint_alone_names_the_client(test_client, auth, user, rp):
    client, secret = rp
    id_token = id_token_for(test_client, auth, client, secret)
    response = test_client.get("/oauth/logout?" + urlencode({
        "id_token_hint": id_token, "post_logout_redirect_uri": LOGOUT_URI}))
    assert response.headers["Location"] == LOGOUT_URI


def test_id_token_hint_for_another_client_is_refused(test_client, auth, user, rp, make_client):
    client, secret = rp
    other, _ = make_client(client_name="Other App", post_logout_redirect_uris=[LOGOUT_URI])
    id_token = id_token_for(test_client, auth, client, secret)
    response = test_client.get("/oauth/logout?" + urlencode({
        "id_token_hint": id_token, "client_id": other.client_id, "post_logout_redirect_uri": LOGOUT_URI}))
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert "client_id" in response.get_data(as_text=True)
    assert signed_in(test_client)


@pytest.mark.parametrize("forgery", ["foreign key", "garbage", "other issuer"])
def test_id_token_hint_not_signed_by_this_server_is_refused(test_client, auth, user, rp, forgery):
    client, secret = rp
    auth.login()
    claims = {"iss": "http://127.0.0.1", "sub": user.sub, "aud": client.client_id,
              "iat": int(time.time()), "exp": int(time.time()) + 300}
    if forgery == "foreign key":
        key = RSAKey.generate_key(2048, auto_kid=True)
        hint = jwt.encode({"alg": "RS256", "kid": key.kid}, claims, key)
    elif forgery == "garbage":
        hint = "not.a.jwt"
    else:
        real = id_token_for(test_client, auth, client, secret)
        assert real  # a real token from this server, but see below: a different iss is refused
        hint = real
        test_client.application.config["OAUTH2_ISSUER"] = "https://elsewhere.example.com"
    response = test_client.get("/oauth/logout?" + urlencode({
        "id_token_hint": hint, "client_id": client.client_id, "post_logout_redirect_uri": LOGOUT_URI}))
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert signed_in(test_client)


def test_expired_id_token_hint_is_still_accepted(app, test_client, auth, user, rp):
    client, secret = rp
    app.config["OAUTH2_ID_TOKEN_LIFETIME"] = -10  # the id_token is already expired when issued
    id_token = id_token_for(test_client, auth, client, secret)
    response = test_client.get("/oauth/logout?" + urlencode({
        "id_token_hint": id_token, "post_logout_redirect_uri": LOGOUT_URI}))
    assert response.headers["Location"] == LOGOUT_URI


def test_unregistered_post_logout_redirect_uri_logs_out_without_redirect(test_client, auth, user, rp):
    client, secret = rp
    id_token = id_token_for(test_client, auth, client, secret)
    response = test_client.get("/oauth/logout?" + urlencode({
        "id_token_hint": id_token, "client_id": client.client_id,
        "post_logout_redirect_uri": "https://evil.example.com/"}))
    assert response.status_code == 200
    assert "Location" not in response.headers
    assert "You are signed out" in response.get_data(as_text=True)
    assert not signed_in(test_client)


def test_without_id_token_hint_the_person_confirms_first(test_client, auth, user, rp):
    client, _ = rp
    auth.login()
    url = "/oauth/logout?" + urlencode({"client_id": client.client_id, "post_logout_redirect_uri": LOGOUT_URI,
                                        "state": "abc"})
    page = test_client.get(url)
    assert page.status_code == 200
    assert "Log out of Test App?" in page.get_data(as_text=True)
    assert signed_in(test_client)
    # Without the form's CSRF token nothing happens.
    forged = test_client.post("/oauth/logout", data={"confirm": "yes", "client_id": client.client_id,
                                                     "post_logout_redirect_uri": LOGOUT_URI})
    assert forged.status_code == 400
    assert signed_in(test_client)
    response = test_client.post("/oauth/logout", data={
        "csrf_token": form_token(test_client, url), "confirm": "yes", "client_id": client.client_id,
        "post_logout_redirect_uri": LOGOUT_URI, "state": "abc"})
    assert response.status_code == 302
    assert response.headers["Location"] == LOGOUT_URI + "?state=abc"
    assert not signed_in(test_client)


def test_post_from_the_app_continues_as_get(test_client, auth, user, rp):
    client, secret = rp
    id_token = id_token_for(test_client, auth, client, secret)
    response = test_client.post("/oauth/logout", data={"id_token_hint": id_token,
                                                       "post_logout_redirect_uri": LOGOUT_URI})
    assert response.status_code == 303
    followed = test_client.get(response.headers["Location"])
    assert followed.headers["Location"] == LOGOUT_URI


def test_id_token_hint_of_another_user_asks_first_and_keeps_the_session(app, test_client, auth, user,
                                                                       make_user, rp):
    # Mallory signs in to the app herself and sends Alice a logout link with her own id_token.
    client, secret = rp
    make_user("mallory")
    mallory = app.test_client()
    type(auth)(mallory).login("mallory")
    mallorys_token = get_user_token(mallory, client, secret, scope="openid profile")["id_token"]
    auth.login()
    url = "/oauth/logout?" + urlencode({"id_token_hint": mallorys_token, "post_logout_redirect_uri": LOGOUT_URI,
                                        "state": "st"})
    page = test_client.get(url)
    assert page.status_code == 200
    assert "Location" not in page.headers
    html_text = page.get_data(as_text=True)
    assert "Log out of Test App?" in html_text
    assert confirmation_destination_host(html_text) == "app.example.com"
    assert signed_in(test_client)
    # Confirming (with the form's CSRF token) logs Alice out here and goes to the named host.
    response = test_client.post("/oauth/logout", data={
        "csrf_token": form_token(test_client, url), "confirm": "yes", "client_id": client.client_id,
        "post_logout_redirect_uri": LOGOUT_URI, "state": "st"})
    assert response.headers["Location"] == LOGOUT_URI + "?state=st"
    assert not signed_in(test_client)
    assert signed_in(mallory)


def test_id_token_hint_naming_no_single_client_asks_first(app, test_client, auth, user, rp):
    # Signed by this server for Alice, but its audience names no one client: not tied to the app.
    client, _ = rp
    auth.login()
    with app.test_request_context():
        claims = {"iss": get_issuer(), "sub": user.sub, "aud": [client.client_id, "another-app"],
                  "iat": int(time.time()), "exp": int(time.time()) + 300}
        keyset = get_signing_keyset()
        hint = jwt.encode({"alg": ID_TOKEN_ALG, "kid": keyset.keys[0].kid}, claims, keyset)
    page = test_client.get("/oauth/logout?" + urlencode({"id_token_hint": hint,
                                                         "post_logout_redirect_uri": LOGOUT_URI}))
    assert page.status_code == 200
    assert "Location" not in page.headers
    assert "Log out?" in page.get_data(as_text=True)
    assert signed_in(test_client)


def test_valid_hint_logs_out_this_browser_only(app, test_client, auth, user, rp):
    client, secret = rp
    id_token = id_token_for(test_client, auth, client, secret)
    other_browser = app.test_client()
    type(auth)(other_browser).login()
    assert signed_in(other_browser)
    response = test_client.get("/oauth/logout?" + urlencode({
        "id_token_hint": id_token, "post_logout_redirect_uri": LOGOUT_URI}))
    assert response.headers["Location"] == LOGOUT_URI
    assert not signed_in(test_client)
    assert signed_in(other_browser)


def test_anonymous_logout_names_the_host_instead_of_redirecting(test_client, rp):
    client, _ = rp
    url = "/oauth/logout?" + urlencode({"client_id": client.client_id, "post_logout_redirect_uri": LOGOUT_URI,
                                        "state": "s1"})
    page = test_client.get(url)
    assert page.status_code == 200
    assert "Location" not in page.headers
    html_text = page.get_data(as_text=True)
    assert confirmation_destination_host(html_text) == "app.example.com"
    assert "Continue to app.example.com" in html_text
    # The person chooses to go on: only then the browser leaves.
    response = test_client.post("/oauth/logout", data={
        "csrf_token": form_token(test_client, url), "confirm": "yes", "client_id": client.client_id,
        "post_logout_redirect_uri": LOGOUT_URI, "state": "s1"})
    assert response.headers["Location"] == LOGOUT_URI + "?state=s1"


def test_anonymous_logout_with_a_valid_hint_still_asks(app, test_client, auth, user, rp):
    # A hint ties the redirect to a session only when that session is signed in.
    client, secret = rp
    id_token = id_token_for(test_client, auth, client, secret)
    auth.logout()
    page = test_client.get("/oauth/logout?" + urlencode({
        "id_token_hint": id_token, "post_logout_redirect_uri": LOGOUT_URI}))
    assert page.status_code == 200
    assert "Location" not in page.headers
    assert confirmation_destination_host(page.get_data(as_text=True)) == "app.example.com"


def test_unknown_client_id_is_refused(test_client):
    response = test_client.get("/oauth/logout?client_id=nope&post_logout_redirect_uri=" + LOGOUT_URI)
    assert response.status_code == 400
    assert "Location" not in response.headers


# Auth0's /v2/logout, called exactly as seed 001 builds it.


def auth0_logout_url(**params) -> str:
    return "/v2/logout?" + urlencode(params, quote_via=quote_plus)


def test_v2_logout_returns_to_a_registered_logout_url(test_client, auth, user, make_client):
    client, secret = make_client(post_logout_redirect_uris=["http://localhost:5000/"])
    id_token_for(test_client, auth, client, secret)  # this session signed in to the client
    response = test_client.get(auth0_logout_url(returnTo="http://localhost:5000/", client_id=client.client_id))
    assert response.status_code == 302
    assert response.headers["Location"] == "http://localhost:5000/"
    assert not signed_in(test_client)


@pytest.mark.parametrize("return_to", ["https://evil.example.com/", "http://localhost:5000/other",
                                       LOGOUT_URI + "/../x"])
def test_v2_logout_with_an_unregistered_return_to_shows_a_page(test_client, auth, user, rp, return_to):
    client, _ = rp
    auth.login()
    response = test_client.get(auth0_logout_url(returnTo=return_to, client_id=client.client_id))
    assert response.status_code == 200
    assert "Location" not in response.headers
    html = response.get_data(as_text=True)
    assert "You are signed out" in html and "has not registered" in html
    assert "Signed in as" not in html  # the page itself shows the person signed out
    assert not signed_in(test_client)


def test_v2_logout_for_a_client_this_session_never_used_names_the_host(app, test_client, auth, user, rp):
    client, _ = rp
    auth.login()
    other_browser = app.test_client()
    type(auth)(other_browser).login()
    response = test_client.get(auth0_logout_url(returnTo=LOGOUT_URI, client_id=client.client_id))
    assert response.status_code == 200
    assert "Location" not in response.headers
    html_text = response.get_data(as_text=True)
    assert "You are signed out" in html_text
    assert continue_link(html_text) == (LOGOUT_URI, "app.example.com")
    assert not signed_in(test_client)
    assert signed_in(other_browser)  # this browser only


def test_v2_logout_of_a_used_client_ends_only_this_browser_session(app, test_client, auth, user, rp):
    client, secret = rp
    id_token_for(test_client, auth, client, secret)
    other_browser = app.test_client()
    type(auth)(other_browser).login()
    response = test_client.get(auth0_logout_url(returnTo=LOGOUT_URI, client_id=client.client_id))
    assert response.headers["Location"] == LOGOUT_URI
    assert not signed_in(test_client)
    assert signed_in(other_browser)


def test_v2_logout_without_client_id_never_redirects(test_client, auth, user, rp):
    auth.login()
    response = test_client.get(auth0_logout_url(returnTo=LOGOUT_URI))
    assert response.status_code == 200
    assert "Location" not in response.headers
    assert test_client.get("/v2/logout").status_code == 200


def test_logout_urls_are_registered_in_the_form_and_the_cli(test_client, auth, user, runner):
    result = runner.invoke(args=["create-client", "--name", "CLI App", "--redirect-uri",
                                 "https://cli.example.com/cb", "--post-logout-redirect-uri",
                                 "https://cli.example.com/bye", "--json"])
    assert result.exit_code == 0, result.output
    assert '"post_logout_redirect_uris": ["https://cli.example.com/bye"]' in result.output
    bad = runner.invoke(args=["create-client", "--name", "CLI App", "--redirect-uri", "https://cli.example.com/cb",
                              "--post-logout-redirect-uri", "https://cli.example.com/bye#frag"])
    assert bad.exit_code != 0
    assert "post_logout_redirect_uris" in bad.output

    auth.login()
    form = {"csrf_token": form_token(test_client, "/clients/new"), "client_name": "Form App",
            "redirect_uris": "https://form.example.com/cb", "grant_types": ["authorization_code"],
            "token_endpoint_auth_method": "client_secret_basic",
            "post_logout_redirect_uris": "https://form.example.com/bye\nhttp://127.0.0.1:8000/"}
    created = test_client.post("/clients/new", data=form, follow_redirects=True)
    assert created.status_code == 200  # the one-time secret page, after a 303
    assert "https://form.example.com/bye" in created.get_data(as_text=True)
    rejected = test_client.post("/clients/new", data={**form, "post_logout_redirect_uris": "http://evil.example.com/"})
    assert rejected.status_code == 400
    assert "Logout URL" in rejected.get_data(as_text=True)


def test_v2_logout_over_http_with_requests(live_server, make_client):
    client, _ = make_client(post_logout_redirect_uris=["http://localhost:5000/"])
    url = live_server + auth0_logout_url(returnTo="http://localhost:5000/", client_id=client.client_id)
    response = requests.get(url, allow_redirects=False, timeout=10)
    # A visitor with no session that signed in to the client is not sent on without a word.
    assert response.status_code == 200
    assert "Location" not in response.headers
    assert continue_link(response.text) == ("http://localhost:5000/", "localhost:5000")
    refused = requests.get(live_server + auth0_logout_url(returnTo="http://localhost:5001/",
                                                          client_id=client.client_id),
                           allow_redirects=False, timeout=10)
    assert refused.status_code == 200
