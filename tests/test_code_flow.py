"""The authorization code grant, end to end through the Flask test client."""

import pytest
from sqlalchemy import select
from support.factories import update_rows
from support.flows import approve, authorize_url, bearer, exchange_code, login_and_get_code, pkce_pair
from support.pages import query_params

from website.models import AuthorizationCode, Token, db


def test_code_flow_with_pkce_gets_tokens_and_reads_me(test_client, auth, user, make_client):
    client, secret = make_client()
    auth.login()
    verifier, challenge = pkce_pair()
    url = authorize_url(client, code_challenge=challenge, code_challenge_method="S256")
    page = test_client.get(url)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Test App" in html
    assert "profile" in html and "See your username" in html
    response = approve(test_client, url)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("https://app.example.com/callback?")
    params = query_params(response.headers["Location"])
    assert params["state"] == "xyz"
    token = exchange_code(test_client, client, secret, params["code"], verifier)
    assert token.status_code == 200, token.json
    body = token.json
    assert body["token_type"].lower() == "bearer"
    assert body["refresh_token"]
    assert body["expires_in"] == 3600
    assert body["scope"] == "profile"
    assert token.headers["Cache-Control"] == "no-store"
    assert token.headers["Pragma"] == "no-cache"
    me = test_client.get("/api/me", headers=bearer(body["access_token"]))
    assert me.status_code == 200
    assert me.json == {"id": user.id, "sub": user.sub, "username": "alice", "email": "alice@example.com"}


def test_reused_code_is_refused_and_revokes_its_tokens(app, test_client, auth, user, make_client):
    client, secret = make_client()
    code, verifier = login_and_get_code(test_client, auth, client)
    body = exchange_code(test_client, client, secret, code, verifier).json
    again = exchange_code(test_client, client, secret, code, verifier)
    assert again.status_code == 400
    assert again.json["error"] == "invalid_grant"
    # The code may have leaked: what it produced stops working, refresh token included.
    assert test_client.get("/api/me", headers=bearer(body["access_token"])).status_code == 401
    refresh = test_client.post("/oauth/token", auth=(client.client_id, secret),
                               data={"grant_type": "refresh_token", "refresh_token": body["refresh_token"]})
    assert refresh.status_code == 400
    assert refresh.json["error"] == "invalid_grant"


def test_confidential_client_without_pkce_and_with_client_secret_post(test_client, auth, user, make_client):
    # Existing confidential clients (seed 000) send no PKCE; their secret protects the code.
    client, secret = make_client(token_endpoint_auth_method="client_secret_post")
    auth.login()
    response = approve(test_client, authorize_url(client))
    code = query_params(response.headers["Location"])["code"]
    token = test_client.post("/oauth/token", data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": client.redirect_uris[0],
        "client_id": client.client_id, "client_secret": secret,
    })
    assert token.status_code == 200, token.json
    assert test_client.get("/api/me", headers=bearer(token.json["access_token"])).status_code == 200


def test_public_client_with_pkce_gets_tokens_without_a_secret(test_client, auth, user, make_client):
    client, secret = make_client(token_endpoint_auth_method="none")
    assert secret is None
    code, verifier = login_and_get_code(test_client, auth, client)
    token = test_client.post("/oauth/token", data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": client.redirect_uris[0],
        "client_id": client.client_id, "code_verifier": verifier,
    })
    assert token.status_code == 200, token.json
    assert token.json["refresh_token"]


def test_public_client_without_pkce_is_refused(test_client, auth, user, make_client):
    client, _ = make_client(token_endpoint_auth_method="none")
    auth.login()
    response = test_client.get(authorize_url(client))
    assert response.status_code == 302
    params = query_params(response.headers["Location"])
    assert params["error"] == "invalid_request"
    assert "PKCE" in params["error_description"]
    assert params["state"] == "xyz"


def test_plain_pkce_is_refused(test_client, auth, user, make_client):
    client, _ = make_client()
    verifier, _ = pkce_pair()
    auth.login()
    response = test_client.get(authorize_url(client, code_challenge=verifier, code_challenge_method="plain"))
    assert response.status_code == 302
    params = query_params(response.headers["Location"])
    assert params["error"] == "invalid_request"
    assert "S256" in params["error_description"]


class TestPlainPkceWhenConfigured:
    @pytest.fixture
    def app_config(self, app_config):
        return {**app_config, "OAUTH2_PKCE_ALLOW_PLAIN": True}

    def test_plain_pkce_is_accepted(self, test_client, auth, user, make_client):
        client, secret = make_client()
        verifier, _ = pkce_pair()
        code, _ = login_and_get_code(test_client, auth, client, code_challenge=verifier,
                                     code_challenge_method="plain")
        assert exchange_code(test_client, client, secret, code, verifier).status_code == 200


@pytest.mark.parametrize("verifier, error", [
    ("wrong-" + "v" * 50, "invalid_grant"),
    ("", "invalid_request"),
    ("short", "invalid_request"),
])
def test_wrong_pkce_verifier_is_refused(test_client, auth, user, make_client, verifier, error):
    client, secret = make_client()
    code, _ = login_and_get_code(test_client, auth, client)
    response = exchange_code(test_client, client, secret, code, verifier)
    assert response.status_code == 400
    assert response.json["error"] == error


def test_verifier_without_challenge_is_refused(test_client, auth, user, make_client):
    client, secret = make_client()
    auth.login()
    response = approve(test_client, authorize_url(client))
    code = query_params(response.headers["Location"])["code"]
    verifier, _ = pkce_pair()
    response = exchange_code(test_client, client, secret, code, verifier)
    assert response.status_code == 400
    assert response.json["error"] == "invalid_request"


@pytest.mark.parametrize("credentials", [
    "wrong-secret", None, "unknown-client",
])
def test_wrong_or_missing_client_secret_is_invalid_client(test_client, auth, user, make_client, credentials):
    client, secret = make_client()
    code, verifier = login_and_get_code(test_client, auth, client)
    data = {"grant_type": "authorization_code", "code": code,
            "redirect_uri": client.redirect_uris[0], "code_verifier": verifier}
    if credentials == "wrong-secret":
        response = test_client.post("/oauth/token", data=data, auth=(client.client_id, secret + "x"))
    elif credentials == "unknown-client":
        response = test_client.post("/oauth/token", data=data, auth=("no-such-client", secret))
    else:
        response = test_client.post("/oauth/token", data={**data, "client_id": client.client_id})
    assert response.status_code == 401
    assert response.json["error"] == "invalid_client"
    # The code was not spent by the failed attempt.
    assert exchange_code(test_client, client, secret, code, verifier).status_code == 200


def test_malformed_basic_header_is_invalid_client(test_client, user, make_client):
    response = test_client.post("/oauth/token", data={"grant_type": "authorization_code", "code": "x"},
                                headers={"Authorization": "Basic %%%not-base64"})
    assert response.status_code == 401
    assert response.json["error"] == "invalid_client"


def test_code_redeemed_by_another_client_is_refused(test_client, auth, user, make_client):
    client, secret = make_client()
    other, other_secret = make_client(client_name="Other App")
    code, verifier = login_and_get_code(test_client, auth, client)
    response = test_client.post("/oauth/token", auth=(other.client_id, other_secret), data={
        "grant_type": "authorization_code", "code": code,
        "redirect_uri": client.redirect_uris[0], "code_verifier": verifier,
    })
    assert response.status_code == 400
    assert response.json["error"] == "invalid_grant"
    # The rightful client can still redeem it.
    assert exchange_code(test_client, client, secret, code, verifier).status_code == 200


def test_expired_code_is_refused(app, test_client, auth, user, make_client):
    client, secret = make_client()
    code, verifier = login_and_get_code(test_client, auth, client)
    update_rows(app, AuthorizationCode, {"expires_at": 1})
    response = exchange_code(test_client, client, secret, code, verifier)
    assert response.status_code == 400
    assert response.json["error"] == "invalid_grant"


def test_redirect_uri_must_match_at_the_token_endpoint(test_client, auth, user, make_client):
    client, secret = make_client(redirect_uris=["https://app.example.com/callback",
                                                "https://app.example.com/other"])
    code, verifier = login_and_get_code(test_client, auth, client)
    response = exchange_code(test_client, client, secret, code, verifier,
                             redirect_uri="https://app.example.com/other")
    assert response.status_code == 400
    assert response.json["error"] == "invalid_grant"


@pytest.mark.parametrize("params", [
    {"redirect_uri": "https://evil.example.com/callback"},
    {"redirect_uri": "https://app.example.com/callback/../evil"},
    {"redirect_uri": "https://app.example.com/callback?extra=1"},
    {"client_id": "no-such-client"},
    {"client_id": None},
])
def test_bad_client_or_redirect_uri_shows_an_error_page_and_never_redirects(
        test_client, auth, user, make_client, params):
    client, _ = make_client()
    auth.login()
    csrf = {"csrf_token": auth.csrf_token("/login")}
    for response in (test_client.get(authorize_url(client, **params)),
                     test_client.post(authorize_url(client, **params), data={**csrf, "allow": "Allow"})):
        assert response.status_code in (400, 401)
        assert "Location" not in response.headers
        assert "cannot continue" in response.get_data(as_text=True)


def test_several_redirect_uris_need_one_named(test_client, auth, user, make_client):
    client, _ = make_client(redirect_uris=["https://app.example.com/a", "https://app.example.com/b"])
    auth.login()
    response = test_client.get(authorize_url(client, redirect_uri=None))
    assert response.status_code == 400
    assert "Location" not in response.headers


def test_loopback_redirect_uri_may_use_any_port(test_client, auth, user, make_client):
    client, secret = make_client(redirect_uris=["http://127.0.0.1/callback"])
    code, verifier = login_and_get_code(test_client, auth, client,
                                        redirect_uri="http://127.0.0.1:53682/callback")
    token = exchange_code(test_client, client, secret, code, verifier,
                          redirect_uri="http://127.0.0.1:53682/callback")
    assert token.status_code == 200, token.json


def test_response_type_not_registered_is_unauthorized_client(test_client, auth, user, make_client):
    client, _ = make_client(grant_types=["client_credentials"], redirect_uris=["https://app.example.com/cb"])
    auth.login()
    response = test_client.get(authorize_url(client))
    assert response.status_code == 302
    params = query_params(response.headers["Location"])
    assert params["error"] == "unauthorized_client"
    assert params["state"] == "xyz"


def test_unknown_response_type_is_refused(test_client, auth, user, make_client):
    client, _ = make_client()
    auth.login()
    response = test_client.get(authorize_url(client, response_type="magic"))
    assert response.status_code == 302
    assert query_params(response.headers["Location"])["error"] == "unsupported_response_type"


def test_grant_not_registered_for_the_client_is_unauthorized_client(test_client, auth, user, make_client):
    client, secret = make_client(grant_types=["client_credentials"], redirect_uris=[])
    response = test_client.post("/oauth/token", auth=(client.client_id, secret), data={
        "grant_type": "authorization_code", "code": "whatever", "redirect_uri": "https://app.example.com/cb",
    })
    assert response.status_code == 400
    assert response.json["error"] == "unauthorized_client"


def test_unsupported_scope_is_refused(test_client, auth, user, make_client):
    client, _ = make_client()
    auth.login()
    response = test_client.get(authorize_url(client, scope="profile admin"))
    assert response.status_code == 302
    assert query_params(response.headers["Location"])["error"] == "invalid_scope"


def test_deny_redirects_with_access_denied_and_state(app, test_client, auth, user, make_client):
    client, _ = make_client()
    _, challenge = pkce_pair()
    auth.login()
    url = authorize_url(client, code_challenge=challenge, code_challenge_method="S256", state="s-123")
    response = approve(test_client, url, button="deny")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("https://app.example.com/callback?")
    params = query_params(response.headers["Location"])
    assert params["error"] == "access_denied"
    assert params["state"] == "s-123"
    assert "code" not in params
    with app.app_context():
        assert db.session.scalar(select(AuthorizationCode)) is None


def test_consent_without_csrf_token_is_refused(app, test_client, auth, user, make_client):
    client, _ = make_client()
    auth.login()
    response = test_client.post(authorize_url(client), data={"allow": "Allow"})
    assert response.status_code == 400
    assert "Location" not in response.headers
    with app.app_context():
        assert db.session.scalar(select(AuthorizationCode)) is None


def test_signed_out_person_logs_in_and_comes_back(test_client, auth, user, make_client):
    client, _ = make_client()
    _, challenge = pkce_pair()
    url = authorize_url(client, code_challenge=challenge, code_challenge_method="S256")
    response = test_client.get(url)
    assert response.status_code == 302
    login_url = response.headers["Location"]
    assert login_url.startswith("/login?next=")
    token = auth.csrf_token(login_url)
    response = test_client.post(login_url, data={"username": "alice", "password": "correct horse battery",
                                                 "csrf_token": token})
    assert response.status_code == 302
    assert response.headers["Location"] == url
    assert "wants to access your account" in test_client.get(url).get_data(as_text=True)


def test_client_without_refresh_grant_gets_no_refresh_token(test_client, auth, user, make_client):
    client, secret = make_client(grant_types=["authorization_code"])
    code, verifier = login_and_get_code(test_client, auth, client)
    body = exchange_code(test_client, client, secret, code, verifier).json
    assert body["access_token"]
    assert "refresh_token" not in body


def test_code_row_keeps_pkce_and_marks_use(app, test_client, auth, user, make_client):
    client, secret = make_client()
    code, verifier = login_and_get_code(test_client, auth, client)
    with app.app_context():
        row = db.session.scalar(select(AuthorizationCode))
        assert row.code_challenge_method == "S256"
        assert row.used_at is None
    exchange_code(test_client, client, secret, code, verifier)
    with app.app_context():
        row = db.session.scalar(select(AuthorizationCode))
        assert row.used_at is not None
        token = db.session.scalar(select(Token))
        assert token.authorization_code_id == row.id
