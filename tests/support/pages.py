"""Reading the rendered pages: the CSRF token of a form, a redirect's parameters, the
log-in and log-out the ``auth`` fixture does through the real forms, and asking for a
password reset."""

import html
import re
import time
from urllib.parse import parse_qs, urlsplit

from support.factories import PASSWORD


def csrf_token(page, field: str = "csrf_token") -> str:
    """The CSRF token of the first form on a page: HTML text, a Flask test response or a
    requests response. ``field`` names a prefixed form's field (e.g. ``password-csrf_token``)."""
    if not isinstance(page, str):
        page = page.get_data(as_text=True) if hasattr(page, "get_data") else page.text
    # Any attribute order: WTForms' hidden_tag and the layout's log-out form differ.
    match = re.search(rf'<input[^>]*name="{re.escape(field)}"[^>]*value="([^"]+)"', page)
    assert match, f"no {field} field on the page: {page[:300]}"
    return html.unescape(match.group(1))


def form_token(test_client, path: str, field: str = "csrf_token") -> str:
    """GET the page at ``path`` and return the CSRF token of its form."""
    return csrf_token(test_client.get(path), field)


def query_params(location: str) -> dict:
    """The query (or fragment) parameters of a redirect, one value each."""
    parts = urlsplit(location)
    return {k: v[0] for k, v in parse_qs(parts.query or parts.fragment).items()}


def forgot(test_client, identifier: str):
    """Ask for a password reset on the forgot-password page."""
    return test_client.post("/forgot-password", data={
        "identifier": identifier, "csrf_token": form_token(test_client, "/forgot-password")})


def forgot_answers(test_client, identifiers) -> tuple[dict, dict]:
    """Ask for a reset for each identifier: the pages answered (without the identifier and any
    CSRF token, so two answers compare equal when nothing else differs) and the seconds each
    POST took (the form's GET is outside the timing)."""
    pages, times = {}, {}
    for identifier in identifiers:
        token = form_token(test_client, "/forgot-password")
        started = time.monotonic()
        response = test_client.post("/forgot-password", data={"identifier": identifier, "csrf_token": token})
        times[identifier] = time.monotonic() - started
        assert response.status_code == 200, response.get_data(as_text=True)
        body = response.get_data(as_text=True).replace(identifier, "")
        pages[identifier] = re.sub(r'<input[^>]*name="[^"]*csrf_token"[^>]*>', "", body)
    return pages, times


class AuthActions:
    """Log in and out through the real pages."""

    def __init__(self, test_client):
        self._client = test_client

    def csrf_token(self, path="/login"):
        return form_token(self._client, path)

    def login(self, username="alice", password=PASSWORD):
        token = self.csrf_token("/login")
        return self._client.post(
            "/login", data={"username": username, "password": password, "csrf_token": token}
        )

    def logout(self):
        token = self.csrf_token("/login")  # any form of the session carries the token
        return self._client.post("/logout", data={"csrf_token": token})


def headers_but_request_id(response) -> dict:
    """A response's headers, but for its X-Request-ID (each answer has its own)."""
    return {name: value for name, value in response.headers.items() if name != "X-Request-ID"}
