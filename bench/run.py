"""The benchmark: this server's endpoints against a bare Flask app, on SQLite and PostgreSQL.

One command (``make bench``, or ``python bench/run.py``) sets up a throwaway database with
the app's own CLI, serves the app and bench/ceiling.py under the same server configuration,
drives each endpoint with wrk (bench/requests.lua), and prints one table: requests/s, p50 and
p99 latency, and the ratio to the ceiling measured in the same run, beside issue 19's target
for that database (met or missed). Each server (gunicorn sync, gunicorn gthread, granian) gets
its own ceiling. The peer, node oidc-provider in memory (bench/peer), is measured in the same
run, and our client credentials and introspection rows say whether they reach its req/s. Worker
memory (VmRSS) is checked against 100 MiB, and the log-in row gives log-ins per core with the
configured password hash beside OWASP's minimum. Runs with any unexpected
status are reported as failed, not as a throughput. The table and a description of the
machine go to bench/results.md. See the README's "Benchmark" section.
"""

import argparse
import base64
import contextlib
import dataclasses
import hashlib
import json
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from urllib.parse import urlencode, urlsplit

ROOT = Path(__file__).resolve().parent.parent
# `python bench/run.py` puts bench/ on the path, not the checkout: the PostgreSQL check and the
# setup import the app's own config and models.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
BENCH_DIR = ROOT / "bench"
LUA_SCRIPT = BENCH_DIR / "requests.lua"
RESULTS = BENCH_DIR / "results.md"
GUNICORN_CONF = BENCH_DIR / "gunicorn_bench.conf.py"
PEER_DIR = BENCH_DIR / "peer"

#: Issue 19's targets: same-run ratios to the ceiling, per database.
TARGETS = {
    "sqlite": {"discovery": 0.95, "jwks": 0.95, "me": 0.80, "userinfo": 0.80, "introspection": 0.80,
               "client_credentials": 0.50, "refresh": 0.35, "code": 0.35},
    "postgresql": {"discovery": 0.95, "jwks": 0.95, "me": 0.65, "userinfo": 0.65, "introspection": 0.65,
                   "client_credentials": 0.40, "refresh": 0.30, "code": 0.30},
}
#: Each worker's resident memory after the run, at most.
RSS_TARGET_MIB = 100
#: The rows compared with the peer's absolute requests per second.
PEER_COMPARED = ("client_credentials", "introspection")
PEER_NOTE = "peer keeps nothing (in memory only); we store every token durably"
#: OWASP Password Storage Cheat Sheet (current): the minimum parameters for each hash.
OWASP_PASSWORD = {
    "scrypt": "scrypt N=2^17 (131072), r=8, p=1 (or as strong: N=2^16 p=2, N=2^15 p=3, N=2^14 p=5, N=2^13 p=10)",
    "argon2": "Argon2id m=19 MiB, t=2, p=1",
    "bcrypt": "bcrypt work factor ≥ 10",
    "pbkdf2": "PBKDF2-HMAC-SHA256 ≥ 600,000 iterations",
}

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
USERNAME = "bench"
PASSWORD = "bench-password-" + "x" * 8
REDIRECT_URI = "https://bench.example.com/callback"
SCOPE = "openid profile email offline_access"
#: The scope of the tokens used for /api/me, introspection and userinfo.
BEARER_SCOPE = "openid profile email"

WRK_MISSING = """wrk is not installed; the benchmark needs it.
Install it with:  sudo apt-get install wrk     (Debian/Ubuntu)
                  brew install wrk             (macOS)"""


@dataclasses.dataclass
class Endpoint:
    """One row of the table: what to send, what status to expect, and the target ratio."""

    key: str
    label: str
    method: str
    path: str
    target: float | None = None  # the ratio to the ceiling that issue 19 asks for
    expect: int = 200
    auth: str = ""
    body: str = ""
    feed: str | None = None  # "refresh" or "code": single-use bodies, one per request


@dataclasses.dataclass
class Result:
    label: str
    rps: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    ratio: float | None = None
    target: float | None = None
    note: str = ""
    key: str = ""

    @property
    def failed(self) -> bool:
        return self.rps is None


# --------------------------------------------------------------------------- machine


def machine_description(pg_url: str | None) -> dict:
    """CPU model, cores, RAM, and the versions that shape the numbers."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ram = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                ram = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    info = {
        "CPU": f"{cpu}, {os.cpu_count()} cores",
        "RAM": ram,
        "OS": platform.platform(),
        "Python": platform.python_version(),
        "SQLite": sqlite3.sqlite_version,
    }
    if pg_url:
        with contextlib.suppress(Exception):
            import sqlalchemy as sa

            engine = sa.create_engine(_sqlalchemy_url(pg_url))
            with engine.connect() as conn:
                info["PostgreSQL"] = conn.execute(sa.text("SHOW server_version")).scalar()
            engine.dispose()
    info["wrk"] = _command_output(["wrk", "-v"]).split(" [", 1)[0].replace("wrk ", "")
    for package in ("gunicorn", "granian", "flask", "authlib", "sqlalchemy"):
        with contextlib.suppress(Exception):
            from importlib.metadata import version

            info[package] = version(package)
    return info


def _command_output(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr) else "?"


def load_average() -> str:
    """The 1, 5 and 15 minute load averages."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# --------------------------------------------------------------------------- databases


def _sqlalchemy_url(url: str) -> str:
    from website.config import database_uri

    return database_uri(url, instance_path="")


@contextlib.contextmanager
def postgres_database(server_url: str):
    """Create a throwaway PostgreSQL database beside ``server_url``; drop it afterwards."""
    import sqlalchemy as sa

    base = sa.make_url(_sqlalchemy_url(server_url))
    name = f"idp_bench_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def postgres_available(server_url: str) -> str | None:
    """None when PostgreSQL answers at ``server_url``, else why not."""
    import sqlalchemy as sa

    try:
        engine = sa.create_engine(_sqlalchemy_url(server_url), connect_args={"connect_timeout": 3})
        with engine.connect():
            pass
        engine.dispose()
    except Exception as error:  # any driver or network error means "not available"
        return str(error).splitlines()[0]
    return None


# --------------------------------------------------------------------------- setup


def flask_cli(env: dict, *args: str) -> str:
    """Run one of the app's own ``flask`` commands; return its output or exit with it."""
    cmd = [sys.executable, "-m", "flask", "--app", "app", *args]
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"bench: `flask {' '.join(args)}` failed:\n{out.stdout}{out.stderr}")
    return out.stdout


@dataclasses.dataclass
class Fixture:
    """What the setup made: the client's credentials, the user, the password-hash cost."""

    client_id: str
    client_secret: str
    user_id: int
    password_hash_method: str

    @property
    def basic_auth(self) -> str:
        pair = f"{self.client_id}:{self.client_secret}".encode()
        return "Basic " + base64.b64encode(pair).decode()


def set_up(env: dict) -> Fixture:
    """Create the schema, a user and a confidential client with the app's own CLI."""
    flask_cli(env, "initdb")
    flask_cli(env, "create-user", USERNAME, "--password", PASSWORD, "--email", "bench@example.com")
    grants = ["authorization_code", "refresh_token", "client_credentials", "password"]
    out = flask_cli(
        env, "create-client", "--json", "--name", "Bench", "--redirect-uri", REDIRECT_URI,
        "--scope", SCOPE, "--auth-method", "client_secret_basic",
        *[arg for grant in grants for arg in ("--grant-type", grant)],
    )
    client = json.loads(out.strip().splitlines()[-1])
    with app_context(env) as db:
        from sqlalchemy import select

        from website.models import User

        user = db.session.scalar(select(User).where(User.username == USERNAME))
        method = user.password_hash.split("$", 1)[0]
    return Fixture(client["client_id"], client["client_secret"], user.id, method)


@contextlib.contextmanager
def app_context(env: dict):
    """The app's models on the bench database, in this process."""
    sys.path.insert(0, str(ROOT))
    from website import create_app
    from website.models import db

    app = create_app({"DATABASE_URL": env["DATABASE_URL"], "SECRET_KEY": env["SECRET_KEY"]})
    with app.app_context():
        try:
            yield db
        finally:
            db.session.remove()
            db.engine.dispose()


def s256(verifier: str) -> str:
    """The PKCE S256 challenge of a verifier."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def insert_refresh_tokens(db, fixture: Fixture, count: int) -> list[str]:
    """Store ``count`` live refresh tokens for the bench user; return their plain values."""
    from sqlalchemy import insert

    from website.models import Token, hash_secret, now

    stamp = now()
    values = [secrets.token_urlsafe(36) for _ in range(count)]
    rows = [
        dict(client_id=fixture.client_id, user_id=fixture.user_id, token_type="Bearer",
             access_token_hash=hash_secret(secrets.token_urlsafe(32)), refresh_token_hash=hash_secret(v),
             scope=SCOPE, issued_at=stamp, expires_in=3600, expires_at=stamp + 3600,
             refresh_token_expires_at=stamp + 86400, family_id=secrets.token_hex(16))
        for v in values
    ]
    for start in range(0, len(rows), 5000):
        db.session.execute(insert(Token), rows[start:start + 5000])
    db.session.commit()
    return values


def insert_codes(db, fixture: Fixture, count: int, verifier: str) -> list[str]:
    """Store ``count`` unused authorization codes with one PKCE challenge; return the codes."""
    from sqlalchemy import insert

    from website.models import AuthorizationCode, hash_secret, now

    stamp = now()
    challenge = s256(verifier)
    values = [secrets.token_urlsafe(36) for _ in range(count)]
    rows = [
        # Valid for an hour rather than minutes: the run must not see them expire.
        dict(code_hash=hash_secret(v), client_id=fixture.client_id, user_id=fixture.user_id,
             redirect_uri=REDIRECT_URI, response_type="code", scope=BEARER_SCOPE,
             code_challenge=challenge, code_challenge_method="S256", auth_time=stamp,
             expires_at=stamp + 3600)
        for v in values
    ]
    for start in range(0, len(rows), 5000):
        db.session.execute(insert(AuthorizationCode), rows[start:start + 5000])
    db.session.commit()
    return values


def fill_tokens(db, fixture: Fixture, count: int) -> float:
    """Bulk-insert ``count`` token rows (half expired) the fast way; return the seconds taken.

    COPY on PostgreSQL, executemany on SQLite, in batches so memory stays flat.
    """
    from website.models import Token, now

    columns = ["client_id", "user_id", "token_type", "access_token_hash", "refresh_token_hash",
               "scope", "issued_at", "expires_in", "expires_at", "refresh_token_expires_at",
               "access_token_revoked_at", "refresh_token_revoked_at", "family_id"]
    stamp = now()
    started = time.monotonic()

    def batch(size):
        for i in range(size):
            issued = stamp - (i % 7200)  # half of them expired an hour ago or less
            has_refresh = i % 2 == 0
            yield (fixture.client_id, fixture.user_id if has_refresh else None, "Bearer",
                   os.urandom(32).hex(), os.urandom(32).hex() if has_refresh else None,
                   SCOPE, issued, 3600, issued + 3600, issued + 86400 if has_refresh else None,
                   0, 0, os.urandom(16).hex())

    table = Token.__table__.name
    connection = db.engine.raw_connection()
    try:
        cursor = connection.cursor()
        step = 50_000
        for start in range(0, count, step):
            size = min(step, count - start)
            if db.engine.dialect.name == "postgresql":
                with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                    for row in batch(size):
                        copy.write_row(row)
            else:
                placeholders = ", ".join("?" for _ in columns)
                cursor.executemany(
                    f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})", batch(size)
                )
            connection.commit()
        if db.engine.dialect.name == "postgresql":
            # Fresh statistics, as autovacuum would make soon after a bulk load.
            connection.commit()
            cursor.execute(f"ANALYZE {table}")
        else:
            cursor.execute(f"ANALYZE {table}")
        connection.commit()
    finally:
        connection.close()
    return time.monotonic() - started


def write_feed(path: Path, bodies: list[str]) -> Path:
    """One form-encoded body per line, for requests.lua."""
    path.write_text("".join(body + "\n" for body in bodies))
    return path


# --------------------------------------------------------------------------- servers


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


#: The servers measured, by --servers name, and how the table names them.
SERVERS = {"sync": "gunicorn sync", "gthread": "gunicorn gthread", "granian": "granian"}
#: Worker processes under every server (the machine's cores, two here).
WORKERS = 2
#: Threads per gthread worker.
GTHREADS = 4


def server_command(server: str, target: str, port: int) -> list[str]:
    """The same configuration for the app and the ceiling: 2 worker processes, no access log."""
    if server in ("sync", "gthread"):
        extra = ["--worker-class", "gthread", "--threads", str(GTHREADS)] if server == "gthread" else []
        return [sys.executable, "-m", "gunicorn", "--config", str(GUNICORN_CONF), *extra,
                "--bind", f"127.0.0.1:{port}", target]
    if server == "granian":
        # One blocking thread per worker, like a sync worker: granian's default for WSGI
        # (backpressure / 2 = 256 threads) runs that many requests at once under one GIL,
        # and 32 concurrent scrypt hashes took 580 MiB per worker and timed out.
        return [sys.executable, "-m", "granian", "--interface", "wsgi", "--workers", str(WORKERS),
                "--blocking-threads", "1", "--host", "127.0.0.1", "--port", str(port), "--no-ws",
                "--log-level", "warning", target]
    raise ValueError(server)


class Server:
    """A server process serving ``target`` on a free port, stopped on exit."""

    def __init__(self, server: str, target: str, env: dict, log_path: Path):
        self.server, self.target, self.env, self.log_path = server, target, env, log_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = None

    def __enter__(self):
        self.env = {**self.env, "OAUTH2_ISSUER": self.url}
        self.log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            server_command(self.server, self.target, self.port), cwd=ROOT, env=self.env,
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                sys.exit(f"bench: {self.server} exited at start; see {self.log_path}")
            with contextlib.suppress(OSError):
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    # Both workers must have imported the app before load starts.
                    if len(self.worker_pids()) >= WORKERS:
                        time.sleep(0.5)
                        return self
            time.sleep(0.2)
        self.__exit__()
        sys.exit(f"bench: {self.server} did not start within 60 s; see {self.log_path}")

    def worker_pids(self) -> list[int]:
        """The server's worker processes (its children)."""
        pids = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError):
                fields = stat.read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == self.process.pid:
                    pids.append(int(stat.parent.name))
        return sorted(pids)

    def worker_rss_mib(self) -> list[float]:
        """Each worker's resident memory, in MiB (from /proc/PID/status VmRSS)."""
        return rss_mib(self.worker_pids())

    def __exit__(self, *exc):
        if self.process and self.process.poll() is None:
            # Its own process group: the master and its workers, nothing else.
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()


#: How long the processes' CPU time must stand still before their memory is read, and the
#: longest wait for that.
IDLE_SECONDS, IDLE_TIMEOUT = 0.5, 15.0


def cpu_ticks(pids: list[int]) -> list[int]:
    """Each process's CPU time so far (utime + stime, /proc/PID/stat), in clock ticks."""
    ticks = []
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks.append(int(fields[11]) + int(fields[12]))
    return ticks


def wait_idle(pids: list[int]) -> None:
    """Wait until the processes have answered what wrk left in flight: a log-in still being
    hashed when wrk stops holds scrypt's memory (128 * N * r bytes, 32 MiB by default) for
    its few hundred milliseconds, which is the request's and not what the worker keeps."""
    deadline = time.monotonic() + IDLE_TIMEOUT
    before = cpu_ticks(pids)
    while time.monotonic() < deadline:
        time.sleep(IDLE_SECONDS)
        now = cpu_ticks(pids)
        if now == before:
            return
        before = now


def rss_mib(pids: list[int]) -> list[float]:
    """Each process's resident memory once idle, in MiB (from /proc/PID/status VmRSS)."""
    wait_idle(pids)
    sizes = []
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    sizes.append(int(line.split()[1]) / 1024)
    return sizes


def http(method: str, url: str, headers: dict | None = None, body: str | None = None):
    """One plain HTTP request: (status, parsed JSON or text)."""
    data = body.encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        req.add_header("Content-Type", "application/x-www-form-urlencoded")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


# --------------------------------------------------------------------------- wrk


@dataclasses.dataclass
class Load:
    threads: int
    connections: int
    duration: int
    warmup: int


def run_wrk(url: str, endpoint: Endpoint, load: Load, duration: int, feed: Path | None = None) -> dict:
    """Drive ``url`` with wrk for ``duration`` seconds; return requests.lua's result."""
    env = {
        **os.environ,
        "BENCH_METHOD": endpoint.method,
        "BENCH_AUTH": endpoint.auth,
        "BENCH_BODY": endpoint.body,
        "BENCH_FEED": str(feed) if feed else "",
        "BENCH_EXPECT": str(endpoint.expect),
        "BENCH_THREADS": str(load.threads),
    }
    cmd = ["wrk", "-t", str(load.threads), "-c", str(load.connections), "-d", f"{duration}s",
           "--timeout", "10s", "-s", str(LUA_SCRIPT), url]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    for line in out.stdout.splitlines():
        if line.startswith("BENCH_RESULT "):
            return json.loads(line[len("BENCH_RESULT "):])
    raise RuntimeError(f"wrk gave no result:\n{out.stdout}\n{out.stderr}")


def judge(endpoint: Endpoint, result: dict, ceiling_rps: float | None) -> Result:
    """Turn wrk's numbers into a table row, or a failure when anything went wrong."""
    row = Result(endpoint.label, target=endpoint.target, key=endpoint.key)
    problems = []
    if result["unexpected"]:
        statuses = ", ".join(f"{n}×{s}" for s, n in sorted(result["statuses"].items()))
        problems.append(f"unexpected statuses ({statuses})")
    if result["exhausted"]:
        problems.append(f"feed ran out ({result['exhausted']} requests over)")
    errors = {k: v for k, v in result["errors"].items() if v and k != "status"}
    if errors:
        problems.append("socket errors " + ", ".join(f"{k}={v}" for k, v in errors.items()))
    if not result["requests"]:
        problems.append("no responses")
    if problems:
        row.note = "FAILED: " + "; ".join(problems)
        return row
    row.rps = result["requests"] / (result["duration_us"] / 1e6)
    row.p50_ms = result["p50_us"] / 1000
    row.p99_ms = result["p99_us"] / 1000
    if ceiling_rps:
        row.ratio = row.rps / ceiling_rps
    return row


# --------------------------------------------------------------------------- the run


def discover(base_url: str) -> dict:
    """Endpoint paths from the discovery document, or the server's default paths."""
    paths = {"discovery": "/.well-known/openid-configuration", "jwks": "/.well-known/jwks.json",
             "introspection": "/oauth/introspect", "userinfo": "/oauth/userinfo"}
    for path in ("/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"):
        status, doc = http("GET", base_url + path)
        if status == 200 and isinstance(doc, dict):
            paths["discovery"] = path
            for key, field in (("jwks", "jwks_uri"), ("introspection", "introspection_endpoint"),
                               ("userinfo", "userinfo_endpoint")):
                if doc.get(field):
                    paths[key] = urlsplit(doc[field]).path
            break
    return paths


def endpoints(fixture: Fixture, paths: dict, bearer: str, db_label: str = "sqlite") -> list[Endpoint]:
    """The table's rows, in the order they run: reads first, then writes, password last.

    Each carries issue 19's target for ``db_label`` (sqlite or postgresql).
    """
    basic = fixture.basic_auth
    target = TARGETS[db_label]
    return [
        Endpoint("discovery", "discovery document", "GET", paths["discovery"], target["discovery"]),
        Endpoint("jwks", "JWKS", "GET", paths["jwks"], target["jwks"]),
        Endpoint("me", "GET /api/me (bearer)", "GET", "/api/me", target["me"], auth=f"Bearer {bearer}"),
        Endpoint("introspection", "token introspection", "POST", paths["introspection"],
                 target["introspection"], auth=basic,
                 body=urlencode({"token": bearer, "token_type_hint": "access_token"})),
        Endpoint("userinfo", "userinfo", "GET", paths["userinfo"], target["userinfo"],
                 auth=f"Bearer {bearer}"),
        Endpoint("client_credentials", "client credentials (client_secret_basic)", "POST",
                 "/oauth/token", target["client_credentials"], auth=basic,
                 body=urlencode({"grant_type": "client_credentials", "scope": "profile"})),
        Endpoint("refresh", "refresh token (rotation)", "POST", "/oauth/token", target["refresh"],
                 auth=basic, feed="refresh"),
        Endpoint("code", "authorization code + PKCE (with id_token)", "POST", "/oauth/token",
                 target["code"], auth=basic, feed="code"),
        Endpoint("password", "password grant", "POST", "/oauth/token", None, auth=basic,
                 body=urlencode({"grant_type": "password", "username": USERNAME,
                                 "password": PASSWORD, "scope": "profile"})),
    ]


def probe(base_url: str, endpoint: Endpoint, sample_body: str | None) -> tuple[int, object]:
    """Send one request like the load will, to skip missing endpoints and catch errors early."""
    headers = {"Authorization": endpoint.auth} if endpoint.auth else {}
    body = sample_body if sample_body is not None else (endpoint.body or None)
    return http(endpoint.method, base_url + endpoint.path, headers, body)


def feed_size(ceiling_rps: float, seconds: int) -> int:
    """Single-use bodies enough for ``seconds`` at the ceiling's rate, with margin."""
    return max(500, int(ceiling_rps * seconds * 1.5) + 200)


#: Log-ins in flight at once: under the log-in throttle's per-account limit (5 by default, counted
#: before the password is checked), which refuses the attempts past it when gthread's 8 threads
#: all check the one bench account at once; 4 still keeps both cores hashing.
LOGIN_CONNECTIONS = 4
#: At least this long for the log-in row, even with --quick: a hash takes ~0.1 s of CPU by
#: design, so a 2 s run on a busy machine may see no log-in finish.
LOGIN_MIN_SECONDS = 5


def login_load(load: Load) -> Load:
    """The log-in row's load: the same, with at most LOGIN_CONNECTIONS connections."""
    connections = min(load.connections, LOGIN_CONNECTIONS)
    return dataclasses.replace(load, connections=connections, threads=min(load.threads, connections))


def describe_hash(method: str) -> str:
    """werkzeug's method string, e.g. ``scrypt:32768:8:1``, in OWASP's terms."""
    name, *params = method.split(":")
    if name == "scrypt" and len(params) == 3:
        n, r, p = (int(x) for x in params)
        exponent = f"2^{n.bit_length() - 1}" if n & (n - 1) == 0 else str(n)
        return f"scrypt N={exponent} ({n}), r={r}, p={p}"
    if name == "pbkdf2" and params:
        return f"PBKDF2-HMAC-{params[0].upper()} {int(params[1]) if len(params) > 1 else '?':,} iterations"
    return method


def password_note(method: str, rps: float, workers: int = WORKERS) -> str:
    """The log-in row's note: throughput per core with the hash in use, beside OWASP's minimum."""
    cores = min(workers, os.cpu_count() or 1)
    owasp = OWASP_PASSWORD.get(method.split(":", 1)[0], "no OWASP recommendation for this hash")
    return f"{rps / cores:.1f} log-ins/s per core with {describe_hash(method)}; OWASP minimum: {owasp}"


def peer_verdict(row: Result, peer_rps: float | None) -> str:
    """Beside our client credentials / introspection figure: at or above the peer's req/s, or not."""
    if peer_rps is None:
        return "peer not measured"
    if row.failed:
        return f"peer {peer_rps:.0f} req/s"
    verdict = "at or above the peer" if row.rps >= peer_rps else f"**below** the peer (x{row.rps / peer_rps:.2f})"
    return f"peer {peer_rps:.0f} req/s: {verdict}; {PEER_NOTE}"


def rss_verdict(rss: list[float]) -> str:
    """``met`` when every worker stayed at or under RSS_TARGET_MIB, else ``missed``."""
    if not rss:
        return "not measured"
    return f"≤ {RSS_TARGET_MIB} MiB " + ("met" if max(rss) <= RSS_TARGET_MIB else "**missed**")


# --------------------------------------------------------------------------- the peer


def peer_missing() -> str | None:
    """None when node can run bench/peer, else why not."""
    if shutil.which("node") is None:
        return "node is not installed"
    if not (PEER_DIR / "node_modules" / "oidc-provider").is_dir():
        if shutil.which("npm") is None:
            return "npm is not installed"
        out = subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--prefix", str(PEER_DIR)],
                             capture_output=True, text=True)
        if out.returncode != 0:
            return "npm ci in bench/peer failed: " + (out.stderr.strip().splitlines() or ["?"])[-1]
    return None


class Peer:
    """node oidc-provider (bench/peer/peer.mjs): in memory, one process, one confidential client."""

    def __init__(self, log_path: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.client_id = "bench-peer-client"
        self.client_secret = secrets.token_urlsafe(32)
        self.log_path = log_path
        self.process = None

    @property
    def basic_auth(self) -> str:
        return "Basic " + base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()

    def __enter__(self):
        config = json.dumps({"port": self.port, "client_id": self.client_id,
                             "client_secret": self.client_secret})
        self.log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            ["node", str(PEER_DIR / "peer.mjs"), config], cwd=PEER_DIR, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=self.log, env={**os.environ, "NODE_ENV": "production"},
            start_new_session=True,
        )
        line = self.process.stdout.readline()
        if not line.startswith(b"{"):
            self.__exit__()
            raise RuntimeError(f"the peer did not start; see {self.log_path}")
        return self

    def worker_rss_mib(self) -> list[float]:
        return rss_mib([self.process.pid])

    def __exit__(self, *exc):
        if self.process and self.process.poll() is None:
            self.process.stdin.close()  # peer.mjs exits when its input ends
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process:
            self.process.stdout.close()
            if not self.process.stdin.closed:
                self.process.stdin.close()
        self.log.close()


def peer_endpoints(peer: Peer, doc: dict, access_token: str) -> list[Endpoint]:
    """The peer's rows: the same requests as ours, on the paths its discovery document names."""
    basic = peer.basic_auth
    return [
        Endpoint("discovery", "discovery document", "GET", "/.well-known/openid-configuration"),
        Endpoint("jwks", "JWKS", "GET", urlsplit(doc["jwks_uri"]).path),
        Endpoint("introspection", "token introspection", "POST",
                 urlsplit(doc["introspection_endpoint"]).path, auth=basic,
                 body=urlencode({"token": access_token, "token_type_hint": "access_token"})),
        Endpoint("client_credentials", "client credentials (client_secret_basic)", "POST",
                 urlsplit(doc["token_endpoint"]).path, auth=basic,
                 body=urlencode({"grant_type": "client_credentials", "scope": "profile"})),
    ]


def prepare_peer(peer: Peer) -> list[Endpoint]:
    """Read the peer's discovery document and get one access token to introspect."""
    status, doc = http("GET", peer.url + "/.well-known/openid-configuration")
    if status != 200 or not isinstance(doc, dict):
        raise RuntimeError(f"the peer's discovery answered {status}")
    status, token = http("POST", doc["token_endpoint"], {"Authorization": peer.basic_auth},
                         urlencode({"grant_type": "client_credentials", "scope": "profile"}))
    if status != 200:
        raise RuntimeError(f"the peer's client credentials answered {status}: {token}")
    return peer_endpoints(peer, doc, token["access_token"])


def bench_peer(load: Load, workdir: Path) -> tuple[list[Result], list[float], str]:
    """Measure the peer's rows; their ratios are set later against the first ceiling."""
    print(f"\n== node oidc-provider (peer, in memory)  (load average {load_average()})", flush=True)
    if why := peer_missing():
        print(f"  peer not measured: {why}", flush=True)
        return [], [], why
    rows = []
    with Peer(workdir / "peer.log") as peer:
        for endpoint in prepare_peer(peer):
            status, answer = probe(peer.url, endpoint, None)
            if status != endpoint.expect:
                rows.append(Result(endpoint.label, note=f"FAILED: probe answered {status}: {str(answer)[:200]}"))
                continue
            url = peer.url + endpoint.path
            run_wrk(url, endpoint, load, load.warmup)
            row = judge(endpoint, run_wrk(url, endpoint, load, load.duration), None)
            row.key = endpoint.key
            rows.append(row)
            print(f"  {format_row(row)}", flush=True)
        rss = peer.worker_rss_mib()
    return rows, rss, ""


def bench_block(server: str, db_label: str, env: dict, fixture: Fixture, load: Load,
                workdir: Path, only: set[str] | None,
                peer_rps: dict | None = None) -> tuple[list[Result], list[float]]:
    """Measure the ceiling and every endpoint on one server and database."""
    log = workdir / f"{server}-{db_label}.log"
    print(f"\n== {SERVERS[server]}, {db_label}  (load average {load_average()})", flush=True)
    ceiling_endpoint = Endpoint("ceiling", "ceiling: bare Flask JSON route", "GET", "/")
    with Server(server, "bench.ceiling:app", env, log) as ceiling:
        run_wrk(ceiling.url + "/", ceiling_endpoint, load, load.warmup)
        ceiling_row = judge(ceiling_endpoint, run_wrk(ceiling.url + "/", ceiling_endpoint, load,
                                                      load.duration), None)
    if ceiling_row.failed:
        print(f"  {ceiling_row.label}: {ceiling_row.note}")
        return [ceiling_row], []
    ceiling_row.ratio = 1.0
    ceiling_rps = ceiling_row.rps
    print(f"  {ceiling_row.label}: {ceiling_rps:.0f} req/s", flush=True)

    # Single-use credentials for the refresh and code rows: separate files for warm-up and run.
    verifier = secrets.token_urlsafe(48)
    feeds = {}
    with app_context(env) as db:
        for kind in ("refresh", "code"):
            if only and kind not in only:
                continue
            for phase, seconds in (("warmup", load.warmup), ("run", load.duration)):
                n = feed_size(ceiling_rps, seconds) + 1  # one more for the probe
                if kind == "refresh":
                    bodies = [urlencode({"grant_type": "refresh_token", "refresh_token": v})
                              for v in insert_refresh_tokens(db, fixture, n)]
                else:
                    bodies = [urlencode({"grant_type": "authorization_code", "code": v,
                                         "redirect_uri": REDIRECT_URI, "code_verifier": verifier})
                              for v in insert_codes(db, fixture, n, verifier)]
                feeds[kind, phase] = bodies

    rows = [ceiling_row]
    with Server(server, "app:app", env, log) as app_server:
        status, token = http("POST", app_server.url + "/oauth/token", {"Authorization": fixture.basic_auth},
                             urlencode({"grant_type": "password", "username": USERNAME,
                                        "password": PASSWORD, "scope": BEARER_SCOPE}))
        if status != 200:
            sys.exit(f"bench: could not get a bearer token with the password grant: {status} {token}")
        paths = discover(app_server.url)
        for endpoint in endpoints(fixture, paths, token["access_token"], db_label):
            if only and endpoint.key not in only:
                continue
            sample = None
            if endpoint.feed:
                sample = feeds[endpoint.feed, "run"].pop()
            status, answer = probe(app_server.url, endpoint, sample)
            if status == 404:
                row = Result(endpoint.label, target=endpoint.target,
                             note=f"not available: {endpoint.path} answers 404 on this server")
                print(f"  {row.label}: {row.note}", flush=True)
                rows.append(row)
                continue
            if endpoint.key == "code" and status == 200 and "id_token" not in answer:
                status = "200 without an id_token"
            if status != endpoint.expect:
                row = Result(endpoint.label, target=endpoint.target, key=endpoint.key,
                             note=f"FAILED: probe answered {status}: {str(answer)[:200]}")
                print(f"  {row.label}: {row.note}", flush=True)
                rows.append(row)
                continue
            url = app_server.url + endpoint.path
            warm_feed = run_feed = None
            if endpoint.feed:
                warm_feed = write_feed(workdir / f"{endpoint.feed}-warmup.txt", feeds[endpoint.feed, "warmup"])
                run_feed = write_feed(workdir / f"{endpoint.feed}-run.txt", feeds[endpoint.feed, "run"])
            warm_seconds = load.warmup if endpoint.key != "password" else 0
            if warm_seconds:
                run_wrk(url, endpoint, load, warm_seconds, warm_feed)
            row_load = login_load(load) if endpoint.key == "password" else load
            seconds = max(load.duration, LOGIN_MIN_SECONDS) if endpoint.key == "password" else load.duration
            row = judge(endpoint, run_wrk(url, endpoint, row_load, seconds, run_feed), ceiling_rps)
            if endpoint.key == "password" and not row.failed:
                row.label = "log-in (password grant)"
                row.note = password_note(fixture.password_hash_method, row.rps)
            if endpoint.key in PEER_COMPARED and peer_rps is not None:
                row.note = "; ".join(filter(None, [row.note, peer_verdict(row, peer_rps.get(endpoint.key))]))
            rows.append(row)
            print(f"  {format_row(row)}", flush=True)
        rss = app_server.worker_rss_mib()
    print(f"  workers' resident memory: {', '.join(f'{m:.0f} MiB' for m in rss)} ({rss_verdict(rss)})",
          flush=True)
    return rows, rss


def format_row(row: Result) -> str:
    if row.failed:
        return f"{row.label}: {row.note}"
    return (f"{row.label}: {row.rps:.0f} req/s, p50 {row.p50_ms:.1f} ms, p99 {row.p99_ms:.1f} ms"
            + (f", x{row.ratio:.2f}" if row.ratio is not None else "")
            + (f" (target {row.target:.2f})" if row.target else "")
            + (f"; {row.note}" if row.note else ""))


def markdown_table(blocks: list[tuple[str, str, list[Result], list[float]]]) -> str:
    """One table for every server and database measured."""
    lines = ["| server | database | endpoint | req/s | p50 ms | p99 ms | × ceiling | target | note |",
             "|---|---|---|---:|---:|---:|---:|---|---|"]
    for server, db_label, rows, _ in blocks:
        for row in rows:
            if row.failed:
                cells = ["—", "—", "—", "—"]
            else:
                ratio = "" if row.ratio is None else f"{row.ratio:.2f}"
                cells = [f"{row.rps:.0f}", f"{row.p50_ms:.1f}", f"{row.p99_ms:.1f}", ratio]
            if row.target is None:
                target = ""
            elif row.failed:
                target = f"≥ {row.target:.2f} —"
            else:
                target = f"≥ {row.target:.2f} " + ("met" if row.ratio >= row.target else "**missed**")
            lines.append(f"| {server} | {db_label} | {row.label} | " + " | ".join(cells)
                         + f" | {target} | {row.note} |")
    memory = [f"- {server}, {db_label}: " + ", ".join(f"{m:.0f} MiB" for m in rss)
              + ("" if server.endswith("(peer)") else f" — {rss_verdict(rss)}")
              for server, db_label, _, rss in blocks if rss]
    if memory:
        lines += ["", "Each worker's resident memory (VmRSS, /proc/PID/status) after its run, "
                  "once its CPU time stands still (the last requests answered), "
                  f"target ≤ {RSS_TARGET_MIB} MiB (the peer is one process, shown for comparison):", "", *memory]
    return "\n".join(lines)


def write_results(section: str, title: str, body: str) -> None:
    """Replace this run's section of bench/results.md, keeping the others and the notes."""
    begin, end = f"<!-- bench:{section}:begin -->", f"<!-- bench:{section}:end -->"
    block = f"{begin}\n## {title}\n\n{body}\n{end}"
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n\nWritten by `bench/run.py`.\n"
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda m: block, text)
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    RESULTS.write_text(text)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=None, help="seconds of load per row (5; 2 with --quick)")
    parser.add_argument("--warmup", type=int, default=None, help="seconds of unmeasured load first (1)")
    parser.add_argument("--quick", action="store_true",
                        help="short runs (2 s per row) to see that everything works; numbers are rough")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (2)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (32)")
    parser.add_argument("--databases", default="sqlite,postgresql",
                        help="comma-separated: sqlite, postgresql (both)")
    parser.add_argument("--servers", default="sync,gthread,granian",
                        help="comma-separated: sync, gthread (gunicorn's workers), granian (all three)")
    parser.add_argument("--no-peer", action="store_true", help="do not measure node oidc-provider")
    parser.add_argument("--only", default="",
                        help="comma-separated endpoint keys to run, e.g. me,client_credentials")
    parser.add_argument("--fill", type=int, default=0,
                        help="store this many tokens first, e.g. 1000000, to show lookups do not slow down")
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    args = parser.parse_args(argv)
    args.databases = [d for d in args.databases.split(",") if d]
    args.servers = [{"gunicorn": "sync"}.get(s, s) for s in args.servers.split(",") if s]
    if args.duration is None:
        args.duration = 2 if args.quick else 5
    if args.warmup is None:
        args.warmup = 1
    args.only = set(filter(None, args.only.split(","))) or None
    for name in args.databases:
        if name not in ("sqlite", "postgresql"):
            parser.error(f"unknown database {name!r}")
    for name in args.servers:
        if name not in SERVERS:
            parser.error(f"unknown server {name!r}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        print(WRK_MISSING, file=sys.stderr)
        return 2
    for server in {"gunicorn" if s in ("sync", "gthread") else s for s in args.servers}:
        try:
            __import__(server)
        except ImportError:
            print(f"bench: {server} is not installed (pip install {server})", file=sys.stderr)
            return 2
    load = Load(args.threads, args.connections, args.duration, args.warmup)
    pg_url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_PG_URL)
    skipped = []
    if "postgresql" in args.databases and (why := postgres_available(pg_url)):
        skipped.append(f"PostgreSQL not available at {pg_url}: {why}")
        print(f"bench: {skipped[-1]}; set BENCH_DATABASE_URL to measure it.", file=sys.stderr)
        args.databases.remove("postgresql")
    machine = machine_description(pg_url if "postgresql" in args.databases else None)
    load_before = load_average()
    started = time.monotonic()
    blocks = []
    with tempfile.TemporaryDirectory(prefix="idp-bench-") as tmp:
        workdir = Path(tmp)
        peer_rows, peer_rss, peer_why = ([], [], "not asked (--no-peer)") if args.no_peer else bench_peer(load, workdir)
        if peer_why:
            skipped.append(f"Peer (node oidc-provider) not measured: {peer_why}")
        peer_rps = None if peer_why else {row.key: row.rps for row in peer_rows}
        for db_label in args.databases:
            with contextlib.ExitStack() as stack:
                if db_label == "postgresql":
                    url = stack.enter_context(postgres_database(pg_url))
                else:
                    url = "sqlite:///" + str(workdir / f"bench-{uuid.uuid4().hex[:8]}.sqlite")
                env = {**os.environ, "DATABASE_URL": url, "SECRET_KEY": secrets.token_urlsafe(32),
                       "PYTHONPATH": str(ROOT)}
                env.pop("FLASK_APP", None)
                fixture = set_up(env)
                label = db_label
                if args.fill:
                    with app_context(env) as db:
                        seconds = fill_tokens(db, fixture, args.fill)
                    print(f"bench: stored {args.fill:,} tokens on {db_label} in {seconds:.0f} s")
                    label = f"{db_label}, {args.fill:,} tokens"
                for server in args.servers:
                    rows, rss = bench_block(server, db_label, env, fixture, load, workdir, args.only, peer_rps)
                    blocks.append((SERVERS[server], label, rows, rss))
    if peer_rows:
        # The peer's ratios against the first server's ceiling, measured in this run.
        ceiling = next((r.rps for _, _, rows, _ in blocks for r in rows if r.key == "ceiling" and not r.failed), None)
        for row in peer_rows:
            if ceiling and not row.failed:
                row.ratio = row.rps / ceiling
        first = blocks[0][0] if blocks else "no"
        blocks.insert(0, ("node oidc-provider (peer)", f"in memory; × the {first} ceiling", peer_rows, peer_rss))
    elapsed = time.monotonic() - started
    table = markdown_table(blocks)
    print("\n" + table)
    failed = [row for *_, rows, _ in blocks for row in rows if row.note.startswith("FAILED")]
    if not args.no_write:
        machine_lines = "\n".join(f"- {k}: {v}" for k, v in machine.items())
        command = "python bench/run.py" + (" " + " ".join(argv if argv is not None else sys.argv[1:]))
        body = (
            f"Run `{command.strip()}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
            f"{elapsed:.0f} s in all. wrk: {load.threads} threads, {load.connections} connections, "
            f"{load.duration} s per row after {load.warmup} s of warm-up. "
            f"Load average (1/5/15 min) before: {load_before}; after: {load_average()}.\n\n"
            f"{machine_lines}\n\n{table}\n"
            + ("".join(f"\n{s}\n" for s in skipped))
        )
        if args.fill:
            section, title = "fill", f"With {args.fill:,} stored tokens"
        else:
            section, title = "main", "Empty database"
        write_results(section, title, body)
        print(f"\nbench: wrote {RESULTS.relative_to(ROOT)}")
    if failed:
        print(f"bench: {len(failed)} row(s) failed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
