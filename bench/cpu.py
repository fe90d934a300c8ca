"""In-process CPU cost per request of the benchmarked endpoints (Flask test client).

    python bench/cpu.py [--n 2000] [--only me,jwks] [--profile KEY] [--hooks] [--database URL] 2>/dev/null

Prints CPU microseconds per request (time.process_time over a loop of requests), for the
same requests bench/run.py sends, and the bare-Flask ceiling's cost for comparison. The app
writes its request log line to stderr as in production (hence ``2>/dev/null``). Unlike
wrk numbers, these hold on a busy machine; use them to compare two versions of the code.

``--hooks`` also prints, per endpoint, the CPU microseconds each before/after-request hook and
the session's open/save cost per request, beside its budget (HOOK_BUDGET_US); a hook over its
budget is marked. Hooks are timed with the process CPU clock (a read costs ~1-2 us here),
less the timer's own cost, measured on an empty hook: compare runs, not single cells.

``--database`` names a PostgreSQL server (``postgresql://postgres@127.0.0.1:5432/test``): the
run sets up and measures a throwaway database beside the one named, which it drops afterwards
(run.py's ``postgres_database``), so the named database is never written to. Without it, a
temporary SQLite file. When that server runs on this machine, a column gives the CPU its
processes (the backend serving the app, and its background writers) spent per request,
read from /proc (10 ms ticks: use a large ``--n``): with the app's own CPU, where a request's
time goes on PostgreSQL.
"""

import argparse
import base64
import hashlib
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def set_up(database_url: str, id_token_alg: str = "RS256"):
    from sqlalchemy import select

    from website import create_app
    from website.models import User, db

    app = create_app({"DATABASE_URL": database_url, "SECRET_KEY": "profile" * 4})
    runner = app.test_cli_runner()
    for args in (["initdb"],
                 ["create-user", "bench", "--password", "bench-password", "--email", "b@example.com"]):
        result = runner.invoke(args=args)
        assert result.exit_code == 0, result.output
    out = runner.invoke(args=[
        "create-client", "--json", "--name", "Bench", "--redirect-uri", "https://bench.example.com/callback",
        "--scope", "openid profile email offline_access", "--auth-method", "client_secret_basic",
        "--grant-type", "authorization_code", "--grant-type", "refresh_token",
        "--grant-type", "client_credentials", "--id-token-signed-response-alg", id_token_alg])
    import json
    client = json.loads(out.output.strip().splitlines()[-1])
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == "bench"))
        user_id = user.id
    basic = "Basic " + base64.b64encode(f"{client['client_id']}:{client['client_secret']}".encode()).decode()
    return app, client, user_id, basic


def make_feeds(app, client, user_id, count):
    import run  # bench/run.py's helpers

    from website.models import db

    fixture = run.Fixture(client["client_id"], client["client_secret"], user_id, "scrypt")
    verifier = secrets.token_urlsafe(48)
    with app.app_context():
        refresh = run.insert_refresh_tokens(db, fixture, count)
        codes = run.insert_codes(db, fixture, count, verifier)
    return refresh, codes, verifier


#: The per-request CPU budget of every hook, in microseconds (issue 19: a pipeline with a
#: budget). Hooks not named here get DEFAULT_HOOK_BUDGET_US.
HOOK_BUDGET_US = {
    "_start_request": 5,
    "csrf_protect": 3,
    "ensure_started": 2,
    "load_logged_in_user": 5,
    "answer_preflight": 2,
    "refuse_nul": 5,
    "guard_protocol_request": 10,
    "_log_request": 10,
    "set_security_headers": 8,
    "add_cors_headers": 3,
    "session.open": 3,
    "session.save": 3,
}
DEFAULT_HOOK_BUDGET_US = 5


class HookTimer:
    """Wraps the app's global before/after-request hooks and its session interface with CPU
    timers; ``costs`` maps a hook's name to its total CPU nanoseconds since ``reset``."""

    def __init__(self, app):
        self.costs: dict[str, int] = {}
        for funcs in (app.before_request_funcs, app.after_request_funcs):
            hooks = funcs.get(None, [])
            hooks[:] = [self._wrap(hook) for hook in hooks]
        interface, timer = app.session_interface, self

        class TimedSession(type(interface)):
            def open_session(self, app, request):
                start = time.process_time_ns()
                try:
                    return super().open_session(app, request)
                finally:
                    timer._add("session.open", start)

            def save_session(self, app, session, response):
                start = time.process_time_ns()
                try:
                    return super().save_session(app, session, response)
                finally:
                    timer._add("session.save", start)

        interface.__class__ = TimedSession

        self.overhead = self._calibrate()

    def _calibrate(self) -> int:
        """The nanoseconds a timed call of an empty function adds to a cell (the median of many)."""
        probe = self._wrap(lambda *args: None)
        samples = []
        for _ in range(2001):
            before = self.costs["<lambda>"]
            probe()
            samples.append(self.costs["<lambda>"] - before)
        del self.costs["<lambda>"]
        return sorted(samples)[len(samples) // 2]

    def _add(self, name: str, start: int) -> None:
        self.costs[name] = self.costs.get(name, 0) + time.process_time_ns() - start

    def _wrap(self, hook):
        name = hook.__name__
        while name in self.costs:  # the same hook registered twice (two queue workers)
            name += "'"
        self.costs[name] = 0

        def timed(*args):
            start = time.process_time_ns()
            try:
                return hook(*args)
            finally:
                self._add(name, start)

        return timed

    def reset(self) -> None:
        self.costs = dict.fromkeys(self.costs, 0)


def print_hooks(table: dict[str, dict[str, int]], n: int, overhead: int) -> None:
    table = {key: {name: max(0, ns - overhead * n) for name, ns in costs.items()} for key, costs in table.items()}
    names = list(next(iter(table.values())))
    keys = list(table)
    print(f"{'hook (CPU us/req)':<24} {'budget':>6} " + " ".join(f"{k[:13]:>13}" for k in keys))
    for name in names:
        budget = HOOK_BUDGET_US.get(name.rstrip("'"), DEFAULT_HOOK_BUDGET_US)
        cells = []
        for key in keys:
            us = table[key][name] / n / 1000
            cells.append(f"{us:>12.1f}{'!' if us > budget else ' '}")
        print(f"{name:<24} {budget:>6} " + " ".join(cells))
    print(f"{'all hooks':<24} {'':>6} " + " ".join(f"{sum(table[k].values()) / n / 1000:>12.1f} " for k in keys))
    print("(! = over budget)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--only", default="")
    parser.add_argument("--profile", default="", help="endpoint key to profile with cProfile")
    parser.add_argument("--callers", default="", help="with --profile: who calls the functions matching this")
    parser.add_argument("--sort", default="cumulative", help="cProfile sort order")
    parser.add_argument("--lines", type=int, default=60, help="cProfile lines shown")
    parser.add_argument("--database", default="", help="a PostgreSQL server URL: measured on a throwaway "
                                                         "database beside it")
    parser.add_argument("--hooks", action="store_true", help="print each hook's CPU cost per request")
    parser.add_argument("--id-token-alg", default="RS256", choices=("RS256", "ES256", "EdDSA"),
                        help="what the bench client's id_tokens (refresh, code) are signed with")
    args = parser.parse_args(argv)
    if args.database:
        from run import postgres_database

        with postgres_database(args.database) as url:
            return run(args, url)
    return run(args, f"sqlite:///{tempfile.mkdtemp()}/profile.db")


def run(args, database_url: str) -> int:
    """Set up the app on ``database_url`` and measure (``main``'s arguments)."""
    app, client, user_id, basic = set_up(database_url, args.id_token_alg)
    refresh, codes, verifier = make_feeds(app, client, user_id, args.n + 60)
    import logging
    # Alembic's env.py (initdb above) gives the root logger a stderr handler; a served worker
    # runs no migrations, so without this every request log line would be written twice.
    logging.root.handlers.clear()
    timer = HookTimer(app) if args.hooks else None
    http = app.test_client()
    status = http.post("/oauth/token", headers={"Authorization": basic},
                       data={"grant_type": "refresh_token", "refresh_token": refresh.pop()})
    bearer = status.get_json()["access_token"]
    form = "application/x-www-form-urlencoded"

    def post(body, auth=basic):
        return lambda: http.post("/oauth/token", headers={"Authorization": auth}, data=body, content_type=form)

    requests = {
        "discovery": lambda: http.get("/.well-known/openid-configuration"),
        "jwks": lambda: http.get("/.well-known/jwks.json"),
        "me": lambda: http.get("/api/me", headers={"Authorization": f"Bearer {bearer}"}),
        "introspection": lambda: http.post("/oauth/introspect", headers={"Authorization": basic},
                                           data=urlencode({"token": bearer, "token_type_hint": "access_token"}),
                                           content_type=form),
        "userinfo": lambda: http.get("/oauth/userinfo", headers={"Authorization": f"Bearer {bearer}"}),
        "client_credentials": post(urlencode({"grant_type": "client_credentials", "scope": "profile"})),
        "refresh": lambda: http.post("/oauth/token", headers={"Authorization": basic}, content_type=form,
                                     data=urlencode({"grant_type": "refresh_token",
                                                     "refresh_token": refresh.pop()})),
        "code": lambda: http.post("/oauth/token", headers={"Authorization": basic}, content_type=form,
                                  data=urlencode({"grant_type": "authorization_code", "code": codes.pop(),
                                                  "redirect_uri": "https://bench.example.com/callback",
                                                  "code_verifier": verifier})),
    }
    only = [k for k in args.only.split(",") if k] or list(requests)

    from ceiling import app as ceiling_app
    ceiling = ceiling_app.test_client()
    results = {"ceiling": measure(lambda: ceiling.get("/"), args.n, 200)}
    hooks = {}
    database_us = {}
    database_cpu = postgres_cpu if args.database else lambda: None
    for key in only:
        marks = {}

        def on_start():  # the warm-up stays out of the tables
            if timer is not None:
                timer.reset()
            marks["database"] = database_cpu()
        if key == args.profile:
            import cProfile
            import pstats
            profiler = cProfile.Profile()
            profiler.enable()
            results[key] = measure(requests[key], args.n, 200, on_start)
            profiler.disable()
            stats = pstats.Stats(profiler).strip_dirs()
            stats.sort_stats(args.sort).print_stats(args.lines)
            if args.callers:
                stats.print_callers(args.callers)
        else:
            results[key] = measure(requests[key], args.n, 200, on_start)
        if (after := database_cpu()) is not None:
            database_us[key] = (after - marks["database"]) / args.n * 1e6
        if timer is not None:
            hooks[key] = dict(timer.costs)
    base = results["ceiling"]
    print(f"{'endpoint':<20} {'CPU us/req':>10} {'ceiling/this':>12}"
          + (f" {'PostgreSQL CPU us/req':>22} {'ceiling/(both)':>14}" if database_us else ""))
    for key, value in results.items():
        line = f"{key:<20} {value:>10.0f} {base / value:>12.2f}"
        if key in database_us:
            line += f" {database_us[key]:>22.0f} {base / (value + database_us[key]):>14.2f}"
        print(line)
    if hooks:
        print()
        print_hooks(hooks, args.n, timer.overhead)
    return 0


def postgres_cpu() -> float | None:
    """CPU seconds this machine's PostgreSQL processes have used (/proc), or None when none run
    here. A backend that ends takes its time with it: compare readings over one connection."""
    total, found = 0, False
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # a process that ended meanwhile
        if text[text.index("(") + 1:text.rindex(")")] == "postgres":
            fields = text[text.rindex(")") + 2:].split()
            total += int(fields[11]) + int(fields[12])  # utime and stime (stat's fields 14 and 15)
            found = True
    return total / os.sysconf("SC_CLK_TCK") if found else None


def measure(send, n: int, expect: int, on_start=None) -> float:
    for _ in range(min(50, n // 10)):  # warm-up
        response = send()
        assert response.status_code == expect, (response.status_code, response.get_data(as_text=True))
    if on_start is not None:
        on_start()
    start = time.process_time()
    for _ in range(n):
        response = send()
        if response.status_code != expect:
            raise SystemExit(f"unexpected {response.status_code}: {response.get_data(as_text=True)}")
    return (time.process_time() - start) / n * 1e6


if __name__ == "__main__":
    sys.exit(main())
