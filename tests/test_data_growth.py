"""Data growth: every hot lookup is served by an index (checked in the database's query plan),
and `flask purge-expired` deletes exactly the dead codes and tokens, in batches.

Timings belong to bench/growth.py, not here.
"""

import time
import uuid

import pytest
import sqlalchemy as sa
from sqlalchemy import select

from website.cli import database as cli_database
from website.models import AuthorizationCode, OAuth2Client, Token, User, db

H = "0" * 64  # a hash-shaped literal
HOT_LOOKUPS = {
    "token by access token hash": select(Token).where(Token.access_token_hash == H),
    "token by refresh token hash": select(Token).where(Token.refresh_token_hash == H),
    "code by code hash": select(AuthorizationCode).where(AuthorizationCode.code_hash == H),
    "client by client_id": select(OAuth2Client).where(OAuth2Client.client_id == "abc"),
    "clients by owner": select(OAuth2Client).where(OAuth2Client.owner_id == 1),
    "user by username": select(User).where(User.username == "alice"),
    "tokens of a family (revocation)": select(Token.id).where(Token.family_id == "f"),
    "tokens from a code (code reuse)": select(Token.family_id).where(Token.authorization_code_id == 1),
    "tokens of a user": select(Token.id).where(Token.user_id == 1),
    "tokens of a client": select(Token.id).where(Token.client_id == "abc"),
    "codes of a user": select(AuthorizationCode.id).where(AuthorizationCode.user_id == 1),
    "codes of a client": select(AuthorizationCode.id).where(AuthorizationCode.client_id == "abc"),
    "expired tokens (purge)": select(Token.id).where(Token.expires_at <= 1),
    "expired codes (purge)": select(AuthorizationCode.id).where(AuthorizationCode.expires_at <= 1),
}


def query_plan(conn, statement) -> str:
    """The database's plan for ``statement``, as text."""
    sql = str(statement.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
    if conn.dialect.name == "postgresql":
        # On near-empty tables a sequential scan is cheapest; forbidding it shows whether an
        # index could serve the query at all (without one, PostgreSQL still has to seq-scan).
        conn.execute(sa.text("SET LOCAL enable_seqscan = off"))
        return "\n".join(conn.scalars(sa.text("EXPLAIN " + sql)))
    return "\n".join(row[3] for row in conn.execute(sa.text("EXPLAIN QUERY PLAN " + sql)))


@pytest.mark.parametrize("name", list(HOT_LOOKUPS))
def test_hot_lookup_uses_an_index(app, name):
    with app.app_context(), db.engine.connect() as conn, conn.begin():
        plan = query_plan(conn, HOT_LOOKUPS[name])
        dialect = conn.dialect.name
    if dialect == "postgresql":
        assert "Seq Scan" not in plan and "Index" in plan, plan
    else:
        assert "USING" in plan and "INDEX" in plan and not plan.startswith("SCAN"), plan


def test_purge_expired_deletes_exactly_the_dead_rows_in_batches(app, runner, user, monkeypatch):
    # Small batches so 20,000 rows take many; the command must carry on to the end.
    monkeypatch.setattr(cli_database, "PURGE_BATCH_SIZE", 1500)
    stamp = int(time.time())
    past, future = stamp - 10, stamp + 3600
    token_kinds = {
        # name: (access expires_at, has refresh, refresh expires_at, refresh revoked_at, dead?)
        "access expired, no refresh": (past, False, None, 0, True),
        "access expired, refresh revoked": (past, True, future, past, True),
        "access expired, refresh expired": (past, True, past, 0, True),
        "access expired, refresh live": (past, True, future, 0, False),
        "access expired, refresh without expiry": (past, True, None, 0, False),
        "access live": (future, False, None, 0, False),
        "access live, access revoked": (future, True, future, 0, False),
    }
    tokens, codes = [], []
    for i in range(17_500):
        kind = list(token_kinds)[i % len(token_kinds)]
        expires_at, has_refresh, refresh_expires, refresh_revoked, _ = token_kinds[kind]
        tokens.append({
            "client_id": "c", "user_id": user.id, "token_type": "Bearer", "scope": "",
            "access_token_hash": f"a{i:063d}", "refresh_token_hash": f"r{i:063d}" if has_refresh else None,
            "issued_at": stamp, "expires_in": 3600, "expires_at": expires_at,
            "refresh_token_expires_at": refresh_expires, "access_token_revoked_at": 0,
            "refresh_token_revoked_at": refresh_revoked, "family_id": uuid.uuid4().hex, "note": kind,
        })
    for i in range(2_500):
        codes.append({"code_hash": f"c{i:063d}", "client_id": "c", "user_id": user.id, "redirect_uri": "",
                      "response_type": "code", "scope": "", "auth_time": stamp,
                      "expires_at": past if i % 3 else future, "used_at": stamp if i % 5 == 0 else None})
    live_tokens = {t["access_token_hash"] for t in tokens if not token_kinds[t["note"]][4]}
    live_codes = {c["code_hash"] for c in codes if c["expires_at"] == future}
    with app.app_context(), db.engine.begin() as conn:
        conn.execute(sa.insert(Token.__table__), [{k: v for k, v in t.items() if k != "note"} for t in tokens])
        conn.execute(sa.insert(AuthorizationCode.__table__), codes)

    result = runner.invoke(args=["purge-expired"])

    assert result.exit_code == 0, result.output
    expected = (f"Deleted {len(codes) - len(live_codes)} expired authorization codes and "
                f"{len(tokens) - len(live_tokens)} expired tokens.")
    assert result.output.strip() == expected
    with app.app_context():
        assert set(db.session.scalars(select(Token.access_token_hash))) == live_tokens
        assert set(db.session.scalars(select(AuthorizationCode.code_hash))) == live_codes
    again = runner.invoke(args=["purge-expired"])
    assert again.output.strip() == "Deleted 0 expired authorization codes and 0 expired tokens."
