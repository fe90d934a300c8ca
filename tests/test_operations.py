"""Operating the server: /readyz, Prometheus metrics at /metrics (also summed over gunicorn
workers), JSON logs with the request id."""

import json
import re
import signal
import socket
import time

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from support.databases import empty_database
from support.factories import config_for
from support.instances import instance_environment, server_instances
from website import create_app
from website.extensions import db


def samples(text: str) -> dict:
    """Every sample of a scrape, keyed by (name, sorted labels)."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def scrape(test_client, **headers) -> dict:
    response = test_client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.content_type.startswith("text/plain")
    return samples(response.get_data(as_text=True))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- /readyz ---------------------------------------------------------------------------------

def test_readyz_is_ready_with_the_database_at_the_newest_migration(test_client):
    response = test_client.get("/readyz")
    assert response.status_code == 200
    assert response.json == {"status": "ready", "checks": {"database": "ok", "migrations": "ok",
                                                          "redis": "not configured"}}
    assert response.headers["Cache-Control"] == "no-store"


def test_readyz_checks_redis_when_it_is_configured(app, test_client):
    app.config["REDIS_URL"] = "redis://127.0.0.1:6379/0"
    assert test_client.get("/readyz").json["checks"]["redis"] == "ok"


def test_readyz_is_not_ready_when_redis_is_down(app, test_client):
    app.config["REDIS_URL"] = f"redis://127.0.0.1:{free_port()}/0"
    response = test_client.get("/readyz")
    assert response.status_code == 503
    assert response.json["status"] == "not ready"
    assert response.json["checks"]["redis"].startswith("unavailable")
    assert response.json["checks"]["database"] == "ok"


def test_readyz_is_not_ready_before_the_migrations_ran(database_url, tmp_path):
    with empty_database(database_url, tmp_path) as keys:
        app = create_app(config_for(database_url, **keys))
        response = app.test_client().get("/readyz")
        assert response.status_code == 503
        assert response.json["checks"]["migrations"] == "not migrated (run flask initdb)"
        assert response.json["checks"]["database"] == "ok"
        # /healthz says only whether the process and its database answer.
        assert app.test_client().get("/healthz").status_code == 200
        with app.app_context():
            db.engine.dispose()


# --- /metrics --------------------------------------------------------------------------------

def test_made_up_methods_are_counted_as_other_not_each_by_name(test_client):
    """A client may send any method token: each one named would be a new label value."""
    before = scrape(test_client)
    for method in ("FOOA", "FOOB", "FOOC"):
        test_client.open("/api/me", method=method)
    after = scrape(test_client)
    methods = {dict(labels).get("method") for name, labels in after if name == "idp_http_requests_total"}
    assert not methods & {"FOOA", "FOOB", "FOOC"}
    others = [key for key in after if key[0] == "idp_http_requests_total" and ("method", "other") in key[1]]
    assert sum(after[key] - before.get(key, 0) for key in others) == 3


def test_metrics_count_requests_tokens_by_grant_and_failed_log_ins(test_client, auth, make_client, user):
    client, secret = make_client(grant_types=["client_credentials"], redirect_uris=[], scope="profile")
    before = scrape(test_client)
    for _ in range(2):
        response = test_client.post("/oauth/token", data={"grant_type": "client_credentials"},
                                    auth=(client.client_id, secret))
        assert response.status_code == 200
    assert auth.login(password="wrong password").status_code == 400
    after = scrape(test_client)

    def delta(name, **labels):
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0) - before.get(key, 0)

    assert delta("idp_tokens_issued_total", grant_type="client_credentials") == 2
    assert delta("idp_audit_events_total", event="login_failed") == 1
    assert delta("idp_http_requests_total", endpoint="oauth.issue_token", method="POST", status="200") == 2
    assert delta("idp_http_request_duration_seconds_count", endpoint="oauth.issue_token") == 2
    assert ("idp_db_pool_connections_in_use", ()) in after


def test_metrics_are_refused_to_other_addresses(app, test_client):
    app.config["METRICS_NETWORKS"] = []
    response = test_client.get("/metrics")
    assert response.status_code == 403
    assert "METRICS_ALLOWED_ADDRESSES" in response.json["error_description"]


def test_metrics_answer_the_metrics_token_from_anywhere(database_url):
    app = create_app(config_for(database_url, METRICS_ALLOWED_ADDRESSES="", METRICS_TOKEN="scrape-me-please"))
    test_client = app.test_client()
    assert test_client.get("/metrics").status_code == 403
    assert test_client.get("/metrics", headers={"Authorization": "Bearer scrape-me-pleasf"}).status_code == 403
    assert scrape(test_client, Authorization="Bearer scrape-me-please")


def test_a_bad_metrics_network_is_a_configuration_error(database_url):
    with pytest.raises(SystemExit, match="METRICS_ALLOWED_ADDRESSES: 'not-a-network'"):
        create_app(config_for(database_url, METRICS_ALLOWED_ADDRESSES="10.0.0.0/8 not-a-network"))


def test_metrics_sum_every_gunicorn_worker(database_url, tmp_path):
    env = instance_environment(config_for(database_url))
    with server_instances(1, env, tmp_path, workers=2) as [instance]:
        for _ in range(40):  # spread over both workers by the kernel
            assert requests.get(instance.url + "/.well-known/openid-configuration", timeout=10).status_code == 200
        text = requests.get(instance.url + "/metrics", timeout=10).text
    found = samples(text)
    key = ("idp_http_requests_total", (("endpoint", "oauth.discovery"), ("method", "GET"), ("status", "200")))
    assert found[key] == 40, text[:2000]


# --- logs ------------------------------------------------------------------------------------

def test_json_logs_carry_the_request_id(database_url, tmp_path):
    env = {**instance_environment(config_for(database_url)), "LOG_FORMAT": "json"}
    with server_instances(1, env, tmp_path) as [instance]:
        response = requests.get(instance.url + "/healthz", headers={"X-Request-ID": "req-123"}, timeout=10)
        assert response.status_code == 200
        log = instance.log()
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    [entry] = [line for line in lines if line.get("request_id") == "req-123"]
    assert entry["logger"] == "website.access"
    assert entry["level"] == "INFO"
    assert entry["http"] == {"method": "GET", "path": "/healthz", "status": 200,
                             "duration_ms": entry["http"]["duration_ms"], "remote_addr": "127.0.0.1"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["time"]), entry["time"]
    assert entry["message"] == ("request_id=req-123 method=GET path=/healthz status=200 "
                                f"duration_ms={entry['http']['duration_ms']:.1f} remote_addr=127.0.0.1")


def test_text_logs_write_one_line_per_request(database_url, tmp_path):
    # The served request log is written preformatted: the same line Flask's formatter writes.
    with server_instances(1, instance_environment(config_for(database_url)), tmp_path) as [instance]:
        for _ in range(3):
            assert requests.get(instance.url + "/healthz", headers={"X-Request-ID": "req-7"}, timeout=10).ok
        log = instance.log()
    lines = [line for line in log.splitlines() if "request_id=req-7" in line]
    assert len(lines) == 3, log[-2000:]
    for line in lines:
        assert re.fullmatch(r"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}\] INFO in ops: request_id=req-7 method=GET "
                            r"path=/healthz status=200 duration_ms=\d+\.\d remote_addr=127\.0\.0\.1", line), line


def test_an_unknown_log_format_is_a_configuration_error(database_url):
    with pytest.raises(SystemExit, match="LOG_FORMAT must be text or json, not 'xml'"):
        create_app(config_for(database_url, LOG_FORMAT="xml"))


# --- graceful shutdown -----------------------------------------------------------------------

def test_sigterm_lets_the_request_in_flight_finish(database_url, tmp_path):
    """gunicorn's SIGTERM (what systemd, Docker and Kubernetes send) stops taking connections
    and waits for the requests being served: one still receiving its body gets its answer."""
    env = instance_environment(config_for(database_url))
    with server_instances(1, env, tmp_path) as [instance]:
        host, port = instance.url.removeprefix("http://").split(":")
        body = b"grant_type=client_credentials&client_id=nobody"
        with socket.create_connection((host, int(port)), timeout=10) as conn:
            conn.sendall(b"POST /oauth/token HTTP/1.1\r\nHost: " + host.encode()
                         + b"\r\nContent-Type: application/x-www-form-urlencoded\r\nConnection: close"
                         + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body[:10])
            time.sleep(0.5)  # the worker is now reading the body
            instance.process.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            conn.sendall(body[10:])
            answer = b""
            while chunk := conn.recv(65536):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
        assert b'"error":"invalid_client"' in answer.replace(b" ", b"")
        assert instance.process.wait(timeout=30) == 0
