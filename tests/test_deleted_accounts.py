"""An administrator deletes an account: its id and its OpenID Connect ``sub`` are never given to
anyone else (OIDC Core §2), and a copy of its session cookie signs in nobody, even when a new
account comes along afterwards."""

import pytest
from support.factories import PASSWORD
from support.flows import get_user_token
from support.pages import form_token

from website.models import User, db


@pytest.fixture
def admin(make_user):
    return make_user("grace", is_admin=True)


def signup(browser, username):
    token = form_token(browser, "/signup")
    response = browser.post("/signup", data={"username": username, "email": f"{username}@example.com",
                                             "password": PASSWORD, "confirm": PASSWORD, "csrf_token": token})
    assert response.status_code == 302, response.get_data(as_text=True)


def delete_user(app, username):
    """Delete the account through the admin pages, as grace."""
    admin = app.test_client()
    login = form_token(admin, "/login")
    assert admin.post("/login", data={"username": "grace", "password": PASSWORD,
                                      "csrf_token": login}).status_code == 302
    with app.app_context():
        user_id = db.session.query(User.id).filter_by(username=username).scalar()
    path = f"/admin/users/{user_id}/delete"
    assert admin.post(path, data={"csrf_token": form_token(admin, path)}).status_code == 302
    with app.app_context():
        assert db.session.get(User, user_id) is None


def account_of(app, username) -> User:
    with app.app_context():
        user = db.session.query(User).filter_by(username=username).one()
        db.session.expunge(user)
        return user


def signed_in_as(browser) -> str | None:
    """Who /account shows as signed in (None: it sends the browser to log in)."""
    page = browser.get("/account/")
    if page.status_code == 302:
        return None
    html = page.get_data(as_text=True)
    return html.split("Signed in as <strong>", 1)[1].split("<", 1)[0]


def test_a_new_account_never_gets_the_id_or_sub_of_a_deleted_one(app, admin, make_client):
    client, secret = make_client(scope="openid profile")
    bob_browser = app.test_client()
    signup(bob_browser, "bob")
    bob = account_of(app, "bob")
    bob_seen = bob_browser.get("/userinfo", headers={
        "Authorization": "Bearer " + get_user_token(bob_browser, client, secret, scope="openid profile")["access_token"]})
    assert bob_seen.json["sub"] == bob.sub

    delete_user(app, "bob")  # the newest account: SQLite without AUTOINCREMENT reuses its id
    carol_browser = app.test_client()
    signup(carol_browser, "carol")
    carol = account_of(app, "carol")

    assert carol.id > bob.id
    assert carol.sub != bob.sub
    token = get_user_token(carol_browser, client, secret, scope="openid profile")
    carol_seen = carol_browser.get("/userinfo", headers={"Authorization": "Bearer " + token["access_token"]})
    assert carol_seen.json["sub"] == carol.sub != bob_seen.json["sub"]


def test_a_new_account_gets_an_opaque_sub(app, test_client):
    signup(test_client, "bob")
    bob = account_of(app, "bob")
    assert bob.sub != str(bob.id) and len(bob.sub) >= 32


def test_the_copied_cookie_of_a_deleted_account_signs_in_nobody(app, admin):
    bob_browser = app.test_client()
    signup(bob_browser, "bob")
    stolen = bob_browser.get_cookie("idp_session").value
    delete_user(app, "bob")
    signup(app.test_client(), "carol")

    thief = app.test_client()
    thief.set_cookie("idp_session", stolen)
    assert signed_in_as(thief) is None
    assert "Signed in as" not in thief.get("/").get_data(as_text=True)


def test_the_cookie_of_a_deleted_account_signs_in_nobody_even_if_its_id_comes_back(app, admin):
    """Should an id be handed out again anyway (a database restored from a backup, a reset
    sequence), the session is bound to the account's own random secret, not to its id."""
    bob_browser = app.test_client()
    signup(bob_browser, "bob")
    bob = account_of(app, "bob")
    stolen = bob_browser.get_cookie("idp_session").value
    delete_user(app, "bob")
    with app.app_context():
        carol = User(id=bob.id, username="carol", email="carol@example.com")
        carol.set_password(PASSWORD, method=app.config["PASSWORD_HASH_METHOD"])
        db.session.add(carol)
        db.session.commit()

    thief = app.test_client()
    thief.set_cookie("idp_session", stolen)
    assert signed_in_as(thief) is None


def test_the_session_cookie_holds_a_digest_not_the_secret(app, test_client):
    signup(test_client, "bob")
    bob = account_of(app, "bob")
    assert signed_in_as(test_client) == "bob"
    with test_client.session_transaction() as current:
        assert current["session_key"] != bob.session_secret
        assert bob.session_secret not in repr(dict(current))
