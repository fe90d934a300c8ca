"""Real client libraries against the server over HTTP: requests-oauthlib for every grant."""

import pytest
import requests
from oauthlib.oauth2 import BackendApplicationClient, LegacyApplicationClient
from requests_oauthlib import OAuth2Session
from support.factories import PASSWORD
from support.pages import csrf_token

REDIRECT_URI = "http://127.0.0.1:8765/callback"


@pytest.fixture(autouse=True)
def plain_http_for_loopback(monkeypatch):
    # oauthlib insists on https; the live server listens on plain http on loopback.
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")


def browser_allow(live_server: str, authorization_url: str) -> str:
    """Log in as alice, press Allow on the consent page, return where the browser is sent."""
    browser = requests.Session()
    page = browser.get(f"{live_server}/login").text
    browser.post(f"{live_server}/login", data={"username": "alice", "password": PASSWORD,
                                               "csrf_token": csrf_token(page)})
    page = browser.get(authorization_url)
    assert page.status_code == 200, page.text
    response = browser.post(authorization_url, data={"csrf_token": csrf_token(page), "allow": "Allow"},
                            allow_redirects=False)
    assert response.status_code == 302, response.text
    return response.headers["Location"]


def test_code_flow_with_pkce_refresh_and_me(live_server, user, make_client):
    client, secret = make_client(redirect_uris=[REDIRECT_URI])
    oauth_client = OAuth2Session(client.client_id, redirect_uri=REDIRECT_URI, scope=["profile"], pkce="S256")
    authorization_url, _ = oauth_client.authorization_url(f"{live_server}/oauth/authorize")
    callback = browser_allow(live_server, authorization_url)
    token = oauth_client.fetch_token(f"{live_server}/oauth/token", authorization_response=callback,
                                     client_secret=secret)
    assert token["refresh_token"] and token["scope"] == ["profile"]
    me = oauth_client.get(f"{live_server}/api/me")
    assert me.json()["username"] == "alice"
    new_token = oauth_client.refresh_token(f"{live_server}/oauth/token", auth=(client.client_id, secret))
    assert new_token["access_token"] != token["access_token"]
    assert oauth_client.get(f"{live_server}/api/me").status_code == 200


def test_client_credentials(live_server, make_client):
    client, secret = make_client(grant_types=["client_credentials"], redirect_uris=[])
    oauth_client = OAuth2Session(client=BackendApplicationClient(client_id=client.client_id))
    token = oauth_client.fetch_token(f"{live_server}/oauth/token", client_id=client.client_id,
                                     client_secret=secret)
    assert token["token_type"] == "Bearer" and "refresh_token" not in token


def test_password_grant(live_server, user, make_client):
    client, secret = make_client(grant_types=["password", "refresh_token"], redirect_uris=[])
    oauth_client = OAuth2Session(client=LegacyApplicationClient(client_id=client.client_id))
    token = oauth_client.fetch_token(f"{live_server}/oauth/token", username="alice", password=PASSWORD,
                                     client_id=client.client_id, client_secret=secret)
    assert token["refresh_token"]
    assert oauth_client.get(f"{live_server}/api/me").json()["username"] == "alice"


def test_revocation_with_requests(live_server, user, make_client):
    client, secret = make_client(grant_types=["password", "refresh_token"], redirect_uris=[])
    token = requests.post(f"{live_server}/oauth/token", auth=(client.client_id, secret), data={
        "grant_type": "password", "username": "alice", "password": PASSWORD, "scope": "profile"}).json()
    response = requests.post(f"{live_server}/oauth/revoke", auth=(client.client_id, secret),
                             data={"token": token["refresh_token"]})
    assert response.status_code == 200
    me = requests.get(f"{live_server}/api/me", headers={"Authorization": f"Bearer {token['access_token']}"})
    assert me.status_code == 401
    assert me.headers["WWW-Authenticate"].startswith("Bearer")
