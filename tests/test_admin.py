"""The admin area: only administrators; users (search, paging, make/revoke admin, delete) and clients."""


import pytest
from sqlalchemy import func, select
from support.factories import PASSWORD
from support.pages import form_token

from website.models import AuditEvent, AuthorizationCode, OAuth2Client, Token, User, db, hash_secret, now


@pytest.fixture
def admin(make_user):
    return make_user("grace", is_admin=True)


@pytest.mark.parametrize("path", ["/admin/", "/admin/users", "/admin/clients", "/admin/users/1/delete"])
def test_admin_pages_are_for_admins_only(test_client, auth, user, path):
    assert test_client.get(path).status_code == 302  # signed out: to the login page
    auth.login()
    response = test_client.get(path)
    assert response.status_code == 403
    assert "You cannot open this page" in response.get_data(as_text=True)


def test_admin_link_only_for_admins(test_client, auth, user, admin):
    auth.login("alice")
    assert 'href="/admin/"' not in test_client.get("/").get_data(as_text=True)
    auth.login("grace")
    assert 'href="/admin/"' in test_client.get("/").get_data(as_text=True)


def test_user_list_searches_username_and_email(test_client, auth, admin, make_user):
    make_user("bob", email="bob@builders.test")
    make_user("carol")
    auth.login("grace")
    html = test_client.get("/admin/users?q=BUILDERS").get_data(as_text=True)
    assert "bob@builders.test" in html and "carol" not in html
    html = test_client.get("/admin/users?q=car").get_data(as_text=True)
    assert "carol" in html and "bob" not in html
    # LIKE wildcards are searched for literally.
    assert "No user matches" in test_client.get("/admin/users?q=%25").get_data(as_text=True)


def test_user_list_pages(test_client, auth, admin, make_user):
    for i in range(25):
        make_user(f"user{i:02d}")
    auth.login("grace")
    first = test_client.get("/admin/users").get_data(as_text=True)
    assert "Page 1 of 2 · 26 in all" in first
    assert "user24" in first and "user05" in first and "user04" not in first  # newest first
    second = test_client.get("/admin/users?page=2").get_data(as_text=True)
    assert "user04" in second and "user05" not in second and "(you)</span>" in second
    assert test_client.get("/admin/users?page=3").status_code == 404
    assert test_client.get("/admin/users?page=x").status_code == 200  # not a number: page 1


def test_make_and_revoke_admin(app, test_client, auth, admin, user):
    auth.login("grace")
    token = form_token(test_client, "/admin/users")
    response = test_client.post(f"/admin/users/{user.id}/admin", data={
        "csrf_token": token, "make_admin": "1", "confirm": "yes", "back": "/admin/users?q=ali"})
    assert response.status_code == 302
    assert response.headers["Location"] == "/admin/users?q=ali"
    with app.app_context():
        assert db.session.get(User, user.id).is_admin
    test_client.post(f"/admin/users/{user.id}/admin",
                     data={"csrf_token": token, "make_admin": "0", "back": "https://evil.test/"})
    with app.app_context():
        assert not db.session.get(User, user.id).is_admin


def test_make_admin_asks_first(app, test_client, auth, admin, user):
    auth.login("grace")
    users = test_client.get("/admin/users?q=ali").get_data(as_text=True)
    link = f'href="/admin/users/{user.id}/admin?back=/admin/users?q%3Dali"'
    assert link in users  # a link to the question, not a form that acts
    path = f"/admin/users/{user.id}/admin"
    asking = test_client.get(path + "?back=/admin/users?q%3Dali")
    assert asking.status_code == 200
    html = asking.get_data(as_text=True)
    assert "Make alice an administrator?" in html
    assert "alice will be able to see every user and client" in html
    assert 'href="/admin/users?q=ali">Cancel</a>' in html
    assert 'name="confirm" value="yes"' in html
    token = form_token(test_client, path)
    # The users list's old one-step form: a valid CSRF token, no confirmation.
    response = test_client.post(path, data={"csrf_token": token, "make_admin": "1"})
    assert response.status_code == 200
    assert "Make alice an administrator?" in response.get_data(as_text=True)
    with app.app_context():
        assert not db.session.get(User, user.id).is_admin
    response = test_client.post(path, data={"csrf_token": token, "make_admin": "1", "confirm": "yes"},
                                follow_redirects=True)
    assert "alice is now an administrator." in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(User, user.id).is_admin
    # Already an administrator: nothing to ask.
    response = test_client.get(path, follow_redirects=True)
    assert "alice is already an administrator." in response.get_data(as_text=True)


def test_make_admin_is_for_admins_only(app, test_client, auth, user, make_user):
    make_user("bob")
    auth.login("alice")
    token = auth.csrf_token("/clients/new")
    assert test_client.get("/admin/users/2/admin").status_code == 403
    assert test_client.post("/admin/users/1/admin",
                            data={"csrf_token": token, "make_admin": "1", "confirm": "yes"}).status_code == 403
    with app.app_context():
        assert not db.session.get(User, user.id).is_admin


def test_admin_cannot_revoke_own_rights(app, test_client, auth, admin):
    auth.login("grace")
    token = form_token(test_client, "/admin/users")
    response = test_client.post(f"/admin/users/{admin.id}/admin", data={"csrf_token": token, "make_admin": "0"},
                                follow_redirects=True)
    assert "You cannot revoke your own admin rights" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(User, admin.id).is_admin


def test_set_admin_needs_csrf_token(app, test_client, auth, admin, user):
    auth.login("grace")
    assert test_client.post(f"/admin/users/{user.id}/admin", data={"make_admin": "1"}).status_code == 400
    with app.app_context():
        assert not db.session.get(User, user.id).is_admin


def test_delete_user_asks_then_removes_the_user_and_what_they_own(app, test_client, auth, admin, user,
                                                                 make_client):
    client, _ = make_client(owner=user, client_name="Alice's App")
    other, _ = make_client(owner=admin)
    with app.app_context():
        # A token issued by alice's client to grace, and one issued to alice by grace's client.
        for client_id, user_id, value in ((client.client_id, admin.id, "t1"), (other.client_id, user.id, "t2")):
            db.session.add(Token(client_id=client_id, user_id=user_id, access_token_hash=hash_secret(value),
                                 expires_in=3600, expires_at=now() + 3600, family_id=value))
        db.session.add(AuthorizationCode(code_hash=hash_secret("c1"), client_id=client.client_id,
                                         user_id=admin.id, expires_at=now() + 300))
        db.session.commit()
    auth.login("grace")
    page = test_client.get(f"/admin/users/{user.id}/delete")
    assert page.status_code == 200
    assert "Alice&#39;s App" in page.get_data(as_text=True)
    token = form_token(test_client, f"/admin/users/{user.id}/delete")
    # The clients' fate is an explicit choice: without it, nothing is deleted.
    unchosen = test_client.post(f"/admin/users/{user.id}/delete", data={"csrf_token": token})
    assert unchosen.status_code == 400
    assert "Choose what happens to their clients." in unchosen.get_data(as_text=True)
    response = test_client.post(f"/admin/users/{user.id}/delete", data={"csrf_token": token, "clients": "delete"})
    assert response.status_code == 302
    with app.app_context():
        assert db.session.get(User, user.id) is None
        assert db.session.scalar(select(func.count()).select_from(OAuth2Client)) == 1
        assert db.session.scalar(select(func.count()).select_from(Token)) == 0
        assert db.session.scalar(select(func.count()).select_from(AuthorizationCode)) == 0
    # Alice can no longer log in.
    assert "Wrong username or password." in auth.login("alice", PASSWORD).get_data(as_text=True)


def test_admin_cannot_delete_self(app, test_client, auth, admin):
    auth.login("grace")
    response = test_client.get(f"/admin/users/{admin.id}/delete", follow_redirects=True)
    assert "You cannot delete your own account here." in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(User, admin.id) is not None


def test_delete_unknown_user_is_404(test_client, auth, admin):
    auth.login("grace")
    assert test_client.get("/admin/users/9999/delete").status_code == 404


def test_client_list_searches_and_pages(test_client, auth, admin, user, make_client):
    for i in range(22):
        make_client(owner=user, client_name=f"App {i:02d}")
    target, _ = make_client(owner=admin, client_name="Weather Station")
    auth.login("grace")
    html = test_client.get("/admin/clients").get_data(as_text=True)
    assert "Page 1 of 2 · 23 in all" in html
    assert "Weather Station" in html and "App 00" not in html
    html = test_client.get("/admin/clients?q=weather").get_data(as_text=True)
    assert "Weather Station" in html and "App 01" not in html and "grace" in html
    html = test_client.get(f"/admin/clients?q={target.client_id[:10]}").get_data(as_text=True)
    assert target.client_id in html
    assert "No client matches" in test_client.get("/admin/clients?q=nothing-like-it").get_data(as_text=True)


def test_granting_and_revoking_admin_rights_is_audited(app, test_client, auth, admin, user):
    auth.login("grace")
    path = f"/admin/users/{user.id}/admin"
    token = form_token(test_client, path)
    test_client.post(path, data={"csrf_token": token, "make_admin": "1", "confirm": "yes"})
    test_client.post(path, data={"csrf_token": token, "make_admin": "0"})
    with app.app_context():
        events = db.session.scalars(select(AuditEvent).where(AuditEvent.event.like("admin_%"))
                                    .order_by(AuditEvent.id)).all()
        assert [(e.event, e.username, e.detail["by"]) for e in events] == [
            ("admin_granted", "alice", "grace"), ("admin_revoked", "alice", "grace")]
