"""The provider's documents and endpoints: discovery (validated with Authlib's metadata
classes), UserInfo, JSON token requests, and registering clients for OIDC response types."""

import pytest
import requests
from authlib.oauth2 import rfc8414, rfc9207
from authlib.oidc.discovery import OpenIDProviderMetadata
from support.factories import PASSWORD
from support.oidc import CALLBACK, code_flow_tokens

from website.oauth2.client_metadata import AUTH_METHODS, RESPONSE_TYPE_GRANTS, validate_client_metadata
from website.models import OAuth2Client, db


@pytest.fixture
def https_issuer(app_config):
    app_config["OAUTH2_ISSUER"] = "https://idp.example.com/"
    return app_config["OAUTH2_ISSUER"]


def test_discovery_validates_and_every_endpoint_exists(https_issuer, app, test_client):
    response = test_client.get("/.well-known/openid-configuration")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "public, max-age=3600"
    doc = response.json
    OpenIDProviderMetadata(doc).validate(metadata_classes=[rfc9207.AuthorizationServerMetadata])
    rfc8414.AuthorizationServerMetadata(doc).validate()
    assert doc["issuer"] == "https://idp.example.com/"
    assert doc["authorization_endpoint"] == "https://idp.example.com/oauth/authorize"
    assert doc["token_endpoint"] == "https://idp.example.com/oauth/token"
    assert doc["userinfo_endpoint"] == "https://idp.example.com/oauth/userinfo"
    assert doc["jwks_uri"] == "https://idp.example.com/.well-known/jwks.json"
    assert doc["revocation_endpoint"] == "https://idp.example.com/oauth/revoke"
    assert test_client.get("/.well-known/oauth-authorization-server").json == doc
    # Every advertised endpoint is served here.
    adapter = app.url_map.bind("idp.example.com")
    for name, url in doc.items():
        if name.endswith("_endpoint") or name == "jwks_uri":
            path = url.removeprefix("https://idp.example.com")
            method = "GET" if name in ("authorization_endpoint", "jwks_uri", "userinfo_endpoint") else "POST"
            adapter.match(path, method=method)


def test_discovery_lists_only_what_the_server_accepts(https_issuer, test_client, app):
    doc = test_client.get("/.well-known/openid-configuration").json
    assert set(doc["response_types_supported"]) == set(RESPONSE_TYPE_GRANTS)
    assert set(doc["token_endpoint_auth_methods_supported"]) == set(AUTH_METHODS)
    assert doc["id_token_signing_alg_values_supported"] == ["RS256", "ES256", "EdDSA"]
    assert doc["authorization_response_iss_parameter_supported"] is True
    # Request objects by value (and pushed); a request_uri on another server is never
    # fetched, and without this entry clients would assume it is (its default is true).
    assert doc["request_parameter_supported"] is True
    assert doc["request_object_signing_alg_values_supported"] == ["RS256", "PS256", "ES256", "Ed25519", "none"]
    assert doc["request_uri_parameter_supported"] is False
    assert doc["scopes_supported"] == app.config["OAUTH2_SCOPES_SUPPORTED"].split()
    # Every listed grant and response type can be registered by a client.
    with app.test_request_context():
        metadata = validate_client_metadata({
            "client_name": "All", "redirect_uris": ["https://app.example.com/cb"],
            "grant_types": doc["grant_types_supported"], "response_types": doc["response_types_supported"],
        })
    assert metadata["response_types"] == doc["response_types_supported"]


@pytest.fixture
def no_issuer(app_config):
    app_config["OAUTH2_ISSUER"] = None


def test_issuer_defaults_to_the_request_url(no_issuer, test_client):
    url = "/.well-known/openid-configuration"
    doc = test_client.get(url, base_url="https://login.example.org").json
    assert doc["issuer"] == "https://login.example.org/"
    assert doc["token_endpoint"] == "https://login.example.org/oauth/token"
    assert test_client.get(url, base_url="https://idp.example.net").json["issuer"] == "https://idp.example.net/"


def test_userinfo_errors(idp, user, make_client):
    client, secret = make_client(redirect_uris=[CALLBACK])
    missing = requests.get(idp + "/userinfo")
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"].lower().startswith("bearer")
    assert missing.json()["error"] == "invalid_token"  # as /api/me; no error code in the challenge
    bad = requests.get(idp + "/userinfo", headers={"Authorization": "Bearer not-a-token"})
    assert bad.status_code == 401
    assert bad.json()["error"] == "invalid_token"
    # A token without the openid scope cannot read UserInfo.
    token = code_flow_tokens(idp, client, secret, scope="profile")
    assert "id_token" not in token
    no_openid = requests.get(idp + "/userinfo", headers={"Authorization": f"Bearer {token['access_token']}"})
    assert no_openid.status_code == 403
    assert no_openid.json()["error"] == "insufficient_scope"


def test_userinfo_by_post_releases_only_the_token_scopes(idp, user, make_client):
    client, secret = make_client(redirect_uris=[CALLBACK])
    token = code_flow_tokens(idp, client, secret, scope="openid email")
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    response = requests.post(idp + "/oauth/userinfo", headers=headers)
    assert response.status_code == 200
    assert response.json() == {"sub": user.sub, "email": "alice@example.com", "email_verified": False}


def test_userinfo_refuses_a_client_token(idp, make_client):
    client, secret = make_client(grant_types=["client_credentials"], redirect_uris=[])
    token = requests.post(idp + "/oauth/token", data={"grant_type": "client_credentials", "scope": "openid"},
                          auth=(client.client_id, secret)).json()
    response = requests.get(idp + "/userinfo", headers={"Authorization": f"Bearer {token['access_token']}"})
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"


@pytest.mark.parametrize("body", ['["grant_type"]', '{"grant_type": 1}', '{"grant_type":'])
def test_bad_json_token_request_is_invalid_request(test_client, body):
    response = test_client.post("/oauth/token", data=body, content_type="application/json")
    assert response.status_code == 400
    assert response.json["error"] == "invalid_request"


def test_json_token_request_with_wrong_secret_is_invalid_client(test_client, make_client):
    client, _ = make_client(token_endpoint_auth_method="client_secret_post")
    response = test_client.post("/oauth/token", json={
        "grant_type": "authorization_code", "code": "x", "client_id": client.client_id,
        "client_secret": "wrong", "redirect_uri": CALLBACK})
    assert response.status_code in (400, 401)
    assert response.json["error"] == "invalid_client"


# Registering clients for OpenID Connect response types ----------------------------------


def test_cli_registers_oidc_response_types(runner):
    result = runner.invoke(args=[
        "create-client", "--name", "SPA", "--redirect-uri", "https://spa.example.com/cb",
        "--grant-type", "authorization_code", "--grant-type", "implicit",
        "--response-type", "code id_token", "--response-type", "token id_token", "--json"])
    assert result.exit_code == 0, result.output
    assert '"response_types": ["code id_token", "id_token token"]' in result.output


@pytest.mark.parametrize("response_type, message", [
    ("code id_token", "needs the grant types: authorization_code, implicit"),
    ("id_token code_verifier", "Unsupported response type"),
])
def test_cli_refuses_response_types_it_cannot_serve(runner, response_type, message):
    result = runner.invoke(args=[
        "create-client", "--name", "App", "--redirect-uri", "https://app.example.com/cb",
        "--response-type", response_type])
    assert result.exit_code != 0
    assert message in result.output


def test_client_form_registers_response_types(test_client, auth, user):
    auth.login()
    token = auth.csrf_token("/clients/new")
    response = test_client.post("/clients/new", data={
        "csrf_token": token, "client_name": "Hybrid app", "redirect_uris": "https://app.example.com/cb",
        "grant_types": ["authorization_code", "implicit"], "response_types": ["code id_token", "id_token"],
        "token_endpoint_auth_method": "client_secret_basic"}, follow_redirects=True)
    assert response.status_code == 200  # the one-time secret page, after a 303
    assert "code id_token, id_token" in response.get_data(as_text=True)
    refused = test_client.post("/clients/new", data={
        "csrf_token": token, "client_name": "Code app", "redirect_uris": "https://app.example.com/cb",
        "grant_types": ["authorization_code"], "response_types": ["id_token token"],
        "token_endpoint_auth_method": "client_secret_basic"})
    assert refused.status_code == 400
    assert "needs the grant types: implicit" in refused.get_data(as_text=True)


def test_create_user_with_a_name_sets_the_name_claim(runner, make_client, idp):
    result = runner.invoke(args=["create-user", "carol", "--password", PASSWORD, "--name", "Carol Q. Public",
                                 "--email", "carol@example.com"])
    assert result.exit_code == 0, result.output
    client, secret = make_client(redirect_uris=[CALLBACK])
    token = code_flow_tokens(idp, client, secret, username="carol", scope="openid profile")
    userinfo = requests.get(idp + "/userinfo", headers={"Authorization": f"Bearer {token['access_token']}"})
    assert userinfo.json()["name"] == "Carol Q. Public"
    assert userinfo.json()["preferred_username"] == "carol"


def test_userinfo_stays_json_whatever_the_client_metadata_says(app, idp, user, make_client):
    client, secret = make_client(redirect_uris=[CALLBACK])
    with app.app_context():  # as dynamic registration could store it
        row = db.session.get(OAuth2Client, client.id)
        row.extra_metadata = {"userinfo_signed_response_alg": "HS256"}
        db.session.commit()
    token = code_flow_tokens(idp, client, secret)
    response = requests.get(idp + "/userinfo", headers={"Authorization": f"Bearer {token['access_token']}"})
    assert response.status_code == 200
    assert response.json()["sub"] == user.sub
