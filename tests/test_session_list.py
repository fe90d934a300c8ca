"""Sessions on the server: the account page lists a person's signed-in browsers (browser,
address, signed in at, last seen, apps) with sign-out per session; an app's log-out ends only
that browser's session; a password change offers to end the others; every instance sees it."""

import re

import pytest
from support.factories import PASSWORD, count_rows, update_rows
from support.flows import get_code
from support.pages import AuthActions, csrf_token, form_token

from website import create_app
from website.models import UserSession, db, now

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
SAFARI = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
          "Version/17.5 Mobile/15E148 Safari/604.1")


def browser(app, agent, address):
    """A test client that sends this User-Agent from this address."""
    client = app.test_client()
    client.environ_base.update({"HTTP_USER_AGENT": agent, "REMOTE_ADDR": address})
    return client


def signed_in(client) -> bool:
    return client.get("/account/").status_code == 200


def session_ids(page: str) -> list[str]:
    return re.findall(r'action="/account/sessions/([^/"]+)/end"', page)


@pytest.fixture
def laptop(app, user):
    client = browser(app, FIREFOX, "192.0.2.10")
    assert AuthActions(client).login().status_code == 302
    return client


@pytest.fixture
def phone(app, user):
    client = browser(app, SAFARI, "198.51.100.20")
    assert AuthActions(client).login().status_code == 302
    return client


def test_the_account_page_lists_each_session_and_marks_this_one(laptop, phone):
    page = laptop.get("/account/").get_data(as_text=True)
    assert "Firefox 133 on Linux" in page and "192.0.2.10" in page
    assert "Safari 17 on iOS" in page and "198.51.100.20" in page
    assert page.count("This browser") == 1
    assert page.index("This browser") > page.index("Firefox 133 on Linux")
    assert re.search(r"signed in \d{2} \w+ \d{4}, \d{2}:\d{2} UTC · last seen", page)
    assert len(session_ids(page)) == 2


def test_signing_out_another_session_ends_it_at_once(app, laptop, phone):
    page = laptop.get("/account/").get_data(as_text=True)
    with app.app_context():
        rows = {row.user_agent: row.id for row in db.session.scalars(db.select(UserSession))}
    assert set(session_ids(page)) == set(rows.values())
    response = laptop.post(f"/account/sessions/{rows[SAFARI]}/end", data={"csrf_token": csrf_token(page)})
    assert response.status_code == 302 and response.headers["Location"] == "/account/"
    page = laptop.get("/account/").get_data(as_text=True)
    assert "That session is signed out." in page
    assert "Safari" not in page
    assert not signed_in(phone)
    assert signed_in(laptop)


def test_signing_out_this_session_from_the_list_signs_this_browser_out(app, laptop, phone):
    with app.app_context():
        rows = {row.user_agent: row.id for row in db.session.scalars(db.select(UserSession))}
    token = form_token(laptop, "/account/")
    response = laptop.post(f"/account/sessions/{rows[FIREFOX]}/end", data={"csrf_token": token})
    assert response.status_code == 302 and response.headers["Location"] == "/"
    assert not signed_in(laptop)
    assert signed_in(phone)


def test_ending_a_session_needs_the_csrf_token_and_a_session_of_ones_own(app, laptop, make_user):
    make_user("mallory")
    other = browser(app, FIREFOX, "203.0.113.5")
    AuthActions(other).login("mallory")
    with app.app_context():
        mallorys = db.session.scalar(db.select(UserSession.id).where(UserSession.ip_address == "203.0.113.5"))
        alices = db.session.scalar(db.select(UserSession.id).where(UserSession.ip_address == "192.0.2.10"))
    assert laptop.post(f"/account/sessions/{alices}/end").status_code == 400  # no CSRF token
    token = form_token(laptop, "/account/")
    assert laptop.post(f"/account/sessions/{mallorys}/end", data={"csrf_token": token}).status_code == 404
    assert laptop.post("/account/sessions/no-such-session/end", data={"csrf_token": token}).status_code == 404
    assert laptop.post(f"/account/sessions/{'x' * 500}/end", data={"csrf_token": token}).status_code == 404
    assert signed_in(other) and signed_in(laptop)
    assert laptop.get(f"/account/sessions/{alices}/end").status_code == 405


def test_an_app_log_out_ends_only_this_browser_and_its_copied_cookie(app, laptop, phone):
    stolen = laptop.get_cookie("idp_session").value
    thief = app.test_client()
    thief.set_cookie("idp_session", stolen)
    assert signed_in(thief)
    laptop.get("/v2/logout")  # Auth0's log-out, as an app sends the browser there
    assert not signed_in(laptop)
    assert not signed_in(thief)  # the session ended on the server, not just in one cookie
    assert signed_in(phone)


def test_the_sites_own_log_out_ends_only_this_browser(laptop, phone):
    AuthActions(laptop).logout()
    assert not signed_in(laptop)
    assert signed_in(phone)


def change_password(client, sign_out_others: bool):
    data = {"password-current_password": PASSWORD, "password-new_password": "a new passphrase",
            "password-confirm": "a new passphrase", "csrf_token": form_token(client, "/account/")}
    if sign_out_others:
        data["password-sign_out_others"] = "y"
    return client.post("/account/password", data=data)


def test_a_password_change_signs_out_the_other_sessions_by_default(laptop, phone):
    page = laptop.get("/account/").get_data(as_text=True)
    assert re.search(r'<input checked id="password-sign_out_others"[^>]*type="checkbox"', page)
    response = change_password(laptop, sign_out_others=True)
    assert response.status_code == 302
    assert "1 other session was signed out" in laptop.get("/account/").get_data(as_text=True)
    assert signed_in(laptop)
    assert not signed_in(phone)


def test_a_password_change_may_keep_the_other_sessions(laptop, phone):
    assert change_password(laptop, sign_out_others=False).status_code == 302
    assert signed_in(laptop) and signed_in(phone)


def test_the_session_names_the_apps_it_signed_in_to(app, laptop, make_client):
    client, _ = make_client(client_name="Photo Album")
    get_code(laptop, client)
    page = laptop.get("/account/").get_data(as_text=True)
    assert "Apps: Photo Album" in page


def test_sessions_live_where_every_instance_sees_them(app, app_config, laptop, phone):
    other_instance = create_app(app_config)
    phone_elsewhere = other_instance.test_client()
    phone_elsewhere.set_cookie("idp_session", phone.get_cookie("idp_session").value)
    assert signed_in(phone_elsewhere)
    with app.app_context():
        phone_sid = db.session.scalar(db.select(UserSession.id).where(UserSession.user_agent == SAFARI))
    laptop.post(f"/account/sessions/{phone_sid}/end", data={"csrf_token": form_token(laptop, "/account/")})
    assert not signed_in(phone_elsewhere)


def test_last_seen_is_written_at_most_once_a_minute(app, laptop):
    with app.app_context():
        sid = db.session.scalar(db.select(UserSession.id))
    update_rows(app, UserSession, {"last_seen_at": now() - 30}, UserSession.id == sid)
    laptop.get("/account/")
    with app.app_context():
        assert now() - db.session.get(UserSession, sid).last_seen_at >= 29  # not yet
    update_rows(app, UserSession, {"last_seen_at": now() - 120}, UserSession.id == sid)
    laptop.get("/account/")
    with app.app_context():
        assert now() - db.session.get(UserSession, sid).last_seen_at <= 2


def test_a_session_unseen_for_its_lifetime_has_ended(app, laptop):
    lifetime = int(app.permanent_session_lifetime.total_seconds())
    update_rows(app, UserSession, {"last_seen_at": now() - lifetime - 1})
    assert not signed_in(laptop)


def test_a_cookie_without_a_session_id_signs_nobody_in(app, user, test_client):
    """A cookie made before sessions lived on the server (or forged without a row)."""
    auth = AuthActions(test_client)
    auth.login()
    with test_client.session_transaction() as current:
        del current["sid"]
    assert not signed_in(test_client)


def test_purge_expired_deletes_ended_and_expired_sessions(app, runner, laptop, phone):
    AuthActions(phone).logout()
    assert count_rows(app, UserSession) == 2
    result = runner.invoke(args=["purge-expired"])
    assert "Deleted 1 ended or expired sessions." in result.output
    assert count_rows(app, UserSession) == 1
    assert signed_in(laptop)


def test_the_sid_is_random_and_stable_for_the_session(app, laptop):
    with app.app_context():
        [row] = db.session.scalars(db.select(UserSession)).all()
    assert len(row.id) >= 43 and not row.id.isdigit()
    with laptop.session_transaction() as current:
        assert current["sid"] == row.id and current["auth_time"] == row.created_at
        assert current["amr"] == ["pwd"] == row.amr
    laptop.get("/account/")
    with laptop.session_transaction() as current:
        assert current["sid"] == row.id


def test_signing_in_again_as_the_same_person_keeps_the_apps_of_the_session(app, laptop, make_client, make_user):
    """A step-up sign-in (the same person again) keeps the session, its id and the apps this
    browser signed in to (/v2/logout may return to them); another person's sign-in ends it and
    starts with none."""
    client, _ = make_client(client_name="Photo Album")
    get_code(laptop, client)
    with laptop.session_transaction() as current:
        before = current["sid"]
    AuthActions(laptop).login()
    with laptop.session_transaction() as current:
        assert current["sid"] == before
    assert "Apps: Photo Album" in laptop.get("/account/").get_data(as_text=True)
    make_user("bob")
    AuthActions(laptop).login("bob")
    assert "Apps:" not in laptop.get("/account/").get_data(as_text=True)
    with app.app_context():
        assert db.session.get(UserSession, before).ended_at > 0
