"""In-process CPU cost per request of the benchmarked endpoints (Flask test client).

    python bench/cpu.py [--n 2000] [--only me,jwks] [--profile KEY] [--database URL] 2>/dev/null

Prints CPU microseconds per request (time.process_time over a loop of requests), for the
same requests bench/run.py sends, and the bare-Flask ceiling's cost for comparison. The app
writes its request log line to stderr as in production (hence ``2>/dev/null``). Unlike
wrk numbers, these hold on a busy machine; use them to compare two versions of the code.
"""

import argparse
import base64
import hashlib
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


def set_up(database_url: str):
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
        "--grant-type", "client_credentials"])
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--only", default="")
    parser.add_argument("--profile", default="", help="endpoint key to profile with cProfile")
    parser.add_argument("--sort", default="cumulative", help="cProfile sort order")
    parser.add_argument("--lines", type=int, default=60, help="cProfile lines shown")
    parser.add_argument("--database", default="")
    args = parser.parse_args(argv)

    tmp = tempfile.mkdtemp()
    database_url = args.database or f"sqlite:///{tmp}/profile.db"
    app, client, user_id, basic = set_up(database_url)
    refresh, codes, verifier = make_feeds(app, client, user_id, args.n + 60)
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
    for key in only:
        if key == args.profile:
            import cProfile
            import pstats
            profiler = cProfile.Profile()
            profiler.enable()
            results[key] = measure(requests[key], args.n, 200)
            profiler.disable()
            stats = pstats.Stats(profiler).strip_dirs()
            stats.sort_stats(args.sort).print_stats(args.lines)
        else:
            results[key] = measure(requests[key], args.n, 200)
    base = results["ceiling"]
    print(f"{'endpoint':<20} {'CPU us/req':>10} {'ceiling/this':>12}")
    for key, value in results.items():
        print(f"{key:<20} {value:>10.0f} {base / value:>12.2f}")
    return 0


def measure(send, n: int, expect: int) -> float:
    for _ in range(min(50, n // 10)):  # warm-up
        response = send()
        assert response.status_code == expect, (response.status_code, response.get_data(as_text=True))
    start = time.process_time()
    for _ in range(n):
        response = send()
        if response.status_code != expect:
            raise SystemExit(f"unexpected {response.status_code}: {response.get_data(as_text=True)}")
    return (time.process_time() - start) / n * 1e6


if __name__ == "__main__":
    sys.exit(main())
