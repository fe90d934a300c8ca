"""Property-based fuzzing: random and malformed requests to every protocol endpoint and form
never produce a 5xx, and always get the error shape the spec gives.

To fuzz a new endpoint, add one line to PROTOCOL_TARGETS (or FORM_TARGETS) naming its path,
method and the check its responses must pass.
"""

import re
from dataclasses import dataclass
from typing import Callable
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.pages import form_token
from werkzeug.routing import IntegerConverter

from website.http.endpoints import is_json_endpoint

FUZZ = settings(max_examples=50, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

#: Names the endpoints read, so random requests reach past the first check.
KNOWN_NAMES = ["id_token_hint", "post_logout_redirect_uri", "returnTo", "audience", "resource", "grant_type", "code", "redirect_uri", "client_id", "client_secret", "code_verifier",
               "refresh_token", "scope", "username", "password", "token", "token_type_hint",
               "response_type", "state", "code_challenge", "code_challenge_method", "nonce", "prompt",
               "device_code", "request_uri", "request"]
KNOWN_VALUES = ["authorization_code", "refresh_token", "client_credentials", "password", "implicit",
                "code", "token", "S256", "plain", "openid profile", "profile", "access_token", "",
                "https://app.example.com/callback", "javascript:alert(1)", "//evil.com", "%00", "\x00",
                "é", "\ud7ff", "a" * 5000, "urn:ietf:params:oauth:grant-type:device_code",
                "urn:ietf:params:oauth:request_uri:x", "eyJhbGciOiJub25lIn0.eyJzY29wZSI6Im9wZW5pZCJ9."]


def form_pairs(data, client_id: str, secret: str):
    names = st.sampled_from(KNOWN_NAMES) | st.text(max_size=12)
    values = st.sampled_from(KNOWN_VALUES + [client_id, secret]) | st.text(max_size=80)
    return data.draw(st.lists(st.tuples(names, values), max_size=8), label="params")


def authorization_header(data, client_id: str, secret: str):
    return data.draw(st.sampled_from([
        None,
        ("basic", client_id, secret),
        ("basic", client_id, "wrong"),
        ("raw", "Basic !!!"),
        ("raw", "Basic " + "Zm9v"),
        ("raw", "Bearer"),
        ("raw", "Bearer abc"),
        ("raw", "Digest x"),
    ]) | st.tuples(st.just("raw"), st.text(max_size=60)), label="authorization")


def headers_for(authorization) -> dict:
    if authorization is None:
        return {}
    if authorization[0] == "basic":
        import base64
        raw = f"{authorization[1]}:{authorization[2]}".encode()
        return {"Authorization": "Basic " + base64.b64encode(raw).decode()}
    value = authorization[1]
    if any(ord(c) > 255 or c in "\r\n\x00" for c in value):
        return {}  # not representable in an HTTP header
    return {"Authorization": value}


def body_for(data, pairs):
    """A body: mostly a proper form, sometimes raw bytes or another content type."""
    kind = data.draw(st.sampled_from(["form", "form", "form", "raw", "json", "none"]), label="body")
    if kind == "form":
        return urlencode(pairs).encode(), "application/x-www-form-urlencoded"
    if kind == "raw":
        return data.draw(st.binary(max_size=200), label="raw"), data.draw(st.sampled_from(
            ["application/x-www-form-urlencoded", "text/plain", "multipart/form-data; boundary=x",
             "application/json", ""]), label="content_type")
    if kind == "json":
        return data.draw(st.sampled_from([b"{", b"[]", b'{"grant_type": 1}', b"null"]), label="json"), \
            "application/json"
    return b"", None


def check_json_error(response, ctx) -> None:
    """RFC 6749 §5.2: a JSON object with an ``error`` string, never cached."""
    if response.status_code in (200, 201):  # 201: a pushed authorization request
        return
    assert 400 <= response.status_code < 500, response.get_data(as_text=True)[:300]
    assert response.mimetype == "application/json"
    assert isinstance(response.json["error"], str) and response.json["error"]
    assert response.headers["Cache-Control"] == "no-store"
    if response.status_code == 401:
        assert "WWW-Authenticate" in response.headers


def check_bearer_error(response, ctx) -> None:
    """RFC 6750 §3: 401 with WWW-Authenticate (or 400/403) and a JSON error."""
    assert response.status_code in (200, 400, 401, 403, 405), response.status_code
    if response.status_code == 401:
        assert response.headers["WWW-Authenticate"].lower().startswith("bearer")  # schemes are case-insensitive
    if response.status_code != 200:
        assert response.json["error"]


def check_authorize(response, ctx) -> None:
    """RFC 6749 §4.1.2.1: a page, or a redirect to a registered URI (or to log in, locally)."""
    assert response.status_code < 500, response.get_data(as_text=True)[:300]
    if response.status_code in (301, 302, 303):
        location = response.headers["Location"]
        assert location.startswith("/login?") or any(
            location.split("?")[0].split("#")[0] == uri for uri in ctx["redirect_uris"]), location
    else:
        assert response.status_code in (200, 400, 401, 403, 405)
        assert response.mimetype == "text/html"


def check_page_or_local_redirect(response, ctx) -> None:
    """Logout: a page, or a redirect that stays on this site (nothing is registered to return to)."""
    assert response.status_code < 500, response.get_data(as_text=True)[:300]
    if response.status_code in (301, 302, 303):
        location = response.headers["Location"]
        assert location.startswith("/") and not location.startswith("//"), location
    else:
        assert response.mimetype == "text/html"


@dataclass(frozen=True)
class Target:
    method: str
    path: str
    check: Callable
    query: bool = False  # parameters go in the query string (GET) rather than the body


#: One line per protocol endpoint.
PROTOCOL_TARGETS = {
    "token": Target("POST", "/oauth/token", check_json_error),
    "revoke": Target("POST", "/oauth/revoke", check_json_error),
    "authorize": Target("GET", "/oauth/authorize", check_authorize, query=True),
    "authorize_post": Target("POST", "/oauth/authorize", check_authorize),
    "me": Target("GET", "/api/me", check_bearer_error, query=True),
    "introspect": Target("POST", "/oauth/introspect", check_json_error),
    "userinfo": Target("GET", "/oauth/userinfo", check_bearer_error, query=True),
    "userinfo_post": Target("POST", "/oauth/userinfo", check_bearer_error),
    "register": Target("POST", "/oauth/register", check_json_error),
    "device_authorization": Target("POST", "/oauth/device/code", check_json_error),
    "par": Target("POST", "/oauth/par", check_json_error),
    "logout": Target("GET", "/oauth/logout", check_page_or_local_redirect, query=True),
    "auth0_logout": Target("GET", "/v2/logout", check_page_or_local_redirect, query=True),
}


@pytest.fixture
def fuzz_context(make_client, make_user):
    make_user()
    client, secret = make_client(grant_types=["authorization_code", "refresh_token", "client_credentials",
                                              "password", "urn:ietf:params:oauth:grant-type:device_code"])
    return {"client_id": client.client_id, "secret": secret, "redirect_uris": client.redirect_uris}


@pytest.mark.parametrize("signed_in", [False, True])
@pytest.mark.parametrize("name", sorted(PROTOCOL_TARGETS))
@FUZZ
@given(data=st.data())
def test_protocol_endpoints_never_fail_with_5xx(app, test_client, auth, fuzz_context, name, signed_in, data):
    if signed_in and not test_client.get_cookie("idp_session"):
        auth.login()
    target = PROTOCOL_TARGETS[name]
    pairs = form_pairs(data, fuzz_context["client_id"], fuzz_context["secret"])
    headers = headers_for(authorization_header(data, fuzz_context["client_id"], fuzz_context["secret"]))
    if target.query:
        response = test_client.open(target.path + "?" + urlencode(pairs), method=target.method, headers=headers)
    else:
        body, content_type = body_for(data, pairs)
        if content_type:
            headers["Content-Type"] = content_type
        response = test_client.open(target.path, method=target.method, data=body, headers=headers)
    target.check(response, fuzz_context)


def check_form(response, ctx) -> None:
    """A form answers with itself (200, 400 with messages, 429 when throttled) or a local redirect
    (302, or 303 after a POST that made something, as a created client does)."""
    assert response.status_code in (200, 201, 302, 303, 400, 429), response.status_code
    if response.status_code in (302, 303):
        location = response.headers["Location"]
        assert location.startswith("/") and not location.startswith("//"), location


#: One line per form: its path, its fields and whether it needs a signed-in user.
FORM_TARGETS = {
    "login": ("/login", ["username", "password"], False),
    "signup": ("/signup", ["username", "email", "password", "confirm"], False),
    "client_create": ("/clients/new", ["client_name", "client_uri", "logo_uri", "redirect_uris", "grant_types",
                                       "scope", "token_endpoint_auth_method", "contacts"], True),
    "device": ("/device", ["user_code", "allow", "deny"], True),
}

FORM_VALUES = st.sampled_from(["", "alice", "correct horse battery", "a@b.co", "https://a.example/cb",
                               "javascript:alert(1)", "data:text/html,x", "none", "client_secret_basic",
                               "authorization_code", "implicit", "password", "openid", "x" * 3000,
                               "<script>alert(1)</script>", "http://127.0.0.1:0/cb"]) | st.text(max_size=60)


@pytest.mark.parametrize("name", sorted(FORM_TARGETS))
@FUZZ
@given(data=st.data())
def test_forms_never_fail_with_5xx(app, test_client, auth, fuzz_context, name, data):
    path, fields, needs_login = FORM_TARGETS[name]
    if needs_login and not test_client.get_cookie("idp_session"):
        auth.login()
    form = {"csrf_token": form_token(test_client, path)}
    for field in data.draw(st.lists(st.sampled_from(fields), unique=True), label="fields"):
        form[field] = data.draw(FORM_VALUES | st.lists(FORM_VALUES, max_size=3), label=field)
    next_value = data.draw(st.sampled_from(["", "/clients/", "//evil.com", "https://evil.com", "/\\evil.com"])
                           | st.text(max_size=20), label="next")
    response = test_client.post(path + "?" + urlencode({"next": next_value}), data=form)
    check_form(response, fuzz_context)
    if response.status_code == 302 and name != "client_create":
        test_client.delete_cookie("idp_session")  # signed in by the form: start over signed out
    assert not re.search(r"<script>alert\(1\)</script>", response.get_data(as_text=True))


def test_a_form_that_creates_a_client_passes_the_form_check(test_client, auth, fuzz_context):
    """The fuzzer draws a valid client form only now and then (CI once found it): the check it
    runs must accept the 303 to the new client's page, here on every run."""
    auth.login()
    form = {"csrf_token": form_token(test_client, "/clients/new"), "client_name": "alice",
            "grant_types": "password"}
    response = test_client.post("/clients/new?next=", data=form)
    assert response.status_code == 303
    check_form(response, fuzz_context)


# Every route of the app, found in its URL map, so a new route is fuzzed without a line here.
# The URL map needs no database: an app made here only to read it.
def _routes() -> list[tuple[str, str, str]]:
    from website import create_app

    app = create_app({"TESTING": True, "SECRET_KEY": "routes", "DATABASE_URL": "sqlite://",
                      "OAUTH2_ISSUER": "http://127.0.0.1"})
    return sorted({(rule.endpoint, rule.rule, method) for rule in app.url_map.iter_rules()
                   for method in rule.methods - {"HEAD", "OPTIONS"}})


ROUTES = _routes()
ROUTE_FUZZ = settings(FUZZ, max_examples=6)

#: Names the pages and endpoints read (KNOWN_NAMES above has the protocol ones).
PAGE_NAMES = ["q", "page", "next", "login_hint", "make_admin", "back", "confirm", "email", "client_name",
              "redirect_uris", "new_password", "current_password", "allow", "deny", "csrf_token"]
#: No real password among them: a fuzzed password change would lock the fuzzer out.
ROUTE_VALUES = (st.sampled_from(["", "1", "0", "-1", "99999999999999999999", "alice", "root", "\x00", "a\x00b",
                                 "%00", "/admin/users", "//evil.com", "é", "\ud7ff", "<script>", "x" * 3000,
                                 "https://app.example.com/callback", "openid profile"])
                | st.text(max_size=40))


def _path_value(data, converter, ctx):
    name = type(converter).__name__
    if isinstance(converter, IntegerConverter):
        return str(data.draw(st.sampled_from(ctx["user_ids"]) | st.integers(min_value=0, max_value=2**70)))
    value = data.draw(st.sampled_from([ctx["client_id"], "\x00", "a\x00b", "x" * 3000, "..", "é"])
                      | st.text(min_size=1, max_size=30), label="path value")
    return quote(value, safe="/" if name == "PathConverter" else "")


def _url(rule: str, values: dict) -> str:
    for name, value in values.items():
        rule = re.sub(r"<(?:[^:<>]+:)?" + re.escape(name) + ">", value, rule)
    return rule


@pytest.fixture
def route_context(app, make_user, make_client):
    alice = make_user()
    root = make_user("root", is_admin=True)
    client, _ = make_client(owner=alice)
    return {"client_id": client.client_id, "user_ids": [alice.id, root.id]}


@pytest.mark.parametrize("who", ["anonymous", "admin"])
@pytest.mark.parametrize("endpoint, rule, method", ROUTES, ids=[f"{m} {r}" for _, r, m in ROUTES])
@ROUTE_FUZZ
@given(data=st.data())
def test_every_route_never_fails_with_5xx(app, test_client, auth, route_context, endpoint, rule, method, who,
                                          data):
    """Every route and method, anonymous and as an administrator: fuzzed path variables, query
    and form (on PostgreSQL too with TEST_DATABASE_URL, which refuses NUL even in comparisons)."""
    if who == "admin" and not test_client.get_cookie("idp_session"):
        auth.login("root")
    converters = next(r._converters for r in app.url_map.iter_rules(endpoint) if r.rule == rule)
    path = _url(rule, {name: _path_value(data, converter, route_context) for name, converter in converters.items()})
    names = st.sampled_from(PAGE_NAMES + KNOWN_NAMES) | st.text(max_size=12)
    query = data.draw(st.lists(st.tuples(names, ROUTE_VALUES), max_size=4), label="query")
    url = path + ("?" + urlencode(query) if query else "")
    kwargs = {}
    if method in ("POST", "PUT", "DELETE"):
        form = data.draw(st.lists(st.tuples(names, ROUTE_VALUES), max_size=6), label="form")
        if who == "admin" and data.draw(st.booleans(), label="with csrf"):
            form.append(("csrf_token", form_token(test_client, "/login")))
        kwargs = {"data": urlencode(form), "content_type": "application/x-www-form-urlencoded"}
    response = test_client.open(url, method=method, **kwargs)
    assert response.status_code < 500, (method, url, response.get_data(as_text=True)[:300])
    if response.status_code in (301, 302, 303):
        location = response.headers["Location"]
        assert not location.startswith("//"), location
        if endpoint in ("auth.logout", "auth.login", "auth.signup"):
            test_client.delete_cookie("idp_session")  # signed out, or in as someone else: start over


@pytest.mark.parametrize("endpoint, rule, method", ROUTES, ids=[f"{m} {r}" for _, r, m in ROUTES])
def test_a_nul_anywhere_is_a_400_on_every_route(app, test_client, auth, route_context, endpoint, rule, method):
    """The input guard answers a NUL in a path variable, a query value or a form value with 400
    before the view runs, on every route: JSON invalid_request on protocol endpoints."""
    auth.login("root")
    with app.app_context():
        answers_json = is_json_endpoint(endpoint)
    converters = next(r._converters for r in app.url_map.iter_rules(endpoint) if r.rule == rule)
    plain = {name: "1" if isinstance(c, IntegerConverter) else "x" for name, c in converters.items()}
    cases = [_url(rule, plain) + "?q=a%00b", _url(rule, plain) + "?a%00=b"]
    cases += [_url(rule, {**plain, name: "a%00b"}) for name, c in converters.items()
              if not isinstance(c, IntegerConverter)]
    bodies = [None] if method == "GET" else [None, "q=a%00b", "a%00=b"]
    for url in cases:
        for body in bodies:
            kwargs = {"data": body, "content_type": "application/x-www-form-urlencoded"} if body else {}
            response = test_client.open(url, method=method, **kwargs)
            assert response.status_code == 400, (method, url, body, response.status_code)
            if answers_json:
                assert response.json["error"] == "invalid_request"
    if method != "GET":
        response = test_client.open(_url(rule, plain), method=method, data="q=a%00b",
                                    content_type="application/x-www-form-urlencoded")
        assert response.status_code == 400
