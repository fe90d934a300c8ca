"""A person's own data: "Download my data" (a JSON file of profile, sessions, connected apps and
the audit entries about them) and deleting one's account (password, the username typed out, and
the apps they own named first)."""

import json

import pytest
from support.factories import PASSWORD, count_rows
from support.flows import exchange_code, get_code
from support.pages import AuthActions, csrf_token, form_token

from website.models import AuditEvent, Consent, OAuth2Client, Token, User, UserSession, db


def test_download_needs_a_signed_in_person(test_client):
    response = test_client.get("/account/data")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")


def test_download_my_data_is_a_json_file_of_everything_about_me(app, test_client, auth, user, make_client):
    client, secret = make_client(client_name="Photo Album")
    auth.login()
    code, verifier = get_code(test_client, client)
    token = exchange_code(test_client, client, secret, code, verifier).json
    page = test_client.get("/account/").get_data(as_text=True)
    assert 'href="/account/data" download>Download my data' in page
    response = test_client.get("/account/data")
    assert response.status_code == 200
    assert response.headers["Content-Disposition"] == f'attachment; filename="my-data-{user.id}.json"'
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.headers["Cache-Control"] == "no-store"
    data = json.loads(response.get_data(as_text=True))
    assert data["profile"]["username"] == "alice" and data["profile"]["sub"] == user.sub
    [current] = [s for s in data["sessions"] if s["live"]]
    assert current["amr"] == ["pwd"] and current["clients"] == [client.client_id]
    [app_data] = data["connected_apps"]
    assert app_data["client_name"] == "Photo Album"
    assert app_data["consent"]["scope"] == "profile"
    assert len(app_data["tokens"]) == 1 and app_data["tokens"][0]["has_refresh_token"]
    events = [entry["event"] for entry in data["audit_entries"]]
    assert "login_succeeded" in events and "consent_granted" in events and "token_issued" in events
    body = response.get_data(as_text=True)
    for secret_value in (token["access_token"], token["refresh_token"], secret, user.password_hash):
        assert secret_value not in body
    assert "password_hash" not in body
    assert count_rows(app, AuditEvent, AuditEvent.event == "personal_data_downloaded") == 1


def test_the_download_holds_no_one_elses_data(app, test_client, auth, user, make_user):
    make_user("bob")
    AuthActions(app.test_client()).login("bob")
    auth.login()
    data = test_client.get("/account/data").json
    assert len(data["sessions"]) == 1
    assert [entry["event"] for entry in data["audit_entries"]] == ["login_succeeded"]  # alice's, not bob's
    assert "bob" not in json.dumps(data)


@pytest.fixture
def alice_with_apps(app, user, make_client, make_user):
    """alice owns two clients; bob signed in to one of them."""
    make_user("bob")
    album, album_secret = make_client(owner=user, client_name="Photo Album")
    make_client(owner=user, client_name="Recipe Box")
    bob = app.test_client()
    AuthActions(bob).login("bob")
    code, verifier = get_code(bob, album)
    assert exchange_code(bob, album, album_secret, code, verifier).status_code == 200
    return album


def delete(client, password=PASSWORD, confirmation="alice", token=None):
    token = token if token is not None else form_token(client, "/account/delete")
    return client.post("/account/delete", data={"password": password, "confirmation": confirmation,
                                                "csrf_token": token})


def test_the_delete_page_names_the_apps_that_go_with_the_account(test_client, auth, alice_with_apps):
    auth.login()
    assert 'href="/account/delete"' in test_client.get("/account/").get_data(as_text=True)
    page = test_client.get("/account/delete").get_data(as_text=True)
    assert "You own 2 apps." in page
    assert page.index("Photo Album") < page.index("Your password")
    assert "Recipe Box" in page and "are signed out of them" in page
    assert "This cannot be undone." in page


def test_the_delete_page_without_apps_says_so(test_client, auth, user):
    auth.login()
    assert "You own no apps." in test_client.get("/account/delete").get_data(as_text=True)


@pytest.mark.parametrize("password, confirmation, message", [
    ("wrong password", "alice", "That is not your password."),
    (PASSWORD, "alicia", "Type your username, alice, to confirm."),
    (PASSWORD, "", "This field is required."),
    ("", "alice", "This field is required."),
    (PASSWORD, "a" * 101, "Field cannot be longer than 100 characters."),
    ("x" * 1001, "alice", "Field cannot be longer than 1000 characters."),
])
def test_deleting_refuses_bad_input_with_a_message(app, test_client, auth, alice_with_apps, password,
                                                   confirmation, message):
    auth.login()
    response = delete(test_client, password, confirmation)
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert count_rows(app, User, User.username == "alice") == 1
    assert count_rows(app, OAuth2Client) == 2


def test_deleting_needs_the_csrf_token(app, test_client, auth, alice_with_apps):
    auth.login()
    assert delete(test_client, token="").status_code == 400
    assert count_rows(app, User, User.username == "alice") == 1


def test_deleting_the_account_removes_it_with_its_apps_and_signs_out_everywhere(
        app, test_client, auth, alice_with_apps, user):
    phone = app.test_client()
    AuthActions(phone).login()
    auth.login()
    response = delete(test_client, confirmation="ALICE")  # the username in any case
    assert response.status_code == 302 and response.headers["Location"] == "/"
    assert "The account alice is deleted, with 2 apps you owned." in test_client.get("/").get_data(as_text=True)
    assert test_client.get("/account/").status_code == 302
    assert phone.get("/account/").status_code == 302
    assert count_rows(app, User, User.username == "alice") == 0
    assert count_rows(app, OAuth2Client) == 0
    assert count_rows(app, Token) == 0  # bob's token at alice's app went with it
    assert count_rows(app, Consent) == 0
    assert count_rows(app, UserSession, UserSession.user_id == user.id) == 0
    with app.app_context():
        event = db.session.scalar(db.select(AuditEvent).where(AuditEvent.event == "account_deleted"))
        assert event.username == "alice" and event.detail["clients"] == ["Photo Album", "Recipe Box"]
    assert auth.login().status_code == 400  # the account is gone
    assert csrf_token(test_client.get("/login").get_data(as_text=True))
