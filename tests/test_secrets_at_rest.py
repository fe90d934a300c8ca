"""Secrets at rest are hashes: no plain secret, token, code or password in any row."""

import sqlalchemy as sa
from conftest import PASSWORD, approve, authorize_url, exchange_code, get_code, query_params

from website.models import db


def database_text(app) -> str:
    """Every value of every row of every table, as one string."""
    parts = []
    with app.app_context(), db.engine.connect() as connection:
        for table in db.metadata.sorted_tables:
            for row in connection.execute(sa.select(table)):
                parts.extend(str(value) for value in row)
    return "\n".join(parts)


def test_no_plain_secret_is_stored(app, test_client, auth, runner, user, make_client):
    secrets = [PASSWORD]
    client, secret = make_client(grant_types=["authorization_code", "refresh_token", "implicit", "password"])
    secrets.append(secret)
    # A code that is still waiting to be redeemed, and one that was.
    waiting_code, _ = get_code(test_client, auth, client)
    code, verifier = get_code(test_client, auth, client)
    secrets += [waiting_code, code]
    body = exchange_code(test_client, client, secret, code, verifier).json
    secrets += [body["access_token"], body["refresh_token"]]
    refreshed = test_client.post("/oauth/token", auth=(client.client_id, secret), data={
        "grant_type": "refresh_token", "refresh_token": body["refresh_token"]}).json
    secrets += [refreshed["access_token"], refreshed["refresh_token"]]
    password_body = test_client.post("/oauth/token", auth=(client.client_id, secret), data={
        "grant_type": "password", "username": "alice", "password": PASSWORD}).json
    secrets += [password_body["access_token"], password_body["refresh_token"]]
    implicit = approve(test_client, auth, authorize_url(client, response_type="token"))
    secrets.append(query_params(implicit.headers["Location"])["access_token"])
    cli = runner.invoke(args=["create-client", "--name", "CLI", "--grant-type", "client_credentials"])
    secrets.append(cli.output.split("client_secret: ", 1)[1].strip())
    assert len(set(secrets)) == len(secrets) == 12

    stored = database_text(app)
    for value in secrets:
        assert value not in stored

