"""/api/me's usual answer from the front (website/http/front.py), below Flask: once Flask has
answered one plain bearer GET, the next ones get the same headers and a body built from
their own token, checked on every request by the view's validator (a revocation counts at
once). Every other request, and every token the view would refuse, is Flask's to answer,
exactly as before; an error in the front is answered by Flask (a lost database: 503)."""

import logging
from datetime import datetime, timezone

import pytest
from sqlalchemy.exc import OperationalError
from support.factories import update_rows
from support.flows import bearer, exchange_code, get_user_token, login_and_get_code
from support.pages import headers_but_request_id
from test_operations import scrape

from website.models import Token, User

ME = "/api/me"


@pytest.fixture
def client_pair(make_client):
    return make_client()


@pytest.fixture
def access_token(test_client, auth, user, client_pair, flask_requests):
    client, secret = client_pair
    code, verifier = login_and_get_code(test_client, auth, client)
    token = exchange_code(test_client, client, secret, code, verifier).json["access_token"]
    auth.logout()  # a bearer call carries no cookie
    test_client.delete_cookie("idp_session")
    return token


@pytest.fixture
def warm(test_client, access_token, flask_requests):
    """One /api/me answered by Flask (the front keeps its headers); returns that response."""
    first = test_client.get(ME, headers=bearer(access_token))
    assert first.status_code == 200
    flask_requests.clear()
    return first


def test_after_the_first_answer_flask_sees_no_more_and_answers_are_identical(test_client, user, access_token,
                                                                          warm, flask_requests):
    others = [test_client.get(ME, headers=bearer(access_token)) for _ in range(3)]
    assert flask_requests == []
    for other in others:
        assert other.status_code == 200
        assert other.data == warm.data
        assert headers_but_request_id(other) == headers_but_request_id(warm)
    assert warm.json == {"id": user.id, "sub": user.sub, "username": "alice", "email": "alice@example.com"}
    assert warm.headers["Cache-Control"] == "no-store"
    assert warm.headers["X-Content-Type-Options"] == "nosniff"
    assert len({r.headers["X-Request-ID"] for r in [warm, *others]}) == 4
    # A lower-case scheme is a bearer token to Authlib too.
    lower = test_client.get(ME, headers={"Authorization": f"bearer {access_token}"})
    assert lower.status_code == 200 and flask_requests == []


def test_each_token_gets_its_own_person(app, test_client, auth, user, make_user, client_pair, warm,
                                        flask_requests):
    bob = make_user("bob", email="bob@example.com")
    client, secret = client_pair
    auth.login("bob")
    token = get_user_token(test_client, client, secret)["access_token"]
    test_client.delete_cookie("idp_session")
    flask_requests.clear()
    response = test_client.get(ME, headers=bearer(token))
    assert response.json == {"id": bob.id, "sub": bob.sub, "username": "bob", "email": "bob@example.com"}
    assert flask_requests == []


def test_a_revoked_token_is_refused_at_once(app, test_client, client_pair, access_token, warm, flask_requests):
    client, secret = client_pair
    assert test_client.get(ME, headers=bearer(access_token)).status_code == 200
    revoked = test_client.post("/oauth/revoke", data={"token": access_token}, auth=(client.client_id, secret))
    assert revoked.status_code == 200
    response = test_client.get(ME, headers=bearer(access_token))
    assert response.status_code == 401 and response.json["error"] == "invalid_token"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert flask_requests == ["/oauth/revoke", ME]  # the refusal is Flask's


@pytest.mark.parametrize("change, status", [
    ({"expires_at": 1}, 401),
    ({"access_token_revoked_at": 1}, 401),
    ({"scope": "email"}, 403),
    ({"user_id": None}, 403),  # a client's own token: no person
    ({"dpop_jkt": "x" * 43}, 401),  # bound to a key: never as Bearer
    ({"audience": "https://api.example.com/"}, 401),  # for another API
])
def test_tokens_the_view_refuses_are_refused_by_flask(app, test_client, access_token, warm, flask_requests,
                                                       change, status):
    update_rows(app, Token, change)
    response = test_client.get(ME, headers=bearer(access_token))
    assert response.status_code == status, response.json
    assert flask_requests == [ME]


def test_a_disabled_person_is_refused(app, test_client, user, access_token, warm, flask_requests):
    update_rows(app, User, {"disabled_at": datetime.now(timezone.utc)})
    assert test_client.get(ME, headers=bearer(access_token)).status_code == 401
    assert flask_requests == [ME]


@pytest.mark.parametrize("kwargs", [
    {"query_string": {"x": "1"}},
    {"headers": {"Origin": "https://app.example.com"}},
    {"headers": {"DPoP": "not-a-proof"}},
    {"data": b"body", "content_type": "application/json"},
])
def test_anything_but_a_plain_get_goes_to_flask(test_client, access_token, warm, flask_requests, kwargs):
    headers = {**bearer(access_token), **kwargs.pop("headers", {})}
    test_client.get(ME, headers=headers, **kwargs)
    assert flask_requests == [ME]


@pytest.mark.parametrize("authorization", ["Bearer nope", "Bearer " + "x" * 5000, "Bearer a\x00b", "Basic eDp5",
                                           "Bearer", "Bearer  "])
def test_bad_credentials_are_answered_by_flask(test_client, warm, flask_requests, authorization):
    response = test_client.get(ME, headers={"Authorization": authorization})
    assert response.status_code in (400, 401)
    assert response.json["error"] in ("invalid_token", "invalid_request")
    assert flask_requests == [ME]


def test_https_requests_learn_their_own_headers(test_client, access_token, warm, flask_requests):
    secure = test_client.get(ME, headers=bearer(access_token), base_url="https://localhost")
    assert secure.headers["Strict-Transport-Security"].startswith("max-age=")
    assert "Strict-Transport-Security" not in warm.headers
    again = test_client.get(ME, headers=bearer(access_token), base_url="https://localhost")
    assert headers_but_request_id(again) == headers_but_request_id(secure)
    assert flask_requests == [ME]  # the first https one only


def test_a_lost_database_is_flasks_503_without_a_second_try(test_client, access_token, warm, flask_requests,
                                                           monkeypatch):
    calls = []

    def lost(value):
        calls.append(value)
        raise OperationalError("SELECT", {}, Exception("server closed the connection unexpectedly"))

    monkeypatch.setattr("website.oauth2.protector.read_token_by_access_token", lost)
    response = test_client.get(ME, headers=bearer(access_token))
    assert response.status_code == 503
    assert response.json["error"] == "temporarily_unavailable"
    assert len(calls) == 1 and flask_requests == [ME]


def test_front_answers_are_counted_and_logged(test_client, access_token, warm, caplog):
    key = ("idp_http_requests_total", (("endpoint", "api.me"), ("method", "GET"), ("status", "200")))
    before = scrape(test_client).get(key, 0)
    with caplog.at_level(logging.INFO, logger="website.access"):
        for _ in range(3):
            test_client.get(ME, headers={**bearer(access_token), "X-Request-ID": "me-1"})
    assert scrape(test_client)[key] - before == 3
    lines = [r.getMessage() for r in caplog.records if r.name == "website.access" and "/metrics" not in r.getMessage()]
    assert len(lines) == 3
    assert all(line.startswith(f"request_id=me-1 method=GET path={ME} status=200 duration_ms=") for line in lines)


USERINFO = "/userinfo"


def person_token(test_client, auth, client, secret, scope="openid email") -> str:
    auth.login()
    token = get_user_token(test_client, client, secret, scope=scope)["access_token"]
    test_client.delete_cookie("idp_session")
    return token


def test_userinfo_answers_from_the_front_equal_flasks(test_client, auth, user, make_client, flask_requests):
    client, secret = make_client()
    token = person_token(test_client, auth, client, secret)
    flask_requests.clear()
    for path in (USERINFO, "/oauth/userinfo"):
        first = test_client.get(path, headers=bearer(token))
        others = [test_client.get(path, headers=bearer(token)) for _ in range(2)]
        assert first.status_code == 200
        assert first.json == {"sub": user.sub, "email": "alice@example.com", "email_verified": False}
        for other in others:
            assert (other.status_code, other.data, headers_but_request_id(other)) == (200, first.data, headers_but_request_id(first))
    assert flask_requests == [USERINFO, "/oauth/userinfo"]  # one each, the rest from the front
    # A POST, a token without openid: Flask's.
    assert test_client.post(USERINFO, data={"access_token": token}).status_code == 200
    email_only = person_token(test_client, auth, client, secret, scope="email")
    flask_requests.clear()
    assert test_client.get(USERINFO, headers=bearer(email_only)).status_code == 403
    assert flask_requests == [USERINFO]


def test_signed_userinfo_stays_flasks_and_never_lends_its_headers(test_client, auth, user, make_client,
                                                                   flask_requests):
    signed_client, signed_secret = make_client(userinfo_signed_response_alg="ES256")
    plain_client, plain_secret = make_client(client_name="Plain")
    signed = person_token(test_client, auth, signed_client, signed_secret)
    plain = person_token(test_client, auth, plain_client, plain_secret)
    flask_requests.clear()
    for _ in range(2):
        response = test_client.get(USERINFO, headers=bearer(signed))
        assert response.headers["Content-Type"] == "application/jwt"
    assert flask_requests == [USERINFO, USERINFO]  # a JWT answer is never kept
    first_plain = test_client.get(USERINFO, headers=bearer(plain))
    assert test_client.get(USERINFO, headers=bearer(signed)).headers["Content-Type"] == "application/jwt"
    again = test_client.get(USERINFO, headers=bearer(plain))
    assert again.headers["Content-Type"] == "application/json" and again.data == first_plain.data
    assert flask_requests == [USERINFO] * 4  # the second plain one came from the front
