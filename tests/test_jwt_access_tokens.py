"""APIs (resource servers) and RFC 9068 JWT access tokens requested with audience / resource."""

import time

import jwt
import pytest
import requests
from support.factories import PASSWORD, config_for
from support.flows import approve, authorize_url, get_user_token, pkce_pair
from support.pages import query_params

from website import create_app
from website.models import AuditEvent, db

API = "https://api.example.com/orders"
ISSUER = "http://127.0.0.1"  # OAUTH2_ISSUER in the tests' config


@pytest.fixture
def api(runner):
    result = runner.invoke(args=["create-api", "--identifier", API, "--name", "Orders API",
                                 "--scope", "read:orders", "--scope", "write:orders", "--lifetime", "600"])
    assert result.exit_code == 0, result.output
    return API


def allow(runner, client, identifier=API):
    """What an administrator does to let a client get tokens for an API."""
    result = runner.invoke(args=["grant-api", "--", identifier, client.client_id])
    assert result.exit_code == 0, result.output
    return client


@pytest.fixture
def m2m(make_client, runner, api):
    """A machine-to-machine client allowed the API and its scopes."""
    client, secret = make_client(grant_types=["client_credentials"], redirect_uris=[],
                                 scope="profile read:orders write:orders")
    return allow(runner, client), secret


def verify(live_server, token: str, audience=API, alg="RS256") -> dict:
    """Verify a JWT access token as an API would: with the JWKS, audience and issuer, and the one
    algorithm it expects (RS256 by default, as APIs written for Auth0 pin it)."""
    signing_key = jwt.PyJWKClient(f"{live_server}/.well-known/jwks.json").get_signing_key_from_jwt(token)
    return jwt.decode(token, signing_key.key, algorithms=[alg], audience=audience, issuer=ISSUER)


def test_code_flow_with_audience_gives_a_verifiable_jwt(live_server, test_client, auth, user, make_client, runner,
                                                         api):
    client, secret = make_client(scope="openid profile read:orders")
    allow(runner, client)
    auth.login()
    _, challenge = pkce_pair()
    consent_page = test_client.get(authorize_url(client, scope="openid profile read:orders", audience=API,
                                                 code_challenge=challenge, code_challenge_method="S256"))
    assert "Use Orders API on your behalf (read:orders)." in consent_page.get_data(as_text=True)
    token = get_user_token(test_client, client, secret, scope="openid profile read:orders", audience=API)
    assert jwt.get_unverified_header(token["access_token"])["typ"] == "at+jwt"
    claims = verify(live_server, token["access_token"])
    assert claims["sub"] == user.sub
    assert claims["client_id"] == client.client_id
    assert claims["scope"] == "openid profile read:orders"
    assert claims["jti"]
    assert claims["exp"] - claims["iat"] == 600  # the API's lifetime
    assert token["expires_in"] == 600
    # The id_token is still for the client.
    assert jwt.decode(token["id_token"], options={"verify_signature": False})["aud"] == client.client_id

    # The server keeps the token's hash: introspection and revocation work as for opaque tokens.
    body = test_client.post("/oauth/introspect", data={"token": token["access_token"]},
                            auth=(client.client_id, secret)).json
    assert body["active"] is True and body["aud"] == API
    # A token for the API is for that API only: this server's own resources refuse it
    # (RFC 8707 audience restriction; no token mix-up).
    for path in ("/api/me", "/userinfo"):
        refused = test_client.get(path, headers={"Authorization": f"Bearer {token['access_token']}"})
        assert refused.status_code == 401, path
    test_client.post("/oauth/revoke", data={"token": token["access_token"]}, auth=(client.client_id, secret))
    assert test_client.post("/oauth/introspect", data={"token": token["access_token"]},
                            auth=(client.client_id, secret)).json == {"active": False}

    # A refreshed access token is for the same API.
    refreshed = test_client.post("/oauth/token", data={"grant_type": "refresh_token",
                                                       "refresh_token": token["refresh_token"]},
                                 auth=(client.client_id, secret))
    assert refreshed.status_code == 200, refreshed.json
    assert verify(live_server, refreshed.json["access_token"])["aud"] == API


@pytest.mark.parametrize("parameter", ["resource", "audience"])
def test_client_credentials_with_resource_or_audience(live_server, m2m, parameter):
    client, secret = m2m
    response = requests.post(f"{live_server}/oauth/token", timeout=10, auth=(client.client_id, secret),
                             data={"grant_type": "client_credentials", parameter: API, "scope": "read:orders"})
    assert response.status_code == 200, response.json()
    claims = verify(live_server, response.json()["access_token"])
    assert claims["sub"] == client.client_id
    assert claims["scope"] == "read:orders"


def test_auth0_style_json_token_request_with_audience(live_server, make_client, runner, api):
    # Auth0's machine-to-machine call: the secret in a JSON body (client_secret_post).
    client, secret = make_client(grant_types=["client_credentials"], redirect_uris=[], scope="read:orders",
                                 token_endpoint_auth_method="client_secret_post")
    allow(runner, client)
    response = requests.post(f"{live_server}/oauth/token", timeout=10, json={
        "grant_type": "client_credentials", "client_id": client.client_id, "client_secret": secret,
        "audience": API})
    assert response.status_code == 200, response.json()
    assert verify(live_server, response.json()["access_token"])["client_id"] == client.client_id


def test_without_audience_tokens_stay_opaque(test_client, m2m):
    client, secret = m2m
    token = test_client.post("/oauth/token", data={"grant_type": "client_credentials", "scope": "profile"},
                             auth=(client.client_id, secret)).json["access_token"]
    with pytest.raises(jwt.DecodeError):
        jwt.get_unverified_header(token)


def test_unknown_audience_is_invalid_target_at_the_token_endpoint(test_client, m2m):
    client, secret = m2m
    for data in ({"audience": "https://unknown.example.com/"}, {"resource": API, "audience": "https://other/"}):
        response = test_client.post("/oauth/token", data={"grant_type": "client_credentials", **data},
                                    auth=(client.client_id, secret))
        assert response.status_code == 400
        assert response.json["error"] == "invalid_target"


def test_unknown_audience_is_sent_back_from_the_authorization_endpoint(test_client, auth, user, make_client, api):
    client, _ = make_client()
    auth.login()
    _, challenge = pkce_pair()
    response = test_client.get(authorize_url(client, audience="https://unknown.example.com/",
                                             code_challenge=challenge, code_challenge_method="S256"))
    assert response.status_code == 302
    params = query_params(response.headers["Location"])
    assert params["error"] == "invalid_target"
    assert params["state"] == "xyz"


def test_api_scopes_need_their_audience(test_client, m2m):
    client, secret = m2m
    response = test_client.post("/oauth/token", data={"grant_type": "client_credentials", "scope": "read:orders"},
                                auth=(client.client_id, secret))
    assert response.status_code == 400
    assert response.json["error"] == "invalid_scope"


def test_token_request_cannot_switch_the_api(test_client, auth, user, make_client, runner, api):
    runner.invoke(args=["create-api", "--identifier", "https://api.example.com/other", "--name", "Other"])
    client, secret = make_client(scope="openid profile read:orders")
    allow(runner, client)
    allow(runner, client, "https://api.example.com/other")
    auth.login()
    verifier, challenge = pkce_pair()
    url = authorize_url(client, audience=API, code_challenge=challenge, code_challenge_method="S256")
    response = test_client.get(url)
    assert response.status_code == 200  # the consent page
    code = query_params(approve(test_client, url).headers["Location"])["code"]
    response = test_client.post("/oauth/token", auth=(client.client_id, secret), data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": client.redirect_uris[0],
        "code_verifier": verifier, "resource": "https://api.example.com/other"})
    assert response.status_code == 400
    assert response.json["error"] == "invalid_target"


def test_jwt_still_verifies_after_key_rotation(live_server, runner, m2m):
    client, secret = m2m
    token = requests.post(f"{live_server}/oauth/token", timeout=10, auth=(client.client_id, secret),
                          data={"grant_type": "client_credentials", "audience": API}).json()["access_token"]
    result = runner.invoke(args=["rotate-keys"])
    assert result.exit_code == 0, result.output
    assert verify(live_server, token)["aud"] == API
    newer = requests.post(f"{live_server}/oauth/token", timeout=10, auth=(client.client_id, secret),
                          data={"grant_type": "client_credentials", "audience": API}).json()["access_token"]
    assert jwt.get_unverified_header(newer)["kid"] != jwt.get_unverified_header(token)["kid"]
    assert verify(live_server, newer)["exp"] > time.time()


def test_access_tokens_are_rs256_by_default_and_es256_when_configured(app, live_server, runner, m2m):
    """RS256 by default (what APIs written for Auth0 verify); under ACCESS_TOKEN_SIGNING_ALG=ES256
    they are signed with an EC key (cheap to sign) that the JWKS publishes beside the RSA key; a
    rotation retires both, and the next token gets a fresh EC key. id_tokens stay RS256."""
    client, secret = m2m

    def issue() -> str:
        return requests.post(f"{live_server}/oauth/token", timeout=10, auth=(client.client_id, secret),
                             data={"grant_type": "client_credentials", "audience": API}).json()["access_token"]

    assert jwt.get_unverified_header(issue())["alg"] == "RS256"
    app.config["ACCESS_TOKEN_SIGNING_ALG"] = "ES256"
    token = issue()
    assert jwt.get_unverified_header(token)["alg"] == "ES256"
    keys = requests.get(f"{live_server}/.well-known/jwks.json", timeout=10).json()["keys"]
    assert sorted((k["kty"], k["alg"]) for k in keys) == [("EC", "ES256"), ("RSA", "RS256")]
    assert issue() and jwt.get_unverified_header(issue())["kid"] == jwt.get_unverified_header(token)["kid"]
    assert runner.invoke(args=["rotate-keys"]).exit_code == 0
    newer = issue()
    assert jwt.get_unverified_header(newer)["kid"] != jwt.get_unverified_header(token)["kid"]
    assert verify(live_server, token, alg="ES256")["aud"] == API
    assert verify(live_server, newer, alg="ES256")["aud"] == API


def test_a_bad_access_token_signing_alg_is_a_configuration_error(database_url):
    with pytest.raises(SystemExit, match="ACCESS_TOKEN_SIGNING_ALG must be rs256 or es256"):
        create_app(config_for(database_url, ACCESS_TOKEN_SIGNING_ALG="HS256"))


def test_create_list_and_delete_apis(runner, api):
    listed = runner.invoke(args=["list-apis"])
    assert API in listed.output and "read:orders write:orders" in listed.output and "600s" in listed.output
    for args, message in [
        (["--identifier", API, "--name", "Again"], "already exists"),
        (["--identifier", "not a uri", "--name", "X"], "spaces"),
        (["--identifier", "https://[bad", "--name", "X"], "not a valid URI"),
        (["--identifier", "https://api.example.com/#x", "--name", "X"], "fragment"),
        (["--identifier", "https://x.example.com/", "--name", "X", "--scope", "profile"], "server's own scopes"),
        (["--identifier", "https://x.example.com/", "--name", "X", "--scope", 'bad"scope'], "not a valid scope"),
        (["--identifier", "https://x.example.com/", "--name", "X", "--lifetime", "5"], "--lifetime"),
    ]:
        result = runner.invoke(args=["create-api", *args])
        assert result.exit_code != 0, args
        assert message in result.output, (args, result.output)
    # Auth0-style plain identifiers work too (seed 001's AUDIENCE = 'your-api-audience').
    assert runner.invoke(args=["create-api", "--identifier", "your-api-audience", "--name", "Plain"]).exit_code == 0
    assert runner.invoke(args=["delete-api", "your-api-audience"]).exit_code == 0
    assert runner.invoke(args=["delete-api", API]).exit_code == 0
    assert runner.invoke(args=["list-apis"]).output.strip() == "No APIs registered."
    missing = runner.invoke(args=["delete-api", API])
    assert missing.exit_code != 0 and "No API" in missing.output


def test_a_client_not_registered_for_an_api_gets_no_token_for_it(test_client, make_client, api):
    # Any signed-up user can register a client; an API's scopes (and so its tokens) take an
    # administrator or the CLI.
    client, secret = make_client(grant_types=["client_credentials"], redirect_uris=[], scope="profile")
    response = test_client.post("/oauth/token", auth=(client.client_id, secret), data={
        "grant_type": "client_credentials", "audience": API, "scope": "read:orders"})
    assert response.status_code == 400
    assert response.json["error"] in ("invalid_target", "invalid_scope")


def test_an_api_cannot_be_added_when_the_code_is_exchanged(test_client, auth, user, make_client, runner, api):
    client, secret = make_client(scope="openid profile read:orders")
    allow(runner, client)
    auth.login()
    verifier, challenge = pkce_pair()
    url = authorize_url(client, scope="openid profile", code_challenge=challenge, code_challenge_method="S256")
    code = query_params(approve(test_client, url).headers["Location"])["code"]
    response = test_client.post("/oauth/token", auth=(client.client_id, secret), data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": client.redirect_uris[0],
        "code_verifier": verifier, "audience": API})
    assert response.status_code == 400
    assert response.json["error"] == "invalid_target"



OPEN_API = "https://open.example.com/"  # an API registered without any --scope


def client_credentials(test_client, client_id, secret, **data):
    return test_client.post("/oauth/token", auth=(client_id, secret),
                            data={"grant_type": "client_credentials", **data})


def test_an_api_without_scopes_gives_tokens_only_to_the_clients_it_allows(app, test_client, runner, user, auth,
                                                                         make_client):
    assert runner.invoke(args=["create-api", "--identifier", OPEN_API, "--name", "Open API"]).exit_code == 0
    # A self-service client (any signed-up user) and a dynamically registered one.
    own, own_secret = make_client(owner=user, grant_types=["client_credentials"], redirect_uris=[], scope="profile")
    initial = runner.invoke(args=["create-initial-access-token"]).output.strip()
    registered = test_client.post("/oauth/register", headers={"Authorization": f"Bearer {initial}"}, json={
        "client_name": "Registered", "grant_types": ["client_credentials"], "redirect_uris": [],
        "scope": "profile"})
    assert registered.status_code == 201, registered.json
    others = [(own.client_id, own_secret), (registered.json["client_id"], registered.json["client_secret"])]
    for client_id, secret in others:
        response = client_credentials(test_client, client_id, secret, audience=OPEN_API)
        assert response.status_code == 400, response.json
        assert response.json["error"] == "invalid_target"
    # The password grant and the authorization endpoint say the same.
    password_client, password_secret = make_client(grant_types=["password"], redirect_uris=[])
    response = test_client.post("/oauth/token", auth=(password_client.client_id, password_secret), data={
        "grant_type": "password", "username": user.username, "password": PASSWORD, "resource": OPEN_API})
    assert response.json["error"] == "invalid_target", response.json
    browser_client, _ = make_client()
    auth.login()
    _, challenge = pkce_pair()
    response = test_client.get(authorize_url(browser_client, audience=OPEN_API, code_challenge=challenge,
                                             code_challenge_method="S256"))
    assert response.status_code == 302
    assert query_params(response.headers["Location"])["error"] == "invalid_target"

    # The administrator's explicit grant lets that one client in, and only it.
    result = runner.invoke(args=["grant-api", "--", OPEN_API, own.client_id])
    assert result.exit_code == 0, result.output
    granted = client_credentials(test_client, own.client_id, own_secret, audience=OPEN_API)
    assert granted.status_code == 200, granted.json
    claims = jwt.decode(granted.json["access_token"], options={"verify_signature": False})
    assert claims["aud"] == OPEN_API and claims["client_id"] == own.client_id
    assert client_credentials(test_client, *others[1], audience=OPEN_API).json["error"] == "invalid_target"
    assert "allowed: " + own.client_id in runner.invoke(args=["list-apis"]).output

    # Revoking the grant stops the tokens issued for the API, and new ones.
    result = runner.invoke(args=["revoke-api", "--", OPEN_API, own.client_id])
    assert result.exit_code == 0, result.output
    assert test_client.post("/oauth/introspect", data={"token": granted.json["access_token"]},
                            auth=(own.client_id, own_secret)).json == {"active": False}
    assert client_credentials(test_client, own.client_id, own_secret, audience=OPEN_API).json["error"] == "invalid_target"
    with app.app_context():
        events = db.session.scalars(db.select(AuditEvent).where(AuditEvent.event.like("api_client_%"))
                                    .order_by(AuditEvent.id)).all()
        assert [(e.event, e.client_id, e.detail["api"]) for e in events] == [
            ("api_client_granted", own.client_id, OPEN_API), ("api_client_revoked", own.client_id, OPEN_API)]


def test_grant_and_revoke_api_refuse_unknown_names(runner, make_client, api):
    client, _ = make_client()
    for args, message in [
        (["grant-api", "--", "https://nope.example.com/", client.client_id], "No API"),
        (["grant-api", "--", API, "no-such-client"], "No client"),
        (["revoke-api", "--", API, client.client_id], "is not allowed"),
        (["create-api", "--identifier", "https://x.example.com/", "--name", "X", "--allow-client", "nope"],
         "No client"),
    ]:
        result = runner.invoke(args=args)
        assert result.exit_code != 0 and message in result.output, (args, result.output)
    assert runner.invoke(args=["grant-api", "--", API, client.client_id]).exit_code == 0
    assert "already" in runner.invoke(args=["grant-api", "--", API, client.client_id]).output
    # Deleting the API (or the client) takes its grants with it.
    assert runner.invoke(args=["delete-api", API]).exit_code == 0
