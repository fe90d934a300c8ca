"""The front (website/http/front.py): discovery and JWKS answered without Flask after the
first request, with the same headers, a request id, 304s, HEAD, metrics and a log line, and
a key rotation seen at once."""

import logging

import pytest
from support.pages import headers_but_request_id
from test_operations import scrape

DOCUMENTS = ["/.well-known/jwks.json", "/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"]


@pytest.mark.parametrize("path", DOCUMENTS)
def test_only_the_first_request_reaches_flask_and_every_answer_is_the_same(test_client, flask_requests, path):
    first = test_client.get(path)
    assert first.status_code == 200
    others = [test_client.get(path) for _ in range(4)]
    assert flask_requests == [path]
    for other in others:
        assert other.status_code == 200
        assert other.data == first.data
        assert headers_but_request_id(other) == headers_but_request_id(first)
    # The hooks' headers are all there in the kept answer.
    assert first.headers["Access-Control-Allow-Origin"] == "*"
    assert first.headers["X-Content-Type-Options"] == "nosniff"
    assert first.headers["Cache-Control"].startswith("public, max-age=")
    ids = {response.headers["X-Request-ID"] for response in [first, *others]}
    assert len(ids) == 5


def test_request_ids_304_and_head_from_the_front(test_client, flask_requests):
    path = "/.well-known/jwks.json"
    etag = test_client.get(path).headers["ETag"]
    assert test_client.get(path, headers={"X-Request-ID": "trace-1"}).headers["X-Request-ID"] == "trace-1"
    # An id that could forge a log line or header is replaced.
    assert test_client.get(path, headers={"X-Request-ID": "a b"}).headers["X-Request-ID"] != "a b"
    through_flask = test_client.get(path, headers={"If-None-Match": etag})
    assert through_flask.status_code == 304 and through_flask.data == b""
    kept = test_client.get(path, headers={"If-None-Match": f'W/{etag}, "other"'})
    assert kept.status_code == 304 and kept.data == b""
    assert headers_but_request_id(kept) == headers_but_request_id(through_flask)
    assert test_client.get(path, headers={"If-None-Match": '"other"'}).status_code == 200
    head = test_client.head(path)
    assert head.status_code == 200 and head.data == b""
    assert head.headers["ETag"] == etag
    # Flask saw the first GET and the first 304 only.
    assert flask_requests == [path, path]


def test_front_answers_are_counted_and_logged(test_client, caplog):
    path = "/.well-known/openid-configuration"
    before = scrape(test_client).get(
        ("idp_http_requests_total", (("endpoint", "oauth.discovery"), ("method", "GET"), ("status", "200"))), 0)
    with caplog.at_level(logging.INFO, logger="website.access"):
        for _ in range(3):
            test_client.get(path, headers={"X-Request-ID": "counted"})
    after = scrape(test_client)[
        ("idp_http_requests_total", (("endpoint", "oauth.discovery"), ("method", "GET"), ("status", "200")))]
    assert after - before == 3
    lines = [record.getMessage() for record in caplog.records
             if record.name == "website.access" and "path=/metrics" not in record.getMessage()]
    assert len(lines) == 3
    assert all(line.startswith(f"request_id=counted method=GET path={path} status=200 duration_ms=")
               for line in lines)


def test_a_rotation_here_shows_in_the_next_jwks(test_client, runner):
    before = {key["kid"] for key in test_client.get("/.well-known/jwks.json").json["keys"]}
    test_client.get("/.well-known/jwks.json")
    result = runner.invoke(args=["rotate-keys"])
    assert result.exit_code == 0, result.output
    after = {key["kid"] for key in test_client.get("/.well-known/jwks.json").json["keys"]}
    assert after > before


def test_nothing_is_kept_when_the_interval_is_zero(app, test_client, flask_requests):
    app.config["OIDC_KEY_CHECK_INTERVAL"] = 0
    for _ in range(3):
        assert test_client.get("/.well-known/jwks.json").status_code == 200
    assert len(flask_requests) == 3


def test_other_methods_and_paths_go_to_flask(test_client, flask_requests):
    test_client.get("/.well-known/jwks.json")
    assert test_client.post("/.well-known/jwks.json").status_code == 405
    assert test_client.get("/.well-known/jwks.json/").status_code == 404
    assert test_client.options("/.well-known/jwks.json", headers={
        "Origin": "https://app.example", "Access-Control-Request-Method": "GET"}).status_code == 204
    assert len(flask_requests) == 4


def test_made_up_host_headers_do_not_grow_the_kept_answers(app, test_client):
    # Answers are kept per Host, which any client chooses: the front keeps a bounded number.
    from website.http.front import MAX_KEPT
    for n in range(MAX_KEPT + 20):
        assert test_client.get("/.well-known/jwks.json", headers={"Host": f"h{n}.example"}).status_code == 200
    assert len(app.extensions["document_front"].answers) <= MAX_KEPT
