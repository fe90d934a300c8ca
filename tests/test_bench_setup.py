"""bench/run.py's setup helpers make credentials the server accepts, and its verdict
refuses runs with errors (the benchmark itself is run with `make bench`, never in tests)."""

import shutil
import subprocess
import sys

import pytest

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
    assert "id_token" in exchanged.json  # the code row measures issuance with an id_token
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


def test_every_issue_19_row_carries_its_target_on_each_database(user, make_client):
    client, secret = make_client()
    fixture = fixture_for(client, secret, user)
    paths = {"discovery": "/d", "jwks": "/j", "introspection": "/i", "userinfo": "/u"}
    expected = {
        "sqlite": {"discovery": 0.95, "jwks": 0.95, "me": 0.80, "userinfo": 0.80, "introspection": 0.80,
                   "client_credentials": 0.50, "refresh": 0.35, "code": 0.35},
        "postgresql": {"discovery": 0.95, "jwks": 0.95, "me": 0.65, "userinfo": 0.65,
                       "introspection": 0.65, "client_credentials": 0.40, "refresh": 0.30, "code": 0.30},
    }
    for db_label, targets in expected.items():
        rows = {e.key: e.target for e in bench.endpoints(fixture, paths, "token", db_label) if e.target}
        assert rows == targets


def test_verdicts_beside_the_peer_memory_and_password_hash():
    row = bench.Result("client credentials", rps=900, p50_ms=1, p99_ms=2, ratio=0.5)
    assert bench.peer_verdict(row, 800).startswith("peer 800 req/s: at or above the peer")
    below = bench.peer_verdict(row, 1800)
    assert "**below** the peer (x0.50)" in below and bench.PEER_NOTE in below
    assert bench.rss_verdict([80.0, 99.9]) == "≤ 100 MiB met"
    assert bench.rss_verdict([80.0, 101.0]) == "≤ 100 MiB **missed**"
    note = bench.password_note("scrypt:32768:8:1", rps=20.0, workers=2)
    assert "scrypt N=2^15 (32768), r=8, p=1" in note
    assert "OWASP minimum: scrypt N=2^17 (131072), r=8, p=1" in note
    assert note.startswith(f"{20.0 / min(2, bench.os.cpu_count()):.1f} log-ins/s per core")


def test_memory_is_read_once_the_request_in_flight_is_answered():
    """A log-in still being hashed when wrk stops holds scrypt's 32 MiB: that is the
    request's memory, not what the worker keeps, so the reading waits for it to end."""
    busy_then_idle = (
        "import hashlib, time\n"
        "held = bytearray(96 * 1024 * 1024)\n"  # resident: bytearray zero-fills it
        "print('holding', flush=True)\n"
        "end = time.monotonic() + 1.5\n"
        "while time.monotonic() < end: hashlib.sha256(b'x' * 4096).digest()\n"
        "del held\n"
        "time.sleep(30)\n"
    )
    process = subprocess.Popen([sys.executable, "-c", busy_then_idle], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline() == "holding\n"
        (resident,) = bench.rss_mib([process.pid])
        assert resident < 64
    finally:
        process.kill()
        process.wait()
        process.stdout.close()


def app_config_limit():
    from website.config import DEFAULTS

    return DEFAULTS["THROTTLE_ACCOUNT_LIMIT"]


def test_quick_mode_and_servers_option():
    args = bench.parse_args(["--quick", "--servers", "gunicorn,gthread", "--databases", "sqlite"])
    assert (args.duration, args.warmup) == (2, 1)
    assert args.servers == ["sync", "gthread"] and args.databases == ["sqlite"]
    assert bench.parse_args([]).servers == ["sync", "gthread", "granian"]
    assert bench.parse_args([]).duration == 5
    assert "gthread" in bench.server_command("gthread", "app:app", 8000)
    with pytest.raises(SystemExit):
        bench.parse_args(["--servers", "uwsgi"])
    # Log-ins stay under the per-account throttle (5 in flight), or gthread's 8 threads get 400s.
    login = bench.login_load(bench.Load(threads=2, connections=32, duration=5, warmup=1))
    assert login.connections < app_config_limit() and login.threads <= login.connections


@pytest.mark.skipif(shutil.which("node") is None, reason="the peer needs node")
def test_the_peer_installs_starts_and_answers_every_row_it_is_measured_on(tmp_path):
    assert bench.peer_missing() is None  # installs bench/peer from its lock file when needed
    with bench.Peer(tmp_path / "peer.log") as peer:
        rows = bench.prepare_peer(peer)
        assert [e.key for e in rows] == ["discovery", "jwks", "introspection", "client_credentials"]
        for endpoint in rows:
            status, answer = bench.probe(peer.url, endpoint, None)
            assert status == 200, (endpoint.key, answer)
            if endpoint.key == "introspection":
                assert answer["active"] is True
        assert bench.rss_mib([peer.process.pid])[0] > 0
    assert peer.process.poll() is not None  # stopped with the block


def test_new_passwords_are_hashed_as_strongly_as_owasps_scrypt_minimum():
    from werkzeug.security import check_password_hash

    from website.config import DEFAULTS
    from website.models.users import User

    # The OWASP Password Storage Cheat Sheet's scrypt configurations, equal in strength: (N, r, p).
    owasp = {(2**17, 8, 1), (2**16, 8, 2), (2**15, 8, 3), (2**14, 8, 5), (2**13, 8, 10)}
    name, *params = DEFAULTS["PASSWORD_HASH_METHOD"].split(":")
    assert name == "scrypt" and tuple(int(x) for x in params) in owasp
    user = User(username="owasp")
    user.set_password("a long enough password", method=DEFAULTS["PASSWORD_HASH_METHOD"])
    assert user.password_hash.startswith("scrypt:32768:8:3$")
    assert check_password_hash(user.password_hash, "a long enough password")


def test_cpu_reads_the_local_postgresql_servers_cpu_and_it_grows_with_work():
    """bench/cpu.py --database: the CPU this machine's PostgreSQL spent, from /proc."""
    import psycopg

    from bench import cpu

    before = cpu.postgres_cpu()
    if before is None:
        pytest.skip("no PostgreSQL server runs on this machine")
    try:
        connection = psycopg.connect("postgresql://postgres@127.0.0.1:5432/test", connect_timeout=5)
    except psycopg.OperationalError as error:
        pytest.skip(f"this machine's PostgreSQL does not take the bench's URL: {error}")
    with connection:
        # A few hundred ms of the server's CPU: many of /proc's 10 ms ticks. Read while its
        # backend still runs (an ended process leaves /proc, with its CPU time).
        connection.execute("SELECT count(*) FROM generate_series(1, 5000000)")
        assert cpu.postgres_cpu() - before >= 0.05
