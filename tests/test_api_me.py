"""Calling /api/me with a bearer token."""

import pytest
from support.factories import update_rows
from support.flows import bearer, exchange_code, login_and_get_code

from website.models import Token


@pytest.fixture
def access_token(test_client, auth, user, make_client):
    client, secret = make_client()
    code, verifier = login_and_get_code(test_client, auth, client)
    return exchange_code(test_client, client, secret, code, verifier).json["access_token"]


def assert_unauthorized(response):
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.json["error"] in ("invalid_token", "missing_authorization")


def test_me_returns_the_user(test_client, user, access_token):
    response = test_client.get("/api/me", headers=bearer(access_token))
    assert response.status_code == 200
    assert response.json == {"id": user.id, "sub": user.sub, "username": "alice", "email": "alice@example.com"}


@pytest.mark.parametrize("headers", [
    {},
    {"Authorization": "Bearer"},
    {"Authorization": "Bearer "},
    {"Authorization": "Bearer not-a-real-token"},
    {"Authorization": "Bearer " + "x" * 5000},
    {"Authorization": "Basic YWxpY2U6c2VjcmV0"},
    {"Authorization": "garbage"},
])
def test_missing_or_unknown_token_is_401(test_client, user, headers):
    assert_unauthorized(test_client.get("/api/me", headers=headers))


def test_me_reads_the_token_from_the_header_only(test_client, user, access_token):
    # /api/me is GET only and takes the header (RFC 6750 §2.1); a token in the URL is not read.
    response = test_client.get("/api/me", query_string={"access_token": access_token})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_expired_token_is_401(app, test_client, access_token):
    update_rows(app, Token, {"expires_at": 1})
    assert_unauthorized(test_client.get("/api/me", headers=bearer(access_token)))


def test_revoked_token_is_401(app, test_client, access_token):
    update_rows(app, Token, {"access_token_revoked_at": 1})
    assert_unauthorized(test_client.get("/api/me", headers=bearer(access_token)))


def test_token_without_profile_is_403_insufficient_scope(test_client, auth, user, make_client):
    client, secret = make_client()
    code, verifier = login_and_get_code(test_client, auth, client, scope="email")
    token = exchange_code(test_client, client, secret, code, verifier).json["access_token"]
    response = test_client.get("/api/me", headers=bearer(token))
    assert response.status_code == 403
    assert response.json["error"] == "insufficient_scope"
    assert "insufficient_scope" in response.headers["WWW-Authenticate"]


def test_token_in_the_query_string_is_not_accepted(test_client, access_token):
    assert_unauthorized(test_client.get(f"/api/me?access_token={access_token}"))
