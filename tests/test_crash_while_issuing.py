"""A server killed with SIGKILL in the middle of issuing tokens leaves nothing half-written:
every token a client received works after a restart, every token row comes from a spent code,
and a code nobody received tokens for is either still unused or useless."""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from support.flows import get_code
from website.models import AuthorizationCode, Token, db, hash_secret

ROOT = Path(__file__).resolve().parent.parent
CODES = 40


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(app) -> tuple[subprocess.Popen, str]:
    """Run the app with `flask run` (threaded) on a free port, on the test database."""
    port = free_port()
    env = {**os.environ, "DATABASE_URL": app.config["DATABASE_URL"], "SECRET_KEY": app.config["SECRET_KEY"],
           "KEY_ENCRYPTION_KEYS": app.config["KEY_ENCRYPTION_KEYS"],
           "OAUTH2_ISSUER": "http://127.0.0.1", "PYTHONDONTWRITEBYTECODE": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "app", "run", "--host", "127.0.0.1", "--port", str(port),
         "--with-threads", "--no-reload", "--no-debugger"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            requests.get(base + "/", timeout=1)
            return process, base
        except requests.ConnectionError:
            time.sleep(0.1)
    process.kill()
    raise AssertionError("the server did not start")


@pytest.fixture
def servers():
    started = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


def test_sigkill_during_issuance_leaves_nothing_half_written(app, test_client, auth, user, make_client, servers):
    client, secret = make_client()
    auth.login()
    codes = [get_code(test_client, client) for _ in range(CODES)]
    process, base = start_server(app)
    servers.append(process)

    received = {}  # code -> token response body
    lock = threading.Lock()
    enough = threading.Event()
    queue = list(codes)

    def hammer():
        with requests.Session() as session:
            while True:
                with lock:
                    if not queue:
                        return
                    code, verifier = queue.pop()
                try:
                    response = session.post(base + "/oauth/token", auth=(client.client_id, secret), timeout=10, data={
                        "grant_type": "authorization_code", "code": code, "code_verifier": verifier,
                        "redirect_uri": client.redirect_uris[0]})
                except requests.RequestException:
                    return  # the server died under us
                try:
                    body = response.json() if response.status_code == 200 else None
                except ValueError:
                    body = None  # the kill cut the body off: the client never got the token
                if body is not None:
                    with lock:
                        received[code] = body
                        if len(received) >= CODES // 3:
                            enough.set()

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    assert enough.wait(timeout=60), "the server issued too few tokens"
    os.kill(process.pid, signal.SIGKILL)
    for thread in threads:
        thread.join(timeout=30)
    process.wait(timeout=10)
    assert len(received) < CODES, "the kill came too late to catch requests in flight"

    with app.app_context():
        rows = db.session.scalars(select(Token)).all()
        code_rows = {row.code_hash: row for row in db.session.scalars(select(AuthorizationCode))}
        by_id = {row.id: row for row in code_rows.values()}
        stored_access = {row.access_token_hash for row in rows}
        # Every token a client received is stored: a response is only sent after the commit.
        for code, body in received.items():
            assert hash_secret(body["access_token"]) in stored_access
            assert code_rows[hash_secret(code)].used_at is not None
        # Every token row comes from a code that is marked used (claim and token commit together).
        for row in rows:
            assert row.authorization_code_id is not None
            assert by_id[row.authorization_code_id].used_at is not None
        spent_without_tokens = [c for c in code_rows.values() if c.used_at and not any(
            r.authorization_code_id == c.id for r in rows)]
        assert not spent_without_tokens, "a code was marked used without its token being stored"
        db.session.remove()

    process, base = start_server(app)
    servers.append(process)
    with requests.Session() as session:
        for body in received.values():
            me = session.get(base + "/api/me", headers={"Authorization": f"Bearer {body['access_token']}"})
            assert me.status_code == 200
        # Codes in flight at the kill: unused ones still work once; spent ones never again.
        for code, verifier in codes:
            if code in received:
                continue
            was_used = code_rows[hash_secret(code)].used_at is not None
            response = session.post(base + "/oauth/token", auth=(client.client_id, secret), data={
                "grant_type": "authorization_code", "code": code, "code_verifier": verifier,
                "redirect_uri": client.redirect_uris[0]})
            assert response.status_code == (400 if was_used else 200), response.text
