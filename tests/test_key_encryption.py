"""An operator keeps the private signing keys encrypted at rest: KEY_ENCRYPTION_KEYS (Fernet keys,
the first encrypts, all decrypt), `flask rotate-key-encryption-key` to move to a new key, a clear
one-line refusal to start with a wrong key, and a generated key in the instance folder when
nothing is configured."""

import json
import logging
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import jwt
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select
from support.factories import TEST_KEY_ENCRYPTION_KEY
from support.flows import exchange_code, login_and_get_code
from support.pages import AuthActions

from website import create_app
from website.models import SigningKey, db

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def app_with_keys(app_config, keys: str):
    """Another instance on the same database, with its own KEY_ENCRYPTION_KEYS."""
    other = create_app({**app_config, "KEY_ENCRYPTION_KEYS": keys})
    try:
        yield other
    finally:
        with other.app_context():
            db.session.remove()
            db.engine.dispose()


def id_token_from(app, make_client_result) -> str:
    """Sign in as alice on ``app`` and run the code flow for an id_token."""
    client, secret = make_client_result
    test_client = app.test_client()
    code, verifier = login_and_get_code(test_client, AuthActions(test_client), client, scope="openid profile")
    response = exchange_code(test_client, client, secret, code, verifier)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.json["id_token"]


def verify(app, id_token: str, client) -> dict:
    """Verify an id_token against the JWKS ``app`` publishes."""
    jwks = app.test_client().get("/.well-known/jwks.json").json
    key = jwt.PyJWKSet.from_dict(jwks)[jwt.get_unverified_header(id_token)["kid"]]
    return jwt.decode(id_token, key, algorithms=["RS256"], audience=client.client_id,
                      issuer=app.config["OAUTH2_ISSUER"])


def stored_ciphertexts(app) -> list[str]:
    with app.app_context():
        return db.session.scalars(select(SigningKey.private_key_encrypted)
                                  .where(SigningKey.private_key_encrypted.is_not(None))).all()


def test_the_key_encryption_key_is_rotated_without_losing_a_token(app, app_config, runner, user, make_client):
    assert runner.invoke(args=["initdb"]).exit_code == 0
    registered = make_client()
    client = registered[0]
    old_token = id_token_from(app, registered)
    old_kid = jwt.get_unverified_header(old_token)["kid"]
    (before,) = stored_ciphertexts(app)

    new_key = Fernet.generate_key().decode()
    # 1. The new key goes first, the old one stays to decrypt; 2. the command re-encrypts.
    with app_with_keys(app_config, f"{new_key}, {TEST_KEY_ENCRYPTION_KEY}") as both:
        result = both.test_cli_runner().invoke(args=["rotate-key-encryption-key"])
        assert result.exit_code == 0, result.output
        assert "Re-encrypted 1 stored secrets" in result.output
    (after,) = stored_ciphertexts(app)
    assert after != before
    Fernet(new_key).decrypt(after.encode())  # under the new key now

    # 3. The old key is dropped: an instance with only the new key starts, signs and verifies.
    with app_with_keys(app_config, new_key) as new_only:
        assert new_only.test_cli_runner().invoke(args=["initdb"]).exit_code == 0
        new_token = id_token_from(new_only, registered)
        assert jwt.get_unverified_header(new_token)["kid"] == old_kid  # the same signing key
        assert verify(new_only, old_token, client)["sub"] == verify(new_only, new_token, client)["sub"]

    # The old key alone no longer decrypts anything.
    with app_with_keys(app_config, TEST_KEY_ENCRYPTION_KEY) as old_only:
        refused = old_only.test_cli_runner().invoke(args=["initdb"])
        assert refused.exit_code != 0


def test_a_wrong_key_encryption_key_is_a_one_line_error(app, app_config, runner, caplog):
    assert runner.invoke(args=["initdb"]).exit_code == 0
    (before,) = stored_ciphertexts(app)
    with app_with_keys(app_config, Fernet.generate_key().decode()) as wrong:
        cli = wrong.test_cli_runner()
        for command in (["initdb"], ["rotate-key-encryption-key"]):
            result = cli.invoke(args=command)
            assert result.exit_code == 1, (command, result.output)
            assert "Traceback" not in result.output
            line = result.output.splitlines()[-1]  # initdb says first that the schema is current
            assert line.startswith("Error: Signing key ")
            assert "cannot be decrypted with KEY_ENCRYPTION_KEYS" in line
    assert stored_ciphertexts(app) == [before]  # the failed rotation changed nothing


def test_an_instance_with_a_wrong_key_answers_503_and_logs_one_line(app, app_config, test_client, caplog):
    """An instance started anyway (or given a new signing key it cannot read): 503, not a 500."""
    assert test_client.get("/.well-known/jwks.json").status_code == 200  # the first key is made
    caplog.set_level(logging.ERROR, logger="website")
    with app_with_keys(app_config, Fernet.generate_key().decode()) as wrong:
        response = wrong.test_client().get("/.well-known/jwks.json")
    assert response.status_code == 503, response.get_data(as_text=True)
    [record] = [r for r in caplog.records if r.name == "website"]
    assert "cannot be decrypted with KEY_ENCRYPTION_KEYS" in record.getMessage()
    assert record.exc_info is None and "\n" not in record.getMessage()


def test_the_server_refuses_to_start_with_a_wrong_key(app, app_config, runner):
    """`flask ...` and gunicorn load app.py: with a key that decrypts nothing, one line and exit 3."""
    assert runner.invoke(args=["initdb"]).exit_code == 0
    env = {**os.environ, "DATABASE_URL": app_config["DATABASE_URL"], "SECRET_KEY": app_config["SECRET_KEY"],
           "KEY_ENCRYPTION_KEYS": Fernet.generate_key().decode(), "PYTHONDONTWRITEBYTECODE": "1"}
    started = subprocess.run([sys.executable, "-m", "flask", "--app", "app", "routes"], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=120, check=False)
    assert started.returncode == 3, started.stderr
    (line,) = started.stderr.strip().splitlines()
    assert line.startswith("Error: Signing key ") and "KEY_ENCRYPTION_KEYS" in line


@pytest.mark.parametrize("keys", ["not-a-key", f"{TEST_KEY_ENCRYPTION_KEY},short", " , "],
                         ids=["not-a-key", "good-then-short", "blank"])
def test_a_malformed_key_encryption_key_is_a_configuration_error(app_config, keys):
    with pytest.raises(SystemExit, match="Configuration error: .*KEY_ENCRYPTION_KEYS"):
        create_app({**app_config, "KEY_ENCRYPTION_KEYS": keys})


def test_generate_key_encryption_key_prints_a_fresh_fernet_key(runner):
    first, second = (runner.invoke(args=["generate-key-encryption-key"]) for _ in range(2))
    assert first.exit_code == 0
    Fernet(first.output.strip())
    assert first.output != second.output


def test_keys_are_encrypted_with_the_first_key_and_read_with_any(app, app_config, runner):
    newer = Fernet.generate_key().decode()
    with app_with_keys(app_config, f"{newer},{TEST_KEY_ENCRYPTION_KEY}") as both:
        assert both.test_cli_runner().invoke(args=["rotate-keys"]).exit_code == 0
        assert both.test_client().get("/.well-known/jwks.json").status_code == 200
    (ciphertext,) = stored_ciphertexts(app)
    private = json.loads(Fernet(newer).decrypt(ciphertext.encode()))
    assert private["kty"] == "RSA" and "d" in private
