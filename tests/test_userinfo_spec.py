"""UserInfo as the specs say (OIDC Core §5.3, RFC 6750 §2-3): GET or POST, the token in the
Authorization header or a form POST body (what pyoidc sends by default), never in the URL;
a request with no credentials gets a bare ``Bearer`` challenge (and DPoP's); a client that registered
``userinfo_signed_response_alg`` gets a JWT signed with the server's keys."""

import jwt
import pytest
import requests
from support.oidc import CALLBACK, code_flow_tokens

from website.models import OAuth2Client, db
from website.oauth2.dpop import DPOP_SIGNING_ALGS

#: What a 401 also says with DPoP on: the scheme and its algorithms (RFC 9449 §7.1).
DPOP_CHALLENGE = f'DPoP algs="{" ".join(DPOP_SIGNING_ALGS)}"'


@pytest.fixture
def tokens(idp, user, make_client):
    client, secret = make_client(redirect_uris=[CALLBACK])
    return code_flow_tokens(idp, client, secret, scope="openid email")


def claims_of(user) -> dict:
    return {"sub": user.sub, "email": "alice@example.com", "email_verified": False}


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_token_in_the_authorization_header(idp, user, tokens, method):
    response = requests.request(method, idp + "/userinfo",
                                headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == claims_of(user)


def test_token_in_a_form_post_body_as_pyoidc_sends_it(idp, user, tokens):
    # pyoidc's default UserInfo request: POST, access_token in the form body (RFC 6750 §2.2).
    response = requests.post(idp + "/oauth/userinfo", data={"access_token": tokens["access_token"]})
    assert response.status_code == 200, response.text
    assert response.json() == claims_of(user)


def test_bad_token_in_the_body_is_invalid_token(idp, tokens):
    response = requests.post(idp + "/userinfo", data={"access_token": "not-a-token"})
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_token_in_header_and_body_is_invalid_request(idp, tokens):
    response = requests.post(idp + "/userinfo", data={"access_token": tokens["access_token"]},
                             headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert response.headers["WWW-Authenticate"].startswith('Bearer error="invalid_request"')


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_token_in_the_query_string_is_refused(idp, tokens, method):
    # RFC 6750 §2.3: URLs end up in logs and histories; this server does not take tokens there.
    response = requests.request(method, idp + "/userinfo", params={"access_token": tokens["access_token"]})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert "sub" not in response.json()


def test_token_in_a_get_body_is_not_read(idp, tokens):
    # §2.2: the body method is for POST only.
    response = requests.get(idp + "/userinfo", data={"access_token": tokens["access_token"]})
    assert response.status_code == 401
    # A bare Bearer challenge, and DPoP's with its algorithms (RFC 9449 §7.1).
    assert response.raw.headers.getlist("WWW-Authenticate") == ["Bearer", DPOP_CHALLENGE]


@pytest.mark.parametrize("method, body", [("GET", None), ("POST", None), ("POST", {"other": "x"})])
def test_no_credentials_is_a_bare_bearer_challenge(idp, method, body):
    # RFC 6750 §3.1: without any authentication information, no error code in the challenge.
    response = requests.request(method, idp + "/userinfo", data=body)
    assert response.status_code == 401
    # A bare Bearer challenge, and DPoP's with its algorithms (RFC 9449 §7.1).
    assert response.raw.headers.getlist("WWW-Authenticate") == ["Bearer", DPOP_CHALLENGE]
    assert response.json()["error_description"]


def test_discovery_lists_the_userinfo_signing_algorithm(test_client):
    doc = test_client.get("/.well-known/openid-configuration").json
    assert doc["userinfo_signing_alg_values_supported"] == ["RS256", "ES256", "EdDSA"]


@pytest.mark.parametrize("via_body", [False, True])
def test_signed_userinfo_verifies_against_the_jwks(idp, user, make_client, via_body):
    client, secret = make_client(redirect_uris=[CALLBACK], userinfo_signed_response_alg="RS256")
    tokens = code_flow_tokens(idp, client, secret, scope="openid email")
    if via_body:
        response = requests.post(idp + "/userinfo", data={"access_token": tokens["access_token"]})
    else:
        headers = {"Authorization": f"Bearer {tokens['access_token']}"}
        response = requests.get(idp + "/userinfo", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/jwt"
    assert response.headers["Cache-Control"] == "no-store"
    signed = response.text
    assert jwt.get_unverified_header(signed)["kid"]
    key = jwt.PyJWKClient(idp + "/.well-known/jwks.json").get_signing_key_from_jwt(signed)
    claims = jwt.decode(signed, key.key, algorithms=["RS256"], audience=client.client_id, issuer=idp + "/")
    assert claims == {**claims_of(user), "iss": idp + "/", "aud": client.client_id}


def test_clients_register_only_algorithms_the_server_signs_with(app, test_client):
    app.config["OAUTH2_OPEN_REGISTRATION"] = True
    for alg in ("none", "HS256", ["RS256"]):
        response = test_client.post("/oauth/register", json={
            "client_name": "App", "redirect_uris": [CALLBACK], "userinfo_signed_response_alg": alg})
        assert response.status_code == 400, alg
        assert response.json["error"] == "invalid_client_metadata"
    response = test_client.post("/oauth/register", json={
        "client_name": "App", "redirect_uris": [CALLBACK], "userinfo_signed_response_alg": "RS256"})
    assert response.status_code == 201, response.json
    assert response.json["userinfo_signed_response_alg"] == "RS256"


def test_cli_registers_signed_userinfo(app, runner):
    result = runner.invoke(args=["create-client", "--name", "RP", "--redirect-uri", CALLBACK,
                                 "--userinfo-signed-response-alg", "RS256", "--json"])
    assert result.exit_code == 0, result.output
    assert '"userinfo_signed_response_alg": "RS256"' in result.output
    refused = runner.invoke(args=["create-client", "--name", "RP", "--redirect-uri", CALLBACK,
                                  "--userinfo-signed-response-alg", "HS256"])
    assert refused.exit_code != 0


def test_client_form_keeps_signed_userinfo(app, test_client, auth, user):
    auth.login()
    token = auth.csrf_token("/clients/new")
    response = test_client.post("/clients/new", data={
        "csrf_token": token, "client_name": "Signed app", "redirect_uris": "https://app.example.com/cb",
        "grant_types": ["authorization_code"], "token_endpoint_auth_method": "client_secret_basic",
        "userinfo_signed_response_alg": "RS256"})
    assert response.status_code == 303, response.get_data(as_text=True)[:500]  # to the one-time secret page
    with app.app_context():
        client = db.session.scalar(db.select(OAuth2Client).where(OAuth2Client.client_name == "Signed app"))
        assert client.client_metadata["userinfo_signed_response_alg"] == "RS256"
