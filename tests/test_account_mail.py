"""Account features by mail, through the pages and a real SMTP server on loopback: sign-up
mails a confirmation link (email_verified is true only after it is followed), the sign-up
policies and invitations, forgot password, changing an address, and the links' rules
(single-use, expiring, bound to the account's state)."""

import time

import jwt
import pytest
from sqlalchemy import select
from support.factories import PASSWORD, count_rows, update_rows
from support.flows import bearer, get_user_token, refresh
from support.mail import html_of, link_path, text_of
from support.pages import csrf_token, forgot, forgot_answers, form_token

from website.models import AccountLink, AuditEvent, Token, User, db

NEW_PASSWORD = "a completely new passphrase"


def signup(test_client, username="bob", email="bob@example.com", path="/signup", **fields):
    data = {"username": username, "email": email, "password": PASSWORD, "confirm": PASSWORD,
            "csrf_token": form_token(test_client, path), **fields}
    return test_client.post(path, data={k: v for k, v in data.items() if v is not None})


def follow(test_client, message, **form):
    """Open the mail's link (a page), then press its button or send its form."""
    path = link_path(message)
    page = test_client.get(path)
    assert page.status_code == 200, page.get_data(as_text=True)
    return test_client.post(path, data={"csrf_token": csrf_token(page), **form})


def claims(token_response) -> dict:
    return jwt.decode(token_response["id_token"], options={"verify_signature": False})


def user_row(app, username="alice") -> User:
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == username))
        db.session.expunge(user)
        return user


# --- Verified email ------------------------------------------------------------------------

def test_sign_up_mails_a_link_and_email_verified_is_true_only_after_it_is_followed(
        app, test_client, mailbox, make_client):
    app.config["SITE_NAME"] = "Acme Sign-in"
    client, secret = make_client()
    response = signup(test_client)
    assert response.status_code == 302
    [message] = mailbox.wait_for(1)
    assert message["To"] == "bob@example.com"
    assert message["Subject"] == "Acme Sign-in: confirm your email address"
    assert "Acme Sign-in" in text_of(message) and "Acme Sign-in" in html_of(message)
    assert link_path(message) in html_of(message)
    assert "We sent a link to bob@example.com" in test_client.get("/account/").get_data(as_text=True)

    before = get_user_token(test_client, client, secret, scope="openid email")
    assert claims(before)["email_verified"] is False
    # Opening the link changes nothing (a mail scanner may fetch it); the button does.
    test_client.get(link_path(message))
    assert user_row(app, "bob").email_verified is False
    confirmed = follow(test_client, message)
    assert confirmed.status_code == 302
    assert user_row(app, "bob").email_verified is True

    after = get_user_token(test_client, client, secret, scope="openid email")
    assert claims(after)["email_verified"] is True
    userinfo = test_client.get("/oauth/userinfo", headers=bearer(after["access_token"]))
    assert userinfo.json["email_verified"] is True
    assert count_rows(app, AuditEvent, AuditEvent.event == "email_verified") == 1
    with app.app_context():
        [link] = db.session.scalars(select(AccountLink)).all()
        assert link.token_hash not in link_path(message)  # stored as a hash only
        assert link_path(message).rsplit("/", 1)[1] not in (link.token_hash, link.state)


def test_a_failing_mail_server_at_sign_up_leaves_no_account_and_the_form_can_be_sent_again(
        app, test_client, mailbox):
    mailbox.refuse = True
    response = signup(test_client)
    assert response.status_code == 503
    assert "The mail could not be sent just now" in response.get_data(as_text=True)
    assert count_rows(app, User) == 0 and count_rows(app, AccountLink) == 0
    mailbox.refuse = False
    assert signup(test_client).status_code == 302
    assert mailbox.wait_for(1)[0]["To"] == "bob@example.com"


def test_without_a_mail_server_sign_up_works_and_the_mail_goes_to_the_log(app, test_client, caplog):
    assert not app.config["MAIL_SERVER"]
    with caplog.at_level("INFO", logger="website.mail"):
        response = signup(test_client)
    assert response.status_code == 302
    assert "To: bob@example.com" in caplog.text and "/verify-email/" in caplog.text
    assert "We sent a link to bob@example.com" in test_client.get("/").get_data(as_text=True)


def test_the_confirmation_link_can_be_sent_again_and_the_older_one_stops_working(
        app, test_client, auth, user, mailbox):
    auth.login()
    page = test_client.get("/account/")
    assert "Not confirmed" in page.get_data(as_text=True)
    for _ in range(2):
        response = test_client.post("/account/verify-email", data={"csrf_token": csrf_token(page)})
        assert response.status_code == 302
    first, second = mailbox.wait_for(2)
    assert test_client.get(link_path(first)).status_code == 410  # replaced by the second
    assert follow(test_client, second).status_code == 302
    assert "Confirmed" in test_client.get("/account/").get_data(as_text=True)


def test_links_are_single_use_expire_and_die_when_the_account_changes(app, test_client, auth, user,
                                                                      mailbox):
    auth.login()
    token = form_token(test_client, "/account/")
    test_client.post("/account/verify-email", data={"csrf_token": token})
    [message] = mailbox.wait_for(1)
    path = link_path(message)

    update_rows(app, AccountLink, {"expires_at": int(time.time()) - 1})
    expired = test_client.get(path)
    assert expired.status_code == 410
    assert "This link has expired." in expired.get_data(as_text=True)
    assert "send a new confirmation link from your account page" in expired.get_data(as_text=True)

    update_rows(app, AccountLink, {"expires_at": int(time.time()) + 60})
    update_rows(app, User, {"email": "alice@other.example"})  # the address changed since
    stale = test_client.get(path)
    assert stale.status_code == 410 and "no longer matches the account" in stale.get_data(as_text=True)

    update_rows(app, User, {"email": "alice@example.com"})
    assert follow(test_client, message).status_code == 302
    reused = test_client.get(path)
    assert reused.status_code == 410 and "already used" in reused.get_data(as_text=True)
    unknown = test_client.get("/verify-email/" + "x" * 43)
    assert unknown.status_code == 404 and "not valid" in unknown.get_data(as_text=True)
    assert test_client.get("/verify-email/" + "x" * 5000).status_code == 404
    assert count_rows(app, AuditEvent, AuditEvent.event == "account_link_refused") == 5


def test_a_link_for_one_purpose_does_not_open_another(app, test_client, user, mailbox):
    forgot(test_client, "alice")
    [message] = mailbox.wait_for(1)
    token = link_path(message).rsplit("/", 1)[1]
    assert test_client.get(f"/verify-email/{token}").status_code == 404
    assert test_client.get(f"/invitation/{token}").status_code == 404


def test_a_confirmation_without_the_csrf_token_is_refused(app, test_client, auth, user, mailbox):
    auth.login()
    test_client.post("/account/verify-email", data={"csrf_token": form_token(test_client, "/account/")})
    [message] = mailbox.wait_for(1)
    assert test_client.post(link_path(message), data={}).status_code == 400
    assert user_row(app).email_verified is False


def test_a_site_or_a_client_may_require_a_verified_address_before_a_code(
        app, test_client, auth, user, make_client, mailbox):
    client, secret = make_client(require_verified_email=True)
    open_client, open_secret = make_client(client_name="Open App")
    auth.login()
    url = f"/oauth/authorize?response_type=code&client_id={client.client_id}&scope=openid+email" \
          f"&redirect_uri={client.redirect_uris[0]}&state=s1&code_challenge={'a' * 43}&code_challenge_method=S256"
    page = test_client.get(url)
    assert page.status_code == 403
    assert "Confirm your email address first" in page.get_data(as_text=True)
    get_user_token(test_client, open_client, open_secret, scope="openid email")  # this one asks nothing

    app.config["REQUIRE_VERIFIED_EMAIL"] = True
    open_url = url.replace(client.client_id, open_client.client_id)
    assert test_client.get(open_url).status_code == 403
    # prompt=none (the consent is remembered) may show no page: the app is told.
    none = test_client.get(open_url + "&prompt=none")
    assert none.status_code == 302
    assert "error=interaction_required" in none.headers["Location"] and "state=s1" in none.headers["Location"]
    # The page's button mails the link; following it lets the code through.
    test_client.post("/account/verify-email", data={"csrf_token": csrf_token(test_client.get(url))})
    follow(test_client, mailbox.wait_for(1)[0])
    assert claims(get_user_token(test_client, client, secret, scope="openid email"))["email_verified"] is True


def test_require_verified_email_is_client_metadata(app, test_client, make_client):
    from website.oauth2.client_metadata import ClientMetadataError, validate_client_metadata
    with app.app_context(), pytest.raises(ClientMetadataError, match="require_verified_email must be true or false"):
        validate_client_metadata({"client_name": "x", "redirect_uris": ["https://a.example/cb"],
                                  "require_verified_email": "yes"})
    client, _ = make_client(require_verified_email=True)
    assert client.require_verified_email is True
    assert make_client()[0].require_verified_email is False


# --- Changing the address ------------------------------------------------------------------

def change_email(test_client, email, password=PASSWORD):
    return test_client.post("/account/email", data={
        "email-csrf_token": form_token(test_client, "/account/", "email-csrf_token"),
        "email-email": email, "email-current_password": password})


def test_a_new_address_takes_effect_only_when_it_confirms_and_the_old_one_is_told(
        app, test_client, auth, user, mailbox):
    update_rows(app, User, {"email_verified": True})
    auth.login()
    assert change_email(test_client, " ada@example.org ").status_code == 302
    [confirm] = mailbox.wait_for(1)
    assert confirm["To"] == "ada@example.org"
    assert user_row(app).email == "alice@example.com" and user_row(app).email_verified is True
    assert follow(test_client, confirm).status_code == 302
    notice = mailbox.wait_for(2)[1]
    assert notice["To"] == "alice@example.com"
    assert "was changed to a***@example.org" in text_of(notice)
    row = user_row(app)
    assert (row.email, row.email_verified) == ("ada@example.org", True)
    assert count_rows(app, AuditEvent, AuditEvent.event == "email_changed") == 1


def test_an_email_change_with_the_mail_server_down_changes_nothing(app, test_client, auth, user, mailbox):
    auth.login()
    mailbox.refuse = True
    response = change_email(test_client, "ada@example.org")
    assert response.status_code == 400
    assert "The mail could not be sent just now" in response.get_data(as_text=True)
    assert count_rows(app, AccountLink) == 0
    mailbox.refuse = False
    change_email(test_client, "ada@example.org")
    [confirm] = mailbox.wait_for(1)
    mailbox.refuse = True  # the old address cannot be told: the change waits
    page = test_client.get(link_path(confirm))
    assert test_client.post(link_path(confirm), data={"csrf_token": csrf_token(page)}).status_code == 503
    assert user_row(app).email == "alice@example.com"
    mailbox.refuse = False
    assert test_client.post(link_path(confirm), data={"csrf_token": csrf_token(page)}).status_code == 302
    assert user_row(app).email == "ada@example.org"


@pytest.mark.parametrize("email, password, field, message", [
    ("alice@example.com", PASSWORD, "email", "That is your address already."),
    ("not-an-email", PASSWORD, "email", "Enter an email address"),
    ("ada@example.org", "wrong password", "current_password", "That is not your current password."),
])
def test_bad_email_changes_are_refused_and_mail_nothing(app, test_client, auth, user, mailbox, email,
                                                        password, field, message):
    auth.login()
    response = change_email(test_client, email, password)
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert mailbox.messages == [] and count_rows(app, AccountLink) == 0


def test_a_password_change_makes_a_pending_email_change_stale(app, test_client, auth, user, mailbox):
    auth.login()
    change_email(test_client, "ada@example.org")
    [confirm] = mailbox.wait_for(1)
    test_client.post("/account/password", data={
        "password-csrf_token": form_token(test_client, "/account/", "password-csrf_token"),
        "password-current_password": PASSWORD, "password-new_password": NEW_PASSWORD,
        "password-confirm": NEW_PASSWORD})
    page = test_client.get(link_path(confirm))
    assert page.status_code == 410 and "no longer matches" in page.get_data(as_text=True)


# --- Forgot password -----------------------------------------------------------------------

def test_forgot_password_mails_a_link_and_the_reset_ends_sessions_and_refresh_tokens(
        app, test_client, auth, user, make_client, mailbox):
    client, secret = make_client()
    auth.login()
    tokens = get_user_token(test_client, client, secret, scope="openid email offline_access")
    other_browser = app.test_client()
    AuthClient = type(auth)
    AuthClient(other_browser).login()
    assert "Signed in as" in other_browser.get("/").get_data(as_text=True)

    login_page = app.test_client().get("/login").get_data(as_text=True)
    assert 'href="/forgot-password"' in login_page
    response = forgot(app.test_client(), "alice@example.com")
    assert response.status_code == 200
    assert "If an account has that username or email address" in response.get_data(as_text=True)
    [message] = mailbox.wait_for(1)
    assert message["To"] == "alice@example.com"
    assert "works for 30 minutes" in text_of(message)

    stranger = app.test_client()
    done = follow(stranger, message, password=NEW_PASSWORD, confirm=NEW_PASSWORD)
    assert done.status_code == 302 and done.headers["Location"] == "/login"
    assert "Signed in as" not in test_client.get("/").get_data(as_text=True)
    assert "Signed in as" not in other_browser.get("/").get_data(as_text=True)
    refused = refresh(test_client, client, tokens["refresh_token"], secret)
    assert refused.status_code == 400 and refused.json["error"] == "invalid_grant"
    assert test_client.get("/api/me", headers=bearer(tokens["access_token"])).status_code == 401
    assert auth.login(password=PASSWORD).status_code == 400
    assert auth.login(password=NEW_PASSWORD).status_code == 302
    assert user_row(app).email_verified is True  # the link reached the address
    assert count_rows(app, AuditEvent, AuditEvent.event == "password_reset") == 1
    # Spent: the link (and any other reset link of the old password) no longer works.
    again = stranger.get(link_path(message))
    assert again.status_code == 410 and "forgot-password page" in again.get_data(as_text=True)


def test_a_password_change_kills_an_unused_reset_link(app, test_client, auth, user, mailbox):
    forgot(test_client, "alice")
    [message] = mailbox.wait_for(1)
    auth.login()
    test_client.post("/account/password", data={
        "password-csrf_token": form_token(test_client, "/account/", "password-csrf_token"),
        "password-current_password": PASSWORD, "password-new_password": NEW_PASSWORD,
        "password-confirm": NEW_PASSWORD})
    page = app.test_client().get(link_path(message))
    assert page.status_code == 410 and "password or email address changed" in page.get_data(as_text=True)


def test_two_reset_requests_leave_only_the_newest_link_working(app, test_client, user, mailbox):
    forgot(test_client, "alice")
    forgot(test_client, "ALICE")  # usernames are found in canonical form
    first, second = mailbox.wait_for(2)
    assert test_client.get(link_path(first)).status_code == 410
    assert test_client.get(link_path(second)).status_code == 200


@pytest.mark.parametrize("password, confirm, message", [
    ("short", "short", "between 8 and 1000"),
    (NEW_PASSWORD, "something else", "The passwords differ."),
    ("", "", "This field is required."),
    ("x" * 1001, "x" * 1001, "between 8 and 1000"),
])
def test_a_new_password_obeys_the_password_rules(app, test_client, user, mailbox, password, confirm, message):
    forgot(test_client, "alice")
    [mail] = mailbox.wait_for(1)
    page = test_client.get(link_path(mail))
    response = test_client.post(link_path(mail), data={"csrf_token": csrf_token(page), "password": password,
                                                       "confirm": confirm})
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(User, user.id).check_password(PASSWORD)
    assert test_client.get(link_path(mail)).status_code == 200  # still usable


@pytest.mark.parametrize("identifier, message", [
    ("", "Enter your username or email address."),
    ("x" * 255, "between 0 and 254"),
])
def test_bad_forgot_password_input_shows_a_message(app, test_client, mailbox, identifier, message):
    response = forgot(test_client, identifier)
    assert response.status_code == 400
    assert message in response.get_data(as_text=True).replace("Field cannot be longer than 254 characters.",
                                                               "between 0 and 254")
    assert mailbox.messages == []


def test_an_unknown_address_gets_the_same_page_in_the_same_time_band(app, test_client, user, mailbox):
    app.config["PASSWORD_RESET_MIN_SECONDS"] = 0.4
    app.config["MAIL_LINK_LIMIT"] = 0  # throttling is tested apart
    app.config["MAIL_LINK_ADDRESS_LIMIT"] = 0
    pages, times = forgot_answers(test_client, ("alice@example.com", "nobody@example.com", "alice", "nobody"))
    assert len(mailbox.wait_for(2)) == 2  # only the known ones got mail
    assert len(set(pages.values())) == 1
    for identifier, seconds in times.items():
        # The answer waits for the floor either way.
        assert 0.4 <= seconds < 0.4 + 0.35, (identifier, times)


def test_forgot_password_is_throttled_per_address_asked_for_and_per_client_address(app, test_client, user,
                                                                                    mailbox):
    app.config.update(MAIL_LINK_LIMIT=2, MAIL_LINK_ADDRESS_LIMIT=4, PASSWORD_RESET_MIN_SECONDS=0)
    assert [forgot(test_client, "alice").status_code for _ in range(3)] == [200, 200, 429]
    refused = forgot(test_client, "alice")
    assert "Too many reset requests" in refused.get_data(as_text=True) and refused.headers["Retry-After"]
    assert len(mailbox.wait_for(2)) == 2
    # Another name from the same address: allowed until the address's own limit.
    assert [forgot(test_client, name).status_code for name in ("bob", "carol", "dave")] == [200, 200, 429]


# With the mail server down, forgot password answers the same and queues the mail: test_queued_mail.py.


# --- Sign-up policies and invitations ------------------------------------------------------

def invite(test_client, email):
    return test_client.post("/admin/invitations", data={
        "email": email, "csrf_token": form_token(test_client, "/admin/users")})


@pytest.mark.parametrize("policy", ["invite", "closed"])
def test_invite_and_closed_policies_refuse_sign_up(app, test_client, policy):
    app.config["SIGNUP_POLICY"] = policy
    page = test_client.get("/signup")
    assert page.status_code == 403
    text = page.get_data(as_text=True)
    assert ("by invitation only" if policy == "invite" else "created by an administrator") in text
    response = test_client.post("/signup", data={"username": "bob", "email": "bob@example.com",
                                                 "password": PASSWORD, "confirm": PASSWORD,
                                                 "csrf_token": form_token(test_client, "/login")})
    assert response.status_code == 403
    assert count_rows(app, User) == 0
    assert 'href="/signup' not in test_client.get("/login").get_data(as_text=True)


def test_an_admin_invites_and_the_invited_person_signs_up_verified(app, test_client, auth, make_user,
                                                                   make_client, mailbox):
    app.config["SIGNUP_POLICY"] = "invite"
    make_user("grace", is_admin=True)
    client, secret = make_client()
    auth.login("grace")
    assert invite(test_client, " ada@example.org ").status_code == 302
    assert "ada@example.org" in test_client.get("/admin/users").get_data(as_text=True)
    [message] = mailbox.wait_for(1)
    assert message["To"] == "ada@example.org"
    assert "grace invites you" in text_of(message)

    visitor = app.test_client()
    page = visitor.get(link_path(message))
    assert "Create your account for <strong>ada@example.org</strong>" in page.get_data(as_text=True)
    taken = visitor.post(link_path(message), data={"csrf_token": csrf_token(page), "username": "Grace",
                                                   "password": PASSWORD, "confirm": PASSWORD})
    assert taken.status_code == 400 and "That username is taken" in taken.get_data(as_text=True)
    done = visitor.post(link_path(message), data={"csrf_token": csrf_token(page), "username": "ada",
                                                  "password": PASSWORD, "confirm": PASSWORD})
    assert done.status_code == 302
    ada = user_row(app, "ada")
    assert (ada.email, ada.email_verified) == ("ada@example.org", True)
    assert claims(get_user_token(visitor, client, secret, scope="openid email"))["email_verified"] is True
    again = app.test_client().get(link_path(message))
    assert again.status_code == 410 and "already used" in again.get_data(as_text=True)
    assert count_rows(app, AuditEvent, AuditEvent.event == "invitation_accepted") == 1


def test_bad_invitations_are_refused(app, test_client, auth, make_user, user, mailbox):
    make_user("grace", is_admin=True)
    auth.login("grace")
    for email, message in (("not-an-email", "Enter an email address"),
                           ("ALICE@example.com", "alice already has an account")):
        response = invite(test_client, email)
        assert response.status_code == 400
        assert message in response.get_data(as_text=True)
    mailbox.refuse = True
    down = invite(test_client, "ada@example.org")
    assert down.status_code == 503 and "The mail could not be sent just now" in down.get_data(as_text=True)
    assert count_rows(app, AccountLink) == 0
    auth.logout()
    auth.login("alice")
    assert invite(test_client, "ada@example.org").status_code == 403


def test_domain_policy_takes_only_allowed_addresses_and_needs_the_link_before_log_in(app, test_client, auth,
                                                                                    mailbox):
    app.config.update(SIGNUP_POLICY="domain", SIGNUP_ALLOWED_DOMAINS="acme.example")
    outside = signup(test_client, email="bob@example.com")
    assert outside.status_code == 403
    assert "only for addresses under acme.example" in outside.get_data(as_text=True)
    response = signup(test_client, email="bob@mail.acme.example")
    assert response.status_code == 201
    assert "Check your mail" in response.get_data(as_text=True)
    assert "Signed in as" not in test_client.get("/").get_data(as_text=True)
    [first] = mailbox.wait_for(1)
    refused = auth.login("bob")
    assert refused.status_code == 403
    assert "Confirm your email address first: we sent a new link" in refused.get_data(as_text=True)
    second = mailbox.wait_for(2)[1]
    assert test_client.get(link_path(first)).status_code == 410  # the newer link replaced it
    follow(test_client, second)
    assert auth.login("bob").status_code == 302
    # The account stays under the allowed domains.
    response = change_email(test_client, "bob@example.com")
    assert response.status_code == 400 and "under the allowed domains" in response.get_data(as_text=True)


# --- Who may register clients ---------------------------------------------------------------

def test_client_registration_policy(app, test_client, auth, user, make_user):
    auth.login()
    assert test_client.get("/clients/new").status_code == 200
    app.config["CLIENT_REGISTRATION_POLICY"] = "verified"
    page = test_client.get("/clients/new")
    assert page.status_code == 403 and "whose email address is confirmed" in page.get_data(as_text=True)
    assert 'href="/clients/new"' not in test_client.get("/clients/").get_data(as_text=True)
    update_rows(app, User, {"email_verified": True})
    assert test_client.get("/clients/new").status_code == 200
    app.config["CLIENT_REGISTRATION_POLICY"] = "admins"
    page = test_client.get("/clients/new")
    assert page.status_code == 403 and "Only administrators" in page.get_data(as_text=True)
    token = form_token(test_client, "/account/")
    posted = test_client.post("/clients/new", data={"csrf_token": token, "client_name": "x",
                                                    "redirect_uris": "https://a.example/cb"})
    assert posted.status_code == 403
    auth.logout()
    make_user("grace", is_admin=True)
    auth.login("grace")
    assert test_client.get("/clients/new").status_code == 200


def test_consent_and_log_in_pages_show_no_developer_navigation_to_people_without_clients(
        app, test_client, auth, user, make_client, make_user):
    owner = make_user("grace")
    client, _ = make_client(owner=owner)
    auth.login()
    url = f"/oauth/authorize?response_type=code&client_id={client.client_id}&scope=profile" \
          f"&redirect_uri={client.redirect_uris[0]}&code_challenge={'a' * 43}&code_challenge_method=S256"
    assert ">My clients<" not in test_client.get(url).get_data(as_text=True)
    assert ">My clients<" not in test_client.get("/login").get_data(as_text=True)
    assert ">My clients<" in test_client.get("/account/").get_data(as_text=True)
    app.config["CLIENT_REGISTRATION_POLICY"] = "admins"
    assert ">My clients<" not in test_client.get("/account/").get_data(as_text=True)
    auth.logout()
    auth.login("grace")  # has a client: the link stays everywhere
    assert ">My clients<" in test_client.get(url).get_data(as_text=True)


def test_the_policies_are_checked_at_start_up(database_url):
    from support.factories import config_for

    from website import create_app
    with pytest.raises(SystemExit, match="CLIENT_REGISTRATION_POLICY must be everyone, verified or admins"):
        create_app(config_for(database_url, CLIENT_REGISTRATION_POLICY="some"))


def test_purge_expired_removes_old_links(app, runner, user, mailbox, test_client):
    forgot(test_client, "alice")
    mailbox.wait_for(1)
    update_rows(app, AccountLink, {"expires_at": int(time.time()) - 1})
    result = runner.invoke(args=["purge-expired"])
    assert "Deleted 1 expired links mailed to people." in result.output
    assert count_rows(app, AccountLink) == 0


def test_token_rows_of_other_people_survive_a_reset(app, test_client, auth, user, make_user, make_client,
                                                    mailbox):
    make_user("bob")
    client, secret = make_client()
    auth.login("bob")
    bob_tokens = get_user_token(test_client, client, secret, scope="openid offline_access")
    forgot(app.test_client(), "alice")
    follow(app.test_client(), mailbox.wait_for(1)[0], password=NEW_PASSWORD, confirm=NEW_PASSWORD)
    assert refresh(test_client, client, bob_tokens["refresh_token"], secret).status_code == 200
    assert count_rows(app, Token) == 2


def test_a_disabled_account_gets_no_reset_link_and_its_links_stop_working(app, runner, test_client, user,
                                                                           mailbox):
    app.config["PASSWORD_RESET_MIN_SECONDS"] = 0
    forgot(test_client, "alice")
    [message] = mailbox.wait_for(1)
    assert runner.invoke(args=["disable-user", "alice"]).exit_code == 0
    page = test_client.get(link_path(message))
    assert page.status_code == 410 and "The account is disabled" in page.get_data(as_text=True)
    response = forgot(test_client, "alice")
    assert response.status_code == 200 and "If an account has that username" in response.get_data(as_text=True)
    result = runner.invoke(args=["send-password-reset", "alice"])
    assert result.exit_code == 1 and "alice is disabled" in result.output
    assert len(mailbox.messages) == 1
