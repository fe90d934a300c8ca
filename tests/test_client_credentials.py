"""The client credentials grant: a service gets a token for itself."""

import base64

import pytest
from sqlalchemy import select
from support.flows import bearer

from website.models import Token, db


@pytest.fixture
def service(make_client):
    return make_client(grant_types=["client_credentials"], redirect_uris=[], scope="profile email")


def test_client_credentials_with_basic_auth(app, test_client, service):
    client, secret = service
    response = test_client.post("/oauth/token", data={"grant_type": "client_credentials", "scope": "profile"},
                                auth=(client.client_id, secret))
    assert response.status_code == 200, response.json
    body = response.json
    assert body["token_type"].lower() == "bearer"
    assert body["scope"] == "profile"
    assert body["expires_in"] == 3600
    assert "refresh_token" not in body
    assert response.headers["Cache-Control"] == "no-store"
    with app.app_context():
        row = db.session.scalar(select(Token))
        assert row.user_id is None
        assert row.client_id == client.client_id
    # The token stands for the client, not a person: /api/me has no one to describe.
    me = test_client.get("/api/me", headers=bearer(body["access_token"]))
    assert me.status_code == 403


def test_client_credentials_without_scope_gets_the_registered_scope(test_client, service):
    client, secret = service
    response = test_client.post("/oauth/token", data={"grant_type": "client_credentials"},
                                auth=(client.client_id, secret))
    assert response.status_code == 200
    assert response.json["scope"] == "profile email"


def test_client_secret_post(test_client, make_client):
    client, secret = make_client(grant_types=["client_credentials"], redirect_uris=[],
                                 token_endpoint_auth_method="client_secret_post")
    response = test_client.post("/oauth/token", data={
        "grant_type": "client_credentials", "client_id": client.client_id, "client_secret": secret})
    assert response.status_code == 200, response.json
    # The same secret in HTTP Basic works too (tests/test_client_authentication.py).
    response = test_client.post("/oauth/token", data={"grant_type": "client_credentials"},
                                auth=(client.client_id, secret))
    assert response.status_code == 200, response.json


@pytest.mark.parametrize("how", ["wrong-secret", "no-secret", "unknown-client", "no-auth", "bad-header",
                                 "wrong-secret-in-post"])
def test_bad_client_authentication_is_invalid_client(app, test_client, service, how):
    client, secret = service
    data = {"grant_type": "client_credentials"}
    kwargs = {}
    if how == "wrong-secret":
        kwargs["auth"] = (client.client_id, "not-the-secret")
    elif how == "no-secret":
        data["client_id"] = client.client_id
    elif how == "unknown-client":
        kwargs["auth"] = ("nobody", secret)
    elif how == "bad-header":
        kwargs["headers"] = {"Authorization": "Basic " + base64.b64encode(b"no-colon-here").decode()}
    elif how == "wrong-secret-in-post":
        data.update(client_id=client.client_id, client_secret="not-the-secret")
    response = test_client.post("/oauth/token", data=data, **kwargs)
    assert response.status_code == 401
    assert response.json["error"] == "invalid_client"
    with app.app_context():
        assert db.session.scalar(select(Token)) is None


def test_basic_auth_failure_names_the_scheme(test_client, service):
    client, _ = service
    response = test_client.post("/oauth/token", data={"grant_type": "client_credentials"},
                                auth=(client.client_id, "wrong"))
    assert response.headers["WWW-Authenticate"].startswith("Basic")


def test_grant_not_registered_is_unauthorized_client(test_client, make_client):
    client, secret = make_client()  # authorization_code and refresh_token only
    response = test_client.post("/oauth/token", data={"grant_type": "client_credentials"},
                                auth=(client.client_id, secret))
    assert response.status_code == 400
    assert response.json["error"] == "unauthorized_client"


def test_public_client_cannot_use_client_credentials(test_client, make_client):
    client, _ = make_client(token_endpoint_auth_method="none")
    response = test_client.post("/oauth/token", data={"grant_type": "client_credentials",
                                                      "client_id": client.client_id})
    assert response.status_code == 401
    assert response.json["error"] == "invalid_client"


def test_unsupported_scope_is_invalid_scope(test_client, service):
    client, secret = service
    response = test_client.post("/oauth/token", data={"grant_type": "client_credentials", "scope": "admin"},
                                auth=(client.client_id, secret))
    assert response.status_code == 400
    assert response.json["error"] == "invalid_scope"


@pytest.mark.parametrize("data, error", [
    ({"grant_type": "magic"}, "unsupported_grant_type"),
    ({}, "unsupported_grant_type"),
])
def test_bad_grant_type(test_client, service, data, error):
    client, secret = service
    response = test_client.post("/oauth/token", data=data, auth=(client.client_id, secret))
    assert response.status_code == 400
    assert response.json["error"] == error


def test_token_endpoint_accepts_only_post(test_client):
    assert test_client.get("/oauth/token?grant_type=client_credentials").status_code == 405


@pytest.mark.parametrize("body", [
    "grant_type=client_credentials&grant_type=password",
    "grant_type=client_credentials&scope=profile&scope=email",
])
def test_repeated_parameter_is_invalid_request(app, test_client, service, body):
    client, secret = service
    response = test_client.post("/oauth/token", data=body, content_type="application/x-www-form-urlencoded",
                                auth=(client.client_id, secret))
    assert response.status_code == 400
    assert response.json["error"] == "invalid_request"
    with app.app_context():
        assert db.session.scalar(select(Token)) is None
