"""Token introspection (RFC 7662) at POST /oauth/introspect."""

import time

import pytest
import requests
from support.flows import get_user_token

from website.models import Token, db


def introspect(test_client, client, secret, token, **extra):
    return test_client.post("/oauth/introspect", data={"token": token, **extra}, auth=(client.client_id, secret))


def test_live_access_token_is_active_with_its_claims(test_client, auth, user, make_client):
    client, secret = make_client()
    auth.login()
    token = get_user_token(test_client, client, secret, scope="profile email")
    response = introspect(test_client, client, secret, token["access_token"])
    assert response.status_code == 200
    body = response.json
    assert body["active"] is True
    assert body["scope"] == "profile email"
    assert body["client_id"] == client.client_id
    assert body["username"] == "alice"
    assert body["sub"] == user.sub
    assert body["token_type"] == "Bearer"
    assert body["iat"] <= time.time() < body["exp"]
    assert "aud" not in body  # an opaque token is for no particular API


def test_refresh_token_is_active_until_revoked(test_client, auth, user, make_client):
    client, secret = make_client()
    auth.login()
    token = get_user_token(test_client, client, secret)
    body = introspect(test_client, client, secret, token["refresh_token"], token_type_hint="refresh_token").json
    assert body["active"] is True
    assert body["username"] == "alice"
    revoked = test_client.post("/oauth/revoke", data={"token": token["refresh_token"]},
                               auth=(client.client_id, secret))
    assert revoked.status_code == 200
    for value in (token["refresh_token"], token["access_token"]):
        assert introspect(test_client, client, secret, value).json == {"active": False}


def test_client_credentials_token_has_the_client_as_subject(test_client, make_client):
    client, secret = make_client(grant_types=["client_credentials"], redirect_uris=[], scope="profile")
    token = test_client.post("/oauth/token", data={"grant_type": "client_credentials"},
                             auth=(client.client_id, secret)).json
    body = introspect(test_client, client, secret, token["access_token"]).json
    assert body["active"] is True
    assert body["sub"] == client.client_id
    assert "username" not in body


def test_inactive_for_unknown_expired_and_other_clients_tokens(app, test_client, auth, user, make_client):
    client, secret = make_client()
    other, other_secret = make_client(client_name="Other App")
    auth.login()
    token = get_user_token(test_client, client, secret)
    assert introspect(test_client, client, secret, "no-such-token").json == {"active": False}
    # Another client cannot learn anything about this client's token.
    assert introspect(test_client, other, other_secret, token["access_token"]).json == {"active": False}
    with app.app_context():
        row = db.session.scalar(db.select(Token).where(Token.client_id == client.client_id))
        row.expires_at = int(time.time()) - 1
        db.session.commit()
    assert introspect(test_client, client, secret, token["access_token"]).json == {"active": False}


@pytest.mark.parametrize("credentials", [None, ("unknown-client", "x"), "wrong-secret"])
def test_unauthenticated_caller_gets_invalid_client(test_client, make_client, credentials):
    client, _ = make_client()
    if credentials == "wrong-secret":
        credentials = (client.client_id, "not-the-secret")
    response = test_client.post("/oauth/introspect", data={"token": "anything"}, auth=credentials)
    assert response.status_code == 401
    assert response.json["error"] == "invalid_client"


def test_public_client_cannot_introspect(test_client, make_client):
    client, _ = make_client(token_endpoint_auth_method="none")
    response = test_client.post("/oauth/introspect", data={"token": "x", "client_id": client.client_id})
    assert response.status_code == 401
    assert response.json["error"] == "invalid_client"


def test_missing_token_parameter_is_invalid_request(test_client, make_client):
    client, secret = make_client()
    response = test_client.post("/oauth/introspect", data={}, auth=(client.client_id, secret))
    assert response.status_code == 400
    assert response.json["error"] == "invalid_request"


def test_introspection_over_http_with_requests(live_server, make_client):
    client, secret = make_client(grant_types=["client_credentials"], redirect_uris=[], scope="profile")
    token = requests.post(f"{live_server}/oauth/token", data={"grant_type": "client_credentials"},
                          auth=(client.client_id, secret), timeout=10).json()
    response = requests.post(f"{live_server}/oauth/introspect", data={"token": token["access_token"]},
                             auth=(client.client_id, secret), timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json()["active"] is True
    assert response.json()["scope"] == "profile"


def test_discovery_lists_introspection_registration_and_logout(test_client):
    metadata = test_client.get("/.well-known/openid-configuration").json
    assert metadata["introspection_endpoint"] == "http://127.0.0.1/oauth/introspect"
    assert metadata["introspection_endpoint_auth_methods_supported"] == [
        "client_secret_basic", "client_secret_post", "private_key_jwt"]
    assert metadata["registration_endpoint"] == "http://127.0.0.1/oauth/register"
    assert metadata["end_session_endpoint"] == "http://127.0.0.1/oauth/logout"


def test_an_api_introspects_the_tokens_issued_for_it(test_client, runner, make_client):
    resource_server, rs_secret = make_client(client_name="Orders API", grant_types=["client_credentials"],
                                             redirect_uris=[], scope="profile")
    result = runner.invoke(args=["create-api", "--identifier", "https://api.example.com/", "--name", "Orders",
                                 "--introspection-client", resource_server.client_id])
    assert result.exit_code == 0, result.output
    client, secret = make_client(grant_types=["client_credentials"], redirect_uris=[], scope="profile")
    assert runner.invoke(args=["grant-api", "--", "https://api.example.com/", client.client_id]).exit_code == 0

    def token(**extra):
        return test_client.post("/oauth/token", data={"grant_type": "client_credentials", **extra},
                                auth=(client.client_id, secret)).json["access_token"]

    for_api = introspect(test_client, resource_server, rs_secret, token(audience="https://api.example.com/")).json
    assert for_api["active"] is True
    assert for_api["aud"] == "https://api.example.com/" and for_api["client_id"] == client.client_id
    # Tokens for no API (or another) stay private to the client they were issued to.
    assert introspect(test_client, resource_server, rs_secret, token()).json == {"active": False}


def test_create_api_refuses_an_unknown_or_public_introspection_client(runner, make_client):
    public, _ = make_client(token_endpoint_auth_method="none")
    for client_id in ("nope", public.client_id):
        result = runner.invoke(args=["create-api", "--identifier", "https://api.example.com/", "--name", "X",
                                     "--introspection-client", client_id])
        assert result.exit_code != 0
        assert "No confidential client" in result.output
