"""The account page: change the password and the email, each only with the current password."""

import pytest
from support.factories import PASSWORD
from support.pages import form_token

from website.models import User, db
from website.store.users import authenticate_user


def test_account_page_needs_login(test_client):
    response = test_client.get("/account/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")


def test_account_page_shows_the_user_and_both_forms(test_client, auth, user):
    auth.login()
    html = test_client.get("/account/").get_data(as_text=True)
    assert "alice@example.com" in html
    assert 'for="password-current_password"' in html
    assert 'for="email-email"' in html


def test_account_page_title_is_plain_text_and_links_to_connected_apps(test_client, auth, user):
    auth.login()
    html = test_client.get("/account/").get_data(as_text=True)
    title = html.split("<title>", 1)[1].split("</title>", 1)[0]
    assert title.startswith("Account") and "<" not in title
    assert html.count('id="apps-title"') == 1
    assert 'href="/account/apps"' in html


def test_change_password_with_the_current_one(app, test_client, auth, user):
    auth.login()
    response = test_client.post("/account/password", data={
        "password-csrf_token": form_token(test_client, "/account/", "password-csrf_token"),
        "password-current_password": PASSWORD,
        "password-new_password": "a brand new secret", "password-confirm": "a brand new secret",
    })
    assert response.status_code == 302
    assert "Your password was changed." in test_client.get("/account/").get_data(as_text=True)
    with app.app_context():
        assert authenticate_user("alice", "a brand new secret") is not None
        assert authenticate_user("alice", PASSWORD) is None


@pytest.mark.parametrize("current, new, confirm, field, message", [
    ("wrong password", "a brand new secret", "a brand new secret", "current_password",
     "That is not your current password."),
    (PASSWORD, "short", "short", "new_password", "Use 8 to 1000 characters."),
    (PASSWORD, "a brand new secret", "something else", "confirm", "The passwords differ."),
    ("", "a brand new secret", "a brand new secret", "current_password", "This field is required."),
])
def test_change_password_shows_the_problem_next_to_the_field(
        app, test_client, auth, user, current, new, confirm, field, message):
    auth.login()
    response = test_client.post("/account/password", data={
        "password-csrf_token": form_token(test_client, "/account/", "password-csrf_token"),
        "password-current_password": current,
        "password-new_password": new, "password-confirm": confirm,
    })
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert f'<p class="error" id="password-{field}-error">{message}</p>' in html
    assert f'aria-describedby="password-{field}-error"' in html or f'password-{field}-error"' in html
    with app.app_context():
        assert authenticate_user("alice", PASSWORD) is not None


def test_change_email_waits_for_the_new_address(app, test_client, auth, user, mailbox):
    auth.login()
    response = test_client.post("/account/email", data={
        "email-csrf_token": form_token(test_client, "/account/", "email-csrf_token"),
        "email-email": " ada@example.org ",
        "email-current_password": PASSWORD,
    })
    assert response.status_code == 302
    assert mailbox.wait_for(1)[0]["To"] == "ada@example.org"
    with app.app_context():  # until the link is followed (tests/test_account_mail.py)
        assert db.session.get(User, user.id).email == "alice@example.com"


@pytest.mark.parametrize("email, password, field, message", [
    ("not-an-email", PASSWORD, "email", "Enter an email address such as ada@example.com."),
    ("ada@example.org", "wrong password", "current_password", "That is not your current password."),
])
def test_change_email_refuses_bad_input(app, test_client, auth, user, email, password, field, message):
    auth.login()
    response = test_client.post("/account/email", data={
        "email-csrf_token": form_token(test_client, "/account/", "email-csrf_token"),
        "email-email": email, "email-current_password": password,
    })
    assert response.status_code == 400
    assert f'<p class="error" id="email-{field}-error">{message}</p>' in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(User, user.id).email == "alice@example.com"


def test_change_password_without_csrf_token_is_refused(app, test_client, auth, user):
    auth.login()
    response = test_client.post("/account/password", data={
        "password-current_password": PASSWORD, "password-new_password": "a brand new secret",
        "password-confirm": "a brand new secret",
    })
    assert response.status_code == 400
    with app.app_context():
        assert authenticate_user("alice", PASSWORD) is not None
