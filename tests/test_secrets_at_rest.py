"""Secrets at rest are hashes: no plain secret, token, code or password in any row."""

import sqlalchemy as sa
from support.factories import PASSWORD
from support.flows import approve, authorize_url, exchange_code, login_and_get_code
from support.pages import query_params

from website.oauth2 import keys
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
    waiting_code, _ = login_and_get_code(test_client, auth, client)
    code, verifier = login_and_get_code(test_client, auth, client)
    secrets += [waiting_code, code]
    body = exchange_code(test_client, client, secret, code, verifier).json
    secrets += [body["access_token"], body["refresh_token"]]
    refreshed = test_client.post("/oauth/token", auth=(client.client_id, secret), data={
        "grant_type": "refresh_token", "refresh_token": body["refresh_token"]}).json
    secrets += [refreshed["access_token"], refreshed["refresh_token"]]
    password_body = test_client.post("/oauth/token", auth=(client.client_id, secret), data={
        "grant_type": "password", "username": "alice", "password": PASSWORD}).json
    secrets += [password_body["access_token"], password_body["refresh_token"]]
    implicit = approve(test_client, authorize_url(client, response_type="token"))
    secrets.append(query_params(implicit.headers["Location"])["access_token"])
    cli = runner.invoke(args=["create-client", "--name", "CLI", "--grant-type", "client_credentials"])
    secrets.append(cli.output.split("client_secret: ", 1)[1].strip())
    assert len(set(secrets)) == len(secrets) == 12

    stored = database_text(app)
    for value in secrets:
        assert value not in stored



def test_no_private_signing_key_is_stored_in_plain(app, test_client, auth, runner, user, make_client):
    """The private JWKs (current and retired) are Fernet ciphertext: no PEM, no JWK member."""
    assert runner.invoke(args=["initdb"]).exit_code == 0
    assert runner.invoke(args=["rotate-keys"]).exit_code == 0  # a retired key and a current one
    client, secret = make_client()
    code, verifier = login_and_get_code(test_client, auth, client, scope="openid profile")
    assert "id_token" in exchange_code(test_client, client, secret, code, verifier).json
    with app.app_context():
        private = keys.key_ring().current().signing_key
        members = {name: private.as_dict(private=True)[name] for name in ("d", "p", "q", "dp", "dq", "qi")}
        pem = private.as_pem(private=True).decode()

    stored = database_text(app)
    assert "PRIVATE KEY" not in stored
    assert pem.splitlines()[1] not in stored
    for name, value in members.items():
        assert value not in stored, name
    assert "'d':" not in stored and '"d":' not in stored
