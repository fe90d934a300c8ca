"""RFC 9700 §4.5 / RFC 6749 §4.1.2 under concurrency: against a live multi-threaded server,
simultaneous redemptions of one code or one refresh token succeed exactly once, and
concurrent issuance loses nothing."""

import threading
import time

import pytest
import requests
from sqlalchemy import func, select

from support.flows import get_code, redeem
from website.models import Token, db

THREADS = 16


def fire(count: int, send) -> list:
    """Run ``send()`` in ``count`` threads lined up on a barrier; return the responses."""
    barrier = threading.Barrier(count)
    results = [None] * count

    def run(i):
        with requests.Session() as session:
            barrier.wait()
            try:
                results[i] = send(session)
            except Exception as error:  # noqa: BLE001 - reported by the assertions
                results[i] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


def settle(app) -> None:
    """Wait until the server's threads have handed their connections back, so none is left
    open when the test's engine is disposed (the response can reach us first)."""
    with app.app_context():
        for _ in range(100):
            if db.engine.pool.checkedout() == 0:
                return
            time.sleep(0.05)


def statuses(results) -> list:
    return sorted(r.status_code if isinstance(r, requests.Response) else repr(r) for r in results)


@pytest.fixture
def signed_in(auth, user):
    auth.login()
    return user


@pytest.mark.parametrize("public", [False, True])
def test_simultaneous_redemptions_of_one_code_yield_one_token_response(
        app, live_server, test_client, signed_in, make_client, public):
    client, secret = make_client(token_endpoint_auth_method="none" if public else "client_secret_basic")
    code, verifier = get_code(test_client, client)
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": client.redirect_uris[0],
            "code_verifier": verifier}
    if public:
        data["client_id"] = client.client_id
    basic = None if public else (client.client_id, secret)
    results = fire(THREADS, lambda s: s.post(f"{live_server}/oauth/token", data=data, auth=basic, timeout=60))
    settle(app)
    assert statuses(results) == [200] + [400] * (THREADS - 1), statuses(results)
    assert all(r.json()["error"] == "invalid_grant" for r in results if r.status_code == 400)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Token)) == 1


def test_simultaneous_uses_of_one_refresh_token_yield_one_new_pair(
        app, live_server, test_client, signed_in, make_client):
    client, _ = make_client(token_endpoint_auth_method="none")
    code, verifier = get_code(test_client, client)
    tokens = redeem(test_client, client, code, verifier).json
    data = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": client.client_id}
    results = fire(THREADS, lambda s: s.post(f"{live_server}/oauth/token", data=data, timeout=60))
    settle(app)
    assert statuses(results) == [200] + [400] * (THREADS - 1), statuses(results)
    winner = next(r for r in results if r.status_code == 200).json()
    assert winner["refresh_token"] != tokens["refresh_token"]
    with app.app_context():
        rows = db.session.scalars(select(Token).order_by(Token.id)).all()
        assert len(rows) == 2  # the original and exactly one rotated pair
        assert rows[0].rotated_at and rows[0].refresh_token_revoked_at
        assert len({row.family_id for row in rows}) == 1


def test_concurrent_issuance_loses_nothing(app, live_server, make_client):
    client, secret = make_client(grant_types=["client_credentials"], redirect_uris=[])
    count = 50
    results = fire(count, lambda s: s.post(f"{live_server}/oauth/token", auth=(client.client_id, secret),
                                           data={"grant_type": "client_credentials", "scope": "profile"},
                                           timeout=60))
    assert statuses(results) == [200] * count, statuses(results)
    issued = {r.json()["access_token"] for r in results}
    assert len(issued) == count
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Token)) == count
    # Every issued token works.
    with requests.Session() as session:
        for access_token in list(issued)[:10]:
            me = session.get(f"{live_server}/api/me", headers={"Authorization": f"Bearer {access_token}"})
            assert me.status_code == 403  # a client-only token: valid, but not for a user
            assert me.json()["error"] == "invalid_token"
    settle(app)
