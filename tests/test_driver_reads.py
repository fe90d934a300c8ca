"""Bearer checks and client credentials tokens on the driver (website/store/driver.py): no
pool checkout, the column types' conversions and defaults still applied, every check reads the
database, a token and its audit event written together or not at all, and engine.dispose()
closes the driver's connections."""

from datetime import datetime

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.exc import IntegrityError
from support.factories import update_rows
from support.flows import bearer, exchange_code, login_and_get_code, refresh

from website.extensions import db
from website.models import AuditEvent, Token, User
from website.models.base import hash_secret
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


def test_client_credentials_by_a_cached_client_takes_no_connection_from_the_pool(app, test_client, make_client):
    """The token and its audit event go to the driver in one transaction, with the defaults
    and conversions the ORM would apply."""
    client, secret = make_client(grant_types=["client_credentials"], token_endpoint_auth_method="client_secret_post",
                                 scope="profile")
    body = {"grant_type": "client_credentials", "client_id": client.client_id, "client_secret": secret}
    for _ in range(2):  # caches the client, then opens the driver's connection
        assert test_client.post("/oauth/token", data=body).status_code == 200
    tokens = []

    def issue():
        for _ in range(3):
            response = test_client.post("/oauth/token", data=body)
            assert response.status_code == 200, response.json
            tokens.append(response.json["access_token"])

    assert _checkouts(app, issue) == []
    with app.app_context():
        row = db.session.scalar(select(Token).where(Token.access_token_hash == hash_secret(tokens[-1])))
        assert (row.client_id, row.token_type, row.scope, row.access_token_revoked_at) == (
            client.client_id, "Bearer", "profile", 0)
        assert row.expires_at == row.issued_at + row.expires_in
        events = db.session.scalars(select(AuditEvent).where(AuditEvent.event == "token_issued")
                                    .order_by(AuditEvent.id)).all()
        assert len(events) == 5
        assert isinstance(events[-1].created_at, datetime)  # the Python default, converted back
        assert events[-1].detail == {"grant_type": "client_credentials", "scope": "profile",
                                     "family_id": row.family_id, "token_type": "Bearer"}
        assert events[-1].client_id == client.client_id
    introspected = test_client.post("/oauth/introspect", data={**body, "token": tokens[-1]}).json
    assert introspected["active"] is True


def test_a_token_and_its_event_are_written_together_or_not_at_all(app, make_client):
    """A failed row takes its token with it, and costs only its own connection: a refused
    INSERT is not a disconnect, so the other idle connections stay."""
    client, _ = make_client(grant_types=["client_credentials"])
    token = {"client_id": client.client_id, "access_token_hash": hash_secret("never issued"),
             "expires_at": 2**31 - 1, "family_id": "f" * 32}
    with app.test_request_context():
        before = db.session.scalar(select(func.count()).select_from(Token))
        db.session.rollback()
        driver.insert_rows(((Token.__table__, token), (AuditEvent.__table__, {"event": "token_issued"})))
        assert db.session.scalar(select(func.count()).select_from(Token)) == before + 1
        db.session.rollback()
        state = driver._connections(db.engine)
        state.idle.append(state.connect())  # a second idle connection
        assert len(state.idle) == 2
        other = {**token, "access_token_hash": hash_secret("never issued either")}
        with pytest.raises(IntegrityError):
            driver.insert_rows(((Token.__table__, other), (AuditEvent.__table__, {"event": None})))
        assert db.session.scalar(select(func.count()).select_from(Token)) == before + 1
        assert len(state.idle) == 1


@pytest.fixture
def sent(app, monkeypatch):
    """On PostgreSQL, the statements psycopg is asked to run (a transaction block as BEGIN)."""
    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            pytest.skip("PostgreSQL's statements (SQLite runs in this process: no round trips)")
    import psycopg

    statements = []
    execute, transaction = psycopg.Cursor.execute, psycopg.Connection.transaction

    def recorded_execute(cursor, query, *args, **kwargs):
        statements.append(str(query))
        return execute(cursor, query, *args, **kwargs)

    def recorded_transaction(connection, *args, **kwargs):
        statements.append("BEGIN")
        return transaction(connection, *args, **kwargs)

    monkeypatch.setattr(psycopg.Cursor, "execute", recorded_execute)
    monkeypatch.setattr(psycopg.Connection, "transaction", recorded_transaction)
    return statements


def test_on_postgresql_a_token_and_its_event_are_one_statement(app, make_client, sent):
    """One round trip, in autocommit: no BEGIN and COMMIT of their own around two INSERTs."""
    client, _ = make_client(grant_types=["client_credentials"])
    token = {"client_id": client.client_id, "access_token_hash": hash_secret("one statement"),
             "expires_at": 2**31 - 1, "family_id": "f" * 32}
    with app.test_request_context():
        sent.clear()
        driver.insert_rows(((Token.__table__, token), (AuditEvent.__table__, {"event": "token_issued"})))
        assert len(sent) == 1 and sent[0].startswith("WITH"), sent
        written = Token.access_token_hash == hash_secret("one statement")
        assert db.session.scalar(select(func.count()).select_from(Token).where(written)) == 1


def test_on_postgresql_a_refresh_writes_its_token_and_event_in_one_statement(
        app, test_client, auth, user, make_client, sent):
    """In the refresh's own transaction (the old token is spent in it too): one INSERT statement."""
    client, secret = make_client()
    code, verifier = login_and_get_code(test_client, auth, client)
    first = exchange_code(test_client, client, secret, code, verifier).json
    sent.clear()
    again = refresh(test_client, client, first["refresh_token"], secret)
    assert again.status_code == 200, again.json
    inserts = [statement for statement in sent if "INSERT INTO" in statement]
    assert len(inserts) == 1 and inserts[0].startswith("WITH"), inserts
    assert "INSERT INTO oauth2_tokens" in inserts[0] and "INSERT INTO audit_events" in inserts[0]
    with app.app_context():
        events = db.session.scalars(select(AuditEvent).where(AuditEvent.event == "token_issued")).all()
        assert [e.detail["grant_type"] for e in events] == ["authorization_code", "refresh_token"]
    assert test_client.get("/api/me", headers=bearer(again.json["access_token"])).status_code == 200


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
