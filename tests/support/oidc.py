"""A person's browser for tests against the live server: a requests.Session that logs in,
signs up and presses Allow on the real pages, and hands back the redirect to the client."""

import base64
import hashlib
from urllib.parse import urlencode, urljoin, urlsplit

import requests

from support.factories import PASSWORD
from support.pages import csrf_token, query_params


class Browser:
    """Drives the log-in, sign-up and consent pages of the server at ``base``."""

    def __init__(self, base: str):
        self.base = base
        self.session = requests.Session()
        self.pages: list[str] = []  # paths of the pages shown, in order

    def login(self, username="alice", password=PASSWORD) -> None:
        """Log in from the home page."""
        response = self._submit_login(self.base + "/login", username, password)
        assert response.status_code == 302, response.text[:300]

    def authorize(self, url: str, username="alice", password=PASSWORD, allow=True, signup=None) -> str:
        """Open an authorization URL as a person would (log in or sign up when asked, then
        Allow or Deny) and return the Location that sends the browser back to the client."""
        response = self.session.get(url, allow_redirects=False)
        for _ in range(8):
            if response.is_redirect:
                location = urljoin(response.url, response.headers["Location"])
                if not location.startswith(self.base + "/"):
                    return location
                path = urlsplit(location).path
                self.pages.append(path)
                if path == "/login":
                    response = self._submit_login(location, username, password)
                elif path == "/signup":
                    response = self._submit_signup(location, signup)
                else:
                    response = self.session.get(location, allow_redirects=False)
            elif response.status_code == 200 and 'name="allow"' in response.text:
                self.pages.append("consent")
                button = {"allow": "Allow"} if allow else {"deny": "Deny"}
                response = self.session.post(
                    response.url, data={"csrf_token": csrf_token(response.text), **button},
                    headers=_referer(response.url), allow_redirects=False,
                )
            else:
                raise AssertionError(f"{response.status_code} at {response.url}: {response.text[:500]}")
        raise AssertionError("too many steps")

    def _submit_login(self, url, username, password):
        page = self.session.get(url)
        assert page.status_code == 200, page.text[:300]
        self.last_login_page = page.text
        return self.session.post(
            url, data={"csrf_token": csrf_token(page.text), "username": username, "password": password},
            headers=_referer(page.url), allow_redirects=False,
        )

    def _submit_signup(self, url, signup: dict):
        page = self.session.get(url)
        assert page.status_code == 200, page.text[:300]
        data = {"csrf_token": csrf_token(page.text), "confirm": signup["password"], **signup}
        return self.session.post(url, data=data, headers=_referer(page.url), allow_redirects=False)


def _referer(page_url: str) -> dict:
    """The Referer a browser sends with a form posted from ``page_url`` (the pages' policy is
    same-origin); Flask-WTF's CSRF check over https requires it."""
    return {"Referer": page_url}


CALLBACK = "http://127.0.0.1:5000/callback"


def authorization_url(base: str, client, **params) -> str:
    """An authorization request for a client registered with the CALLBACK redirect URI."""
    values = {"response_type": "code", "client_id": client.client_id, "redirect_uri": CALLBACK,
              "scope": "openid profile email", "state": "af0ifjsldkj"}
    values.update(params)
    return f"{base}/authorize?" + urlencode({k: v for k, v in values.items() if v is not None})


def code_flow_tokens(base: str, client, secret: str, browser: Browser | None = None, username="alice",
                     **params) -> dict:
    """Run the code flow for a confidential client (HTTP Basic) and return the token response."""
    browser = browser or Browser(base)
    callback = browser.authorize(authorization_url(base, client, **params), username=username)
    code = query_params(callback)["code"]
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK}
    response = requests.post(f"{base}/oauth/token", auth=(client.client_id, secret), data=data)
    assert response.status_code == 200, response.text
    return response.json()


def half_hash(value: str) -> str:
    """at_hash / c_hash for RS256: the left half of SHA-256, base64url without padding."""
    digest = hashlib.sha256(value.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()
