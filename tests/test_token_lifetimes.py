"""Per-client token lifetimes (access, refresh, id_token) from the client form, the CLI and
dynamic registration, within the site's OAUTH2_MAX_* limits."""

import json
import time

import jwt

from support.factories import count_rows
from support.flows import get_user_token, refresh
from support.pages import form_token
from website.models import OAuth2Client, Token, db


def test_a_client_with_its_own_lifetimes(app, test_client, auth, user, make_client):
    client, secret = make_client(scope="openid profile offline_access", access_token_lifetime=300,
                                 refresh_token_lifetime=86400, id_token_lifetime=120)
    auth.login()
    before = int(time.time())
    token = get_user_token(test_client, client, secret, scope="openid profile offline_access")
    assert token["expires_in"] == 300
    claims = jwt.decode(token["id_token"], options={"verify_signature": False})
    assert before + 120 <= claims["exp"] <= int(time.time()) + 120
    with app.app_context():
        row = db.session.scalar(db.select(Token).where(Token.client_id == client.client_id))
        assert before + 86400 <= row.refresh_token_expires_at <= int(time.time()) + 86400
    refreshed = refresh(test_client, client, token["refresh_token"], secret)
    assert refreshed.json["expires_in"] == 300


def test_clients_without_their_own_keep_the_sites(test_client, auth, user, make_client, app):
    client, secret = make_client(scope="openid profile")
    auth.login()
    assert get_user_token(test_client, client, secret, scope="openid")["expires_in"] == \
        app.config["OAUTH2_ACCESS_TOKEN_LIFETIME"]


def test_client_credentials_use_the_clients_lifetime(test_client, make_client):
    client, secret = make_client(grant_types=["client_credentials"], redirect_uris=[], scope="profile",
                                 access_token_lifetime=90)
    response = test_client.post("/oauth/token", data={"grant_type": "client_credentials"},
                                auth=(client.client_id, secret))
    assert response.json["expires_in"] == 90


def test_the_cli_sets_them_and_refuses_what_is_beyond_the_limit(app, runner):
    result = runner.invoke(args=["create-client", "--name", "Short", "--grant-type", "client_credentials",
                                 "--access-token-lifetime", "600", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["access_token_lifetime"] == 600
    too_long = runner.invoke(args=["create-client", "--name", "Long", "--grant-type", "client_credentials",
                                   "--access-token-lifetime", str(2 * 24 * 3600)])
    assert too_long.exit_code == 1
    assert "access_token_lifetime must be a whole number of seconds from 60 to 86400" in too_long.output
    assert "from 60 to" in runner.invoke(args=["create-client", "--name", "Tiny", "--grant-type",
                                               "client_credentials", "--id-token-lifetime", "5"]).output
    assert count_rows(app, OAuth2Client) == 1


def test_the_client_form_sets_and_clears_them(app, test_client, auth, user):
    auth.login()
    data = {"csrf_token": form_token(test_client, "/clients/new"), "client_name": "Lifetimes",
            "redirect_uris": "https://app.example.com/cb", "grant_types": ["authorization_code"],
            "token_endpoint_auth_method": "client_secret_basic", "access_token_lifetime": "900"}
    assert test_client.post("/clients/new", data=data).status_code == 303
    with app.app_context():
        client = db.session.scalar(db.select(OAuth2Client))
        assert client.client_metadata["access_token_lifetime"] == 900
        client_id = client.client_id
    edit = test_client.get(f"/clients/{client_id}/edit").get_data(as_text=True)
    assert 'value="900"' in edit
    bad = test_client.post(f"/clients/{client_id}/edit", data={**data, "csrf_token": form_token(
        test_client, f"/clients/{client_id}/edit"), "access_token_lifetime": "forever"})
    assert bad.status_code == 400
    assert "access_token_lifetime must be a whole number of seconds" in bad.get_data(as_text=True)
    cleared = test_client.post(f"/clients/{client_id}/edit", data={**data, "csrf_token": form_token(
        test_client, f"/clients/{client_id}/edit"), "access_token_lifetime": ""})
    assert cleared.status_code == 302
    with app.app_context():
        assert "access_token_lifetime" not in db.session.scalar(db.select(OAuth2Client)).client_metadata


def test_dynamic_registration_leaves_lifetimes_to_administrators(app, test_client):
    """RFC 7591 lets a server ignore metadata it does not take: a self-registered client
    cannot give itself long-lived tokens."""
    app.config["OAUTH2_OPEN_REGISTRATION"] = True
    response = test_client.post("/oauth/register", json={
        "client_name": "Dyn", "redirect_uris": ["https://dyn.example.com/cb"], "access_token_lifetime": 86400})
    assert response.status_code == 201
    assert "access_token_lifetime" not in response.json
