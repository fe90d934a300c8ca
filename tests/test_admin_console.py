"""The admin console's pages for one person, one client and the groups: every action an
administrator takes, confirmed first where it destroys something, audited with who did it."""

import pytest

from support.factories import count_rows
from support.flows import get_user_token, me
from support.mail import links_in
from support.pages import AuthActions, csrf_token, form_token
from website.models import AccountLink, AuditEvent, ClientRole, Group, GroupMember, OAuth2Client, User, UserSession, db


@pytest.fixture
def admin(make_user, auth):
    user = make_user("grace", is_admin=True)
    return user


def post(test_client, path, form_path=None, **data):
    return test_client.post(path, data={"csrf_token": form_token(test_client, form_path or path), **data})


def audited(app, event):
    with app.app_context():
        return db.session.scalars(db.select(AuditEvent).where(AuditEvent.event == event)).all()


@pytest.mark.parametrize("path", ["/admin/users/1", "/admin/groups", "/admin/users/1/disable",
                                  "/admin/users/1/sessions/end"])
def test_the_console_is_for_admins_only(test_client, auth, user, path):
    auth.login()
    assert test_client.get(path).status_code == 403


def test_a_persons_page_edits_the_profile_and_shows_apps_groups_and_events(app, test_client, auth, admin, user,
                                                                         make_client, runner):
    client, secret = make_client(client_name="Team Wiki", owner=user)
    runner.invoke(args=["create-group", "staff"])
    runner.invoke(args=["add-to-group", "staff", "alice"])
    auth.login("alice")
    get_user_token(test_client, client, secret, scope="openid profile")
    auth.logout()
    auth.login("grace")
    page = test_client.get(f"/admin/users/{user.id}").get_data(as_text=True)
    for text in ("Team Wiki", "staff", "Clients they own", "alice signed in to Team Wiki"):
        assert text in page, text
    response = post(test_client, f"/admin/users/{user.id}", name="Alice Liddell", email="alice@example.com",
                    email_verified="y")
    assert response.status_code == 302
    with app.app_context():
        alice = db.session.get(User, user.id)
        assert (alice.name, alice.email, alice.email_verified) == ("Alice Liddell", "alice@example.com", True)
    [event] = audited(app, "user_updated")
    assert event.detail["by"] == "grace" and event.detail["fields"] == ["email_verified", "name"]
    bad = post(test_client, f"/admin/users/{user.id}", email="not an address")
    assert bad.status_code == 400
    assert "Enter an email address" in bad.get_data(as_text=True)


def test_disabling_asks_first_then_stops_the_persons_tokens(app, test_client, auth, admin, user, make_client):
    client, secret = make_client()
    auth.login("alice")
    token = get_user_token(test_client, client, secret)
    auth.logout()
    auth.login("grace")
    page = test_client.get(f"/admin/users/{user.id}/disable")
    assert "every app&#39;s token for them stops working now" in page.get_data(as_text=True)
    assert me(test_client, token["access_token"]).status_code == 200
    assert post(test_client, f"/admin/users/{user.id}/disable").status_code == 302
    assert me(test_client, token["access_token"]).status_code == 401
    assert "Disabled since" in test_client.get(f"/admin/users/{user.id}").get_data(as_text=True)
    assert audited(app, "account_disabled")[0].detail["by"] == "grace"
    assert post(test_client, f"/admin/users/{user.id}/disable").status_code == 302  # enable again
    with app.app_context():
        assert db.session.get(User, user.id).disabled_at is None
    # A POST without the CSRF token changes nothing.
    assert test_client.post(f"/admin/users/{user.id}/disable").status_code == 400


def test_an_admin_cannot_disable_themselves(test_client, auth, admin):
    auth.login("grace")
    response = test_client.get(f"/admin/users/{admin.id}/disable", follow_redirects=True)
    assert "You cannot disable your own account." in response.get_data(as_text=True)


def test_sending_a_password_reset_from_the_persons_page(app, test_client, auth, admin, user, mailbox):
    auth.login("grace")
    page_path = f"/admin/users/{user.id}"
    assert "Send a password reset" in test_client.get(page_path).get_data(as_text=True)
    path = f"{page_path}/password-reset"
    assert test_client.post(path).status_code == 400  # no CSRF token
    assert test_client.get(path).status_code == 405
    sent = post(test_client, path, page_path)
    assert sent.status_code == 302 and sent.headers["Location"] == page_path
    assert "A password-reset link was sent to alice@example.com." in test_client.get(page_path).get_data(as_text=True)
    [message] = mailbox.wait_for(1)
    assert message["To"] == "alice@example.com"
    assert any("/reset-password/" in link for link in links_in(message)), links_in(message)
    [event] = audited(app, "password_reset_requested")
    assert event.user_id == user.id and event.detail["by"] == "grace"
    # A mail server that refuses is a message on the page, and no link is kept.
    mailbox.refuse = True
    post(test_client, path, page_path)
    assert "The mail could not be sent just now" in test_client.get(page_path).get_data(as_text=True)
    assert count_rows(app, AccountLink) == 1 and len(audited(app, "password_reset_requested")) == 1


def test_a_password_reset_needs_an_address_and_an_enabled_account(app, test_client, auth, admin, user, mailbox):
    auth.login("grace")
    page_path = f"/admin/users/{user.id}"
    post(test_client, f"{page_path}/disable")
    assert "Send a password reset" not in test_client.get(page_path).get_data(as_text=True)
    post(test_client, f"{page_path}/password-reset", page_path)
    assert "alice is disabled; enable the account first." in test_client.get(page_path).get_data(as_text=True)
    post(test_client, f"{page_path}/disable")  # enabled again
    post(test_client, page_path, name="", email="")
    post(test_client, f"{page_path}/password-reset", page_path)
    assert "alice has no email address" in test_client.get(page_path).get_data(as_text=True)
    assert mailbox.messages == [] and audited(app, "password_reset_requested") == []


def test_resetting_second_factors_from_the_persons_page_comes_back_to_it(test_client, auth, admin, user):
    auth.login("grace")
    page_path = f"/admin/users/{user.id}"
    link = f"/admin/users/{user.id}/reset-mfa?back={page_path}"
    assert f"/admin/users/{user.id}/reset-mfa?back=" in test_client.get(page_path).get_data(as_text=True)
    assert f'href="{page_path}">Back' in test_client.get(link).get_data(as_text=True)
    done = post(test_client, link)
    assert done.status_code == 302 and done.headers["Location"] == page_path
    # A back that leaves the admin area is not followed.
    assert post(test_client, f"/admin/users/{user.id}/reset-mfa?back=https://evil.example/").headers[
        "Location"] == "/admin/users"


def test_signing_someone_out_everywhere(app, test_client, auth, admin, user):
    other = app.test_client()
    AuthActions(other).login("alice")
    assert other.get("/account/").status_code == 200
    auth.login("grace")
    assert "Every browser where alice is signed in" in test_client.get(
        f"/admin/users/{user.id}/sessions/end").get_data(as_text=True)
    assert post(test_client, f"/admin/users/{user.id}/sessions/end").status_code == 302
    assert other.get("/account/").status_code == 302


def test_deleting_a_person_gives_their_clients_to_someone_else(app, test_client, auth, admin, user, make_user,
                                                              make_client):
    heir = make_user("heir")
    client, _ = make_client(owner=user, client_name="Team Wiki")
    auth.login("grace")
    path = f"/admin/users/{user.id}/delete"
    nobody = post(test_client, path, clients="transfer", heir="ghost")
    assert nobody.status_code == 400 and "Name another person" in nobody.get_data(as_text=True)
    assert post(test_client, path, clients="transfer", heir="heir").status_code == 302
    with app.app_context():
        assert db.session.get(User, user.id) is None
        assert db.session.scalar(db.select(OAuth2Client)).owner_id == heir.id


def test_deleting_a_person_with_their_clients_is_an_explicit_choice(app, test_client, auth, admin, user,
                                                                   make_client):
    make_client(owner=user, client_name="Team Wiki")
    auth.login("grace")
    path = f"/admin/users/{user.id}/delete"
    assert "Team Wiki" in test_client.get(path).get_data(as_text=True)
    unchosen = post(test_client, path)
    assert unchosen.status_code == 400 and "Choose what happens to their clients." in unchosen.get_data(as_text=True)
    assert count_rows(app, User, User.id == user.id) == 1
    assert post(test_client, path, clients="delete").status_code == 302
    assert count_rows(app, OAuth2Client) == 0 and count_rows(app, User, User.id == user.id) == 0
    [event] = audited(app, "user_deleted")
    assert event.detail["by"] == "grace" and event.detail["clients"] == 1


def test_a_clients_page_edits_transfers_rotates_and_deletes(app, test_client, auth, admin, user, make_client):
    client, secret = make_client(client_name="Team Wiki", owner=user)
    auth.login("grace")
    page = test_client.get(f"/admin/clients/{client.client_id}").get_data(as_text=True)
    assert "Team Wiki" in page and "owner alice" in page
    edit_path = f"/admin/clients/{client.client_id}/edit"
    edit = test_client.get(edit_path).get_data(as_text=True)
    data = {"csrf_token": csrf_token(edit), "client_name": "Team Wiki 2", "redirect_uris": "https://wiki.example.com/cb",
            "grant_types": ["authorization_code"], "token_endpoint_auth_method": "client_secret_basic"}
    assert test_client.post(edit_path, data=data).status_code == 302
    assert test_client.post(edit_path, data={**data, "redirect_uris": "http://wiki.example.com/cb"}).status_code == 400
    assert post(test_client, f"/admin/clients/{client.client_id}/owner", f"/admin/clients/{client.client_id}",
                owner="grace").status_code == 302
    with app.app_context():
        row = db.session.scalar(db.select(OAuth2Client))
        assert (row.client_name, row.owner_id) == ("Team Wiki 2", admin.id)
    assert "stops working at once" in test_client.get(
        f"/admin/clients/{client.client_id}/rotate-secret").get_data(as_text=True)
    rotated = post(test_client, f"/admin/clients/{client.client_id}/rotate-secret")
    assert rotated.status_code == 200 and rotated.headers["Cache-Control"] == "no-store"
    assert 'id="client-secret"' in rotated.get_data(as_text=True)
    assert test_client.post("/oauth/token", data={"grant_type": "client_credentials"},
                            auth=(client.client_id, secret)).status_code == 401  # the old secret is dead
    assert "This cannot be undone" in test_client.get(f"/admin/clients/{client.client_id}/delete").get_data(as_text=True)
    assert post(test_client, f"/admin/clients/{client.client_id}/delete").status_code == 302
    assert count_rows(app, OAuth2Client) == 0
    assert audited(app, "client_deleted")[0].detail["via"] == "admin_console"


def test_roles_and_who_may_use_a_client_from_its_page(app, test_client, auth, admin, user, make_client, runner):
    client, _ = make_client(client_name="Team Wiki")
    runner.invoke(args=["create-group", "editors"])
    auth.login("grace")
    page_path = f"/admin/clients/{client.client_id}"
    roles_path = f"{page_path}/roles"
    assert post(test_client, roles_path, page_path, action="create", name="editor",
                description="Edits pages").status_code == 302
    assert post(test_client, roles_path, page_path, action="create", name="bad name").status_code == 302
    assert "A role name is 1 to 64" in test_client.get(page_path).get_data(as_text=True)
    with app.app_context():
        role_id = db.session.scalar(db.select(ClientRole.id))
    post(test_client, roles_path, page_path, action="assign", role=role_id, holder="alice")
    post(test_client, roles_path, page_path, action="assign", role=role_id, holder="group:editors")
    assert "Held by: alice, group editors" in test_client.get(page_path).get_data(as_text=True)
    post(test_client, roles_path, page_path, action="unassign", role=role_id, holder="alice")
    assert "Held by: group editors" in test_client.get(page_path).get_data(as_text=True)
    post(test_client, roles_path, page_path, action="assign", role=role_id, holder="ghost")
    assert "No person or group named &#39;ghost&#39;" in test_client.get(page_path).get_data(as_text=True)
    assert post(test_client, f"{page_path}/allowed-groups", page_path, groups=["editors"]).status_code == 302
    assert "Only members of editors may use Team Wiki." in test_client.get(page_path).get_data(as_text=True)
    # editors is the wiki's only group: deleting it would open the wiki to everyone.
    with app.app_context():
        group_id = db.session.scalar(db.select(Group.id).where(Group.name == "editors"))
    refused = post(test_client, f"/admin/groups/{group_id}/delete")
    assert refused.status_code == 302 and refused.headers["Location"] == f"/admin/groups/{group_id}"
    assert "editors is the only group allowed to use Team Wiki" in test_client.get(
        f"/admin/groups/{group_id}").get_data(as_text=True)
    assert count_rows(app, Group) == 1
    post(test_client, roles_path, page_path, action="delete", role=role_id)
    assert count_rows(app, ClientRole) == 0


def test_groups_pages(app, test_client, auth, admin, user):
    auth.login("grace")
    assert post(test_client, "/admin/groups", name="staff", description="Everyone").status_code == 302
    duplicate = post(test_client, "/admin/groups", name="staff")
    assert duplicate.status_code == 400 and "exists already" in duplicate.get_data(as_text=True)
    assert "A group name is" in post(test_client, "/admin/groups", name="has space").get_data(as_text=True)
    with app.app_context():
        group_id = db.session.scalar(db.select(Group.id))
    path = f"/admin/groups/{group_id}"
    assert post(test_client, path, username="alice").status_code == 302
    assert "No user named ghost" in post(test_client, path, username="ghost").get_data(as_text=True)
    assert count_rows(app, GroupMember) == 1
    assert post(test_client, f"{path}/remove/{user.id}", path).status_code == 302
    assert count_rows(app, GroupMember) == 0
    assert post(test_client, f"{path}/delete").status_code == 302
    assert count_rows(app, Group) == 0


def test_an_admin_sees_and_ends_one_session_of_a_person(app, test_client, auth, admin, user):
    phone, laptop = app.test_client(), app.test_client()
    AuthActions(phone).login("alice")
    AuthActions(laptop).login("alice")
    auth.login("grace")
    page = test_client.get(f"/admin/users/{user.id}").get_data(as_text=True)
    assert page.count('class="session"') == 2
    with app.app_context():
        sid = db.session.scalars(db.select(UserSession.id).where(UserSession.user_id == user.id)).first()
    assert post(test_client, f"/admin/users/{user.id}/sessions/{sid}/end", f"/admin/users/{user.id}").status_code == 302
    assert sorted([phone.get("/account/").status_code, laptop.get("/account/").status_code]) == [200, 302]
    assert post(test_client, f"/admin/users/{user.id}/sessions/{sid}/end", f"/admin/users/{user.id}").status_code == 404
    assert audited(app, "session_ended")[0].detail["by"] == "grace"
