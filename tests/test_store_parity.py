"""The two read paths of the token store agree: the ORM row (used to change a token) and the
plain record (used by bearer checks and introspection) give the same answers."""

from support.flows import exchange_code, login_and_get_code

from website.models import Token, TokenState, db
from website.store.tokens import (
    TokenRecord,
    query_token_by_access_token,
    query_token_by_refresh_token,
    read_token_by_access_token,
    read_token_by_refresh_token,
)

#: Every TokenState method that takes no argument.
STATE_METHODS = ("get_scope", "get_expires_in", "get_expires_at", "is_expired", "is_revoked",
                 "is_refresh_token_active")


def _compare(row: Token, record: TokenRecord, client) -> None:
    for column in Token.__table__.columns:
        assert getattr(record, column.key) == getattr(row, column.key), column.key
    for method in STATE_METHODS:
        assert getattr(record, method)() == getattr(row, method)(), method
    assert record.check_client(client) == row.check_client(client)
    assert record.get_user().get_user_id() == row.get_user().get_user_id()
    for name in ("username", "email", "name", "email_verified"):
        assert getattr(record.get_user(), name) == getattr(row.get_user(), name), name
    assert record.get_client().client_id == row.get_client().client_id


def test_records_and_rows_agree_on_every_token_state(app, test_client, auth, user, make_client):
    client, secret = make_client()
    code, verifier = login_and_get_code(test_client, auth, client, scope="openid profile")
    tokens = exchange_code(test_client, client, secret, code, verifier).json
    with app.app_context():
        loaded_client = db.session.merge(client)
        _compare(query_token_by_access_token(tokens["access_token"]),
                 read_token_by_access_token(tokens["access_token"]), loaded_client)
        _compare(query_token_by_refresh_token(tokens["refresh_token"]),
                 read_token_by_refresh_token(tokens["refresh_token"]), loaded_client)
    # A revoked, expired token: every state method still agrees.
    response = test_client.post("/oauth/revoke", data={"token": tokens["refresh_token"]},
                                auth=(client.client_id, secret))
    assert response.status_code == 200
    with app.app_context():
        db.session.execute(db.update(Token).values(expires_at=1, refresh_token_expires_at=1))
        db.session.commit()
        row = query_token_by_access_token(tokens["access_token"])
        assert row.is_revoked() and row.is_expired() and not row.is_refresh_token_active()
        _compare(row, read_token_by_access_token(tokens["access_token"]), db.session.merge(client))


def test_both_share_one_definition_of_token_state():
    for method in STATE_METHODS + ("check_client", "get_user"):
        assert getattr(Token, method) is getattr(TokenState, method)
        assert getattr(TokenRecord, method) is getattr(TokenState, method)
