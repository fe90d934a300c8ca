"""Upstream providers for the upstream sign-in tests, and a person who signs in at them.

Two real upstreams, neither configured by hand in code: panva's oidc-provider (npm, OpenID
Certified; tests/upstream/provider.mjs starts it in memory with one client) and a second
instance of this server on its own database. ``drive`` plays the person through every page
(the upstream's log-in and consent pages, this server's consent page) until the browser is
sent to ``stop``."""

import json
import os
import re
import shutil
import subprocess
from contextlib import contextmanager
from html import unescape
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
import requests

from website.models import OAuth2Client, User, db
from website.oauth2.client_metadata import validate_client_metadata

from support.factories import PASSWORD, TEST_PASSWORD_METHOD
from support.loopback import LoopbackServer, QuietHandler
from support.pages import csrf_token

#: The client secret the upstreams give this server in the tests.
UPSTREAM_SECRET = "upstream-client-secret-for-tests"
PROVIDER_DIR = Path(__file__).resolve().parents[1] / "upstream"


def node_or_skip() -> str:
    """The node binary, with oidc-provider installed; skipped (failed in CI) without them."""
    node = shutil.which("node")
    installed = (PROVIDER_DIR / "node_modules" / "oidc-provider").is_dir()
    if node and installed:
        return node
    reason = ("node is not on PATH" if not node else
              "tests/upstream/node_modules is missing: run `npm ci --prefix tests/upstream` (make test does)")
    if os.environ.get("CI") == "true":
        pytest.fail(f"the upstream tests must run in CI, but {reason}")
    pytest.skip(reason)


@contextmanager
def oidc_provider(client: dict, accounts: dict):
    """Run oidc-provider with ``client`` registered and ``accounts`` (login name -> claims);
    yield its issuer URL; stop it afterwards."""
    node = node_or_skip()
    process = subprocess.Popen([node, str(PROVIDER_DIR / "provider.mjs"), json.dumps(
        {"client": client, "accounts": accounts})], cwd=PROVIDER_DIR, text=True,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        line = process.stdout.readline()
        assert line, "oidc-provider did not start"
        yield json.loads(line)["issuer"]
    finally:
        process.stdin.close()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()


def _form(html: str, marker: str) -> tuple[str, dict] | None:
    """The action and hidden inputs of the first form that contains ``marker``."""
    for match in re.finditer(r"<form\b([^>]*)>(.*?)</form>", html, re.S):
        if marker in match.group(0):
            action = re.search(r'action="([^"]*)"', match.group(1))
            hidden = dict(re.findall(r'<input[^>]*type="hidden"[^>]*name="([^"]+)"[^>]*value="([^"]*)"',
                                     match.group(2)))
            return (unescape(action.group(1)) if action else ""), hidden
    return None


class Person:
    """Answers the pages a sign-in shows: the oidc-provider's log-in (as ``upstream_login``) and
    consent, this server's log-in page on the upstream instance (``upstream_login``/PASSWORD),
    and Allow on this server's consent page."""

    def __init__(self, upstream_login: str, password: str = PASSWORD, allow: bool = True,
                 login_origin: str | None = None):
        self.upstream_login = upstream_login
        self.login_origin = login_origin  # the upstream instance of this server, if it is one
        self.password = password
        self.allow = allow
        self.pages: list[str] = []

    def answer(self, session, response):
        """The response after answering this page, or None when it asks nothing known."""
        html = response.text
        url = response.url
        if (form := _form(html, 'name="login"')) and 'name="password"' in html:
            self.pages.append("upstream login")
            action, hidden = form
            return session.post(urljoin(url, action), data={**hidden, "login": self.upstream_login,
                                                            "password": "any"}, allow_redirects=False)
        if "/interaction/" in url and (form := _form(html, "Continue")):
            self.pages.append("upstream consent")
            return session.post(urljoin(url, form[0]), data=form[1], allow_redirects=False)
        if 'name="allow"' in html:
            self.pages.append(f"consent at {urlsplit(url).port}")
            button = {"allow": "Allow"} if self.allow else {"deny": "Deny"}
            return session.post(url, data={"csrf_token": csrf_token(html), **button}, allow_redirects=False)
        if (self.login_origin and url.startswith(self.login_origin + "/login") and 'name="username"' in html
                and 'name="password"' in html):
            self.pages.append(f"login at {urlsplit(url).port}")
            return session.post(url, data={"csrf_token": csrf_token(html), "username": self.upstream_login,
                                           "password": self.password}, allow_redirects=False)
        return None


def drive(session, url: str, person: Person, stop: str, steps: int = 25):
    """Follow redirects and answer pages from ``url`` until the browser is sent to a URL that
    starts with ``stop`` (returned as a string), or a page asks something ``person`` does not
    know (that response is returned)."""
    response = session.get(url, allow_redirects=False)
    for _ in range(steps):
        if response.is_redirect:
            location = urljoin(response.url, response.headers["Location"])
            if location.startswith(stop):
                return location
            response = session.get(location, allow_redirects=False)
            continue
        answered = person.answer(session, response) if response.status_code == 200 else None
        if answered is None:
            return response
        response = answered
    raise AssertionError("too many steps")


def register_client_at(app, redirect_uris: list[str], post_logout_redirect_uris=(), **metadata) -> tuple[str, str]:
    """Register a confidential client on another instance of this server: (client_id, secret)."""
    data = {"client_name": "Downstream IdP", "redirect_uris": redirect_uris,
            "post_logout_redirect_uris": list(post_logout_redirect_uris),
            "grant_types": ["authorization_code"], "scope": "openid profile email",
            "token_endpoint_auth_method": "client_secret_basic", **metadata}
    with app.app_context():
        client, secret = OAuth2Client.register(validate_client_metadata(data, allow_api_scopes=True))
        db.session.add(client)
        db.session.commit()
        return client.client_id, secret


def make_person_at(app, username: str, email: str) -> str:
    """Create an account on another instance of this server; return its sub."""
    with app.app_context():
        user = User(username=username, email=email, email_verified=True)
        user.set_password(PASSWORD, method=TEST_PASSWORD_METHOD)
        db.session.add(user)
        db.session.commit()
        return user.sub


class TamperingProxy:
    """A transparent HTTP proxy in front of an upstream on loopback that can change the
    id_token in token responses: ``tamper`` is None or a function of the id_token."""

    def __init__(self, target: str):
        proxy = self
        self.tamper = None
        self.paths: list[str] = []  # every path requested through the proxy, in order

        class Handler(QuietHandler):
            def _forward(self):
                proxy.paths.append(self.path.split("?")[0])
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                answer = requests.request(self.command, target + self.path, data=body, headers=headers,
                                          allow_redirects=False, timeout=10)
                content = answer.content
                if proxy.tamper and self.path.startswith("/oauth/token") and answer.status_code == 200:
                    document = answer.json()
                    document["id_token"] = proxy.tamper(document["id_token"])
                    content = json.dumps(document).encode()
                self.send_response(answer.status_code)
                for name, value in answer.raw.headers.items():
                    if name.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            do_GET = do_POST = _forward

        self.server = LoopbackServer(Handler, poll_interval=0.05)
        self.url = self.server.url

    def close(self) -> None:
        self.server.close()
