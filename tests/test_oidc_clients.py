"""Real client programs against the live server: Authlib's requests client, PyJWT's
PyJWKClient, auth-code-flow, and the exact HTTP calls of the seed apps (000, 001, 002)."""

import secrets
from urllib.parse import urlencode

import jwt
import requests
from auth_code_flow import FlowManager
from authlib.integrations.requests_client import OAuth2Session
from support.oidc import CALLBACK, Browser
from support.pages import query_params


def verify_id_token(idp, id_token, client_id, **options):
    """Verify an id_token as a relying party does: keys from the JWKS, aud and iss checked."""
    jwks_client = jwt.PyJWKClient(idp + "/.well-known/jwks.json")
    key = jwks_client.get_signing_key_from_jwt(id_token)
    return jwt.decode(id_token, key, algorithms=["RS256"], audience=client_id, issuer=idp + "/", **options)


def test_authlib_client_code_flow_with_pkce_then_refresh(idp, user, make_client):
    client, _ = make_client(token_endpoint_auth_method="none", redirect_uris=[CALLBACK],
                            scope="openid profile email offline_access")
    oauth_client = OAuth2Session(
        client.client_id, scope="openid profile email offline_access", redirect_uri=CALLBACK,
        token_endpoint_auth_method="none", code_challenge_method="S256",
    )
    verifier = secrets.token_urlsafe(48)
    url, state = oauth_client.create_authorization_url(idp + "/oauth/authorize", code_verifier=verifier,
                                                       nonce="n-0S6_WzA2Mj")
    browser = Browser(idp)
    callback = browser.authorize(url)
    assert browser.pages == ["/login", "/oauth/authorize", "consent"]
    assert query_params(callback)["iss"] == idp + "/"

    token = oauth_client.fetch_token(idp + "/oauth/token", authorization_response=callback,
                                     code_verifier=verifier)
    assert token["token_type"].lower() == "bearer"
    assert token["scope"] == "openid profile email offline_access"
    claims = verify_id_token(idp, token["id_token"], client.client_id)
    assert claims["sub"] == user.sub
    assert claims["nonce"] == "n-0S6_WzA2Mj"
    assert claims["preferred_username"] == "alice"
    assert claims["email"] == "alice@example.com"
    assert {"iat", "exp", "auth_time", "at_hash"} <= claims.keys()

    userinfo = oauth_client.get(idp + "/oauth/userinfo")
    assert userinfo.status_code == 200
    assert userinfo.json()["sub"] == claims["sub"]

    # A public client's refresh token rotates; the new access token works, the old one not.
    old_access = token["access_token"]
    new_token = oauth_client.refresh_token(idp + "/oauth/token")
    assert new_token["access_token"] != old_access
    assert new_token["refresh_token"] != token["refresh_token"]
    assert oauth_client.get(idp + "/userinfo").json()["preferred_username"] == "alice"
    stale = requests.get(idp + "/userinfo", headers={"Authorization": f"Bearer {old_access}"})
    assert stale.status_code == 401


def test_seed_000_datasette_auth0_calls(idp, user, make_client):
    """Seed 000: /authorize, token with HTTP Basic, /userinfo, JWKS verification with
    aud = client_id and iss = https://DOMAIN/ (here http, the live server's domain)."""
    domain = idp.split("://", 1)[1]
    client, secret = make_client(redirect_uris=[CALLBACK])
    state = secrets.token_hex(16)
    url = f"{idp}/authorize?" + urlencode({
        "response_type": "code", "client_id": client.client_id, "redirect_uri": CALLBACK,
        "scope": "openid profile email", "state": state,
    })
    params = query_params(Browser(idp).authorize(url))
    assert secrets.compare_digest(params["state"], state)

    response = requests.post(
        f"{idp}/oauth/token",
        data={"grant_type": "authorization_code", "redirect_uri": CALLBACK, "code": params["code"]},
        auth=(client.client_id, secret),
    )
    assert response.status_code == 200, response.text
    access_token = response.json()["access_token"]
    profile = requests.get(f"{idp}/userinfo", headers={"authorization": "Bearer " + access_token})
    assert profile.status_code == 200
    assert profile.json()["email"] == "alice@example.com"

    id_token = response.json()["id_token"]
    jwks = requests.get(f"{idp}/.well-known/jwks.json")
    jwks.raise_for_status()
    kid = jwt.get_unverified_header(id_token)["kid"]
    public_key = next(jwt.algorithms.RSAAlgorithm.from_jwk(key) for key in jwks.json()["keys"]
                      if key["kid"] == kid)
    decoded = jwt.decode(id_token, public_key, algorithms=["RS256"], audience=client.client_id,
                         issuer=f"http://{domain}/")
    assert decoded["sub"] == profile.json()["sub"] == user.sub


def test_seed_001_flask_auth0_guide_calls(idp, user, make_client, runner):
    """Seed 001: /authorize with prompt=login and audience, a JSON token request carrying
    client_id and client_secret, and id_token verification."""
    # The guide's AUDIENCE is an API registered on this server.
    client, secret = make_client(redirect_uris=[CALLBACK], token_endpoint_auth_method="client_secret_post")
    assert runner.invoke(args=["create-api", "--identifier", "https://api.example.com", "--name", "API",
                               "--allow-client", client.client_id]).exit_code == 0
    browser = Browser(idp)
    browser.login()
    auth_url = f"{idp}/authorize?" + urlencode({
        "response_type": "code", "client_id": client.client_id, "redirect_uri": CALLBACK,
        "scope": "openid profile email", "audience": "https://api.example.com", "prompt": "login",
    })
    callback = browser.authorize(auth_url)
    # prompt=login asks for the password again although the browser is signed in.
    assert browser.pages[0] == "/login"
    code = query_params(callback)["code"]
    token_info = requests.post(f"{idp}/oauth/token", json={
        "grant_type": "authorization_code", "client_id": client.client_id, "client_secret": secret,
        "code": code, "redirect_uri": CALLBACK,
    }).json()
    assert token_info.get("access_token")
    # "id_token and access_token are JWT token": the access token is for the audience.
    assert verify_id_token(idp, token_info["access_token"], "https://api.example.com")["client_id"] == client.client_id
    user_info = verify_id_token(idp, token_info["id_token"], client.client_id)
    assert user_info["name"] == "alice"
    assert user_info["email_verified"] is False


def test_seed_001_signup_screen_returns_to_the_flow(idp, make_client):
    client, secret = make_client(redirect_uris=[CALLBACK], token_endpoint_auth_method="client_secret_post")
    browser = Browser(idp)
    auth_url = f"{idp}/authorize?" + urlencode({
        "response_type": "code", "client_id": client.client_id, "redirect_uri": CALLBACK,
        "scope": "openid profile", "prompt": "login", "screen_hint": "signup",
    })
    new_account = {"username": "bob", "email": "bob@example.com", "password": "a long enough secret"}
    callback = browser.authorize(auth_url, signup=new_account)
    assert browser.pages[:2] == ["/signup", "/authorize"]
    token = requests.post(f"{idp}/oauth/token", json={
        "grant_type": "authorization_code", "client_id": client.client_id, "client_secret": secret,
        "code": query_params(callback)["code"], "redirect_uri": CALLBACK,
    })
    assert token.status_code == 200, token.text
    claims = verify_id_token(idp, token.json()["id_token"], client.client_id)
    assert claims["preferred_username"] == "bob"
    assert "email" not in claims  # not asked for


def test_seed_002_authlib_client_gets_refreshable_tokens_and_reads_the_user(idp, user, make_client):
    """Seed 002: a confidential Authlib client gets access and refresh tokens with expires_in
    and scope, then reads the user."""
    client, secret = make_client(redirect_uris=[CALLBACK], scope="openid profile email")
    oauth_client = OAuth2Session(client.client_id, secret, scope="openid profile email",
                                 redirect_uri=CALLBACK)
    url, _ = oauth_client.create_authorization_url(idp + "/oauth/authorize")
    callback = Browser(idp).authorize(url)
    token = oauth_client.fetch_token(idp + "/oauth/token", authorization_response=callback)
    assert token["access_token"] and token["refresh_token"]
    assert token["expires_in"] == 3600
    assert token["scope"] == "openid profile email"
    assert token["expires_at"] > 0
    me = oauth_client.get(idp + "/userinfo").json()
    assert me == {
        "sub": user.sub, "name": "alice", "preferred_username": "alice", "email": "alice@example.com",
        "email_verified": False, "updated_at": me["updated_at"],
    }
    assert oauth_client.get(idp + "/api/me").json()["username"] == "alice"


def test_auth_code_flow_library_obtains_a_token(idp, user, make_client):
    """Seed 004: auth-code-flow's FlowManager (0.2's API) pointed at this server."""
    client, secret = make_client(redirect_uris=[CALLBACK], token_endpoint_auth_method="client_secret_post",
                                 scope="openid profile")
    states = {}

    class IdentityProviderFlowManager(FlowManager):
        def store_user_state(self, user, state):
            states[user] = state

        def check_user_state(self, user, state):
            return states.get(user) == state

    manager = IdentityProviderFlowManager(
        base_uri=idp, client_id=client.client_id, client_secret=secret, redirect_uri=CALLBACK,
        scope="openid profile", access_token_path="/oauth/token", authorization_path="/authorize",
    )
    browser = Browser(idp)
    for post_form_data in (False, True):  # its default is a JSON body; forms work too
        state = secrets.token_urlsafe(16)
        manager.store_user_state("alice", state)
        params = query_params(browser.authorize(manager.get_authorization_endpoint(state)))
        assert manager.check_user_state("alice", params["state"])
        response = manager.fetch_access_token(params["code"], params["state"], post_form_data=post_form_data)
        body = response.json()
        assert body["access_token"] and body["token_type"] == "Bearer"
        verify_id_token(idp, body["id_token"], client.client_id)
