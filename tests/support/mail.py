"""A real SMTP server on loopback (aiosmtpd) that keeps what it receives, for tests of mail."""

import email
import email.policy
import re
import socket
import threading
import time
from contextlib import contextmanager
from urllib.parse import urlsplit

from aiosmtpd.controller import Controller


class Mailbox:
    """What an SMTP server received: ``messages`` (email.message.EmailMessage), newest last.
    ``refuse`` makes it answer every mail with a temporary failure (451)."""

    def __init__(self):
        self.messages = []
        self.refuse = False
        self._arrived = threading.Condition()

    async def handle_DATA(self, server, session, envelope):
        if self.refuse:
            return "451 4.3.0 Try again later"
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self._arrived:
            self.messages.append(message)
            self._arrived.notify_all()
        return "250 OK"

    def wait_for(self, count: int = 1, timeout: float = 5) -> list:
        """Wait until ``count`` messages have arrived in all; return them."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while len(self.messages) < count:
                left = deadline - time.monotonic()
                assert left > 0, f"expected {count} mails, got {len(self.messages)}"
                self._arrived.wait(left)
        return list(self.messages)

    def last_to(self, address: str):
        """The newest message sent to ``address``."""
        for message in reversed(self.messages):
            if address in message["To"]:
                return message
        raise AssertionError(f"no mail to {address} among {len(self.messages)}")


def text_of(message) -> str:
    """The plain-text part of a mail."""
    return message.get_body(preferencelist=("plain",)).get_content()


def html_of(message) -> str:
    """The HTML part of a mail."""
    return message.get_body(preferencelist=("html",)).get_content()


def links_in(message) -> list[str]:
    """Every http(s) link in the mail's plain-text part."""
    return re.findall(r"https?://[^\s<>\"]+", text_of(message))


@contextmanager
def smtp_server():
    """Run an SMTP server on a free loopback port; yield (mailbox, port)."""
    mailbox = Mailbox()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield mailbox, port
    finally:
        controller.stop()


def link_path(message) -> str:
    """The path (and query) of the one link in a mail, to open it with the test client or a
    browser whatever host the mail names."""
    [link] = links_in(message)
    parts = urlsplit(link)
    return parts.path + (f"?{parts.query}" if parts.query else "")
