"""What each performance change bought, measured alone: bench/cpu.py (CPU microseconds per
request, in process) run from the change's commit and from its parent, alternately, in one
run of the machine.

    python bench/changes.py [--n 1000] [--database URL] [--rounds 2] [COMMIT ...]

Without commits it measures the changes listed in CHANGES (``BASE..COMMIT`` measures a
change made of several commits against BASE). Each tree is a temporary
``git worktree`` run with this virtualenv's Python; its request log goes to /dev/null.
Prints one markdown row per change and endpoint: parent, change, and parent/change (above 1
is faster). CPU time holds on a busy machine better than wrk's rates; compare rows, not runs.
With ``--database``, a tree whose cpu.py reads the PostgreSQL server's CPU too (249b11f on)
counts both: the app's and the server's microseconds per request.
"""

import argparse
import re
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from run import postgres_database

ROOT = Path(__file__).resolve().parent.parent

#: commit -> (what changed, the endpoints it is about). Commits on their branches: each is
#: measured against its own parent, so a change is seen alone.
CHANGES = {
    "4e8c28a": ("discovery and JWKS as prebuilt bytes with an ETag", "discovery,jwks"),
    "5fe661f": ("no cookie work for a request without a Cookie header", "discovery,me,client_credentials"),
    "2a6c73d": ("request log written preformatted", "discovery,me,client_credentials"),
    "1bcc88d": ("JSON protocol endpoints read no session", "me,introspection,client_credentials"),
    # Its first commit answered 500 (result types), the next one fixed it: measured together.
    "9dba0c8^..1dd553a": ("bearer check on one Core statement, no ORM", "me,introspection,userinfo"),
    "17b392e": ("no pool_pre_ping on PostgreSQL (measure with --database)", "me,jwks"),
    "33e8c67": ("ES256 for JWT access tokens (now ACCESS_TOKEN_SIGNING_ALG)", "client_credentials"),
    "5ec73bd": ("discovery and JWKS answered by the WSGI front", "discovery,jwks"),
    "064a303": ("bearer check on the driver (store/driver.py)", "me,introspection,userinfo"),
    "e405aec": ("roles claim in one prebuilt statement", "userinfo,code"),
    "0645bc4": ("clients and APIs from an in-process cache (version row)", "client_credentials,introspection"),
    "787ebb4": ("userinfo's client from the client cache", "userinfo"),
    "45c4ad7": ("which clients define no roles, from the cache", "userinfo,refresh,code"),
    "1069377": ("/api/me and plain UserInfo answered by the front", "me,userinfo"),
    "5ebcad7": ("client throttle lock read on the driver", "introspection,client_credentials"),
    "27b7d13": ("metrics: each label set's children kept", "me,discovery"),
    "e548f7a": ("request ids from os.urandom", "me,discovery"),
    "5a5a804": ("driver rows convert only the converting columns", "me,introspection"),
    "3b882f0": ("client credentials token and audit event written on the driver", "client_credentials"),
    "9afb50f": ("may_use_client as one prebuilt statement", "refresh,code"),
    "82b6dfe": ("refresh token spent by one prebuilt Core UPDATE", "refresh"),
    "34a9b9d": ("client cache read without creating a session", "userinfo,introspection,client_credentials"),
    "4a96ece": ("introspection answered below Flask by the front", "introspection"),
    "0fb2732": ("introspection: token and throttle lock in one statement", "introspection"),
    "4dd9d60": ("/api/me body without a Response object", "me"),
    "031b864": ("client credentials' token and event as one PostgreSQL statement (--database)",
                "client_credentials"),
    "0b5172f": ("refresh's and code's token and event as one PostgreSQL statement (--database)",
                "refresh,code"),
}

#: cpu.py's row: endpoint, the app's CPU, its ratio, and with --database the server's CPU and a ratio.
_ROW = re.compile(r"^(\w+)\s+(\d+)\s+[\d.]+(?:\s+(\d+)\s+[\d.]+)?$")


def cpu_costs(tree: Path, only: str, n: int, database: str) -> dict[str, int]:
    command = [sys.executable, "bench/cpu.py", "--n", str(n), "--only", only]
    if database:
        with postgres_database(database) as url:  # run.py's throwaway database
            result = subprocess.run([*command, "--database", url], cwd=tree, capture_output=True, text=True,
                                    timeout=1800)
    else:
        result = subprocess.run(command, cwd=tree, capture_output=True, text=True, timeout=1800)
    if result.returncode != 0:
        raise SystemExit(f"bench/cpu.py failed in {tree}: {result.stderr.strip().splitlines()[-1:]}")
    rows = (_ROW.match(line.strip()) for line in result.stdout.splitlines())
    return {m[1]: int(m[2]) + int(m[3] or 0) for m in rows if m}


def short(revision: str) -> str:
    return subprocess.run(["git", "rev-parse", "--short", revision], cwd=ROOT, check=True,
                          capture_output=True, text=True).stdout.strip()


def worktree(commit: str, into: Path) -> Path:
    path = into / commit
    if path.exists():  # one change's parent is often the change before it
        return path
    subprocess.run(["git", "worktree", "add", "--detach", "-f", str(path), commit], cwd=ROOT, check=True,
                   capture_output=True)
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("commits", nargs="*")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2, help="alternate parent and change this many times; "
                                                             "the lowest cost of each is kept")
    parser.add_argument("--database", default="")
    args = parser.parse_args(argv)
    # A stopped run still removes its worktrees (the finally below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    changes = {commit: CHANGES.get(commit, (commit, "me,client_credentials")) for commit in args.commits or CHANGES}
    print("| change | commit | endpoint | parent us/req | change us/req | parent/change |")
    print("|---|---|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as scratch:
        trees = []
        try:
            for commit, (what, only) in changes.items():
                base, _, tip = commit.rpartition("..")
                parent, tip = (short(base or f"{tip}^"), short(tip))
                before_tree, after_tree = worktree(parent, Path(scratch)), worktree(tip, Path(scratch))
                trees += [tree for tree in (before_tree, after_tree) if tree not in trees]
                before, after = {}, {}
                for _ in range(args.rounds):
                    for tree, costs in ((before_tree, before), (after_tree, after)):
                        for key, value in cpu_costs(tree, only, args.n, args.database).items():
                            costs[key] = min(costs.get(key, value), value)
                for key in only.split(","):
                    if key in before and key in after:
                        print(f"| {what} | {commit} | {key} | {before[key]} | {after[key]} | "
                              f"{before[key] / after[key]:.2f} |", flush=True)
        finally:
            for tree in trees:
                subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, capture_output=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
