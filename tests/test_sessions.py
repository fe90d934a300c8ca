"""RFC 6819 §4.4.1.x / OWASP session rules: a new session on log-in (no fixation), log-out ends
it, and a copied cookie stops working after log-out."""

from http.cookies import SimpleCookie

from flask import session


def session_cookie(response) -> str:
    for header in response.headers.getlist("Set-Cookie"):
        cookie = SimpleCookie(header)
        if "idp_session" in cookie:
            return cookie["idp_session"].value
    raise AssertionError("no session cookie set")


def test_a_value_planted_before_log_in_does_not_survive(test_client, auth, user):
    # An attacker fixes a session on the victim's browser with their own marker (and could
    # hold a CSRF token for it): after the victim logs in, none of it is left.
    with test_client.session_transaction() as planted:
        planted["attacker"] = "fixed"
        planted["user_id"] = 999
    before = test_client.get_cookie("idp_session").value
    response = auth.login()
    assert response.status_code == 302
    after = session_cookie(response)
    assert after != before
    with test_client.session_transaction() as current:
        assert "attacker" not in current
        assert current["user_id"] == user.id


def test_log_out_clears_the_session(test_client, auth, user):
    auth.login()
    assert test_client.get("/clients/").status_code == 200
    response = auth.logout()
    assert response.status_code == 302
    with test_client.session_transaction() as current:
        assert "user_id" not in current
    assert test_client.get("/clients/").status_code == 302


def test_a_copied_cookie_stops_working_after_log_out(app, auth, user):
    """A signed cookie cannot be deleted on the server; the session generation makes it void."""
    browser = app.test_client()
    AuthActions = type(auth)
    AuthActions(browser).login()
    stolen = browser.get_cookie("idp_session").value
    thief = app.test_client()
    thief.set_cookie("idp_session", stolen)
    assert thief.get("/clients/").status_code == 200
    AuthActions(browser).logout()
    assert thief.get("/clients/").status_code == 302
    assert "Signed in as" not in thief.get("/").get_data(as_text=True)


def test_sign_out_everywhere_on_the_account_page_ends_every_session(app, test_client, auth, user):
    auth.login()
    other_browser = app.test_client()
    type(auth)(other_browser).login()
    page = test_client.get("/account/").get_data(as_text=True)
    assert "Sign out everywhere" in page
    response = test_client.post("/account/sign-out-everywhere", data={"csrf_token": auth.csrf_token("/account/")})
    assert response.status_code == 302
    assert test_client.get("/account/").status_code == 302
    assert other_browser.get("/account/").status_code == 302


def test_log_in_again_after_log_out_works(test_client, auth, user):
    auth.login()
    auth.logout()
    assert auth.login().status_code == 302
    assert test_client.get("/clients/").status_code == 200


def test_session_user_id_must_be_an_integer(app, user):
    browser = app.test_client()
    with browser.session_transaction() as current:
        current["user_id"] = str(user.id)
    assert browser.get("/clients/").status_code == 302


def test_auth_time_is_recorded_at_log_in(app, test_client, auth, user):
    auth.login()
    with test_client.session_transaction() as current:
        assert isinstance(current["auth_time"], int)
    assert session is not None
