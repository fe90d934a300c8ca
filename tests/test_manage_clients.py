"""Registering and managing OAuth clients in the web UI."""

import re

import pytest
from sqlalchemy import select
from support.factories import count_rows
from support.flows import bearer, exchange_code, login_and_get_code
from support.pages import csrf_token, form_token

from website.models import OAuth2Client, Token, db, hash_secret

FORM = {
    "client_name": "My App",
    "client_uri": "https://myapp.example.com",
    "logo_uri": "",
    "redirect_uris": "https://myapp.example.com/callback\nhttp://127.0.0.1:8000/callback",
    "grant_types": ["authorization_code", "refresh_token"],
    "scope": "openid profile",
    "token_endpoint_auth_method": "client_secret_basic",
    "contacts": "dev@myapp.example.com",
}


def post_form(test_client, path, **changes):
    token = form_token(test_client, path)
    data = {**FORM, **changes, "csrf_token": token}
    return test_client.post(path, data={k: v for k, v in data.items() if v is not None})


def shown_secret(html: str) -> str | None:
    match = re.search(r'<code id="client-secret">([^<]+)</code>', html)
    return match.group(1) if match else None


def shown_client_id(html: str) -> str:
    return re.search(r'<code id="client-id">([^<]+)</code>', html).group(1)


def field_error(html: str, field: str) -> str:
    """The error text rendered with a form field."""
    if field == "grant_types":
        fieldset = html.split("<fieldset", 1)[1].split("</fieldset>", 1)[0]
        return " ".join(re.findall(r'<p class="error">([^<]*)</p>', fieldset))
    match = re.search(rf'id="{field}-error">([^<]*)<', html)
    return match.group(1) if match else ""


@pytest.fixture
def logged_in(auth, user):
    auth.login()
    return user


def test_pages_need_a_signed_in_user(test_client):
    for path in ("/clients/", "/clients/new"):
        response = test_client.get(path)
        assert response.status_code == 302
        assert response.headers["Location"].startswith("/login?next=")


def test_register_a_client_shows_the_secret_once_and_stores_its_hash(app, test_client, logged_in):
    response = post_form(test_client, "/clients/new")
    assert response.status_code == 201
    html = response.get_data(as_text=True)
    secret = shown_secret(html)
    client_id = shown_client_id(html)
    assert secret and len(secret) >= 40
    with app.app_context():
        client = db.session.scalar(select(OAuth2Client))
        assert client.client_id == client_id
        assert client.owner_id == logged_in.id
        assert client.client_secret_hash == hash_secret(secret)
        assert client.redirect_uris == ["https://myapp.example.com/callback", "http://127.0.0.1:8000/callback"]
        assert client.response_types == ["code"]
        assert client.scope == "openid profile"
        assert client.contacts == ["dev@myapp.example.com"]
    # Listed, and shown again without the secret.
    assert "My App" in test_client.get("/clients/").get_data(as_text=True)
    page = test_client.get(f"/clients/{client_id}").get_data(as_text=True)
    assert client_id in page
    assert secret not in page
    # The secret works at the token endpoint.
    response = test_client.post("/oauth/token", data={"grant_type": "refresh_token", "refresh_token": "x"},
                                auth=(client_id, secret))
    assert response.json["error"] == "invalid_grant"


def test_new_client_form_leaves_legacy_grants_off_and_labels_them(test_client, logged_in):
    html = test_client.get("/clients/new").get_data(as_text=True)
    for grant in ("implicit", "password"):
        checkbox = re.search(rf'<input[^>]*value="{grant}"[^>]*>', html).group(0)
        assert "checked" not in checkbox
    assert html.count("legacy, discouraged") == 2
    for grant in ("authorization_code", "refresh_token"):
        assert "checked" in re.search(rf'<input[^>]*value="{grant}"[^>]*>', html).group(0)


def test_register_a_public_client(app, test_client, logged_in):
    response = post_form(test_client, "/clients/new", token_endpoint_auth_method="none")
    assert response.status_code == 201
    html = response.get_data(as_text=True)
    assert shown_secret(html) is None
    assert "public client" in html
    with app.app_context():
        assert db.session.scalar(select(OAuth2Client)).client_secret_hash is None


@pytest.mark.parametrize("changes, field, message", [
    ({"client_name": ""}, "client_name", "This field is required."),
    ({"client_name": "x" * 101}, "client_name", "longer than 100"),
    ({"client_uri": "ftp://myapp.example.com"}, "client_uri", "Only http and https"),
    ({"logo_uri": "javascript:alert(1)"}, "logo_uri", "Only http and https"),
    ({"redirect_uris": ""}, "redirect_uris", "at least one redirect URI"),
    ({"redirect_uris": "http://myapp.example.com/cb"}, "redirect_uris", "loopback"),
    ({"redirect_uris": "https://myapp.example.com/cb#frag"}, "redirect_uris", "fragment"),
    ({"redirect_uris": "javascript:alert(1)//"}, "redirect_uris", "not allowed"),
    ({"redirect_uris": "myapp:/callback"}, "redirect_uris", "reverse domain"),
    ({"redirect_uris": "/callback"}, "redirect_uris", "absolute URI"),
    ({"redirect_uris": "https://user:pw@myapp.example.com/cb"}, "redirect_uris", "user name"),
    ({"grant_types": []}, "grant_types", "at least one grant type"),
    ({"grant_types": ["bogus"]}, "grant_types", "not a valid choice"),
    ({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "none"}, "grant_types",
     "public client"),
    ({"grant_types": ["password"], "token_endpoint_auth_method": "none"}, "grant_types", "public client"),
    ({"scope": "profile admin"}, "scope", "Unsupported scope: admin"),
    ({"token_endpoint_auth_method": "private_key_jwt"}, "token_endpoint_auth_method", "Not a valid choice"),
    ({"contacts": "not-an-email"}, "contacts", "not an email address"),
])
def test_bad_client_input_shows_a_message_and_writes_nothing(app, test_client, logged_in, changes, field,
                                                             message):
    response = post_form(test_client, "/clients/new", **changes)
    assert response.status_code == 400
    assert message.lower() in field_error(response.get_data(as_text=True), field).lower()
    assert count_rows(app, OAuth2Client) == 0


def test_create_without_csrf_token_is_refused(app, test_client, logged_in):
    response = test_client.post("/clients/new", data=FORM)
    assert response.status_code == 400
    assert count_rows(app, OAuth2Client) == 0


@pytest.fixture
def own_client(make_client, logged_in):
    return make_client(owner=logged_in, client_name="Mine")


def test_edit_a_client(app, test_client, own_client):
    client, _ = own_client
    page = test_client.get(f"/clients/{client.client_id}/edit").get_data(as_text=True)
    assert 'value="Mine"' in page
    response = post_form(test_client, f"/clients/{client.client_id}/edit", client_name="Renamed",
                         grant_types=["authorization_code", "implicit"])
    assert response.status_code == 302
    assert response.headers["Location"] == f"/clients/{client.client_id}"
    with app.app_context():
        row = db.session.get(OAuth2Client, client.id)
        assert row.client_name == "Renamed"
        assert row.grant_types == ["authorization_code", "implicit"]
        assert row.response_types == ["code", "token"]
        assert row.client_secret_hash == client.client_secret_hash


@pytest.mark.parametrize("changes, field", [
    ({"client_name": ""}, "client_name"),
    ({"redirect_uris": "http://example.com/cb"}, "redirect_uris"),
    ({"scope": "everything"}, "scope"),
])
def test_bad_edit_shows_a_message_and_changes_nothing(app, test_client, own_client, changes, field):
    client, _ = own_client
    response = post_form(test_client, f"/clients/{client.client_id}/edit", **changes)
    assert response.status_code == 400
    assert field_error(response.get_data(as_text=True), field)
    with app.app_context():
        row = db.session.get(OAuth2Client, client.id)
        assert row.client_name == "Mine"
        assert row.redirect_uris == client.redirect_uris
        assert row.scope == client.scope


def test_edit_without_csrf_token_is_refused(app, test_client, own_client):
    client, _ = own_client
    response = test_client.post(f"/clients/{client.client_id}/edit", data={**FORM, "client_name": "X"})
    assert response.status_code == 400
    with app.app_context():
        assert db.session.get(OAuth2Client, client.id).client_name == "Mine"


def test_switching_between_public_and_confidential(app, test_client, own_client):
    client, _ = own_client
    response = post_form(test_client, f"/clients/{client.client_id}/edit", token_endpoint_auth_method="none")
    assert response.status_code == 302
    with app.app_context():
        assert db.session.get(OAuth2Client, client.id).client_secret_hash is None
    response = post_form(test_client, f"/clients/{client.client_id}/edit",
                         token_endpoint_auth_method="client_secret_post")
    assert response.status_code == 200
    secret = shown_secret(response.get_data(as_text=True))
    with app.app_context():
        assert db.session.get(OAuth2Client, client.id).client_secret_hash == hash_secret(secret)


def test_rotate_secret(app, test_client, own_client):
    client, old_secret = own_client
    token = form_token(test_client, f"/clients/{client.client_id}")
    response = test_client.post(f"/clients/{client.client_id}/rotate-secret", data={"csrf_token": token})
    assert response.status_code == 200
    new_secret = shown_secret(response.get_data(as_text=True))
    assert new_secret and new_secret != old_secret
    data = {"grant_type": "refresh_token", "refresh_token": "x"}
    old = test_client.post("/oauth/token", data=data, auth=(client.client_id, old_secret))
    assert old.status_code == 401
    new = test_client.post("/oauth/token", data=data, auth=(client.client_id, new_secret))
    assert new.json["error"] == "invalid_grant"


def test_rotate_without_csrf_token_is_refused(app, test_client, own_client):
    client, _ = own_client
    response = test_client.post(f"/clients/{client.client_id}/rotate-secret")
    assert response.status_code == 400
    with app.app_context():
        assert db.session.get(OAuth2Client, client.id).client_secret_hash == client.client_secret_hash


def test_delete_a_client_and_its_tokens(app, test_client, auth, own_client):
    client, secret = own_client
    code, verifier = login_and_get_code(test_client, auth, client)
    access_token = exchange_code(test_client, client, secret, code, verifier).json["access_token"]
    page = test_client.get(f"/clients/{client.client_id}/delete")
    assert page.status_code == 200
    assert count_rows(app, OAuth2Client) == 1  # asking is not deleting
    token = csrf_token(page)
    response = test_client.post(f"/clients/{client.client_id}/delete", data={"csrf_token": token})
    assert response.status_code == 302
    assert count_rows(app, OAuth2Client) == 0
    assert count_rows(app, Token) == 0
    assert test_client.get("/api/me", headers=bearer(access_token)).status_code == 401
    assert test_client.get(f"/clients/{client.client_id}").status_code == 404


def test_delete_without_csrf_token_is_refused(app, test_client, own_client):
    client, _ = own_client
    response = test_client.post(f"/clients/{client.client_id}/delete")
    assert response.status_code == 400
    assert count_rows(app, OAuth2Client) == 1


def test_other_peoples_clients_are_not_found(app, test_client, make_user, make_client, logged_in):
    other = make_user("mallory")
    client, _ = make_client(owner=other)
    token = form_token(test_client, "/clients/new")
    assert test_client.get(f"/clients/{client.client_id}").status_code == 404
    assert test_client.get(f"/clients/{client.client_id}/edit").status_code == 404
    assert test_client.post(f"/clients/{client.client_id}/edit",
                            data={**FORM, "csrf_token": token}).status_code == 404
    assert test_client.post(f"/clients/{client.client_id}/rotate-secret",
                            data={"csrf_token": token}).status_code == 404
    assert test_client.post(f"/clients/{client.client_id}/delete",
                            data={"csrf_token": token}).status_code == 404
    assert "Test App" not in test_client.get("/clients/").get_data(as_text=True)
    with app.app_context():
        row = db.session.get(OAuth2Client, client.id)
        assert row.client_secret_hash == client.client_secret_hash
        assert row.client_name == "Test App"


def test_unknown_client_id_is_not_found(test_client, logged_in):
    assert test_client.get("/clients/no-such-client").status_code == 404
