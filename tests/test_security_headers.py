"""RFC 9700 §4.16 (clickjacking), §4.2.4 (referrer), RFC 6749 §5.1 (no-store) and a strict CSP."""

import re
from pathlib import Path

import pytest

from support.flows import authorize_url, bearer, get_code, redeem
from support.pages import csrf_token, form_token

TEMPLATES = Path(__file__).resolve().parent.parent / "website" / "templates"


def assert_strict_headers(response):
    headers = response.headers
    csp = headers["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["object-src"] == "'none'"
    assert directives["script-src"] == "'self'"
    assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp
    assert headers["X-Frame-Options"] == "DENY"
    # Never a referrer to another site; pages keep it same-origin for their forms' CSRF check.
    expected = "same-origin" if response.mimetype == "text/html" and response.status_code < 300 else "no-referrer"
    assert headers["Referrer-Policy"] == expected
    assert headers["X-Content-Type-Options"] == "nosniff"


def test_login_page_refuses_framing(test_client):
    response = test_client.get("/login")
    assert response.status_code == 200
    assert_strict_headers(response)


def test_consent_page_refuses_framing_and_caching(test_client, auth, user, make_client):
    client, _ = make_client()
    auth.login()
    response = test_client.get(authorize_url(client, code_challenge="a" * 43, code_challenge_method="S256"))
    assert response.status_code == 200
    assert_strict_headers(response)
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("path", ["/", "/signup", "/no-such-page", "/oauth/authorize?client_id=nope",
                                  "/static/style.css", "/api/me", "/clients/"])
def test_every_response_has_the_security_headers(test_client, path):
    response = test_client.get(path)
    assert_strict_headers(response)
    response.close()


def test_the_code_redirect_carries_no_referrer_policy(test_client, auth, user, make_client):
    client, _ = make_client()
    auth.login()
    url = authorize_url(client, code_challenge="a" * 43, code_challenge_method="S256")
    response = test_client.post(url, data={"csrf_token": form_token(test_client, url), "allow": "Allow"})
    assert response.status_code == 302
    assert "code=" in response.headers["Location"]
    assert response.headers["Referrer-Policy"] == "no-referrer"


def test_templates_have_no_inline_script_or_style_or_handlers():
    """The CSP forbids inline code; a template with any would break silently in browsers.
    Mails (templates/mail/) are no pages: mail programs read only inline styles, never scripts."""
    for template in TEMPLATES.rglob("*.html"):
        html = template.read_text()
        if template.parent.name == "mail":
            assert "<script" not in html and not re.search(r"\son[a-z]+\s*=", html), template
            continue
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), template
        assert not re.search(r"\son[a-z]+\s*=", html), template
        assert not re.search(r"\sstyle\s*=", html), template
        assert "<style" not in html, template
        assert "javascript:" not in html.lower(), template


def test_token_responses_are_not_cached(test_client, auth, user, make_client):
    client, secret = make_client()
    auth.login()
    code, verifier = get_code(test_client, client)
    response = redeem(test_client, client, code, verifier, secret)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Pragma"] == "no-cache"


def test_protocol_answers_never_vary_on_the_signed_in_cookie(test_client, auth, user, make_client):
    # A browser signed in here that calls the API with a bearer token (or fetches the JWKS):
    # the answer depends on the token, never on the cookie, so it neither says Vary: Cookie
    # nor touches the session.
    client, secret = make_client()
    auth.login()
    code, verifier = get_code(test_client, client)
    token = redeem(test_client, client, code, verifier, secret).get_json()["access_token"]
    for response in (test_client.get("/api/me", headers=bearer(token)),
                     test_client.get("/.well-known/jwks.json"),
                     test_client.get("/.well-known/openid-configuration")):
        assert response.status_code == 200
        assert "Cookie" not in response.headers.get("Vary", ""), response.request.path
        assert "Set-Cookie" not in response.headers
    assert test_client.get("/account/").status_code == 200  # still signed in for pages


@pytest.mark.parametrize("data, auth_header", [
    ({"grant_type": "authorization_code", "code": "nope"}, ("unknown", "wrong")),
    ({"grant_type": "nonsense"}, None),
    ({}, None),
])
def test_token_error_responses_are_not_cached(test_client, data, auth_header):
    response = test_client.post("/oauth/token", data=data, auth=auth_header)
    assert 400 <= response.status_code < 500
    assert response.json["error"]
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Pragma"] == "no-cache"


def test_guarded_input_errors_are_not_cached(test_client):
    response = test_client.post("/oauth/token", data=b"grant_type=client_credentials", content_type="text/plain")
    assert response.status_code == 400
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Pragma"] == "no-cache"


def test_session_cookie_is_httponly_and_samesite_lax_over_http(test_client, auth, user):
    response = auth.login()
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    # Served over plain http (a developer on 127.0.0.1): a Secure cookie would never come back.
    assert "Secure" not in cookie


def test_session_cookie_is_secure_over_https(test_client, user):
    html = test_client.get("/login", base_url="https://idp.example.com").get_data(as_text=True)
    token = csrf_token(html)
    # Over https Flask-WTF also wants a same-origin Referer, which Referrer-Policy lets browsers send.
    response = test_client.post("/login", base_url="https://idp.example.com", data={
        "username": "alice", "password": "correct horse battery", "csrf_token": token},
        headers={"Referer": "https://idp.example.com/login"})
    assert response.status_code == 302
    cookie = response.headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")
