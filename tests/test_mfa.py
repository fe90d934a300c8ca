"""Two-step sign-in as a person does it: set up an authenticator app (codes computed with pyotp
from the secret the page shows), sign in with its code, replays and wrong codes refused and
throttled, recovery codes used once, removing the app, what is audited and mailed, and the
administrator's reset."""

import pytest
import sqlalchemy as sa
from support.factories import PASSWORD, count_rows, update_rows
from support.flows import authorize_url, get_code
from support.mail import text_of
from support.mfa import (
    Authenticator,
    answer_recovery_code,
    answer_totp,
    continue_link,
    enrol_totp,
    recovery_codes_on_page,
    secret_on_page,
)
from support.pages import csrf_token

from website.models import AuditEvent, RecoveryCode, TotpFactor, User, db
from website.models.base import hash_secret


def signed_in(test_client) -> bool:
    return test_client.get("/account/").status_code == 200


def events(app, name: str) -> list[AuditEvent]:
    with app.app_context():
        return db.session.scalars(sa.select(AuditEvent).where(AuditEvent.event == name)).all()


@pytest.fixture
def enrolled(test_client, auth, user):
    """alice with an authenticator app, signed out; yields (authenticator, recovery codes)."""
    auth.login()
    authenticator, codes, _ = enrol_totp(test_client)
    auth.logout()
    return authenticator, codes


def test_enrolment_shows_a_server_drawn_qr_code_and_the_secret_and_needs_a_code(app, test_client, auth, user):
    auth.login()
    page = test_client.get("/account/security/totp")
    text = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "<svg" in text and "<script" not in text.split("<main", 1)[1]  # drawn here, no script
    assert "http" not in text.split('<div class="qr-code">', 1)[1].split("</div>", 1)[0].replace(
        "http://www.w3.org/2000/svg", "")  # no image from another site
    secret = secret_on_page(page)
    # Sealed at rest: the database never holds the secret itself.
    with app.app_context():
        stored = db.session.scalar(sa.select(TotpFactor.secret_sealed))
    assert secret not in stored
    # A wrong code does not turn it on.
    wrong = test_client.post("/account/security/totp", data={"csrf_token": csrf_token(page), "code": "000000"})
    assert wrong.status_code == 400 and "not right" in wrong.get_data(as_text=True)
    assert secret_on_page(wrong) == secret  # the same secret, to try again
    auth.logout()
    assert auth.login().headers["Location"] == "/"  # an unconfirmed authenticator does not count
    assert signed_in(test_client)


def test_enrol_then_sign_in_with_a_code(app, test_client, auth, user, enrolled):
    authenticator, codes = enrolled
    with app.app_context():
        stored = db.session.scalars(sa.select(RecoveryCode.code_hash)).all()
    assert sorted(stored) == sorted(hash_secret(code) for code in codes)  # only hashes stored
    response = auth.login()
    assert response.headers["Location"] == "/login/second-factor"
    assert not signed_in(test_client)  # the password alone signs no one in
    response = answer_totp(test_client, authenticator.code())
    assert response.status_code == 302 and response.headers["Location"] == "/"
    assert signed_in(test_client)
    used = events(app, "mfa_used")
    assert used[-1].detail["amr"] == ["pwd", "otp", "mfa"]
    assert [e.event for e in events(app, "mfa_factor_added")] == ["mfa_factor_added"]


def test_a_code_is_accepted_once(test_client, auth, user, enrolled):
    authenticator, _ = enrolled
    auth.login()
    assert answer_totp(test_client, authenticator.code()).status_code == 302
    auth.logout()
    auth.login()
    replay = answer_totp(test_client, authenticator.spent_code())
    assert replay.status_code == 400 and "already used" in replay.get_data(as_text=True)
    assert not signed_in(test_client)
    assert answer_totp(test_client, authenticator.code()).status_code == 302


def test_wrong_codes_are_throttled_and_lock_even_the_right_code_out(app, app_config, test_client, auth, user,
                                                                    enrolled):
    app.config["MFA_ATTEMPT_LIMIT"] = 3
    authenticator, codes = enrolled
    auth.login()
    assert answer_totp(test_client, "111111").status_code == 400
    assert answer_totp(test_client, "222222").status_code == 400
    locked = answer_totp(test_client, "333333")
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > 0
    assert "Too many failed attempts" in locked.get_data(as_text=True)
    right = answer_totp(test_client, authenticator.code())
    assert right.status_code == 429 and not signed_in(test_client)
    # Recovery codes share the lockout: guessing cannot move to the other form.
    assert answer_recovery_code(test_client, codes[0]).status_code == 429
    assert len(events(app, "mfa_failed")) == 3 and events(app, "mfa_locked")


def test_a_recovery_code_signs_in_once_and_says_how_many_are_left(app, test_client, auth, user, enrolled, mailbox):
    _, codes = enrolled
    auth.login()
    response = answer_recovery_code(test_client, codes[3].upper().replace("-", " "))  # typed loosely
    assert response.status_code == 302
    assert "You have 9 recovery codes left" in test_client.get(response.headers["Location"]).get_data(as_text=True)
    assert signed_in(test_client)
    mail = mailbox.wait_for(2)
    notice = next(m for m in mail if "recovery code was used" in m["Subject"])
    assert "You have 9 recovery codes left" in text_of(notice)
    assert events(app, "mfa_recovery_code_used")[-1].detail["left"] == 9
    auth.logout()
    auth.login()
    again = answer_recovery_code(test_client, codes[3])
    assert again.status_code == 400 and not signed_in(test_client)
    assert answer_recovery_code(test_client, codes[4]).status_code == 302
    assert "<strong>8</strong> unused" in test_client.get("/account/security").get_data(as_text=True)


def test_new_recovery_codes_replace_the_old_ones_after_the_password(app, test_client, auth, user, enrolled):
    authenticator, old = enrolled
    auth.login()
    answer_totp(test_client, authenticator.code())
    page = test_client.get("/account/security")
    token = csrf_token(page, "codes-csrf_token")
    wrong = test_client.post("/account/security/recovery-codes",
                             data={"codes-csrf_token": token, "codes-current_password": "nope"})
    assert wrong.status_code == 400 and "not your current password" in wrong.get_data(as_text=True)
    shown = test_client.post("/account/security/recovery-codes",
                             data={"codes-csrf_token": token, "codes-current_password": PASSWORD})
    new = recovery_codes_on_page(shown)
    assert len(new) == 10 and not set(new) & set(old)
    auth.logout()
    auth.login()
    assert answer_recovery_code(test_client, old[0]).status_code == 400
    assert answer_recovery_code(test_client, new[0]).status_code == 302


def test_removing_the_authenticator_needs_the_password_and_is_mailed(app, test_client, auth, user, enrolled, mailbox):
    authenticator, _ = enrolled
    auth.login()
    answer_totp(test_client, authenticator.code())
    token = csrf_token(test_client.get("/account/security"), "remove-csrf_token")
    refused = test_client.post("/account/security/totp/remove",
                               data={"remove-csrf_token": token, "remove-current_password": "nope"})
    assert refused.status_code == 400 and count_rows(app, TotpFactor) == 1
    done = test_client.post("/account/security/totp/remove",
                            data={"remove-csrf_token": token, "remove-current_password": PASSWORD})
    assert done.status_code == 302
    assert count_rows(app, TotpFactor) == 0 and count_rows(app, RecoveryCode) == 0
    assert events(app, "mfa_factor_removed")
    assert any("removed" in m["Subject"] for m in mailbox.wait_for(2))
    auth.logout()
    assert auth.login().headers["Location"] == "/"


def test_adding_an_authenticator_is_mailed_first_and_waits_when_mail_is_down(app, test_client, auth, user, mailbox):
    auth.login()
    mailbox.refuse = True
    page = test_client.get("/account/security/totp")
    authenticator = Authenticator(secret_on_page(page))
    refused = test_client.post("/account/security/totp", data={"csrf_token": csrf_token(page),
                                                               "code": authenticator.code()})
    assert refused.status_code == 503 and "could not be sent" in refused.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(sa.select(TotpFactor.confirmed_at)) is None  # nothing changed
    mailbox.refuse = False
    done = test_client.post("/account/security/totp", data={"csrf_token": csrf_token(page),
                                                            "code": authenticator.code()})
    assert done.status_code == 200
    assert "second factor was added" in mailbox.wait_for(1)[-1]["Subject"]


def test_a_pending_sign_in_expires_and_ends_with_the_sessions(app, test_client, auth, user, enrolled):
    auth.login()
    with test_client.session_transaction() as session:
        session["mfa_pending"] = {**session["mfa_pending"], "at": session["mfa_pending"]["at"] - 3600}
    response = test_client.get("/login/second-factor")
    assert response.status_code == 302 and response.headers["Location"] == "/login"
    auth.login()
    update_rows(app, User, {"session_secret": "f" * 64}, User.username == "alice")  # signed out everywhere
    assert test_client.get("/login/second-factor").headers["Location"] == "/login"


def test_an_admin_resets_a_persons_factors_audited_and_mailed(app, test_client, auth, make_user, user, enrolled,
                                                              mailbox):
    make_user("root", is_admin=True)
    auth.login("root")
    with app.app_context():
        alice_id = db.session.scalar(sa.select(User.id).where(User.username == "alice"))
    page = test_client.get(f"/admin/users/{alice_id}/reset-mfa")
    assert page.status_code == 200 and "authenticator app" in page.get_data(as_text=True)
    done = test_client.post(f"/admin/users/{alice_id}/reset-mfa", data={"csrf_token": csrf_token(page)})
    assert done.status_code == 302
    assert count_rows(app, TotpFactor) == 0 and count_rows(app, RecoveryCode) == 0
    event = events(app, "mfa_reset")[-1]
    assert event.username == "root" and event.detail["target_username"] == "alice"
    assert event.detail["removed"] == ["totp"]
    log = test_client.get("/admin/audit").get_data(as_text=True)
    assert "root reset the second factors of alice" in log and "alice turned on two-step sign-in (totp)" in log
    mailbox.wait_for(1)
    assert "second factors were reset" in mailbox.last_to("alice@example.com")["Subject"]
    auth.logout()
    assert auth.login().headers["Location"] == "/"  # the password alone again


def test_only_admins_reset_factors(app, test_client, auth, make_user, user, enrolled):
    bob = make_user("bob")
    authenticator, _ = enrolled
    auth.login()
    answer_totp(test_client, authenticator.code())
    assert test_client.get(f"/admin/users/{bob.id}/reset-mfa").status_code == 403


def test_a_step_up_keeps_the_apps_the_session_signed_in_to(app, test_client, auth, user, make_client):
    client, _ = make_client(scope="openid profile")
    auth.login()
    get_code(test_client, client, scope="openid profile")
    step_up = test_client.get(authorize_url(client, scope="openid profile", acr_values="urn:idp:acr:mfa"))
    assert step_up.headers["Location"] == "/account/security/totp"
    _, _, done = enrol_totp(test_client)
    with test_client.session_transaction() as session:
        assert session["amr"] == ["pwd", "otp", "mfa"]
        assert session["clients"] == [client.client_id]  # /v2/logout may still return to it
    back = test_client.get(continue_link(done))  # back to the authorization request: its code
    assert back.headers["Location"].startswith(client.redirect_uris[0] + "?code=")
