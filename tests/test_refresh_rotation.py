"""Refresh tokens: rotation, the old access token's revocation, and replay detection."""

import pytest

from support.factories import PASSWORD
from support.flows import refresh


def password_grant(test_client, client, secret):
    response = test_client.post(
        "/oauth/token",
        data={"grant_type": "password", "username": "alice", "password": PASSWORD, "scope": "profile"},
        auth=(client.client_id, secret),
    )
    assert response.status_code == 200, response.json
    return response.json


def me_status(test_client, access_token):
    return test_client.get("/api/me", headers={"Authorization": f"Bearer {access_token}"}).status_code


@pytest.fixture
def password_client(make_client):
    return make_client(grant_types=["password", "refresh_token"])


def test_refresh_rotates_and_revokes_the_old_access_token(test_client, user, password_client):
    client, secret = password_client
    first = password_grant(test_client, client, secret)
    response = refresh(test_client, client, first["refresh_token"], secret)
    assert response.status_code == 200, response.json
    second = response.json
    assert second["refresh_token"] != first["refresh_token"]
    assert me_status(test_client, first["access_token"]) == 401
    assert me_status(test_client, second["access_token"]) == 200
    third = refresh(test_client, client, second["refresh_token"], secret)
    assert third.status_code == 200, third.json


def test_replayed_refresh_token_revokes_the_family(test_client, user, password_client):
    client, secret = password_client
    first = password_grant(test_client, client, secret)
    second = refresh(test_client, client, first["refresh_token"], secret).json
    replay = refresh(test_client, client, first["refresh_token"], secret)
    assert replay.status_code == 400
    assert replay.json["error"] == "invalid_grant"
    assert me_status(test_client, second["access_token"]) == 401
    assert refresh(test_client, client, second["refresh_token"], secret).status_code == 400


def test_refresh_token_of_another_client_is_refused(test_client, user, make_client, password_client):
    client, secret = password_client
    other, other_secret = make_client(grant_types=["password", "refresh_token"])
    first = password_grant(test_client, client, secret)
    response = refresh(test_client, other, first["refresh_token"], other_secret)
    assert response.status_code == 400
    assert response.json["error"] == "invalid_grant"
    assert refresh(test_client, client, first["refresh_token"], secret).status_code == 200


def test_without_rotation_the_refresh_token_stays_and_old_access_token_goes(app, test_client, user,
                                                                             password_client):
    app.config["OAUTH2_ROTATE_CONFIDENTIAL_REFRESH_TOKENS"] = False
    client, secret = password_client
    first = password_grant(test_client, client, secret)
    second = refresh(test_client, client, first["refresh_token"], secret)
    assert second.status_code == 200, second.json
    assert "refresh_token" not in second.json
    assert me_status(test_client, first["access_token"]) == 401
    again = refresh(test_client, client, first["refresh_token"], secret)
    assert again.status_code == 200, again.json
    assert me_status(test_client, again.json["access_token"]) == 200
