"""Introspection's usual answer from the front (website/http/front.py), below Flask: once Flask
has answered one plain request (HTTP Basic, a form of token and token_type_hint), the next ones
get its headers and a body built from their own token by the endpoint's own code, with the
client, its secret, its lockout and the token checked on every request. Every other request,
and every one the endpoint would not answer 200, is Flask's, which answers (and counts a
failed authentication) exactly as before."""

import base64
import logging

import pytest
from sqlalchemy.exc import OperationalError
from support.factories import OnRedis, update_rows
from support.flows import get_user_token
from support.pages import headers_but_request_id
from test_operations import scrape

from website.models import Token

INTROSPECT = "/oauth/introspect"


@pytest.fixture
def service(make_client):
    return make_client(client_name="Service", grant_types=["client_credentials"], scope="profile")


def cc_token(test_client, client, secret) -> str:
    response = test_client.post("/oauth/token", data={"grant_type": "client_credentials", "scope": "profile"},
                                auth=(client.client_id, secret))
    assert response.status_code == 200, response.json
    return response.json["access_token"]


def introspect(test_client, client, secret, token, **kwargs):
    data = kwargs.pop("data", {"token": token})
    return test_client.post(INTROSPECT, data=data, auth=(client.client_id, secret), **kwargs)


@pytest.fixture
def warm(test_client, service, flask_requests):
    """One introspection answered by Flask (the front keeps its headers); returns the token."""
    client, secret = service
    token = cc_token(test_client, client, secret)
    assert introspect(test_client, client, secret, token).json["active"] is True
    flask_requests.clear()
    return token


def test_answers_after_the_first_come_from_the_front_and_equal_flasks(app, test_client, service, flask_requests):
    client, secret = service
    token = cc_token(test_client, client, secret)
    first = introspect(test_client, client, secret, token)
    inactive_first = introspect(test_client, client, secret, "no-such-token")
    assert flask_requests == ["/oauth/token", INTROSPECT]  # the second came from the front
    # Flask's own answers, to compare with: the front does not take a charset parameter.
    flask = introspect(test_client, client, secret, token, content_type="application/x-www-form-urlencoded; charset=utf-8")
    flask_inactive = introspect(test_client, client, secret, "no-such-token",
                                content_type="application/x-www-form-urlencoded; charset=utf-8")
    flask_requests.clear()
    fronts = [introspect(test_client, client, secret, token) for _ in range(2)]
    hinted = introspect(test_client, client, secret, token,
                        data={"token": token, "token_type_hint": "refresh_token"})
    assert flask_requests == []
    assert first.json["active"] is True and first.json["client_id"] == client.client_id
    assert first.json["iss"] == "http://127.0.0.1"
    for response in (*fronts, hinted):
        assert (response.status_code, response.data) == (200, flask.data)
        assert headers_but_request_id(response) == headers_but_request_id(flask)
    assert inactive_first.json == flask_inactive.json == {"active": False}
    assert headers_but_request_id(inactive_first) == headers_but_request_id(flask_inactive)
    assert first.headers["Cache-Control"] == "no-store"


def test_a_revoked_or_expired_token_is_inactive_at_once(app, test_client, service, warm, flask_requests):
    client, secret = service
    update_rows(app, Token, {"access_token_revoked_at": 1})
    assert introspect(test_client, client, secret, warm).json == {"active": False}
    update_rows(app, Token, {"access_token_revoked_at": 0, "expires_at": 1})
    assert introspect(test_client, client, secret, warm).json == {"active": False}
    assert flask_requests == []


def test_another_clients_token_is_inactive_for_it(test_client, service, make_client, warm, flask_requests):
    other, other_secret = make_client(client_name="Other", grant_types=["client_credentials"], scope="profile")
    for _ in range(2):
        assert introspect(test_client, other, other_secret, warm).json == {"active": False}
    assert flask_requests == []  # the headers are the endpoint's, whichever client asks


def test_a_persons_tokens_refresh_token_included_are_answered_as_flask_answers_them(
        test_client, auth, user, make_client, flask_requests):
    client, secret = make_client()
    auth.login()
    tokens = get_user_token(test_client, client, secret, scope="openid profile")
    auth.logout()
    test_client.delete_cookie("idp_session")
    flask = introspect(test_client, client, secret, tokens["refresh_token"])  # Flask's: the first
    flask_requests.clear()
    asked = [introspect(test_client, client, secret, tokens["refresh_token"]),
             introspect(test_client, client, secret, tokens["refresh_token"],
                        data={"token": tokens["refresh_token"], "token_type_hint": "refresh_token"})]
    access = introspect(test_client, client, secret, tokens["access_token"])
    assert flask_requests == []
    assert flask.json["active"] is True and flask.json["username"] == "alice" and flask.json["sub"] == user.sub
    assert all(response.data == flask.data for response in asked)
    assert access.json["active"] is True and access.json["exp"] < flask.json["exp"]
    assert access.json["amr"] == flask.json["amr"] and access.json["auth_time"] == flask.json["auth_time"]
    revoked = test_client.post("/oauth/revoke", data={"token": tokens["refresh_token"]},
                               auth=(client.client_id, secret))
    assert revoked.status_code == 200
    for token in (tokens["refresh_token"], tokens["access_token"]):
        assert introspect(test_client, client, secret, token).json == {"active": False}
    assert flask_requests == ["/oauth/revoke"]


def test_a_wrong_secret_is_flasks_and_counts_towards_the_lockout(app, test_client, service, warm, flask_requests):
    client, secret = service
    app.config["THROTTLE_CLIENT_LIMIT"] = 2
    for _ in range(2):
        refused = introspect(test_client, client, "wrong-secret", warm)
        assert refused.status_code == 401 and refused.json["error"] == "invalid_client"
    locked = introspect(test_client, client, secret, warm)  # the right secret, but locked out
    assert locked.status_code == 401 and "Retry-After" in locked.headers
    assert flask_requests == [INTROSPECT] * 3


@pytest.mark.parametrize("metadata", [
    {"token_endpoint_auth_method": "none"},  # a public client: introspection needs a secret
    {"token_endpoint_auth_method": "client_secret_post", "strict_auth_method": True},
])
def test_a_client_that_may_not_use_basic_here_is_refused_by_flask(test_client, service, make_client, warm,
                                                                   flask_requests, metadata):
    client, secret = make_client(client_name="Limited", **metadata)
    response = introspect(test_client, client, secret or "anything", warm)
    assert response.status_code in (400, 401) and response.json["error"] == "invalid_client"
    response = introspect(test_client, client, secret or "anything", warm)
    assert response.status_code in (400, 401)
    assert flask_requests == [INTROSPECT, INTROSPECT]


def basic(client, secret) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{client.client_id}:{secret}".encode()).decode()}


@pytest.mark.parametrize("request_kwargs, status", [
    ({"query_string": {"x": "1"}}, 200),
    ({"headers": {"Origin": "https://app.example.com"}}, 200),
    ({"headers": {"DPoP": "not-a-proof"}}, 200),
    ({"data": "token={token}&token=other"}, 400),  # twice
    ({"data": "token={token}&extra=1"}, 200),  # a parameter the endpoint ignores: Flask's
    ({"data": "token={token}&token_type_hint=access%5Ftoken"}, 200),  # an escape
    ({"data": "token_type_hint=access_token"}, 400),  # no token
    ({"data": "token={token}&&"}, 200),
    ({"data": "token={token}&client_id={client_id}"}, 200),
    ({"data": "token={token}&pad=" + "x" * 9000}, 400),  # longer than the front reads
])
def test_anything_but_a_plain_request_goes_to_flask_with_its_body(test_client, service, warm, flask_requests,
                                                                  request_kwargs, status):
    client, secret = service
    kwargs = {"headers": basic(client, secret), "content_type": "application/x-www-form-urlencoded"}
    kwargs["headers"].update(request_kwargs.get("headers", {}))
    body = request_kwargs.get("data", "token={token}").format(token=warm, client_id=client.client_id)
    response = test_client.post(INTROSPECT, data=body, query_string=request_kwargs.get("query_string"), **kwargs)
    assert response.status_code == status, response.json
    if status == 200:
        assert response.json["active"] is True  # Flask read the whole body the front had read
    assert flask_requests == [INTROSPECT]


@pytest.mark.parametrize("authorization", [
    "Basic " + base64.b64encode(b"no-colon").decode(),
    "Basic !!!",
    "Bearer abc",
    "Basic " + base64.b64encode("caf\u00e9:secret".encode()).decode(),
])
def test_malformed_or_other_credentials_are_flasks(test_client, service, warm, flask_requests, authorization):
    response = test_client.post(INTROSPECT, data={"token": warm}, headers={"Authorization": authorization})
    assert response.status_code in (400, 401) and response.json["error"] in ("invalid_client", "invalid_request")
    assert flask_requests == [INTROSPECT]


def test_escaped_basic_credentials_are_flasks_and_still_work(test_client, make_client, flask_requests):
    client, secret = make_client(client_name="Escaped", grant_types=["client_credentials"], scope="profile")
    token = cc_token(test_client, client, secret)
    escaped = "".join(f"%{ord(c):02X}" for c in client.client_id[:2]) + client.client_id[2:]
    headers = {"Authorization": "Basic " + base64.b64encode(f"{escaped}:{secret}".encode()).decode()}
    for _ in range(2):
        response = test_client.post(INTROSPECT, data={"token": token}, headers=headers)
        assert response.json["active"] is True
    assert flask_requests == ["/oauth/token", INTROSPECT, INTROSPECT]


def test_without_a_configured_issuer_the_issuer_is_the_requests_url(app, test_client, service, warm,
                                                                  flask_requests):
    client, secret = service
    app.config["OAUTH2_ISSUER"] = None
    for base_url in ("http://localhost:8080", "https://login.example.org:8443"):
        answers = [introspect(test_client, client, secret, warm, base_url=base_url) for _ in range(2)]
        assert [a.json["iss"] for a in answers] == [base_url + "/"] * 2
    assert flask_requests == [INTROSPECT] * 2  # the first for each host


def test_a_lost_database_is_flasks_503(test_client, service, warm, flask_requests, monkeypatch):
    client, secret = service
    calls = []

    def lost(value):
        calls.append(value)
        raise OperationalError("SELECT", {}, Exception("server closed the connection unexpectedly"))

    def lost_with_lock(value, subjects):
        lost(value)

    monkeypatch.setattr("website.oauth2.endpoints.read_token_and_lock", lost_with_lock)  # the front's
    monkeypatch.setattr("website.oauth2.endpoints.read_token_by_access_token", lost)  # the endpoint's
    response = introspect(test_client, client, secret, warm)
    assert response.status_code == 503 and response.json["error"] == "temporarily_unavailable"
    assert calls == [warm] and flask_requests == [INTROSPECT]  # raised again inside Flask, not tried twice


def test_front_answers_are_counted_and_logged(test_client, service, warm, caplog):
    client, secret = service
    key = ("idp_http_requests_total", (("endpoint", "oauth.introspect_token"), ("method", "POST"), ("status", "200")))
    before = scrape(test_client).get(key, 0)
    with caplog.at_level(logging.INFO, logger="website.access"):
        for _ in range(3):
            introspect(test_client, client, secret, warm, headers={"X-Request-ID": "in-1"})
    assert scrape(test_client)[key] - before == 3
    lines = [r.getMessage() for r in caplog.records if r.name == "website.access" and "/metrics" not in r.getMessage()]
    assert len(lines) == 3
    assert all(line.startswith(f"request_id=in-1 method=POST path={INTROSPECT} status=200 duration_ms=")
               for line in lines)


class TestWithRedisCounters(OnRedis):
    """With REDIS_URL the throttle counters live in Redis: the token is one statement and the
    lock Redis's TTLs, and a lockout there holds below Flask too."""

    def test_answers_and_lockouts_hold_with_redis(self, app, test_client, service, warm, flask_requests):
        client, secret = service
        assert introspect(test_client, client, secret, warm).json["active"] is True
        assert flask_requests == []
        app.config["THROTTLE_CLIENT_LIMIT"] = 2
        for _ in range(2):
            assert introspect(test_client, client, "wrong-secret", warm).status_code == 401
        locked = introspect(test_client, client, secret, warm)
        assert locked.status_code == 401 and "Retry-After" in locked.headers
        assert flask_requests == [INTROSPECT] * 3
