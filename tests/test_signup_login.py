"""Signing up, logging in and logging out through the pages."""

import pytest
from sqlalchemy import select
from support.factories import PASSWORD, count_rows
from support.pages import form_token

from website.models import User, db


def signup(test_client, **fields):
    token = form_token(test_client, "/signup")
    data = {"username": "bob", "email": "bob@example.com", "password": PASSWORD, "confirm": PASSWORD,
            "csrf_token": token}
    data.update(fields)
    return test_client.post("/signup", data={k: v for k, v in data.items() if v is not None})


def field_error(html: str, field: str) -> str:
    """The error message rendered under a form field (empty if none)."""
    marker = f'id="{field}-error">'
    if marker not in html:
        return ""
    return html.split(marker, 1)[1].split("<", 1)[0]


def test_signup_creates_the_account_and_signs_in(app, test_client):
    response = signup(test_client)
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    assert "Signed in as <strong>bob</strong>" in test_client.get("/").get_data(as_text=True)
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == "bob"))
        assert user.email == "bob@example.com"
        assert user.is_admin is False
        assert PASSWORD not in user.password_hash
        assert user.check_password(PASSWORD)


@pytest.mark.parametrize("fields, field, message", [
    ({"username": ""}, "username", "This field is required."),
    ({"username": "ab"}, "username", "between 3 and 40"),
    ({"username": "x" * 41}, "username", "between 3 and 40"),
    ({"username": "bob smith"}, "username", "letters, digits"),
    ({"username": "<script>"}, "username", "letters, digits"),
    ({"username": "bob\n"}, "username", "letters, digits"),  # "$" matched before a final newline
    ({"username": "bob\t"}, "username", "letters, digits"),
    ({"username": "böb"}, "username", "letters, digits"),
    ({"email": ""}, "email", "This field is required."),
    ({"email": "bob@example.com\n"}, "email", "email address"),
    ({"email": "not-an-email"}, "email", "email address"),
    ({"password": "short", "confirm": "short"}, "password", "between 8 and 1000"),
    ({"confirm": "something else"}, "confirm", "The passwords differ."),
    ({"password": None, "confirm": None}, "password", "This field is required."),
])
def test_bad_signup_input_shows_a_message_and_writes_nothing(app, test_client, fields, field, message):
    response = signup(test_client, **fields)
    assert response.status_code == 400
    assert message in field_error(response.get_data(as_text=True), field)
    assert count_rows(app, User) == 0


def test_taken_username_shows_a_message(app, test_client, user):
    response = signup(test_client, username="alice")
    assert response.status_code == 400
    assert "taken" in field_error(response.get_data(as_text=True), "username")
    assert count_rows(app, User) == 1


@pytest.mark.parametrize("look_alike", ["Alice", "ALICE", "ａｌｉｃｅ", "Ａlice"])
def test_a_look_alike_of_a_taken_username_is_taken(app, test_client, user, look_alike):
    response = signup(test_client, username=look_alike)
    assert response.status_code == 400
    assert "taken" in field_error(response.get_data(as_text=True), "username")
    assert count_rows(app, User) == 1


def test_a_fullwidth_username_is_stored_in_its_plain_form(app, test_client):
    assert signup(test_client, username="ｂｏｂ").status_code == 302
    with app.app_context():
        assert db.session.scalar(select(User.username)) == "bob"


@pytest.mark.parametrize("typed", ["Alice", "ALICE", "ａｌｉｃｅ"])
def test_log_in_matches_the_username_in_canonical_form(app, test_client, auth, user, typed):
    assert auth.login(username=typed).status_code == 302
    assert "Signed in as <strong>alice</strong>" in test_client.get("/").get_data(as_text=True)


@pytest.mark.parametrize("path, data", [
    ("/signup", {"username": "bob", "email": "bob@example.com", "password": PASSWORD, "confirm": PASSWORD}),
    ("/login", {"username": "alice", "password": PASSWORD}),
])
def test_form_post_without_csrf_token_is_refused(app, test_client, user, path, data):
    response = test_client.post(path, data=data)
    assert response.status_code == 400
    assert "CSRF" in response.get_data(as_text=True)
    assert count_rows(app, User) == 1
    assert "Signed in as" not in test_client.get("/").get_data(as_text=True)


def test_login_and_logout(test_client, auth, user):
    response = auth.login()
    assert response.status_code == 302
    assert "Signed in as <strong>alice</strong>" in test_client.get("/").get_data(as_text=True)
    response = auth.logout()
    assert response.status_code == 302
    assert "Signed in as" not in test_client.get("/").get_data(as_text=True)


def test_logout_without_csrf_token_keeps_the_session(test_client, auth, user):
    auth.login()
    response = test_client.post("/logout")
    assert response.status_code == 400
    assert "Signed in as <strong>alice</strong>" in test_client.get("/").get_data(as_text=True)


def test_logout_is_post_only(test_client, auth, user):
    auth.login()
    assert test_client.get("/logout").status_code == 405
    assert "Signed in as" in test_client.get("/").get_data(as_text=True)


@pytest.mark.parametrize("username, password, field, message", [
    ("alice", "wrong password", "password", "Wrong username or password."),
    ("nobody", PASSWORD, "password", "Wrong username or password."),
    ("", PASSWORD, "username", "This field is required."),
    ("alice", "", "password", "This field is required."),
    ("a" * 41, PASSWORD, "username", "40"),
])
def test_bad_login_shows_a_message(test_client, auth, user, username, password, field, message):
    response = auth.login(username=username, password=password)
    assert response.status_code == 400
    assert message in field_error(response.get_data(as_text=True), field)
    assert "Signed in as" not in test_client.get("/").get_data(as_text=True)


@pytest.mark.parametrize("next_url, expected", [
    ("/clients/", "/clients/"),
    ("/oauth/authorize?client_id=x&state=y", "/oauth/authorize?client_id=x&state=y"),
    ("https://evil.example.com/", "/"),
    ("//evil.example.com/", "/"),
    ("/\\evil.example.com", "/"),
    ("javascript:alert(1)", "/"),
    ("", "/"),
])
def test_login_follows_only_local_next_urls(test_client, user, next_url, expected):
    token = form_token(test_client, "/login")
    response = test_client.post("/login", query_string={"next": next_url},
                                data={"username": "alice", "password": PASSWORD, "csrf_token": token})
    assert response.status_code == 302
    assert response.headers["Location"] == expected


def test_signup_follows_a_local_next_url(test_client):
    token = form_token(test_client, "/signup")
    response = test_client.post("/signup?next=/clients/", data={
        "username": "bob", "email": "bob@example.com", "password": PASSWORD, "confirm": PASSWORD,
        "csrf_token": token})
    assert response.headers["Location"] == "/clients/"


def test_login_starts_a_new_session(test_client, auth, user):
    # A session fixed before log-in must not survive it.
    with test_client.session_transaction() as session:
        session["planted"] = "by an attacker"
    auth.login()
    with test_client.session_transaction() as session:
        assert "planted" not in session
        assert isinstance(session["user_id"], int)


def test_deleted_user_is_signed_out(app, test_client, auth, user):
    auth.login()
    with app.app_context():
        db.session.delete(db.session.get(User, user.id))
        db.session.commit()
    assert "Signed in as" not in test_client.get("/").get_data(as_text=True)
