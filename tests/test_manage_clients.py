"""Registering and managing OAuth clients in the web UI."""

import json
import re

import pytest
from sqlalchemy import select
from support.factories import count_rows, update_rows
from support.flows import bearer, exchange_code, login_and_get_code
from support.pages import csrf_token

from website.models import OAuth2Client, SecretView, Token, db, hash_secret

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
    token = csrf_token(test_client.get(path).get_data(as_text=True))
    data = {**FORM, **changes, "csrf_token": token}
    return test_client.post(path, data={k: v for k, v in data.items() if v is not None})


def shown_secret(html: str) -> str | None:
    match = re.search(r'<code id="client-secret">([^<]+)</code>', html)
    return match.group(1) if match else None


def shown_client_id(html: str) -> str:
    return re.search(r'<code id="client-id">([^<]+)</code>', html).group(1)


SECRET_VIEW = re.compile(r"^/clients/([^/]+)/secret/([^/]+)$")
SHOWN_ONCE = "This secret was shown once; rotate it if you lost it."


def see_other_to_secret_view(response) -> str:
    """The one-time secret page a POST that made a secret redirects to (303, see other)."""
    assert response.status_code == 303
    assert SECRET_VIEW.match(response.headers["Location"]), response.headers["Location"]
    return response.headers["Location"]


def confirm_post(test_client, path, **data):
    """Open a confirmation page and press its confirming button (name="confirm")."""
    page = test_client.get(path)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'name="confirm" value="yes"' in html
    return test_client.post(path, data={"csrf_token": csrf_token(html), "confirm": "yes", **data})


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
    view = see_other_to_secret_view(post_form(test_client, "/clients/new"))
    response = test_client.get(view)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "Client created." in html
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
    assert response.status_code == 303  # no secret to show: straight to the client's page
    assert re.fullmatch(r"/clients/[^/]+", response.headers["Location"])
    html = test_client.get(response.headers["Location"]).get_data(as_text=True)
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
    ({"token_endpoint_auth_method": "client_secret_jwt"}, "token_endpoint_auth_method", "Not a valid choice"),
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
    view = see_other_to_secret_view(response)
    secret = shown_secret(test_client.get(view).get_data(as_text=True))
    assert secret
    assert shown_secret(test_client.get(view).get_data(as_text=True)) is None
    with app.app_context():
        assert db.session.get(OAuth2Client, client.id).client_secret_hash == hash_secret(secret)


def test_strict_checkbox_and_switching_to_private_key_jwt(app, test_client, own_client):
    client, _ = own_client
    path = f"/clients/{client.client_id}/edit"
    assert post_form(test_client, path, strict_auth_method="y").status_code == 302
    with app.app_context():
        assert db.session.get(OAuth2Client, client.id).strict_auth_method is True
    response = post_form(test_client, path, token_endpoint_auth_method="private_key_jwt")
    assert response.status_code == 400
    assert "jwks or jwks_uri" in response.get_data(as_text=True)
    response = post_form(test_client, path, token_endpoint_auth_method="private_key_jwt",
                         jwks_uri="https://myapp.example.com/jwks.json")
    assert response.status_code == 302
    with app.app_context():
        row = db.session.get(OAuth2Client, client.id)
        # Unticked: no longer strict; the key is the credential, so the secret is gone.
        assert row.strict_auth_method is False and row.client_secret_hash is None
        assert row.client_metadata["jwks_uri"] == "https://myapp.example.com/jwks.json"
    page = test_client.get(f"/clients/{client.client_id}").get_data(as_text=True)
    assert "signs its token requests with its own key" in page and "Rotate secret" not in page


def test_rotate_secret(app, test_client, own_client):
    client, old_secret = own_client
    page = test_client.get(f"/clients/{client.client_id}").get_data(as_text=True)
    assert f'href="/clients/{client.client_id}/rotate-secret"' in page  # a link to the question
    asking = test_client.get(f"/clients/{client.client_id}/rotate-secret").get_data(as_text=True)
    assert "The old secret stops working at once" in asking
    assert f'href="/clients/{client.client_id}">Cancel</a>' in asking
    view = see_other_to_secret_view(confirm_post(test_client, f"/clients/{client.client_id}/rotate-secret"))
    html = test_client.get(view).get_data(as_text=True)
    assert "New secret made; the old one no longer works." in html
    new_secret = shown_secret(html)
    assert new_secret and new_secret != old_secret
    data = {"grant_type": "refresh_token", "refresh_token": "x"}
    old = test_client.post("/oauth/token", data=data, auth=(client.client_id, old_secret))
    assert old.status_code == 401
    new = test_client.post("/oauth/token", data=data, auth=(client.client_id, new_secret))
    assert new.json["error"] == "invalid_grant"


def test_rotate_without_confirmation_changes_nothing(app, test_client, own_client):
    client, secret = own_client
    path = f"/clients/{client.client_id}/rotate-secret"
    assert test_client.get(path).status_code == 200  # asking is not rotating
    token = csrf_token(test_client.get(f"/clients/{client.client_id}").get_data(as_text=True))
    response = test_client.post(path, data={"csrf_token": token})  # a valid form, but not confirmed
    assert response.status_code == 200
    assert "The old secret stops working at once" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(OAuth2Client, client.id).client_secret_hash == hash_secret(secret)
    assert count_rows(app, SecretView) == 0


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
    token = csrf_token(page.get_data(as_text=True))
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
    token = csrf_token(test_client.get("/clients/new").get_data(as_text=True))
    assert test_client.get(f"/clients/{client.client_id}").status_code == 404
    assert test_client.get(f"/clients/{client.client_id}/edit").status_code == 404
    assert test_client.post(f"/clients/{client.client_id}/edit",
                            data={**FORM, "csrf_token": token}).status_code == 404
    assert test_client.get(f"/clients/{client.client_id}/rotate-secret").status_code == 404
    assert test_client.post(f"/clients/{client.client_id}/rotate-secret",
                            data={"csrf_token": token, "confirm": "yes"}).status_code == 404
    assert test_client.post(f"/clients/{client.client_id}/delete",
                            data={"csrf_token": token}).status_code == 404
    assert "Test App" not in test_client.get("/clients/").get_data(as_text=True)
    with app.app_context():
        row = db.session.get(OAuth2Client, client.id)
        assert row.client_secret_hash == client.client_secret_hash
        assert row.client_name == "Test App"


def test_unknown_client_id_is_not_found(test_client, logged_in):
    assert test_client.get("/clients/no-such-client").status_code == 404


# The new secret: post/redirect/get to a page that shows it once.


def register_and_follow(test_client) -> tuple[str, str]:
    """Register a client through the form; return the secret page's path and the secret shown."""
    view = see_other_to_secret_view(post_form(test_client, "/clients/new"))
    secret = shown_secret(test_client.get(view).get_data(as_text=True))
    assert secret
    return view, secret


def test_reloading_the_secret_page_shows_no_secret_and_registers_nothing(app, test_client, logged_in):
    view, secret = register_and_follow(test_client)
    again = test_client.get(view)
    assert again.status_code == 200
    html = again.get_data(as_text=True)
    assert SHOWN_ONCE in html
    assert shown_secret(html) is None and secret not in html
    assert shown_client_id(html) == SECRET_VIEW.match(view).group(1)
    assert count_rows(app, OAuth2Client) == 1
    assert count_rows(app, SecretView) == 0  # deleted when it was shown


def test_the_secret_page_is_only_for_the_user_who_made_the_client(app, test_client, auth, make_user,
                                                                   logged_in):
    view = see_other_to_secret_view(post_form(test_client, "/clients/new"))
    make_user("mallory")
    auth.login("mallory")
    assert test_client.get(view).status_code == 404
    auth.login("alice")
    assert shown_secret(test_client.get(view).get_data(as_text=True))  # mallory's try took nothing
    # A view token is bound to its client too: on another of alice's clients it shows nothing.
    other = see_other_to_secret_view(post_form(test_client, "/clients/new", client_name="Other"))
    other_client_id, token = SECRET_VIEW.match(other).groups()
    first_client_id = SECRET_VIEW.match(view).group(1)
    html = test_client.get(f"/clients/{first_client_id}/secret/{token}").get_data(as_text=True)
    assert SHOWN_ONCE in html and shown_secret(html) is None
    assert shown_secret(test_client.get(other).get_data(as_text=True))


@pytest.mark.parametrize("token", ["x", "é" * 10, "a" * 5000, "%ff%fe"])
def test_a_made_up_secret_view_shows_a_message(test_client, own_client, token):
    client, _ = own_client
    response = test_client.get(f"/clients/{client.client_id}/secret/{token}")
    assert response.status_code == 200
    assert SHOWN_ONCE in response.get_data(as_text=True)


def test_a_secret_view_token_with_a_nul_is_refused_before_the_view(test_client, own_client):
    # The input guard answers a NUL anywhere in a path with 400 before any view runs.
    client, _ = own_client
    assert test_client.get(f"/clients/{client.client_id}/secret/%00").status_code == 400


def test_the_new_secret_never_goes_into_the_session_cookie(app, test_client, logged_in):
    serializer = app.session_interface.get_signing_serializer(app)
    view = see_other_to_secret_view(post_form(test_client, "/clients/new"))
    after_post = test_client.get_cookie("idp_session").value
    response = test_client.get(view)
    secret = shown_secret(response.get_data(as_text=True))
    after_view = test_client.get_cookie("idp_session").value
    for cookie in (after_post, after_view):
        data = serializer.loads(cookie)
        assert data["user_id"] == logged_in.id  # the real session, decoded
        assert secret not in cookie
        assert secret not in json.dumps(data, default=str)
    assert "Client created." in json.dumps(serializer.loads(after_post), default=str)  # flashed, not shown


def test_the_database_never_holds_the_plain_secret(app, test_client, logged_in):
    view = see_other_to_secret_view(post_form(test_client, "/clients/new"))
    token = SECRET_VIEW.match(view).group(2)
    with app.app_context():
        stashed = db.session.scalar(select(SecretView))
        assert stashed.token_hash == hash_secret(token)  # the page's token only as a hash
        assert stashed.expires_at - stashed.created_at == 600
        # Every column of every table, while the secret waits to be shown.
        rows = [str(row) for table in db.metadata.sorted_tables
                for row in db.session.execute(table.select()).all()]
    secret = shown_secret(test_client.get(view).get_data(as_text=True))
    assert secret and not any(secret in row for row in rows)
    assert not any(token in row for row in rows)


def test_a_secret_nobody_opened_in_time_is_not_shown_and_is_purged(app, test_client, runner, logged_in):
    view = see_other_to_secret_view(post_form(test_client, "/clients/new"))
    update_rows(app, SecretView, {"expires_at": 1})
    result = runner.invoke(args=["purge-expired"])
    assert result.exit_code == 0, result.output
    assert "Deleted 1 new client secrets nobody opened in time." in result.output
    assert count_rows(app, SecretView) == 0
    assert SHOWN_ONCE in test_client.get(view).get_data(as_text=True)
    # Expired but not yet purged: not shown either, and gone afterwards.
    view = see_other_to_secret_view(post_form(test_client, "/clients/new", client_name="Second"))
    update_rows(app, SecretView, {"expires_at": 1})
    html = test_client.get(view).get_data(as_text=True)
    assert SHOWN_ONCE in html and shown_secret(html) is None
    assert count_rows(app, SecretView) == 0


def test_a_new_rotation_drops_the_unopened_view_of_the_old_secret(app, test_client, own_client):
    client, _ = own_client
    path = f"/clients/{client.client_id}/rotate-secret"
    first = see_other_to_secret_view(confirm_post(test_client, path))
    second = see_other_to_secret_view(confirm_post(test_client, path))
    assert SHOWN_ONCE in test_client.get(first).get_data(as_text=True)
    secret = shown_secret(test_client.get(second).get_data(as_text=True))
    with app.app_context():
        assert db.session.get(OAuth2Client, client.id).client_secret_hash == hash_secret(secret)


def test_deleting_a_client_deletes_its_unopened_secret_view(app, test_client, logged_in):
    view = see_other_to_secret_view(post_form(test_client, "/clients/new"))
    client_id = SECRET_VIEW.match(view).group(1)
    page = test_client.get(f"/clients/{client_id}/delete").get_data(as_text=True)
    test_client.post(f"/clients/{client_id}/delete", data={"csrf_token": csrf_token(page)})
    assert count_rows(app, OAuth2Client) == 0
    assert count_rows(app, SecretView) == 0
    assert test_client.get(view).status_code == 404


def test_dpop_checkbox_makes_the_client_dpop_bound(app, test_client, own_client):
    client, _ = own_client
    path = f"/clients/{client.client_id}/edit"
    assert post_form(test_client, path, dpop_bound_access_tokens="y").status_code == 302
    with app.app_context():
        assert db.session.get(OAuth2Client, client.id).client_metadata["dpop_bound_access_tokens"] is True
    page = test_client.get(f"/clients/{client.client_id}").get_data(as_text=True)
    assert "every token request carries a DPoP proof" in page
    assert '<input checked id="dpop_bound_access_tokens"' in test_client.get(path).get_data(
        as_text=True)
    # Unticked: no longer required.
    assert post_form(test_client, path).status_code == 302
    with app.app_context():
        assert "dpop_bound_access_tokens" not in db.session.get(OAuth2Client, client.id).client_metadata
