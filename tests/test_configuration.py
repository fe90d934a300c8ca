"""Configuration from the environment, and a fresh install's generated secret key and database."""

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from support.factories import config_for

from website import create_app
from website.models import db

ROOT = Path(__file__).resolve().parent.parent


def test_environment_overrides_defaults(monkeypatch, database_url):
    monkeypatch.setenv("OAUTH2_ACCESS_TOKEN_LIFETIME", "60")
    monkeypatch.setenv("OAUTH2_ALLOW_HTTP_REDIRECT_URIS", "true")
    monkeypatch.setenv("OAUTH2_PKCE_ALLOW_PLAIN", "off")
    monkeypatch.setenv("OAUTH2_SCOPES_SUPPORTED", "profile email")
    config = config_for(database_url)
    app = create_app({k: v for k, v in config.items() if not k.startswith("OAUTH2_")})
    assert app.config["OAUTH2_ACCESS_TOKEN_LIFETIME"] == 60
    assert app.config["OAUTH2_ALLOW_HTTP_REDIRECT_URIS"] is True
    assert app.config["OAUTH2_PKCE_ALLOW_PLAIN"] is False
    assert app.extensions["authorization_server"].scopes_supported == ["profile", "email"]


def test_token_lifetime_from_the_environment(monkeypatch, database_url, make_client):
    monkeypatch.setenv("OAUTH2_ACCESS_TOKEN_LIFETIME", "60")
    app = create_app(config_for(database_url))
    client, secret = make_client(grant_types=["client_credentials"], redirect_uris=[])
    response = app.test_client().post("/oauth/token", data={"grant_type": "client_credentials"},
                                      auth=(client.client_id, secret))
    with app.app_context():
        db.engine.dispose()  # this app's pooled connection, before the database is dropped
    assert response.json["expires_in"] == 60


def test_bad_number_in_the_environment_is_a_clear_error(monkeypatch, database_url):
    monkeypatch.setenv("OAUTH2_CODE_LIFETIME", "five minutes")
    with pytest.raises(SystemExit, match="OAUTH2_CODE_LIFETIME must be a whole number"):
        create_app(config_for(database_url))


@pytest.mark.parametrize("url, expected", [
    ("postgres://u:p@db/idp", "postgresql+psycopg://u:p@db/idp"),
    ("postgresql://u@db/idp", "postgresql+psycopg://u@db/idp"),
    ("postgresql+psycopg://u@db/idp", "postgresql+psycopg://u@db/idp"),
    ("sqlite:////var/lib/idp.sqlite", "sqlite:////var/lib/idp.sqlite"),
])
def test_database_url_names_the_driver(url, expected):
    app = create_app({**config_for(url)})
    assert app.config["SQLALCHEMY_DATABASE_URI"] == expected


def test_fresh_install_generates_a_secret_key_and_a_sqlite_database(tmp_path):
    """`flask initdb` in a fresh checkout: no SECRET_KEY, no KEY_ENCRYPTION_KEYS, no DATABASE_URL."""
    project = tmp_path / "project"
    project.mkdir()
    for name in ("website", "migrations"):
        shutil.copytree(ROOT / name, project / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "app.py", project / "app.py")
    env = {k: v for k, v in os.environ.items()
           if k not in ("SECRET_KEY", "DATABASE_URL", "KEY_ENCRYPTION_KEYS")
           and not k.startswith(("OAUTH2_", "FLASK_"))}

    def flask(*args):
        return subprocess.run([sys.executable, "-m", "flask", "--app", "app", *args], cwd=project, env=env,
                              capture_output=True, text=True, timeout=120, check=False)

    first = flask("initdb")
    assert first.returncode == 0, first.stderr
    key_file = project / "instance" / "secret_key"
    key = key_file.read_text().strip()
    assert len(key) >= 40
    assert key_file.stat().st_mode & 0o077 == 0  # readable by its owner only
    assert (project / "instance" / "website.sqlite").exists()
    # The private signing key is encrypted with a generated key-encryption key, said in one line.
    kek_file = project / "instance" / "key_encryption_key"
    kek = kek_file.read_text().strip()
    assert kek_file.stat().st_mode & 0o077 == 0
    [warning] = [line for line in first.stderr.splitlines() if "in production" in line]
    assert "generated in" in warning and "set KEY_ENCRYPTION_KEYS in production" in warning
    with sqlite3.connect(project / "instance" / "website.sqlite") as conn:
        [(ciphertext,)] = conn.execute("SELECT private_key_encrypted FROM oauth2_signing_keys").fetchall()
    assert json.loads(Fernet(kek).decrypt(ciphertext.encode()))["kty"] == "RSA"
    second = flask("initdb")
    assert second.returncode == 0, second.stderr
    assert key_file.read_text().strip() == key
    assert kek_file.read_text().strip() == kek
    rotated = flask("rotate-keys")  # the server signs with the key it reads back
    assert rotated.returncode == 0 and "Traceback" not in rotated.stderr, rotated.stderr
    user = flask("create-user", "admin", "--password", "a long password", "--admin")
    assert user.returncode == 0, user.stderr
    assert "Created user admin" in user.stdout
