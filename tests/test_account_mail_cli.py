"""The CLI of the account mails: flask invite-user, flask send-password-reset and
flask verify-email, with their wrong calls (a one-line message and a non-zero exit)."""

import logging

from sqlalchemy import select
from support.factories import PASSWORD, count_rows, update_rows
from support.mail import link_path, text_of
from support.pages import csrf_token

from website.models import AccountLink, AuditEvent, User, db


def test_invite_user_mails_an_invitation_that_creates_a_verified_account(app, runner, test_client, mailbox):
    app.config["SIGNUP_POLICY"] = "closed"
    app.config["OAUTH2_ISSUER"] = "https://id.example.com/"
    result = runner.invoke(args=["invite-user", "ada@example.org"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "Sent an invitation (valid for 7 days) to ada@example.org."
    [message] = mailbox.wait_for(1)
    assert "you are invited to create an account" in text_of(message)
    assert text_of(message).count("https://id.example.com/invitation/") == 1  # the CLI has no request
    page = test_client.get(link_path(message))
    done = test_client.post(link_path(message), data={"csrf_token": csrf_token(page), "username": "ada",
                                                      "password": PASSWORD, "confirm": PASSWORD})
    assert done.status_code == 302
    with app.app_context():
        ada = db.session.scalar(select(User).where(User.username == "ada"))
        assert (ada.email, ada.email_verified) == ("ada@example.org", True)


def test_invite_user_wrong_calls(app, runner, user, mailbox):
    for args, message in ((["invite-user"], "Missing argument 'EMAIL'"),
                          (["invite-user", "not an address"], "is not an email address"),
                          (["invite-user", "Alice@Example.com"], "alice already has an account")):
        result = runner.invoke(args=args)
        assert result.exit_code != 0
        assert message in result.output
    mailbox.refuse = True
    result = runner.invoke(args=["invite-user", "ada@example.org"])
    assert result.exit_code == 1 and "The mail could not be sent just now" in result.output
    assert count_rows(app, AccountLink) == 0


def test_invite_user_without_an_issuer_says_what_to_set(app, runner, mailbox):
    app.config["OAUTH2_ISSUER"] = None
    result = runner.invoke(args=["invite-user", "ada@example.org"])
    assert result.exit_code == 1 and "Set OAUTH2_ISSUER" in result.output
    assert count_rows(app, AccountLink) == 0


def test_without_a_mail_server_the_cli_says_the_mail_went_to_the_log(app, runner, caplog):
    with caplog.at_level(logging.INFO, logger="website.mail"):
        result = runner.invoke(args=["invite-user", "ada@example.org"])
    assert result.exit_code == 0
    assert "MAIL_SERVER is not set" in result.output
    assert "/invitation/" in caplog.text


def test_send_password_reset_by_username_or_address(app, runner, user, mailbox):
    for who in ("alice", "alice@example.com", "ALICE@EXAMPLE.COM"):
        result = runner.invoke(args=["send-password-reset", who])
        assert result.exit_code == 0, result.output
        assert "Sent a password-reset link for alice (valid for 30 minutes) to alice@example.com." in result.output
    assert len(mailbox.wait_for(3)) == 3
    assert count_rows(app, AuditEvent, AuditEvent.event == "password_reset_requested") == 3


def test_send_password_reset_wrong_calls(app, runner, user, make_user, mailbox):
    make_user("bob", email="shared@example.com")
    make_user("carol", email="shared@example.com")
    make_user("dave")
    update_rows(app, User, {"email": None}, User.username == "dave")
    for args, message in ((["send-password-reset"], "Missing argument 'USERNAME|EMAIL'"),
                          (["send-password-reset", "nobody"], "No account has the username or email address"),
                          (["send-password-reset", "nobody@example.com"], "No account has"),
                          (["send-password-reset", "shared@example.com"], "2 accounts use shared@example.com: bob, carol"),
                          (["send-password-reset", "dave"], "dave has no email address")):
        result = runner.invoke(args=args)
        assert result.exit_code != 0, args
        assert message in result.output
    mailbox.refuse = True
    result = runner.invoke(args=["send-password-reset", "alice"])
    assert result.exit_code == 1 and "The mail could not be sent just now" in result.output
    assert count_rows(app, AccountLink) == 0


def test_verify_email_marks_the_address_verified(app, runner, user):
    result = runner.invoke(args=["verify-email", "Alice"])
    assert result.exit_code == 0
    assert result.output.strip() == "Marked alice@example.com of alice as verified."
    with app.app_context():
        assert db.session.get(User, user.id).email_verified is True
    assert count_rows(app, AuditEvent, AuditEvent.event == "email_verified") == 1
    again = runner.invoke(args=["verify-email", "alice"])
    assert again.exit_code == 0 and "verified already" in again.output


def test_verify_email_wrong_calls(app, runner, make_user):
    make_user("dave")
    update_rows(app, User, {"email": None}, User.username == "dave")
    for args, message in ((["verify-email"], "Missing argument 'USERNAME'"),
                          (["verify-email", "nobody"], "No user named 'nobody'."),
                          (["verify-email", "dave"], "dave has no email address to verify.")):
        result = runner.invoke(args=args)
        assert result.exit_code != 0
        assert message in result.output
