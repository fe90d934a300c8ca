"""bench/run.py's setup helpers make credentials the server accepts, and its verdict
refuses runs with errors (the benchmark itself is run with `make bench`, never in tests)."""

from bench import run as bench
from support.flows import pkce_pair
from website.models import db


def fixture_for(client, secret, user):
    return bench.Fixture(client.client_id, secret, user.id, "pbkdf2")


def test_pre_made_refresh_tokens_and_codes_are_accepted(app, test_client, user, make_client):
    client, secret = make_client(redirect_uris=[bench.REDIRECT_URI], scope=bench.SCOPE)
    fixture = fixture_for(client, secret, user)
    verifier, _ = pkce_pair()
    with app.app_context():
        refresh_tokens = bench.insert_refresh_tokens(db, fixture, 2)
        codes = bench.insert_codes(db, fixture, 2, verifier)
    headers = {"Authorization": fixture.basic_auth}
    refreshed = test_client.post("/oauth/token", headers=headers,
                                 data={"grant_type": "refresh_token", "refresh_token": refresh_tokens[0]})
    assert refreshed.status_code == 200, refreshed.json
    exchanged = test_client.post("/oauth/token", headers=headers, data={
        "grant_type": "authorization_code", "code": codes[0], "redirect_uri": bench.REDIRECT_URI,
        "code_verifier": verifier})
    assert exchanged.status_code == 200, exchanged.json
    me = test_client.get("/api/me", headers={"Authorization": f"Bearer {exchanged.json['access_token']}"})
    assert me.status_code == 200


def test_fill_stores_as_many_tokens_as_asked(app, test_client, user, make_client):
    client, secret = make_client()
    with app.app_context():
        bench.fill_tokens(db, fixture_for(client, secret, user), 300)
        count = db.session.scalar(db.select(db.func.count()).select_from(db.metadata.tables["oauth2_tokens"]))
    assert count == 300


def test_a_run_with_unexpected_statuses_is_a_failure_not_a_throughput():
    endpoint = bench.Endpoint("me", "GET /api/me", "GET", "/api/me", 0.8)
    result = {"requests": 1000, "duration_us": 1_000_000, "p50_us": 900, "p99_us": 2000,
              "statuses": {"200": 990, "500": 10}, "unexpected": 10, "exhausted": 0,
              "errors": {"connect": 0, "read": 0, "write": 0, "status": 10, "timeout": 0}}
    row = bench.judge(endpoint, result, ceiling_rps=2000)
    assert row.failed and row.rps is None
    assert "10×500" in row.note
    result.update(statuses={"200": 1000}, unexpected=0, errors=dict.fromkeys(result["errors"], 0))
    row = bench.judge(endpoint, result, ceiling_rps=2000)
    assert not row.failed
    assert round(row.ratio, 2) == 0.5
