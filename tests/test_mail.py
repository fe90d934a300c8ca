"""Outgoing mail: sent through a real SMTP server on loopback, written to the log when no
MAIL_SERVER is set, and a clear one-line failure when the server will not take it."""

import logging
import socket

import pytest

from support.factories import config_for
from support.mail import html_of, text_of
from website import create_app


def test_test_mail_arrives_with_a_text_and_an_html_part(app, runner, mailbox):
    app.config["SITE_NAME"] = "Acme Sign-in"
    result = runner.invoke(args=["send-test-mail", "ada@example.com"])
    assert result.exit_code == 0, result.output
    assert "Sent a test mail to ada@example.com" in result.output
    [message] = mailbox.wait_for(1)
    assert message["To"] == "ada@example.com"
    assert message["Subject"] == "Acme Sign-in: test mail"
    assert message["From"].startswith("no-reply@")
    assert "test mail from Acme Sign-in" in text_of(message)
    assert "<p>This is a test mail from Acme Sign-in.</p>" in html_of(message)


def test_the_configured_sender_is_used(app, runner, mailbox):
    app.config["MAIL_DEFAULT_SENDER"] = "Acme <accounts@acme.example>"
    assert runner.invoke(args=["send-test-mail", "ada@example.com"]).exit_code == 0
    assert mailbox.wait_for(1)[0]["From"] == "Acme <accounts@acme.example>"


def test_a_refusing_mail_server_is_a_one_line_error(app, runner, mailbox):
    mailbox.refuse = True
    result = runner.invoke(args=["send-test-mail", "ada@example.com"])
    assert result.exit_code == 1
    assert "The mail could not be sent just now" in result.output
    assert mailbox.messages == []


def test_an_unreachable_mail_server_is_a_one_line_error(app, runner):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=port, MAIL_TIMEOUT=2)
    result = runner.invoke(args=["send-test-mail", "ada@example.com"])
    assert result.exit_code == 1
    assert "The mail could not be sent just now" in result.output
    assert f"127.0.0.1:{port}" in result.output


def test_without_a_mail_server_the_mail_goes_to_the_log(app, runner, caplog):
    app.config["MAIL_SERVER"] = None
    with caplog.at_level(logging.INFO, logger="website.mail"):
        result = runner.invoke(args=["send-test-mail", "ada@example.com"])
    assert result.exit_code == 0, result.output
    assert "written to the log" in result.output
    assert "To: ada@example.com" in caplog.text
    assert "If you can read it, outgoing mail works." in caplog.text


def test_a_bad_address_is_refused(runner, mailbox):
    result = runner.invoke(args=["send-test-mail", "not an address"])
    assert result.exit_code == 1
    assert "is not an email address" in result.output
    assert mailbox.messages == []


def test_tls_and_ssl_together_is_a_configuration_error(database_url):
    with pytest.raises(SystemExit, match="MAIL_USE_TLS .* not both"):
        create_app(config_for(database_url, MAIL_USE_TLS=True, MAIL_USE_SSL=True))
