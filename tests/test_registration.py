"""Dynamic client registration (RFC 7591) and client management (RFC 7592)."""

import time

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.flows import get_user_token

from website.models import InitialAccessToken, OAuth2Client, RegistrationAccessToken, db, hash_secret

METADATA = {
    "client_name": "Registered App",
    "redirect_uris": ["https://app.example.com/callback"],
    "post_logout_redirect_uris": ["https://app.example.com/bye"],
    "grant_types": ["authorization_code", "refresh_token"],
    "scope": "openid profile",
}


@pytest.fixture
def initial_token(runner):
    result = runner.invoke(args=["create-initial-access-token"])
    assert result.exit_code == 0, result.output
    return result.output.strip()


def register(test_client, metadata=None, token=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return test_client.post("/oauth/register", json=metadata if metadata is not None else METADATA,
                            headers=headers)


def test_register_with_initial_access_token(app, test_client, initial_token):
    response = register(test_client, token=initial_token)
    assert response.status_code == 201, response.json
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json
    assert body["client_name"] == "Registered App"
    assert body["redirect_uris"] == ["https://app.example.com/callback"]
    assert body["post_logout_redirect_uris"] == ["https://app.example.com/bye"]
    assert body["token_endpoint_auth_method"] == "client_secret_basic"
    assert body["response_types"] == ["code"]
    assert body["client_secret"] and body["client_secret_expires_at"] == 0
    assert body["registration_client_uri"] == f"http://127.0.0.1/oauth/register/{body['client_id']}"
    with app.app_context():
        client = db.session.scalar(db.select(OAuth2Client).where(OAuth2Client.client_id == body["client_id"]))
        # Only hashes are stored: the secret and the registration token are seen once.
        assert client.check_client_secret(body["client_secret"])
        assert client.client_secret_hash != body["client_secret"]
        token = db.session.scalar(db.select(RegistrationAccessToken))
        assert token.token_hash == hash_secret(body["registration_access_token"])
        assert db.session.scalar(db.select(InitialAccessToken)).token_hash == hash_secret(initial_token)


def test_registered_client_can_sign_users_in(test_client, auth, user, initial_token):
    body = register(test_client, token=initial_token).json
    client = OAuth2Client(client_id=body["client_id"], redirect_uris=body["redirect_uris"])
    auth.login()
    token = get_user_token(test_client, client, body["client_secret"])
    me = test_client.get("/api/me", headers={"Authorization": f"Bearer {token['access_token']}"})
    assert me.json["username"] == "alice"


def test_public_client_gets_no_secret(test_client, initial_token):
    body = register(test_client, {**METADATA, "token_endpoint_auth_method": "none"}, initial_token).json
    assert "client_secret" not in body
    assert body["token_endpoint_auth_method"] == "none"


@pytest.mark.parametrize("token", [None, "not-a-token"])
def test_registration_without_a_valid_initial_token_is_refused(app, test_client, token):
    response = register(test_client, token=token)
    assert response.status_code == 401
    assert response.json["error"] == "invalid_token"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count(OAuth2Client.id))) == 0


def test_expired_initial_token_is_refused(app, test_client, runner):
    token = runner.invoke(args=["create-initial-access-token", "--expires-in", "60"]).output.strip()
    assert register(test_client, token=token).status_code == 201
    with app.app_context():
        db.session.scalar(db.select(InitialAccessToken)).expires_at = int(time.time()) - 1
        db.session.commit()
    assert register(test_client, token=token).status_code == 401


def test_cli_refuses_a_bad_lifetime(runner):
    result = runner.invoke(args=["create-initial-access-token", "--expires-in", "0"])
    assert result.exit_code != 0
    assert "--expires-in" in result.output


def test_open_registration_needs_no_token(app, test_client):
    # The setting is read on each request.
    app.config["OAUTH2_OPEN_REGISTRATION"] = True
    assert register(test_client).status_code == 201


@pytest.mark.parametrize(
    "change, error",
    [
        ({"redirect_uris": ["https://app.example.com/callback#frag"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["javascript:alert(1)"]}, "invalid_redirect_uri"),
        ({"redirect_uris": []}, "invalid_redirect_uri"),
        ({"post_logout_redirect_uris": ["https://app.example.com/bye#x"]}, "invalid_client_metadata"),
        ({"post_logout_redirect_uris": "http://evil.example.com/"}, "invalid_client_metadata"),
        ({"grant_types": ["urn:unknown"]}, "invalid_client_metadata"),
        ({"token_endpoint_auth_method": "private_key_jwt"}, "invalid_client_metadata"),
        ({"scope": "admin"}, "invalid_client_metadata"),
        ({"client_name": ""}, "invalid_client_metadata"),
        ({"client_name": 42}, "invalid_client_metadata"),
        ({"contacts": "not an email"}, "invalid_client_metadata"),
        ({"token_endpoint_auth_method": "none", "grant_types": ["client_credentials"]}, "invalid_client_metadata"),
    ],
)
def test_invalid_metadata_is_refused(app, test_client, initial_token, change, error):
    response = register(test_client, {**METADATA, **change}, initial_token)
    assert response.status_code == 400
    assert response.json["error"] == error
    assert response.json["error_description"]
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count(OAuth2Client.id))) == 0


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'"text"'])
def test_a_body_that_is_not_a_json_object_is_refused(test_client, initial_token, body):
    response = test_client.post("/oauth/register", data=body, content_type="application/json",
                                headers={"Authorization": f"Bearer {initial_token}"})
    assert response.status_code == 400
    assert response.json["error"] == "invalid_client_metadata"
    form = test_client.post("/oauth/register", data={"client_name": "x"},
                            headers={"Authorization": f"Bearer {initial_token}"})
    assert form.status_code == 400
    assert form.json["error"] == "invalid_client_metadata"


def test_registration_client_uri_is_under_the_issuer_whatever_the_host_header(app, test_client,
                                                                           initial_token):
    # A forged Host must not make the client send its registration access token elsewhere.
    forged = {"Host": "evil.example.com", "X-Forwarded-Host": "evil.example.com"}
    response = test_client.post("/oauth/register", json=METADATA, headers={
        **forged, "Authorization": f"Bearer {initial_token}"})
    assert response.status_code == 201, response.json
    body = response.json
    assert body["registration_client_uri"] == f"http://127.0.0.1/oauth/register/{body['client_id']}"
    headers = {**forged, "Authorization": f"Bearer {body['registration_access_token']}"}
    for answer in (test_client.get(f"/oauth/register/{body['client_id']}", headers=headers),
                   test_client.put(f"/oauth/register/{body['client_id']}",
                                   json={**METADATA, "client_id": body["client_id"]}, headers=headers)):
        assert answer.status_code == 200, answer.json
        assert answer.json["registration_client_uri"] == body["registration_client_uri"]
    # The URI follows the configured issuer (its scheme too), not the request.
    app.config["OAUTH2_ISSUER"] = "https://id.example.com/"
    again = test_client.post("/oauth/register", json=METADATA, headers={
        **forged, "Authorization": f"Bearer {initial_token}"}).json
    assert again["registration_client_uri"] == f"https://id.example.com/oauth/register/{again['client_id']}"


def test_unknown_metadata_is_ignored(test_client, initial_token):
    body = register(test_client, {**METADATA, "software_id": "x", "is_admin": True}, initial_token).json
    assert "is_admin" not in body and "software_id" not in body


def test_read_update_and_delete_with_the_registration_access_token(app, test_client, initial_token):
    body = register(test_client, {**METADATA, "client_uri": "https://app.example.com/"}, initial_token).json
    assert body["client_uri"] == "https://app.example.com/"
    assert "logo_uri" not in body  # not registered, not echoed
    uri = body["registration_client_uri"].removeprefix("http://127.0.0.1")
    headers = {"Authorization": f"Bearer {body['registration_access_token']}"}

    read = test_client.get(uri, headers=headers)
    assert read.status_code == 200
    assert read.json["client_id"] == body["client_id"]
    assert read.json["client_name"] == "Registered App"
    assert "client_secret" not in read.json  # kept only as a hash

    update = {**METADATA, "client_id": body["client_id"], "client_name": "Renamed",
              "redirect_uris": ["https://app.example.com/new"]}
    update.pop("post_logout_redirect_uris")
    updated = test_client.put(uri, json=update, headers=headers)
    assert updated.status_code == 200, updated.json
    assert updated.json["client_name"] == "Renamed"
    assert updated.json["redirect_uris"] == ["https://app.example.com/new"]
    assert updated.json["post_logout_redirect_uris"] == []  # omitted fields are removed
    assert "client_uri" not in updated.json

    bad = test_client.put(uri, json={**update, "redirect_uris": ["https://x.example.com/#f"]}, headers=headers)
    assert bad.status_code == 400
    assert bad.json["error"] == "invalid_redirect_uri"

    assert test_client.delete(uri, headers=headers).status_code == 204
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count(OAuth2Client.id))) == 0
        assert db.session.scalar(db.select(db.func.count(RegistrationAccessToken.id))) == 0
    assert test_client.get(uri, headers=headers).status_code == 401


def test_management_token_of_another_client_is_refused(test_client, initial_token):
    first = register(test_client, token=initial_token).json
    second = register(test_client, token=initial_token).json
    uri = f"/oauth/register/{second['client_id']}"
    for token in (first["registration_access_token"], "garbage", None):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = test_client.get(uri, headers=headers)
        assert response.status_code == 401
        assert response.json["error"] == "invalid_token"
    # The initial access token does not manage clients either.
    assert test_client.get(uri, headers={"Authorization": f"Bearer {initial_token}"}).status_code == 401


def test_switching_to_confidential_returns_a_new_secret(app, test_client, initial_token):
    body = register(test_client, {**METADATA, "token_endpoint_auth_method": "none"}, initial_token).json
    uri = f"/oauth/register/{body['client_id']}"
    headers = {"Authorization": f"Bearer {body['registration_access_token']}"}
    updated = test_client.put(uri, json={**METADATA, "client_id": body["client_id"]}, headers=headers).json
    assert updated["client_secret"]
    with app.app_context():
        client = db.session.scalar(db.select(OAuth2Client))
        assert client.check_client_secret(updated["client_secret"])


def test_registration_over_http_like_the_readme(idp, runner):
    live_server = idp
    token = runner.invoke(args=["create-initial-access-token", "--expires-in", "3600"]).output.strip()
    response = requests.post(f"{live_server}/oauth/register", json=METADATA,
                             headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert response.status_code == 201
    body = response.json()
    assert body["registration_client_uri"] == f"{live_server}/oauth/register/{body['client_id']}"
    read = requests.get(body["registration_client_uri"], timeout=10,
                        headers={"Authorization": f"Bearer {body['registration_access_token']}"})
    assert read.status_code == 200
    assert read.json()["client_id"] == body["client_id"]
    # The new client authenticates at the token endpoint with the secret it was given.
    bad = requests.post(f"{live_server}/oauth/token", data={"grant_type": "authorization_code", "code": "x"},
                        auth=(body["client_id"], body["client_secret"]), timeout=10)
    assert bad.json()["error"] == "invalid_grant"


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=30)
    | st.sampled_from(["https://app.example.com/cb", "http://127.0.0.1/cb", "none", "code", "openid"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
_fields = st.sampled_from([*METADATA, "token_endpoint_auth_method", "response_types", "contacts",
                           "client_uri", "logo_uri"]) | st.text(max_size=8)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.dictionaries(_fields, _json, max_size=6))
def test_any_json_metadata_gets_201_or_a_json_error(test_client, initial_token, body):
    response = register(test_client, {**METADATA, **body}, initial_token)
    assert response.status_code in (201, 400), response.get_data(as_text=True)
    if response.status_code == 400:
        assert response.json["error"] in ("invalid_client_metadata", "invalid_redirect_uri")
