"""Browser apps calling the provider from script (CORS), the provider's own cookie name, and
``token_type`` spelled ``Bearer`` by every grant."""

import json

import pytest
from support.factories import PASSWORD
from support.flows import approve, authorize_url, bearer, get_code, pkce_pair, redeem
from support.pages import csrf_token, query_params
from test_jwt_access_tokens import API, allow

from website import create_app
from website.config import from_environment
from website.models import db

SPA = "https://spa.example.com"
OTHER = "https://other.example.com"  # listed in the client's allowed_origins
EVIL = "https://evil.example.com"


@pytest.fixture
def spa(make_client):
    """A single-page app: a public client whose redirect URI is on its own site."""
    client, _ = make_client(redirect_uris=[f"{SPA}/callback"], token_endpoint_auth_method="none",
                            allowed_origins=[OTHER])
    return client


def origin(value: str) -> dict:
    return {"Origin": value}


def assert_no_credentials(response):
    assert "Access-Control-Allow-Credentials" not in response.headers


@pytest.mark.parametrize("path, methods, cors", [
    ("/oauth/token", {"POST"}, "client"),
    ("/oauth/revoke", {"POST"}, "client"),
    ("/oauth/introspect", {"POST"}, "client"),
    ("/userinfo", {"GET", "POST"}, "client"),
    ("/oauth/userinfo", {"GET", "POST"}, "client"),
    ("/.well-known/openid-configuration", {"GET"}, "any"),
    ("/.well-known/jwks.json", {"GET"}, "any"),
])
def test_preflight_answers_204_with_methods_and_headers(test_client, path, methods, cors):
    response = test_client.options(path, headers={
        "Origin": SPA, "Access-Control-Request-Method": sorted(methods)[-1],
        "Access-Control-Request-Headers": "authorization, content-type, dpop"})
    assert response.status_code == 204
    assert set(response.headers["Access-Control-Allow-Methods"].split(", ")) == methods
    assert response.headers["Access-Control-Allow-Headers"] == "authorization, content-type, dpop"
    assert int(response.headers["Access-Control-Max-Age"]) > 0
    assert response.headers["Access-Control-Allow-Origin"] == ("*" if cors == "any" else SPA)
    assert_no_credentials(response)
    assert response.get_data() == b""


def test_pages_and_the_authorization_endpoint_answer_no_cors(test_client):
    for path in ("/oauth/authorize", "/login"):
        response = test_client.options(path, headers={"Origin": SPA, "Access-Control-Request-Method": "POST"})
        assert response.status_code != 204
        assert "Access-Control-Allow-Origin" not in response.headers


@pytest.mark.parametrize("path", ["/.well-known/openid-configuration", "/.well-known/oauth-authorization-server",
                                  "/.well-known/jwks.json"])
def test_discovery_and_jwks_allow_any_origin(test_client, path):
    response = test_client.get(path, headers=origin("https://anything.example.net"))
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert_no_credentials(response)


@pytest.mark.parametrize("allowed", [SPA, OTHER], ids=["redirect-uri-origin", "allowed-origins-list"])
def test_token_endpoint_allows_the_clients_origins(test_client, auth, user, spa, allowed):
    auth.login()
    code, verifier = get_code(test_client, spa)
    data = {"grant_type": "authorization_code", "code": code, "client_id": spa.client_id,
            "redirect_uri": spa.redirect_uris[0], "code_verifier": verifier}
    response = test_client.post("/oauth/token", data=data, headers=origin(allowed))
    assert response.status_code == 200, response.json
    assert response.headers["Access-Control-Allow-Origin"] == allowed
    assert "Origin" in response.headers["Vary"]
    assert "WWW-Authenticate" in response.headers["Access-Control-Expose-Headers"]
    assert_no_credentials(response)


def test_an_error_for_an_allowed_origin_is_readable_by_the_app(test_client, spa):
    response = test_client.post("/oauth/token", headers=origin(SPA), data={
        "grant_type": "authorization_code", "code": "no-such-code", "client_id": spa.client_id,
        "redirect_uri": spa.redirect_uris[0], "code_verifier": "x" * 43})
    assert response.status_code == 400
    assert response.json["error"] == "invalid_grant"
    assert response.headers["Access-Control-Allow-Origin"] == SPA


@pytest.mark.parametrize("sent", [EVIL, "null", "https://spa.example.com:8443", "http://spa.example.com",
                                  "https://spa.example.com/callback"])
def test_another_origin_gets_no_cors_and_does_not_spend_the_code(test_client, auth, user, spa, sent):
    auth.login()
    code, verifier = get_code(test_client, spa)
    response = test_client.post("/oauth/token", headers=origin(sent), data={
        "grant_type": "authorization_code", "code": code, "client_id": spa.client_id,
        "redirect_uri": spa.redirect_uris[0], "code_verifier": verifier})
    assert response.status_code == 400
    assert response.json["error"] == "invalid_request"
    assert "Origin" in response.json["error_description"]
    assert "Access-Control-Allow-Origin" not in response.headers
    # The code was not used: the app's own request (no Origin, as from its server) redeems it.
    assert redeem(test_client, spa, code, verifier).status_code == 200


def test_a_confidential_client_with_basic_is_checked_too(test_client, auth, user, make_client):
    client, secret = make_client()  # redirect URI on https://app.example.com
    auth.login()
    code, verifier = get_code(test_client, client)
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": client.redirect_uris[0],
            "code_verifier": verifier}
    refused = test_client.post("/oauth/token", data=data, auth=(client.client_id, secret), headers=origin(EVIL))
    assert refused.status_code == 400
    assert "Access-Control-Allow-Origin" not in refused.headers
    allowed = test_client.post("/oauth/token", data=data, auth=(client.client_id, secret),
                               headers=origin("https://app.example.com"))
    assert allowed.status_code == 200
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://app.example.com"


def test_a_server_side_request_gets_no_cors_header(test_client, auth, user, spa):
    auth.login()
    code, verifier = get_code(test_client, spa)
    response = redeem(test_client, spa, code, verifier)
    assert response.status_code == 200
    assert "Access-Control-Allow-Origin" not in response.headers


def spa_tokens(test_client, auth, spa) -> dict:
    auth.login()
    code, verifier = get_code(test_client, spa, scope="openid profile")
    response = redeem(test_client, spa, code, verifier)
    assert response.status_code == 200, response.json
    return response.json


def test_revocation_from_another_origin_revokes_nothing(test_client, auth, user, spa):
    tokens = spa_tokens(test_client, auth, spa)
    data = {"token": tokens["access_token"], "client_id": spa.client_id}
    refused = test_client.post("/oauth/revoke", data=data, headers=origin(EVIL))
    assert refused.status_code == 400
    assert "Access-Control-Allow-Origin" not in refused.headers
    assert test_client.get("/api/me", headers=bearer(tokens["access_token"])).status_code == 200
    revoked = test_client.post("/oauth/revoke", data=data, headers=origin(SPA))
    assert revoked.status_code == 200
    assert revoked.headers["Access-Control-Allow-Origin"] == SPA
    assert_no_credentials(revoked)
    assert test_client.get("/api/me", headers=bearer(tokens["access_token"])).status_code == 401


def test_userinfo_cors_follows_the_tokens_client(test_client, auth, user, spa, make_client):
    tokens = spa_tokens(test_client, auth, spa)
    make_client(redirect_uris=[f"{EVIL}/callback"])  # another client's origin is not the token's
    for allowed in (SPA, OTHER):
        response = test_client.get("/userinfo", headers={**bearer(tokens["access_token"]), **origin(allowed)})
        assert response.status_code == 200
        assert response.headers["Access-Control-Allow-Origin"] == allowed
        assert "Origin" in response.headers["Vary"]
        assert_no_credentials(response)
    response = test_client.get("/userinfo", headers={**bearer(tokens["access_token"]), **origin(EVIL)})
    assert "Access-Control-Allow-Origin" not in response.headers


# Where allowed origins are registered: the form, the CLI and dynamic registration.

def test_cli_create_client_takes_allowed_origins(app, runner):
    result = runner.invoke(args=["create-client", "--name", "SPA", "--redirect-uri", f"{SPA}/callback",
                                 "--auth-method", "none", "--allowed-origin", "HTTPS://Other.Example.com:443/",
                                 "--allowed-origin", "http://localhost:3000", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["allowed_origins"] == [OTHER, "http://localhost:3000"]


@pytest.mark.parametrize("bad", ["*", "https://*.example.com", "https://app.example.com/path", "ftp://example.com",
                                 "http://app.example.com", "https://user@app.example.com", "app.example.com",
                                 "https://app.example.com?x=1", "https://app.example.com:99999"])
def test_cli_refuses_what_is_not_an_origin(runner, bad):
    result = runner.invoke(args=["create-client", "--name", "SPA", "--redirect-uri", f"{SPA}/callback",
                                 "--allowed-origin", bad])
    assert result.exit_code != 0
    assert "allowed_origins" in result.output


def test_dynamic_registration_takes_allowed_origins(app, test_client):
    app.config["OAUTH2_OPEN_REGISTRATION"] = True
    metadata = {"client_name": "SPA", "redirect_uris": [f"{SPA}/callback"], "token_endpoint_auth_method": "none",
                "allowed_origins": [OTHER]}
    response = test_client.post("/oauth/register", json=metadata)
    assert response.status_code == 201, response.json
    assert response.json["allowed_origins"] == [OTHER]
    refused = test_client.post("/oauth/register", json={**metadata, "allowed_origins": ["https://x.example/a"]})
    assert refused.status_code == 400
    assert refused.json["error"] == "invalid_client_metadata"


def test_the_client_form_takes_allowed_origins(app, test_client, auth, user):
    auth.login()
    page = test_client.get("/clients/new").get_data(as_text=True)
    assert 'name="allowed_origins"' in page
    token = csrf_token(page)
    form = {"client_name": "SPA", "redirect_uris": f"{SPA}/callback", "grant_types": ["authorization_code"],
            "scope": "openid", "token_endpoint_auth_method": "none", "csrf_token": token}
    bad = test_client.post("/clients/new", data={**form, "allowed_origins": "https://x.example/path"})
    assert bad.status_code == 400
    assert 'id="allowed_origins-error">https://x.example/path is not an origin' in bad.get_data(as_text=True)
    response = test_client.post("/clients/new", data={**form, "allowed_origins": f"{OTHER}\nhttp://127.0.0.1:5173"},
                                follow_redirects=True)
    html = response.get_data(as_text=True)
    assert "Allowed web origins" in html
    assert f"<code>{OTHER}</code>" in html and "<code>http://127.0.0.1:5173</code>" in html


# The cookie and token_type.

def test_the_session_cookie_is_named_for_the_provider(auth, user):
    response = auth.login()
    assert response.headers["Set-Cookie"].startswith("idp_session=")


def test_the_session_cookie_name_is_configurable(app_config, database_url):
    app = create_app({**app_config, "SESSION_COOKIE_NAME": "sso"})
    response = app.test_client().get("/login")  # the CSRF token starts a session
    assert response.headers["Set-Cookie"].startswith("sso=")
    with app.app_context():
        db.engine.dispose()
    assert from_environment({"SESSION_COOKIE_NAME": "sso"})["SESSION_COOKIE_NAME"] == "sso"


def test_every_grant_says_token_type_bearer(test_client, auth, user, make_client, runner):
    assert runner.invoke(args=["create-api", "--identifier", API, "--name", "Orders API",
                               "--scope", "read:orders"]).exit_code == 0
    client, secret = make_client(
        grant_types=["authorization_code", "refresh_token", "client_credentials", "password", "implicit"],
        response_types=["code", "token", "id_token token", "code id_token token"],
        scope="openid profile offline_access read:orders")
    allow(runner, client)
    basic = (client.client_id, secret)
    seen = {}

    auth.login()
    code, verifier = get_code(test_client, client, scope="openid profile offline_access")
    tokens = redeem(test_client, client, code, verifier, secret).json
    seen["authorization_code"] = tokens["token_type"]
    seen["refresh_token"] = test_client.post("/oauth/token", auth=basic, data={
        "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}).json["token_type"]
    seen["client_credentials"] = test_client.post("/oauth/token", auth=basic, data={
        "grant_type": "client_credentials", "scope": "profile"}).json["token_type"]
    seen["password"] = test_client.post("/oauth/token", auth=basic, data={
        "grant_type": "password", "username": "alice", "password": PASSWORD, "scope": "profile"}).json["token_type"]
    seen["jwt_for_an_api"] = test_client.post("/oauth/token", auth=basic, data={
        "grant_type": "client_credentials", "audience": API, "scope": "read:orders"}).json["token_type"]
    for response_type in ("token", "id_token token", "code id_token token"):
        _, challenge = pkce_pair()
        url = authorize_url(client, response_type=response_type, scope="openid profile", nonce="n",
                            code_challenge=challenge, code_challenge_method="S256")
        seen[response_type] = query_params(approve(test_client, url).headers["Location"])["token_type"]
    assert seen == dict.fromkeys(seen, "Bearer")
    assert len(seen) == 8
