"""Forgot password with the mail server down: the answer is the same page, in the same time
band, as for an unknown address (saying the mail failed would tell anyone the address has an
account); the mail waits in the mail queue and is sent later, with a link made then, by
`flask send-queued-mail` or the worker thread, with retries that back off and an end."""

import socket
import time

from sqlalchemy import select
from support.factories import PASSWORD, count_rows, detached_rows, update_rows
from support.mail import link_path, text_of
from support.pages import csrf_token, forgot, forgot_answers

from website.models import AccountLink, AuditEvent, QueuedMail, db

NEW_PASSWORD = "a completely new passphrase"


def reset_through(test_client, message, password=NEW_PASSWORD):
    path = link_path(message)
    page = test_client.get(path)
    assert page.status_code == 200, page.get_data(as_text=True)
    return test_client.post(path, data={"csrf_token": csrf_token(page), "password": password, "confirm": password})


def closed_port() -> int:
    """A loopback port nothing listens on: connecting is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def queued(app) -> list[QueuedMail]:
    return detached_rows(app, QueuedMail)


def events(app, name) -> list[dict]:
    with app.app_context():
        return list(db.session.scalars(select(AuditEvent.detail).where(AuditEvent.event == name)
                                       .order_by(AuditEvent.id)))


def test_known_and_unknown_addresses_get_the_same_answer_and_the_mail_is_sent_once_the_server_is_back(
        app, test_client, auth, user, mailbox, runner):
    app.config.update(PASSWORD_RESET_MIN_SECONDS=0.4, MAIL_LINK_LIMIT=0, MAIL_LINK_ADDRESS_LIMIT=0)
    working_port, app.config["MAIL_PORT"] = app.config["MAIL_PORT"], closed_port()  # the mail server is down
    pages, times = forgot_answers(test_client, ("alice@example.com", "nobody@example.com", "alice", "nobody"))
    assert len(set(pages.values())) == 1, "the answer tells a known address from an unknown one"
    assert "could not be sent" not in pages["alice"]
    for identifier, seconds in times.items():
        assert 0.4 <= seconds < 0.4 + 0.35, (identifier, times)
    # The known account's two mails wait; no link exists until one is sent, and no row holds one.
    rows = queued(app)
    assert [(row.to_address, row.link_purpose, row.state) for row in rows] == \
        [("alice@example.com", "reset_password", "pending")] * 2
    assert "Connection refused" in rows[0].last_error
    assert count_rows(app, AccountLink) == 0
    assert [event.get("queued") for event in events(app, "password_reset_requested")] == [True, None, True, None]

    app.config["MAIL_PORT"] = working_port
    result = runner.invoke(args=["send-queued-mail"])
    assert result.exit_code == 0, result.output
    assert result.output == "Sent 2, will retry 0, gave up on 0; 0 mails in the queue.\n"
    first, second = mailbox.wait_for(2)
    assert first["To"] == second["To"] == "alice@example.com"
    assert "works for 30 minutes" in text_of(second)
    token = link_path(second).rsplit("/", 1)[1]
    assert all(token not in str(vars(row)) for row in queued(app))
    # Made when sent, like any reset link: the newer one replaces the older.
    assert test_client.get(link_path(first)).status_code == 410
    done = reset_through(app.test_client(), second)
    assert done.status_code == 302 and done.headers["Location"] == "/login"
    assert auth.login(password=NEW_PASSWORD).status_code == 302
    assert {row.state for row in queued(app)} == {"delivered"}
    assert len(events(app, "queued_mail_sent")) == 2
    assert runner.invoke(args=["send-queued-mail"]).output.startswith("Sent 0, will retry 0, gave up on 0")


def test_a_queued_mail_is_retried_with_a_growing_delay_then_given_up_and_audited(app, test_client, user,
                                                                                 mailbox, runner):
    app.config.update(PASSWORD_RESET_MIN_SECONDS=0, MAIL_QUEUE_MAX_ATTEMPTS=3, MAIL_QUEUE_BACKOFF=60)
    mailbox.refuse = True
    assert forgot(test_client, "alice").status_code == 200
    failed = runner.invoke(args=["send-queued-mail"])
    assert failed.exit_code == 1
    assert failed.output == "Sent 0, will retry 1, gave up on 0; 1 mail in the queue.\n"
    [row] = queued(app)
    assert row.attempts == 1 and row.next_attempt_at >= time.time() + 55
    assert "451" in row.last_error
    # Not due yet: nothing is tried.
    assert runner.invoke(args=["send-queued-mail"]).output == "Sent 0, will retry 0, gave up on 0; 1 mail in the queue.\n"
    update_rows(app, QueuedMail, {"next_attempt_at": 0})
    assert runner.invoke(args=["send-queued-mail"]).exit_code == 1
    update_rows(app, QueuedMail, {"next_attempt_at": 0})
    given_up = runner.invoke(args=["send-queued-mail"])
    assert given_up.exit_code == 1 and "gave up on 1; 0 mails in the queue" in given_up.output
    assert [event["retry_in"] for event in events(app, "queued_mail_failed")] == [60, 120]
    [event] = events(app, "queued_mail_given_up")
    assert event["attempts"] == 3 and "451" in event["error"]
    assert [row.state for row in queued(app)] == ["given_up"]
    assert mailbox.messages == [] and count_rows(app, AccountLink) == 0


def test_a_queued_mail_for_an_account_disabled_meanwhile_is_not_sent(app, test_client, user, mailbox, runner):
    app.config["PASSWORD_RESET_MIN_SECONDS"] = 0
    mailbox.refuse = True
    forgot(test_client, "alice")
    assert runner.invoke(args=["disable-user", "alice"]).exit_code == 0
    mailbox.refuse = False
    result = runner.invoke(args=["send-queued-mail"])
    assert result.exit_code == 1 and "gave up on 1" in result.output
    assert events(app, "queued_mail_given_up")[0]["error"] == "The account is disabled."
    assert mailbox.messages == [] and count_rows(app, AccountLink) == 0


def test_the_worker_thread_sends_queued_mail_when_the_server_is_back(app, test_client, auth, user, mailbox):
    app.config.update(PASSWORD_RESET_MIN_SECONDS=0, MAIL_QUEUE_WORKER=True, MAIL_QUEUE_POLL_INTERVAL=0.2,
                      MAIL_QUEUE_BACKOFF=0, MAIL_QUEUE_MAX_ATTEMPTS=1000)
    worker = app.extensions["mail_queue_worker"]
    try:
        mailbox.refuse = True
        assert forgot(test_client, "alice").status_code == 200  # its first request started the worker
        deadline = time.monotonic() + 10
        while not events(app, "queued_mail_failed") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert events(app, "queued_mail_failed"), "the worker never tried"
        mailbox.refuse = False
        [message] = mailbox.wait_for(1, timeout=10)
        # The mail goes out just before its link is committed (a refused mail leaves no link).
        while not events(app, "queued_mail_sent") and time.monotonic() < deadline + 10:
            time.sleep(0.1)
        assert reset_through(app.test_client(), message).status_code == 302
        assert auth.login(password=PASSWORD).status_code == 400
        assert auth.login(password=NEW_PASSWORD).status_code == 302
    finally:
        worker.stop()


def test_without_oauth2_issuer_the_queued_link_points_at_the_site_the_request_came_to(app, test_client, user,
                                                                                     mailbox, runner):
    app.config.update(PASSWORD_RESET_MIN_SECONDS=0, OAUTH2_ISSUER=None)
    mailbox.refuse = True
    assert forgot(test_client, "alice").status_code == 200
    mailbox.refuse = False
    assert runner.invoke(args=["send-queued-mail"]).exit_code == 0  # the CLI has no request of its own
    [message] = mailbox.wait_for(1)
    assert message["From"] == "no-reply@localhost"
    assert text_of(message).count("http://localhost/reset-password/") == 1
    assert reset_through(test_client, message).status_code == 302


def test_purge_expired_removes_queued_mails_a_day_after_they_were_sent(app, test_client, user, mailbox, runner):
    app.config["PASSWORD_RESET_MIN_SECONDS"] = 0
    mailbox.refuse = True
    forgot(test_client, "alice")
    mailbox.refuse = False
    assert "queued mails" not in runner.invoke(args=["purge-expired"]).output  # still waiting
    assert runner.invoke(args=["send-queued-mail"]).exit_code == 0
    assert "queued mails" not in runner.invoke(args=["purge-expired"]).output  # kept for a day
    update_rows(app, QueuedMail, {"created_at": int(time.time()) - 24 * 3600 - 5})
    assert "Deleted 1 queued mails sent or given up on." in runner.invoke(args=["purge-expired"]).output
    assert queued(app) == []
