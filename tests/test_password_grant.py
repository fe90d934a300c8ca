"""The resource owner password grant (legacy)."""

import pytest
from sqlalchemy import select
from support.factories import PASSWORD
from support.flows import bearer

from website.models import Token, db


@pytest.fixture
def password_client(make_client):
    return make_client(grant_types=["password", "refresh_token"], redirect_uris=[])


def test_password_grant_gets_tokens_for_the_user(test_client, user, password_client):
    client, secret = password_client
    response = test_client.post("/oauth/token", auth=(client.client_id, secret), data={
        "grant_type": "password", "username": "alice", "password": PASSWORD, "scope": "profile"})
    assert response.status_code == 200, response.json
    body = response.json
    assert body["refresh_token"]
    assert body["scope"] == "profile"
    me = test_client.get("/api/me", headers=bearer(body["access_token"]))
    assert me.json["username"] == "alice"


def test_password_grant_finds_the_user_by_canonical_username(test_client, user, password_client):
    client, secret = password_client
    response = test_client.post("/oauth/token", auth=(client.client_id, secret), data={
        "grant_type": "password", "username": "ALICE", "password": PASSWORD, "scope": "profile"})
    assert response.status_code == 200, response.json
    assert test_client.get("/api/me", headers=bearer(response.json["access_token"])).json["username"] == "alice"


@pytest.mark.parametrize("username, password", [
    ("alice", "wrong password"),
    ("nobody", PASSWORD),
    ("", PASSWORD),
    ("alice", ""),
])
def test_wrong_username_or_password_is_invalid_grant(app, test_client, user, password_client, username, password):
    client, secret = password_client
    response = test_client.post("/oauth/token", auth=(client.client_id, secret), data={
        "grant_type": "password", "username": username, "password": password})
    assert response.status_code == 400
    assert response.json["error"] == "invalid_grant"
    with app.app_context():
        assert db.session.scalar(select(Token)) is None


@pytest.mark.parametrize("missing", ["username", "password"])
def test_missing_username_or_password_is_invalid_request(test_client, user, password_client, missing):
    client, secret = password_client
    data = {"grant_type": "password", "username": "alice", "password": PASSWORD}
    del data[missing]
    response = test_client.post("/oauth/token", auth=(client.client_id, secret), data=data)
    assert response.status_code == 400
    assert response.json["error"] == "invalid_request"


def test_grant_not_registered_is_unauthorized_client(test_client, user, make_client):
    client, secret = make_client()
    response = test_client.post("/oauth/token", auth=(client.client_id, secret), data={
        "grant_type": "password", "username": "alice", "password": PASSWORD})
    assert response.status_code == 400
    assert response.json["error"] == "unauthorized_client"


def test_wrong_client_secret_is_invalid_client(test_client, user, password_client):
    client, _ = password_client
    response = test_client.post("/oauth/token", auth=(client.client_id, "nope"), data={
        "grant_type": "password", "username": "alice", "password": PASSWORD})
    assert response.status_code == 401
    assert response.json["error"] == "invalid_client"
