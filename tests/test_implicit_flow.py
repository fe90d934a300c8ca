"""The implicit grant (legacy): tokens in the redirect's fragment."""

from urllib.parse import urlsplit

import pytest
from sqlalchemy import select
from support.flows import approve, authorize_url, bearer
from support.pages import query_params

from website.models import Token, db


@pytest.fixture
def implicit_client(make_client):
    return make_client(grant_types=["implicit"], token_endpoint_auth_method="none")[0]


def test_implicit_flow_puts_the_token_in_the_fragment(app, test_client, auth, user, implicit_client):
    auth.login()
    response = approve(test_client, authorize_url(implicit_client, response_type="token"))
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert location.query == ""
    params = query_params(response.headers["Location"])
    assert params["token_type"].lower() == "bearer"
    assert params["state"] == "xyz"
    assert params["scope"] == "profile"
    assert "refresh_token" not in params
    me = test_client.get("/api/me", headers=bearer(params["access_token"]))
    assert me.status_code == 200
    assert me.json["username"] == "alice"
    with app.app_context():
        row = db.session.scalar(select(Token))
        assert row.refresh_token_hash is None
        assert row.user_id == user.id


def test_confidential_client_may_use_implicit_too(test_client, auth, user, make_client):
    client, _ = make_client(grant_types=["implicit", "authorization_code"])
    auth.login()
    response = approve(test_client, authorize_url(client, response_type="token"))
    assert "access_token" in query_params(response.headers["Location"])


def test_deny_puts_access_denied_in_the_fragment(test_client, auth, user, implicit_client):
    auth.login()
    response = approve(test_client, authorize_url(implicit_client, response_type="token"), button="deny")
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert location.query == ""
    params = query_params(response.headers["Location"])
    assert params["error"] == "access_denied"
    assert params["state"] == "xyz"
    assert "access_token" not in params


def test_client_without_implicit_is_unauthorized_client(test_client, auth, user, make_client):
    client, _ = make_client()  # authorization_code and refresh_token only
    auth.login()
    response = test_client.get(authorize_url(client, response_type="token"))
    assert response.status_code == 302
    params = query_params(response.headers["Location"])
    assert params["error"] == "unauthorized_client"
    assert urlsplit(response.headers["Location"]).fragment


@pytest.mark.parametrize("params", [
    {"redirect_uri": "https://evil.example.com/callback"},
    {"client_id": "no-such-client"},
    {"client_id": None},
])
def test_bad_client_or_redirect_uri_shows_an_error_page(test_client, auth, user, implicit_client, params):
    auth.login()
    response = test_client.get(authorize_url(implicit_client, response_type="token", **params))
    assert response.status_code in (400, 401)
    assert "Location" not in response.headers
    assert "cannot continue" in response.get_data(as_text=True)
