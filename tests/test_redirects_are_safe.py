"""RFC 9700 §2.1 and §4.1, §4.11: exact redirect URI matching (any port only for loopback IP
redirect URIs of native apps, RFC 8252 §7.3) and no open redirect anywhere."""

import html
import re

import pytest

from support.flows import authorize_url
from support.pages import form_token
from website.oauth2.client_metadata import ClientMetadataError, validate_client_metadata
from website.models.redirect_uris import redirect_uri_matches

REGISTERED = "https://app.example.com/callback"


@pytest.mark.parametrize("requested", [
    "https://app.example.com/callback/",
    "https://app.example.com/callbac",
    "https://app.example.com/callback?x=1",
    "https://app.example.com/callback#frag",
    "https://APP.example.com/callback",
    "https://app.example.com:443/callback",
    "https://app.example.com:8443/callback",
    "http://app.example.com/callback",
    "https://app.example.com.evil.com/callback",
    "https://evil.com/callback",
    "https://app.example.com@evil.com/callback",
    "https://app.example.com/callback/../evil",
    "https://app.example.com/Callback",
])
def test_redirect_uri_must_match_exactly(requested):
    assert redirect_uri_matches(REGISTERED, REGISTERED)
    assert not redirect_uri_matches(REGISTERED, requested)


@pytest.mark.parametrize("registered, requested, matches", [
    ("http://127.0.0.1/cb", "http://127.0.0.1:51234/cb", True),
    ("http://127.0.0.1:8080/cb", "http://127.0.0.1:9999/cb", True),
    ("http://[::1]/cb", "http://[::1]:40000/cb", True),
    ("http://127.0.0.1/cb", "http://127.0.0.1:51234/other", False),
    ("http://127.0.0.1/cb", "http://127.0.0.2:51234/cb", False),
    ("http://127.0.0.1/cb", "http://127.0.0.1:51234/cb?extra=1", False),
    ("http://127.0.0.1/cb", "http://user@127.0.0.1:51234/cb", False),
    ("http://127.0.0.1/cb", "https://127.0.0.1:51234/cb", False),
    ("http://127.0.0.1/cb", "http://127.0.0.1:notaport/cb", False),
    # "localhost" is a name that can be re-pointed: no port freedom for it (RFC 8252 §8.3).
    ("http://localhost/cb", "http://localhost:51234/cb", False),
    ("https://app.example.com/cb", "https://app.example.com:51234/cb", False),
])
def test_loopback_ip_redirect_uris_allow_any_port(registered, requested, matches):
    assert redirect_uri_matches(registered, requested) is matches


def test_unregistered_redirect_uri_renders_a_page_not_a_redirect(test_client, auth, user, make_client):
    client, _ = make_client()
    auth.login()
    response = test_client.get(authorize_url(client, redirect_uri="https://evil.example/cb"))
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert "evil.example" not in response.headers.get("Location", "")
    assert "This sign-in request cannot continue" in response.get_data(as_text=True)


@pytest.mark.parametrize("client_id", ["unknown-client", "", "x" * 100])
def test_unknown_client_renders_a_page_not_a_redirect(test_client, client_id):
    url = "/oauth/authorize?response_type=code&redirect_uri=https%3A%2F%2Fevil.example%2F&client_id=" + client_id
    response = test_client.get(url)
    assert response.status_code in (400, 401)
    assert "Location" not in response.headers
    assert "This sign-in request cannot continue" in response.get_data(as_text=True)


#: Authorization requests of a registered client (any visitor can register one) that fail
#: with an error the client's redirect URI would receive.
FAILING_REQUESTS = {
    "invalid_scope": {"scope": "profile admin"},
    "unsupported_response_type": {"response_type": "magic"},
    "invalid_request": {"code_challenge": "a" * 43, "code_challenge_method": "plain"},
    "login_required": {"prompt": "none"},
}


@pytest.mark.parametrize("error", FAILING_REQUESTS)
def test_authorization_error_for_a_visitor_not_signed_in_is_a_page_naming_the_host(test_client, make_client,
                                                                                   error):
    # RFC 9700 §4.11.2: the person is authenticated before the server redirects to a client.
    client, _ = make_client(redirect_uris=["https://evil.example/cb"])
    response = test_client.get(authorize_url(client, **FAILING_REQUESTS[error]))
    assert response.status_code == 400
    assert "Location" not in response.headers
    page = response.get_data(as_text=True)
    assert "This sign-in request cannot continue" in page
    link = re.search(r'<a[^>]*href="([^"]+)"[^>]*>Continue to evil.example</a>', page)
    assert link and html.unescape(link.group(1)).startswith("https://evil.example/cb?error=" + error)


@pytest.mark.parametrize("error", ["invalid_scope", "unsupported_response_type", "invalid_request"])
def test_authorization_error_for_a_signed_in_person_goes_back_to_the_client(test_client, auth, user,
                                                                            make_client, error):
    client, _ = make_client()
    auth.login()
    response = test_client.get(authorize_url(client, **FAILING_REQUESTS[error]))
    assert response.status_code == 302
    assert response.headers["Location"].startswith(f"https://app.example.com/callback?error={error}")


TRICKY_NEXT = [
    "//evil.com",
    "//evil.com/path",
    "/\\evil.com",
    "\\\\evil.com",
    "/\\/evil.com",
    "https:evil.com",
    "https://evil.com",
    "http:/evil.com",
    "%2F%2Fevil.com",
    "/%2F%2Fevil.com",
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    " //evil.com",
    "/\t/evil.com",
    "/\n/evil.com",
    "///evil.com",
    "evil.com",
]


@pytest.mark.parametrize("target", TRICKY_NEXT)
def test_next_after_login_accepts_only_local_paths(test_client, user, target):
    login_url = "/login?" + __import__("urllib.parse").parse.urlencode({"next": target})
    token = form_token(test_client, login_url)
    response = test_client.post(login_url, data={"username": "alice", "password": "correct horse battery",
                                                 "csrf_token": token})
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location == "/", f"{target!r} led to {location!r}"


@pytest.mark.parametrize("target", TRICKY_NEXT[:6])
def test_next_after_signup_accepts_only_local_paths(test_client, target):
    url = "/signup?" + __import__("urllib.parse").parse.urlencode({"next": target})
    token = form_token(test_client, url)
    response = test_client.post(url, data={"username": "bob", "email": "bob@example.com",
                                           "password": "a long password", "confirm": "a long password",
                                           "csrf_token": token})
    assert response.status_code == 302
    assert response.headers["Location"] == "/"


def test_next_keeps_a_local_path_with_its_query(test_client, user):
    target = "/oauth/authorize?client_id=abc&state=x%2Fy"
    url = "/login?" + __import__("urllib.parse").parse.urlencode({"next": target})
    token = form_token(test_client, url)
    response = test_client.post(url, data={"username": "alice", "password": "correct horse battery",
                                           "csrf_token": token})
    assert response.headers["Location"] == target


@pytest.mark.parametrize("field, value", [
    ("redirect_uris", ["javascript:alert(1)//"]),
    ("redirect_uris", ["JAVASCRIPT:alert(1)"]),
    ("redirect_uris", ["data:text/html,hi"]),
    ("redirect_uris", ["vbscript:msgbox"]),
    ("client_uri", "javascript:alert(1)"),
    ("client_uri", "data:text/html;base64,PHNjcmlwdD4="),
    ("logo_uri", "javascript:alert(1)"),
    ("logo_uri", "data:image/svg+xml,<svg onload=alert(1)>"),
])
def test_dangerous_uri_schemes_are_refused(app, field, value):
    data = {"client_name": "x", "redirect_uris": ["https://app.example.com/cb"], field: value}
    with app.app_context(), pytest.raises(ClientMetadataError) as raised:
        validate_client_metadata(data)
    assert raised.value.field == field
