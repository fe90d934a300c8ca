"""Bearer checks on the driver (website/store/driver.py): no pool checkout, the column types'
conversions still applied, every check reads the database, and engine.dispose() closes the
driver's connections."""

from sqlalchemy import event
from support.factories import update_rows
from support.flows import bearer, exchange_code, login_and_get_code

from website.extensions import db
from website.models import Token, User
from website.store import driver


def _token(test_client, auth, make_client, scope="openid profile email"):
    client, secret = make_client(scope=scope)
    code, verifier = login_and_get_code(test_client, auth, client, scope=scope)
    return exchange_code(test_client, client, secret, code, verifier).json["access_token"]


def test_bearer_checks_take_no_connection_from_the_pool(app, test_client, auth, user, make_client):
    token = _token(test_client, auth, make_client)
    assert test_client.get("/api/me", headers=bearer(token)).status_code == 200  # connects once

    def check():
        for _ in range(5):
            assert test_client.get("/api/me", headers=bearer(token)).status_code == 200

    assert _checkouts(app, check) == []


def _checkouts(app, requests) -> list:
    """The pool checkouts while ``requests()`` runs."""
    checkouts = []

    def count(*args):
        checkouts.append(1)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "checkout", count)
    try:
        requests()
    finally:
        event.remove(engine, "checkout", count)
    return checkouts


def test_introspection_by_a_cached_client_takes_no_connection_from_the_pool(app, test_client, make_client):
    """The token on the driver, the client from the cache, its throttle lock on the driver:
    a request that writes nothing opens no ORM session."""
    client, secret = make_client(grant_types=["client_credentials"], token_endpoint_auth_method="client_secret_post")
    credentials = {"client_id": client.client_id, "client_secret": secret}
    token = test_client.post("/oauth/token", data={"grant_type": "client_credentials", **credentials})
    body = {"token": token.json["access_token"], **credentials}
    assert test_client.post("/oauth/introspect", data=body).json["active"] is True  # caches the client

    def introspect():
        for _ in range(5):
            assert test_client.post("/oauth/introspect", data=body).json["active"] is True

    assert _checkouts(app, introspect) == []


def test_column_types_apply_and_revocation_is_seen_at_once(app, test_client, auth, user, make_client):
    update_rows(app, User, {"email_verified": True}, User.id == user.id)
    token = _token(test_client, auth, make_client)
    claims = test_client.get("/userinfo", headers=bearer(token)).json
    assert claims["email_verified"] is True  # SQLite's 1, converted by the Boolean type
    update_rows(app, Token, {"access_token_revoked_at": 1})
    assert test_client.get("/api/me", headers=bearer(token)).status_code == 401


def test_dispose_closes_the_driver_connections(app, test_client, auth, user, make_client):
    token = _token(test_client, auth, make_client)
    assert test_client.get("/api/me", headers=bearer(token)).status_code == 200
    with app.app_context():
        engine = db.engine
        (state,) = [s for e, s in driver._STATE.items() if e is engine]
        idle = list(state.idle)
        assert idle
        engine.dispose()
    assert not [e for e in driver._STATE if e is engine]
    assert all(_closed(connection) for connection in idle)
    assert test_client.get("/api/me", headers=bearer(token)).status_code == 200


def _closed(connection) -> bool:
    try:
        connection.cursor().execute("SELECT 1")
    except Exception:  # noqa: BLE001 - sqlite3.ProgrammingError: closed
        return True
    return False
