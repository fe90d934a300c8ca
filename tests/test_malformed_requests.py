"""RFC 6749 §3.1/§3.2, §5.2: malformed input gets a spec-shaped 4xx, never a 500."""

import base64

import pytest

from support.flows import authorize_url


@pytest.fixture
def cc_client(make_client):
    return make_client(grant_types=["client_credentials"], redirect_uris=[])


def assert_oauth_error(response, status=400, error="invalid_request"):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    assert response.json["error"] == error
    assert response.json.get("error_description")
    assert "Traceback" not in response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("path", ["/oauth/token", "/oauth/revoke"])
def test_repeated_parameters_are_refused(test_client, cc_client, path):
    client, secret = cc_client
    body = "grant_type=client_credentials&grant_type=client_credentials&token=a&token=b"
    response = test_client.post(path, data=body, auth=(client.client_id, secret),
                                content_type="application/x-www-form-urlencoded")
    assert_oauth_error(response)
    assert "more than once" in response.json["error_description"]


def test_a_parameter_in_both_query_and_body_is_refused(test_client, cc_client):
    client, secret = cc_client
    response = test_client.post("/oauth/token?grant_type=client_credentials",
                                data={"grant_type": "client_credentials"}, auth=(client.client_id, secret))
    assert_oauth_error(response)


@pytest.mark.parametrize("param", ["client_id", "redirect_uri", "response_type", "scope", "state",
                                   "code_challenge", "nonce"])
def test_repeated_authorize_parameters_render_an_error_page(test_client, auth, user, make_client, param):
    client, _ = make_client()
    auth.login()
    url = authorize_url(client, code_challenge="a" * 43, code_challenge_method="S256", nonce="n")
    response = test_client.get(f"{url}&{param}=other")
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert "more than once" in response.get_data(as_text=True) or "Multiple" in response.get_data(as_text=True)


def test_oversized_parameter_is_refused(test_client, cc_client):
    client, secret = cc_client
    response = test_client.post("/oauth/token", data={"grant_type": "client_credentials", "scope": "x" * 9000},
                                auth=(client.client_id, secret))
    assert_oauth_error(response)
    assert "too long" in response.json["error_description"]


def test_oversized_authorize_parameter_renders_a_page(test_client, make_client):
    client, _ = make_client()
    response = test_client.get(authorize_url(client, state="s" * 9000))
    assert response.status_code == 400
    assert "Location" not in response.headers


def test_oversized_body_is_refused(test_client, cc_client):
    client, secret = cc_client
    response = test_client.post("/oauth/token", data={"grant_type": "client_credentials",
                                                      "padding": "x" * (70 * 1024)},
                                auth=(client.client_id, secret))
    assert_oauth_error(response)
    assert "too large" in response.json["error_description"]


@pytest.mark.parametrize("body", [
    b"grant_type=client_credentials&scope=%ff%fe",
    b"grant_type=client_credentials&scope=\xff\xfe",
    b"grant_type=client_credentials&%c3%28=x",
])
def test_invalid_utf8_in_the_body_is_refused(test_client, cc_client, body):
    client, secret = cc_client
    response = test_client.post("/oauth/token", data=body, auth=(client.client_id, secret),
                                content_type="application/x-www-form-urlencoded")
    assert_oauth_error(response)
    assert "UTF-8" in response.json["error_description"]


def test_invalid_utf8_in_the_authorize_query_renders_a_page(test_client, make_client):
    client, _ = make_client()
    response = test_client.get(authorize_url(client) + "&state=%ff")
    assert response.status_code == 400
    assert "UTF-8" in response.get_data(as_text=True)
    assert "Location" not in response.headers


NOT_FORM = [
    ("application/json", b'{"grant_type": "client_credentials"}'),
    ("text/plain", b"grant_type=client_credentials"),
    ("multipart/form-data; boundary=x", b"--x\r\nContent-Disposition: form-data; name=\"grant_type\"\r\n\r\n"
                                        b"client_credentials\r\n--x--\r\n"),
    ("application/xml", b"<grant_type/>"),
]


@pytest.mark.parametrize("path, content_type, body", [
    *(("/oauth/revoke", c, b) for c, b in NOT_FORM),
    *(("/oauth/introspect", c, b) for c, b in NOT_FORM),
    # The token endpoint also takes JSON (Auth0's SDKs send it), nothing else.
    *(("/oauth/token", c, b) for c, b in NOT_FORM if c != "application/json"),
])
def test_wrong_content_types_are_refused(test_client, cc_client, content_type, body, path):
    client, secret = cc_client
    response = test_client.post(path, data=body, content_type=content_type, auth=(client.client_id, secret))
    assert_oauth_error(response)
    assert "application/x-www-form-urlencoded" in response.json["error_description"]


@pytest.mark.parametrize("body", [b'{"grant_type": ', b"[1, 2]", b'"text"', b"null", b"\xff\xfe"])
def test_malformed_json_is_refused(test_client, cc_client, body):
    client, secret = cc_client
    response = test_client.post("/oauth/token", data=body, content_type="application/json",
                                auth=(client.client_id, secret))
    assert_oauth_error(response)
    registration = test_client.post("/oauth/register", data=body, content_type="application/json")
    assert 400 <= registration.status_code < 500
    assert registration.json["error"]


def basic(raw: bytes) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


@pytest.mark.parametrize("headers", [
    {"Authorization": "Basic !!!not-base64!!!"},
    {"Authorization": "Basic " + "a" * 5},
    {"Authorization": "Basic"},
    {"Authorization": "Basic "},
    basic(b"no-colon-here"),
    basic(b"\xff\xfe:\xff"),
    basic(b"client:\xc3\x28"),
])
@pytest.mark.parametrize("path", ["/oauth/token", "/oauth/revoke"])
def test_malformed_basic_auth_is_invalid_client(test_client, cc_client, headers, path):
    response = test_client.post(path, data={"grant_type": "client_credentials", "token": "x"}, headers=headers)
    assert_oauth_error(response, status=401, error="invalid_client")
    assert response.headers["WWW-Authenticate"].startswith("Basic")


def test_wrong_basic_secret_is_invalid_client(test_client, cc_client):
    client, _ = cc_client
    response = test_client.post("/oauth/token", data={"grant_type": "client_credentials"},
                                auth=(client.client_id, "wrong"))
    assert_oauth_error(response, status=401, error="invalid_client")


def test_get_on_the_token_endpoint_is_a_json_405(test_client):
    response = test_client.get("/oauth/token")
    assert response.status_code == 405
    assert response.json["error"] == "invalid_request"
    assert response.headers["Cache-Control"] == "no-store"


def test_unknown_page_is_still_a_page(test_client):
    response = test_client.get("/no/such/page")
    assert response.status_code == 404
    assert response.mimetype == "text/html"


def test_unexpected_exception_on_a_protocol_endpoint_is_a_json_500_without_traceback(app, monkeypatch, cc_client):
    from website.models import OAuth2Client
    from website.models.clients import ClientSnapshot

    app.config["PROPAGATE_EXCEPTIONS"] = False  # behave as in production

    def broken(self, secret):
        raise RuntimeError("secret internal detail")

    # The token endpoint checks the secret on the cached copy of the client (store/cache.py).
    for model in (OAuth2Client, ClientSnapshot):
        monkeypatch.setattr(model, "check_client_secret", broken)
    client, secret = cc_client
    response = app.test_client().post("/oauth/token", data={"grant_type": "client_credentials"},
                                      auth=(client.client_id, secret))
    assert response.status_code == 500
    assert response.json["error"] == "server_error"
    text = response.get_data(as_text=True)
    assert "secret internal detail" not in text and "Traceback" not in text
    assert response.headers["Cache-Control"] == "no-store"


def test_unexpected_exception_on_a_page_is_an_error_page(app, monkeypatch):
    from website.views import auth as auth_module

    app.config["PROPAGATE_EXCEPTIONS"] = False
    monkeypatch.setattr(auth_module, "render_template", lambda *a, **k: 1 / 0)
    response = app.test_client().get("/")
    assert response.status_code == 500
    assert response.mimetype == "text/html"
    assert "ZeroDivisionError" not in response.get_data(as_text=True)


@pytest.mark.parametrize("header", ["Bearer", "Bearer ", "Bearer a b", "Basic abc", "bearer \xff",
                                    "Bearer " + "x" * 5000, "Token abc", ""])
def test_malformed_bearer_headers_get_401_with_www_authenticate(test_client, header):
    response = test_client.get("/api/me", headers={"Authorization": header} if header else {})
    assert response.status_code in (400, 401, 403)
    assert response.json["error"]
    if response.status_code == 401:
        assert "WWW-Authenticate" in response.headers
