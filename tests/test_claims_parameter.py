"""OpenID Connect's claims request parameter (Core §5.5): a client asks for individual
claims in the id_token and from UserInfo, and the person sees them on the consent page."""

import json

import jwt
import pytest
from support.flows import approve, authorize_url, bearer, pkce_pair, redeem, refresh
from support.pages import query_params


@pytest.fixture
def oidc_client(make_client):
    return make_client(grant_types=["authorization_code", "implicit", "refresh_token"],
                       response_types=["code", "id_token", "code id_token"],
                       scope="openid profile email offline_access")


def claims_of(id_token: str) -> dict:
    return jwt.decode(id_token, options={"verify_signature": False})


def code_flow(test_client, client, secret, claims, scope="openid"):
    verifier, challenge = pkce_pair()
    url = authorize_url(client, scope=scope, claims=json.dumps(claims), code_challenge=challenge,
                        code_challenge_method="S256")
    page = test_client.get(url)
    response = approve(test_client, url)
    assert response.status_code == 302, response.get_data(as_text=True)
    token = redeem(test_client, client, query_params(response.headers["Location"])["code"], verifier, secret)
    assert token.status_code == 200, token.get_data(as_text=True)
    return page.get_data(as_text=True), token.get_json()


def test_userinfo_releases_a_requested_claim_without_its_scope(test_client, auth, user, oidc_client):
    client, secret = oidc_client
    auth.login()
    page, token = code_flow(test_client, client, secret, {"userinfo": {"email": None}},
                            scope="openid offline_access")
    # The person consents to the claim by name.
    assert "It asks to see these details about you:" in page
    assert "Your email address." in page
    info = test_client.get("/userinfo", headers=bearer(token["access_token"])).get_json()
    assert info == {"sub": info["sub"], "email": "alice@example.com"}
    # Asked for UserInfo only: not in the id_token.
    assert "email" not in claims_of(token["id_token"])
    # Kept through a refresh.
    refreshed = refresh(test_client, client, token["refresh_token"], secret).get_json()
    assert test_client.get("/userinfo", headers=bearer(refreshed["access_token"])).get_json() == info


def test_the_id_token_carries_a_requested_essential_claim(test_client, auth, user, oidc_client):
    client, secret = oidc_client
    auth.login()
    requested = {"id_token": {"name": {"essential": True}, "nickname": None}}
    _, token = code_flow(test_client, client, secret, requested)
    claims = claims_of(token["id_token"])
    assert claims["name"] == "alice"
    assert "nickname" not in claims  # a claim this server does not know is left out
    assert "email" not in claims
    info = test_client.get("/userinfo", headers=bearer(token["access_token"])).get_json()
    assert set(info) == {"sub"}


def test_an_implicit_id_token_carries_requested_claims(test_client, auth, user, oidc_client):
    client, _ = oidc_client
    auth.login()
    url = authorize_url(client, response_type="id_token", scope="openid", nonce="n",
                        claims=json.dumps({"id_token": {"email": None}}))
    response = approve(test_client, url)
    assert response.status_code == 302
    claims = claims_of(query_params(response.headers["Location"])["id_token"])
    assert claims["email"] == "alice@example.com"


def test_remembered_consent_for_scopes_does_not_cover_more_claims(test_client, auth, user, oidc_client):
    client, secret = oidc_client
    auth.login()
    code_flow(test_client, client, secret, {}, scope="openid")
    verifier, challenge = pkce_pair()
    plain = authorize_url(client, scope="openid", code_challenge=challenge, code_challenge_method="S256")
    assert test_client.get(plain).status_code == 302  # remembered
    asking = authorize_url(client, scope="openid", code_challenge=challenge, code_challenge_method="S256",
                           claims=json.dumps({"userinfo": {"email": None}}))
    page = test_client.get(asking)
    assert page.status_code == 200
    assert "Your email address." in page.get_data(as_text=True)


@pytest.mark.parametrize("claims", [
    "not json",
    "[]",
    '{"userinfo": []}',
    '{"id_token": {"name": 5}}',
    '{"id_token": {"name": {"essential": "yes"}}}',
])
def test_a_malformed_claims_parameter_is_invalid_request(test_client, auth, user, oidc_client, claims):
    client, _ = oidc_client
    auth.login()
    _, challenge = pkce_pair()
    response = test_client.get(authorize_url(client, scope="openid", claims=claims, code_challenge=challenge,
                                             code_challenge_method="S256"))
    assert response.status_code == 302
    params = query_params(response.headers["Location"])
    assert params["error"] == "invalid_request"
    assert "claims" in params["error_description"]
    assert params["state"] == "xyz"
