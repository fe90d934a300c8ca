"""Data growth benchmark: token lookups by hash and `flask purge-expired` at 1,000 and 100,000 rows.

    python bench/growth.py                          # SQLite, and PostgreSQL if TEST_DATABASE_URL is set
    python bench/growth.py --postgres postgresql://postgres@127.0.0.1:5432/test --rows 100000

Each backend gets a throwaway database (a temporary SQLite file; a new PostgreSQL database beside
the one named, dropped at the end). Rows are written with bulk SQL in the newest schema; lookups go
through the server's own query functions and /api/me; the purge is the real CLI command.
Prints a table; asserts nothing about time.
"""

import argparse
import hashlib
import logging
import os
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sqlalchemy as sa  # noqa: E402

from bench.run import postgres_database  # noqa: E402
from website import create_app  # noqa: E402
from website.models import AuthorizationCode, Token, User, db  # noqa: E402
from website.store.tokens import query_token_by_access_token, query_token_by_refresh_token  # noqa: E402

#: How the filled tokens are made up: which ones `purge-expired` may delete and which it must keep.
MIX = (
    ("dead: access expired, no refresh token", 0.40),
    ("dead: access expired, refresh token revoked", 0.10),
    ("live: access expired, refresh token live", 0.25),
    ("live: access token live", 0.25),
)


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@contextmanager
def throwaway_database(kind: str, server_url: str | None):
    """Yield a URL to an empty database of this kind; remove it afterwards."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as directory:
            yield "sqlite:///" + str(Path(directory) / "growth.sqlite")
        return
    with postgres_database(server_url) as url:
        yield url


def fill_tokens(app, start: int, stop: int, client_id: str, user_id: int, samples: list) -> None:
    """Insert token rows ``start..stop`` in the MIX proportions; keep some plain values for lookups."""
    stamp = int(time.time())
    kinds = [kind for kind, share in MIX for _ in range(int(share * 100))]
    rows = []
    for i in range(start, stop):
        kind = kinds[i % len(kinds)]
        access, refresh = f"a{i}-{secrets.token_hex(8)}", f"r{i}-{secrets.token_hex(8)}"
        expired = kind != "live: access token live"
        has_refresh = "no refresh" not in kind
        rows.append({
            "client_id": client_id, "user_id": user_id, "token_type": "Bearer",
            "access_token_hash": sha(access), "refresh_token_hash": sha(refresh) if has_refresh else None,
            "scope": "profile", "issued_at": stamp - 7200, "expires_in": 3600,
            "expires_at": stamp - 3600 if expired else stamp + 3600,
            "refresh_token_expires_at": stamp + 86400 if has_refresh else None,
            "access_token_revoked_at": 0,
            "refresh_token_revoked_at": stamp - 60 if "revoked" in kind else 0,
            "family_id": uuid.uuid4().hex,
        })
        if kind == "live: access token live" and len(samples) < 2000 and i % 7 == 0:
            samples.append((access, refresh))
        if len(rows) == 5000:
            _insert(app, rows)
            rows = []
    if rows:
        _insert(app, rows)


def fill_codes(app, count: int, client_id: str, user_id: int) -> None:
    """Insert ``count`` authorization codes, half of them expired."""
    stamp = int(time.time())
    rows = [{"code_hash": sha(f"c{i}-{secrets.token_hex(8)}"), "client_id": client_id, "user_id": user_id,
             "redirect_uri": "https://app.example.com/cb", "response_type": "code", "scope": "profile",
             "auth_time": stamp, "expires_at": stamp - 60 if i % 2 else stamp + 300} for i in range(count)]
    for start in range(0, count, 5000):
        _insert(app, rows[start:start + 5000], AuthorizationCode)


def _insert(app, rows, model=Token) -> None:
    with app.app_context(), db.engine.begin() as conn:
        conn.execute(sa.insert(model.__table__), rows)


def percentiles(timings: list[float]) -> tuple[float, float]:
    """Median and 95th percentile, in milliseconds."""
    ordered = sorted(timings)
    return statistics.median(ordered) * 1000, ordered[int(len(ordered) * 0.95) - 1] * 1000


def measure_lookups(app, samples: list, count: int = 500) -> dict:
    """Time lookups by access-token hash and refresh-token hash, and GET /api/me end to end."""
    picks = [samples[i % len(samples)] for i in range(count)]
    results = {}
    with app.app_context():
        if db.engine.dialect.name == "postgresql":
            with db.engine.begin() as conn:
                conn.execute(sa.text("ANALYZE oauth2_tokens"))
        for label, lookup, index in (("access hash", query_token_by_access_token, 0),
                                     ("refresh hash", query_token_by_refresh_token, 1)):
            timings = []
            for pair in picks:
                began = time.perf_counter()
                found = lookup(pair[index])
                timings.append(time.perf_counter() - began)
                assert found is not None
                db.session.expunge_all()
            results[label] = percentiles(timings)
    test_client = app.test_client()
    for access, _ in picks[:50]:  # warm up: first requests compile templates, fill caches
        test_client.get("/api/me", headers={"Authorization": f"Bearer {access}"})
    timings = []
    for access, _ in picks[: count // 2]:
        began = time.perf_counter()
        response = test_client.get("/api/me", headers={"Authorization": f"Bearer {access}"})
        timings.append(time.perf_counter() - began)
        assert response.status_code == 200, response.get_data(as_text=True)
    results["GET /api/me"] = percentiles(timings)
    return results


def count_tokens(app) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(Token))


def run_backend(kind: str, server_url: str | None, small: int, large: int) -> tuple[list, dict]:
    """Fill, measure at ``small`` and ``large`` rows, then purge; return table rows and purge stats."""
    with throwaway_database(kind, server_url) as url:
        app = create_app({"DATABASE_URL": url, "SECRET_KEY": secrets.token_hex(16),
                          "OAUTH2_ISSUER": "http://127.0.0.1"})
        result = app.test_cli_runner().invoke(args=["initdb"])
        assert result.exit_code == 0, result.output
        with app.app_context():
            user = User(username="bench", email="bench@example.com")
            user.set_password(secrets.token_hex(8), method="pbkdf2:sha256:1000")
            db.session.add(user)
            db.session.commit()
            user_id = user.id
        samples: list = []
        rows = []
        filled = 0
        for size in (small, large):
            began = time.perf_counter()
            fill_tokens(app, filled, size, "bench-client", user_id, samples)
            fill_seconds = time.perf_counter() - began
            filled = size
            lookups = measure_lookups(app, samples)
            rows.append((kind, size, lookups, fill_seconds))
        fill_codes(app, large // 10, "bench-client", user_id)
        began = time.perf_counter()
        result = app.test_cli_runner().invoke(args=["purge-expired"])
        purge_seconds = time.perf_counter() - began
        assert result.exit_code == 0, result.output
        purge = {"rows": filled, "seconds": purge_seconds, "output": result.output.strip(),
                 "left": count_tokens(app)}
        # A second purge with nothing to delete: the cost of the scan alone.
        began = time.perf_counter()
        app.test_cli_runner().invoke(args=["purge-expired"])
        purge["idle_seconds"] = time.perf_counter() - began
        with app.app_context():
            db.engine.dispose()
        return rows, purge


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--postgres", default=os.environ.get("TEST_DATABASE_URL"),
                        help="PostgreSQL server URL (a throwaway database is made beside it)")
    parser.add_argument("--rows", type=int, default=100_000, help="tokens at the large size")
    parser.add_argument("--small", type=int, default=1_000, help="tokens at the small size")
    args = parser.parse_args()
    # Thousands of requests: keep the one-line request log out of the table.
    logging.getLogger("website.access").setLevel(logging.WARNING)

    backends = ["sqlite"] + (["postgresql"] if args.postgres else [])
    table, purges = [], []
    for kind in backends:
        rows, purge = run_backend(kind, args.postgres, args.small, args.rows)
        table.extend(rows)
        purges.append((kind, purge))

    print()
    print(f"{'backend':<11} {'tokens':>8} {'fill s':>7}  {'access hash p50/p95 ms':>22}"
          f"  {'refresh hash p50/p95 ms':>23}  {'GET /api/me p50/p95 ms':>22}")
    for kind, size, lookups, fill_seconds in table:
        cells = ["{:.2f} / {:.2f}".format(*lookups[label]) for label in ("access hash", "refresh hash", "GET /api/me")]
        print(f"{kind:<11} {size:>8,} {fill_seconds:>7.1f}  {cells[0]:>22}  {cells[1]:>23}  {cells[2]:>22}")
    print()
    dead = sum(share for kind, share in MIX if kind.startswith("dead"))
    print(f"purge-expired on {args.rows:,} tokens ({dead:.0%} dead) and {args.rows // 10:,} codes (50% expired):")
    for kind, purge in purges:
        print(f"  {kind:<11} {purge['seconds']:6.2f} s  ({purge['output']}; {purge['left']:,} left);"
              f" again with nothing to delete: {purge['idle_seconds']:.2f} s")


if __name__ == "__main__":
    main()
