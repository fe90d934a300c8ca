"""Clients choose what their id_tokens are signed with (OpenID Connect Registration §2,
``id_token_signed_response_alg``): RS256 by default, ES256 or EdDSA when they register it, each
with a key of this server's published in the JWKS. Their logout tokens follow (Back-Channel
Logout §2.4), as does a signed UserInfo; id_token hints and token exchange accept them."""

import base64
import hashlib
import json
from urllib.parse import urlencode

import jwt
import pytest
import requests
from support.flows import approve, get_user_token, refresh
from support.oidc import CALLBACK, Browser, authorization_url
from support.pages import query_params

from website.models import OAuth2Client, db

ALGORITHMS = ["ES256", "EdDSA"]
ISSUER = "http://127.0.0.1"  # the test app's OAUTH2_ISSUER

#: OIDC Core §3.1.3.6 and §3.3.2.11: at_hash and c_hash are the left half of the hash the
#: signature's algorithm uses; for EdDSA with Ed25519, SHA-512.
HASHES = {"RS256": hashlib.sha256, "ES256": hashlib.sha256, "EdDSA": hashlib.sha512}


def half_hash(value: str, alg: str) -> str:
    digest = HASHES[alg](value.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[:len(digest) // 2]).rstrip(b"=").decode()


def verify(jwks: dict, token: str, alg: str, client_id: str, issuer: str) -> dict:
    """What a relying party does with PyJWT: the key of the header's kid from the JWKS, and
    only the algorithm the client registered."""
    header = jwt.get_unverified_header(token)
    assert header["alg"] == alg
    key = next(k for k in jwt.PyJWKSet.from_dict(jwks).keys if k.key_id == header["kid"])
    return jwt.decode(token, key, algorithms=[alg], audience=client_id, issuer=issuer)


@pytest.mark.parametrize("alg", ALGORITHMS)
def test_a_client_gets_id_tokens_signed_with_the_algorithm_it_registered(idp, user, make_client, alg):
    client, secret = make_client(redirect_uris=[CALLBACK], id_token_signed_response_alg=alg,
                                 scope="openid profile offline_access")
    browser = Browser(idp)
    callback = browser.authorize(authorization_url(idp, client, scope="openid profile offline_access",
                                                   nonce="n-1", prompt="consent"))
    code = query_params(callback)["code"]
    response = requests.post(idp + "/oauth/token", auth=(client.client_id, secret), data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK})
    assert response.status_code == 200, response.text
    tokens = response.json()
    jwks = requests.get(idp + "/.well-known/jwks.json").json()
    claims = verify(jwks, tokens["id_token"], alg, client.client_id, idp + "/")
    assert claims["sub"] == user.sub and claims["nonce"] == "n-1"
    assert claims["at_hash"] == half_hash(tokens["access_token"], alg)
    # The published key is of the algorithm's type, and RS256 stays published for other clients.
    key = next(k for k in jwks["keys"] if k["kid"] == jwt.get_unverified_header(tokens["id_token"])["kid"])
    assert (key["kty"], key["alg"], key["use"]) == ({"ES256": "EC", "EdDSA": "OKP"}[alg], alg, "sig")
    assert "d" not in key
    assert any(k["alg"] == "RS256" for k in jwks["keys"])

    refreshed = requests.post(idp + "/oauth/token", auth=(client.client_id, secret), data={
        "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 200, refreshed.text
    again = verify(jwks, refreshed.json()["id_token"], alg, client.client_id, idp + "/")
    assert again["sub"] == user.sub


def test_hybrid_flow_hashes_code_and_token_with_the_algorithms_hash(app, test_client, auth, user, make_client):
    client, secret = make_client(id_token_signed_response_alg="EdDSA",
                                 grant_types=["authorization_code", "implicit"],
                                 response_types=["code id_token token"])
    auth.login()
    query = urlencode({"response_type": "code id_token token", "client_id": client.client_id,
                       "redirect_uri": client.redirect_uris[0], "scope": "openid", "nonce": "n-2",
                       "state": "s"})
    response = approve(test_client, "/oauth/authorize?" + query)
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    params = query_params(response.headers["Location"])
    jwks = test_client.get("/.well-known/jwks.json").json
    claims = verify(jwks, params["id_token"], "EdDSA", client.client_id, ISSUER)
    assert claims["c_hash"] == half_hash(params["code"], "EdDSA")
    assert claims["at_hash"] == half_hash(params["access_token"], "EdDSA")


def test_clients_without_the_field_keep_rs256(test_client, auth, user, make_client):
    client, secret = make_client()
    auth.login()
    tokens = get_user_token(test_client, client, secret, scope="openid")
    assert jwt.get_unverified_header(tokens["id_token"])["alg"] == "RS256"


@pytest.mark.parametrize("alg", ALGORITHMS)
def test_signed_userinfo_uses_the_registered_algorithm(test_client, auth, user, make_client, alg):
    client, secret = make_client(userinfo_signed_response_alg=alg)
    auth.login()
    tokens = get_user_token(test_client, client, secret, scope="openid email")
    response = test_client.get("/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/jwt"
    claims = verify(test_client.get("/.well-known/jwks.json").json, response.get_data(as_text=True), alg,
                    client.client_id, ISSUER)
    assert claims["sub"] == user.sub


def test_an_es256_id_token_is_a_valid_logout_hint(test_client, auth, user, make_client):
    client, secret = make_client(id_token_signed_response_alg="ES256",
                                 post_logout_redirect_uris=["https://app.example.com/bye"])
    auth.login()
    id_token = get_user_token(test_client, client, secret, scope="openid")["id_token"]
    response = test_client.get("/oauth/logout?" + urlencode({
        "id_token_hint": id_token, "post_logout_redirect_uri": "https://app.example.com/bye"}))
    # A valid hint names the client: straight back to it, no confirmation page.
    assert response.status_code == 302
    assert response.headers["Location"] == "https://app.example.com/bye"


def test_each_rotation_gives_the_algorithm_a_new_key_and_keeps_the_old_one_published(
        app, test_client, auth, user, make_client, runner):
    client, secret = make_client(id_token_signed_response_alg="ES256")
    auth.login()
    before = get_user_token(test_client, client, secret, scope="openid")
    assert runner.invoke(args=["rotate-keys"]).exit_code == 0
    after = get_user_token(test_client, client, secret, scope="openid")
    old_kid, new_kid = (jwt.get_unverified_header(t["id_token"])["kid"] for t in (before, after))
    assert old_kid != new_kid
    jwks = test_client.get("/.well-known/jwks.json").json
    for tokens in (before, after):  # both still verify
        verify(jwks, tokens["id_token"], "ES256", client.client_id, ISSUER)
    # And a refreshed id_token is signed with the new key.
    refreshed = refresh(test_client, client, after["refresh_token"], secret)
    assert jwt.get_unverified_header(refreshed.json["id_token"])["kid"] == new_kid


def test_discovery_lists_the_algorithms(test_client):
    doc = test_client.get("/.well-known/openid-configuration").json
    assert doc["id_token_signing_alg_values_supported"] == ["RS256", "ES256", "EdDSA"]
    assert doc["userinfo_signing_alg_values_supported"] == ["RS256", "ES256", "EdDSA"]


@pytest.mark.parametrize("alg", ["none", "HS256", "RS512", "Ed25519", ["ES256"], 7])
def test_registration_refuses_algorithms_the_server_does_not_sign_with(app, test_client, alg):
    app.config["OAUTH2_OPEN_REGISTRATION"] = True
    response = test_client.post("/oauth/register", json={
        "client_name": "App", "redirect_uris": [CALLBACK], "id_token_signed_response_alg": alg})
    assert response.status_code == 400
    assert response.json["error"] == "invalid_client_metadata"
    assert "id_token_signed_response_alg must be one of: RS256, ES256, EdDSA" in response.json["error_description"]


def test_registration_keeps_the_algorithm(app, test_client):
    app.config["OAUTH2_OPEN_REGISTRATION"] = True
    response = test_client.post("/oauth/register", json={
        "client_name": "App", "redirect_uris": [CALLBACK], "id_token_signed_response_alg": "EdDSA"})
    assert response.status_code == 201, response.json
    assert response.json["id_token_signed_response_alg"] == "EdDSA"
    read = test_client.get(response.json["registration_client_uri"], headers={
        "Authorization": f"Bearer {response.json['registration_access_token']}"})
    assert read.json["id_token_signed_response_alg"] == "EdDSA"


def test_cli_registers_the_algorithm_and_refuses_others(app, runner):
    result = runner.invoke(args=["create-client", "--name", "RP", "--redirect-uri", CALLBACK,
                                 "--id-token-signed-response-alg", "ES256", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["id_token_signed_response_alg"] == "ES256"
    refused = runner.invoke(args=["create-client", "--name", "RP", "--redirect-uri", CALLBACK,
                                  "--id-token-signed-response-alg", "HS256"])
    assert refused.exit_code != 0 and "HS256" in refused.output


def test_the_client_form_sets_and_shows_the_algorithm(app, test_client, auth, user):
    auth.login()
    form = {"client_name": "Fast app", "redirect_uris": "https://app.example.com/cb",
            "grant_types": ["authorization_code"], "token_endpoint_auth_method": "client_secret_basic",
            "id_token_signed_response_alg": "ES256"}
    response = test_client.post("/clients/new", data={"csrf_token": auth.csrf_token("/clients/new"), **form})
    assert response.status_code == 303, response.get_data(as_text=True)[:500]
    with app.app_context():
        client = db.session.scalars(db.select(OAuth2Client).filter_by(client_name="Fast app")).one()
        assert client.client_metadata["id_token_signed_response_alg"] == "ES256"
        client_id = client.client_id
    page = test_client.get(f"/clients/{client_id}/edit").get_data(as_text=True)
    assert '<option selected value="ES256">' in page or '<option value="ES256" selected>' in page

    refused = test_client.post("/clients/new", data={
        "csrf_token": auth.csrf_token("/clients/new"), **form, "client_name": "Bad app",
        "id_token_signed_response_alg": "HS256"})
    assert refused.status_code == 400
    assert "Not a valid choice" in refused.get_data(as_text=True)
