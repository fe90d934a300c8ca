"""Refreshing tokens: rotation, reuse detection, scope and expiry."""

import pytest
from sqlalchemy import select
from support.factories import update_rows
from support.flows import bearer, exchange_code, login_and_get_code, refresh

from website.models import Token, db


@pytest.fixture
def tokens(test_client, auth, user, make_client):
    """A confidential client and the tokens its code flow got: (client, secret, token body)."""
    client, secret = make_client()
    code, verifier = login_and_get_code(test_client, auth, client, scope="profile email")
    body = exchange_code(test_client, client, secret, code, verifier).json
    return client, secret, body


def me_status(test_client, access_token):
    return test_client.get("/api/me", headers=bearer(access_token)).status_code


def test_refresh_rotates_both_tokens(test_client, tokens):
    client, secret, first = tokens
    response = refresh(test_client, client, first["refresh_token"], secret)
    assert response.status_code == 200, response.json
    second = response.json
    assert second["access_token"] != first["access_token"]
    assert second["refresh_token"] != first["refresh_token"]
    assert second["scope"] == "profile email"
    assert response.headers["Cache-Control"] == "no-store"
    assert me_status(test_client, second["access_token"]) == 200
    # The old access token goes with the refresh token it came with.
    assert me_status(test_client, first["access_token"]) == 401
    # The new refresh token works in its turn.
    third = refresh(test_client, client, second["refresh_token"], secret)
    assert third.status_code == 200


def test_reusing_a_rotated_refresh_token_revokes_the_family(test_client, tokens):
    client, secret, first = tokens
    second = refresh(test_client, client, first["refresh_token"], secret).json
    replay = refresh(test_client, client, first["refresh_token"], secret)
    assert replay.status_code == 400
    assert replay.json["error"] == "invalid_grant"
    # The replay means the refresh token leaked: everything issued from it stops working.
    assert me_status(test_client, second["access_token"]) == 401
    assert refresh(test_client, client, second["refresh_token"], secret).json["error"] == "invalid_grant"


def test_public_client_refreshes_without_a_secret(test_client, auth, user, make_client):
    client, _ = make_client(token_endpoint_auth_method="none")
    code, verifier = login_and_get_code(test_client, auth, client)
    body = test_client.post("/oauth/token", data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": client.redirect_uris[0],
        "client_id": client.client_id, "code_verifier": verifier}).json
    response = refresh(test_client, client, body["refresh_token"])
    assert response.status_code == 200, response.json
    assert response.json["refresh_token"] != body["refresh_token"]


def test_narrower_scope_is_allowed_wider_is_not(test_client, tokens):
    client, secret, first = tokens
    wider = refresh(test_client, client, first["refresh_token"], secret, scope="profile email openid")
    assert wider.status_code == 400
    assert wider.json["error"] == "invalid_scope"
    # The refused attempt did not use the refresh token up.
    narrower = refresh(test_client, client, first["refresh_token"], secret, scope="email")
    assert narrower.status_code == 200, narrower.json
    assert narrower.json["scope"] == "email"
    assert me_status(test_client, narrower.json["access_token"]) == 403


def test_another_clients_refresh_token_is_refused(test_client, tokens, make_client):
    client, secret, first = tokens
    other, other_secret = make_client(client_name="Other")
    response = refresh(test_client, other, first["refresh_token"], other_secret)
    assert response.status_code == 400
    assert response.json["error"] == "invalid_grant"
    # Still good for its own client.
    assert refresh(test_client, client, first["refresh_token"], secret).status_code == 200


def test_expired_refresh_token_is_refused(app, test_client, tokens):
    client, secret, first = tokens
    update_rows(app, Token, {"refresh_token_expires_at": 1})
    response = refresh(test_client, client, first["refresh_token"], secret)
    assert response.status_code == 400
    assert response.json["error"] == "invalid_grant"


@pytest.mark.parametrize("value", ["not-a-token", "", "x" * 2000])
def test_unknown_refresh_token_is_refused(test_client, tokens, value):
    client, secret, _ = tokens
    response = refresh(test_client, client, value, secret)
    assert response.status_code == 400
    assert response.json["error"] in ("invalid_grant", "invalid_request")


def test_missing_refresh_token_is_invalid_request(test_client, tokens):
    client, secret, _ = tokens
    response = test_client.post("/oauth/token", auth=(client.client_id, secret),
                                data={"grant_type": "refresh_token"})
    assert response.status_code == 400
    assert response.json["error"] == "invalid_request"


def test_wrong_client_secret_is_invalid_client(test_client, tokens):
    client, _, first = tokens
    response = refresh(test_client, client, first["refresh_token"], "wrong")
    assert response.status_code == 401
    assert response.json["error"] == "invalid_client"


def test_client_not_registered_for_refresh_is_unauthorized_client(app, test_client, tokens):
    client, secret, first = tokens
    update_rows(app, type(client), {"grant_types": ["authorization_code"]})
    response = refresh(test_client, client, first["refresh_token"], secret)
    assert response.status_code == 400
    assert response.json["error"] == "unauthorized_client"


class TestWithoutRotationForConfidentialClients:
    @pytest.fixture
    def app_config(self, app_config):
        return {**app_config, "OAUTH2_ROTATE_CONFIDENTIAL_REFRESH_TOKENS": False}

    def test_refresh_token_is_kept_and_reusable(self, app, test_client, tokens):
        client, secret, first = tokens
        second = refresh(test_client, client, first["refresh_token"], secret)
        assert second.status_code == 200, second.json
        assert "refresh_token" not in second.json
        assert me_status(test_client, first["access_token"]) == 401
        assert me_status(test_client, second.json["access_token"]) == 200
        third = refresh(test_client, client, first["refresh_token"], secret)
        assert third.status_code == 200
        assert me_status(test_client, third.json["access_token"]) == 200
        with app.app_context():
            assert len(db.session.scalars(select(Token)).all()) == 3
