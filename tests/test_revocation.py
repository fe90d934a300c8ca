"""Revoking tokens (RFC 7009)."""

import pytest
from support.flows import bearer, exchange_code, login_and_get_code, refresh


@pytest.fixture
def tokens(test_client, auth, user, make_client):
    client, secret = make_client()
    code, verifier = login_and_get_code(test_client, auth, client)
    return client, secret, exchange_code(test_client, client, secret, code, verifier).json


def revoke(test_client, client, secret, token, **extra):
    return test_client.post("/oauth/revoke", data={"token": token, **extra},
                            auth=(client.client_id, secret) if secret else None)


def me_status(test_client, access_token):
    return test_client.get("/api/me", headers=bearer(access_token)).status_code


@pytest.mark.parametrize("hint", [None, "access_token", "refresh_token"])
def test_revoking_an_access_token(test_client, tokens, hint):
    client, secret, body = tokens
    extra = {"token_type_hint": hint} if hint else {}
    response = revoke(test_client, client, secret, body["access_token"], **extra)
    assert response.status_code == 200
    assert me_status(test_client, body["access_token"]) == 401
    # Only the access token: the refresh token still works.
    assert refresh(test_client, client, body["refresh_token"], secret).status_code == 200


@pytest.mark.parametrize("hint", [None, "access_token", "refresh_token"])
def test_revoking_a_refresh_token_revokes_its_access_tokens(test_client, tokens, hint):
    client, secret, body = tokens
    second = refresh(test_client, client, body["refresh_token"], secret).json
    extra = {"token_type_hint": hint} if hint else {}
    response = revoke(test_client, client, secret, second["refresh_token"], **extra)
    assert response.status_code == 200
    assert me_status(test_client, second["access_token"]) == 401
    assert refresh(test_client, client, second["refresh_token"], secret).json["error"] == "invalid_grant"


def test_a_client_cannot_revoke_another_clients_token(test_client, tokens, make_client):
    client, secret, body = tokens
    other, other_secret = make_client(client_name="Other")
    for token in (body["access_token"], body["refresh_token"]):
        response = revoke(test_client, other, other_secret, token)
        assert response.status_code == 400
        assert response.json["error"] in ("invalid_grant", "unauthorized_client")
    assert me_status(test_client, body["access_token"]) == 200
    assert refresh(test_client, client, body["refresh_token"], secret).status_code == 200


def test_unknown_token_is_answered_with_200(test_client, tokens):
    client, secret, _ = tokens
    assert revoke(test_client, client, secret, "no-such-token").status_code == 200
    # Up to the parameter size limit (oversized parameters are refused: test_malformed_requests).
    assert revoke(test_client, client, secret, "x" * 4000).status_code == 200


def test_revoking_twice_is_harmless(test_client, tokens):
    client, secret, body = tokens
    assert revoke(test_client, client, secret, body["refresh_token"]).status_code == 200
    assert revoke(test_client, client, secret, body["refresh_token"]).status_code == 200


@pytest.mark.parametrize("secret, status, error", [
    ("wrong", 401, "invalid_client"),
    (None, 401, "invalid_client"),
])
def test_revocation_needs_client_authentication(test_client, tokens, secret, status, error):
    client, _, body = tokens
    response = revoke(test_client, client, secret, body["access_token"])
    assert response.status_code == status
    assert response.json["error"] == error
    assert me_status(test_client, body["access_token"]) == 200


def test_missing_token_is_invalid_request(test_client, tokens):
    client, secret, _ = tokens
    response = test_client.post("/oauth/revoke", data={}, auth=(client.client_id, secret))
    assert response.status_code == 400
    assert response.json["error"] == "invalid_request"


def test_unknown_hint_is_ignored(test_client, tokens):
    # RFC 7009 §2.1: an invalid token type hint is ignored.
    client, secret, body = tokens
    response = revoke(test_client, client, secret, body["access_token"], token_type_hint="id_token")
    assert response.status_code == 200
    assert me_status(test_client, body["access_token"]) == 401


def test_public_client_revokes_its_own_token(test_client, auth, user, make_client):
    client, _ = make_client(token_endpoint_auth_method="none")
    code, verifier = login_and_get_code(test_client, auth, client)
    body = test_client.post("/oauth/token", data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": client.redirect_uris[0],
        "client_id": client.client_id, "code_verifier": verifier}).json
    response = test_client.post("/oauth/revoke", data={"token": body["refresh_token"],
                                                       "client_id": client.client_id})
    assert response.status_code == 200
    assert me_status(test_client, body["access_token"]) == 401
