"""Migrations on SQLite and PostgreSQL: every revision upgrades and downgrades cleanly, and
`flask initdb` upgrades an existing database in place without losing its rows.

Generic over the revisions in migrations/versions: new revisions are walked without changes here.
"""

import hashlib
import json
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import flask_migrate
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from cryptography.fernet import Fernet
from joserfc.jwk import RSAKey
from support.databases import empty_database
from support.factories import PASSWORD, TEST_KEY_ENCRYPTION_KEY, TEST_PASSWORD_METHOD, config_for
from support.pages import form_token
from werkzeug.security import generate_password_hash

from website import create_app
from website.http.ops import migration_heads
from website.models import db

#: The first revision's schema is what the rows of the data test are written in.
FIRST_REVISION = "0001_core"

REPOSITORY = Path(__file__).resolve().parent.parent


@pytest.fixture
def fresh_app(database_url, tmp_path):
    """An app on an empty database of its own (no revision applied), removed afterwards."""
    with empty_database(database_url, tmp_path) as config:
        app = create_app(config_for(config["DATABASE_URL"], **config))
        yield app
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


def script_directory(app) -> ScriptDirectory:
    with app.app_context():
        config = app.extensions["migrate"].migrate.get_config()
    return ScriptDirectory.from_config(config)


def ordered_revisions(app) -> list[str]:
    """Revision ids from the first to the head."""
    return [rev.revision for rev in reversed(list(script_directory(app).walk_revisions()))]


def current_revision(app) -> str | None:
    with app.app_context(), db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def schema_differences(app) -> list:
    """What alembic's autogenerate would change to make the database match the models."""
    with app.app_context(), db.engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn), db.metadata)


def test_revisions_form_one_chain(app):
    heads = script_directory(app).get_heads()
    assert len(heads) == 1, f"several heads {heads}: chain the new revisions onto one another"
    assert ordered_revisions(app)[0] == FIRST_REVISION


def test_every_revision_upgrades_and_downgrades(fresh_app):
    revisions = ordered_revisions(fresh_app)
    with fresh_app.app_context():
        for revision in revisions:
            flask_migrate.upgrade(revision=revision)
            assert current_revision(fresh_app) == revision
        for previous in reversed([None] + revisions[:-1]):
            flask_migrate.downgrade(revision="-1")
            assert current_revision(fresh_app) == previous
        with db.engine.connect() as conn:
            # Only alembic's own bookkeeping table is left at base.
            assert set(sa.inspect(conn).get_table_names()) <= {"alembic_version"}
        flask_migrate.upgrade(revision="head")
    assert current_revision(fresh_app) == revisions[-1]
    assert schema_differences(fresh_app) == []


def test_initdb_upgrades_existing_database_and_keeps_its_rows(fresh_app):
    with fresh_app.app_context():
        flask_migrate.upgrade(revision=FIRST_REVISION)
        insert_rows_in_first_schema()

    result = fresh_app.test_cli_runner().invoke(args=["initdb"])
    assert result.exit_code == 0, result.output
    assert current_revision(fresh_app) == ordered_revisions(fresh_app)[-1]
    # Running it again on an up-to-date database changes nothing.
    assert fresh_app.test_cli_runner().invoke(args=["initdb"]).exit_code == 0

    test_client = fresh_app.test_client()
    me = test_client.get("/api/me", headers={"Authorization": "Bearer old-access-token"})
    assert me.status_code == 200, me.get_data(as_text=True)
    # The user keeps the sub apps already stored (the id), and has a session secret of their own.
    assert me.json == {"id": 1, "sub": "1", "username": "olduser", "email": "old@example.com"}
    with fresh_app.app_context(), db.engine.connect() as conn:
        secret = conn.execute(sa.text("SELECT session_secret FROM users WHERE id = 1")).scalar_one()
    assert len(secret) == 64
    token = test_client.post("/oauth/token", data={"grant_type": "client_credentials"},
                             auth=("old-client", "old-client-secret"))
    assert token.status_code == 200, token.json
    csrf = form_token(test_client, "/login")
    signed_in = test_client.post("/login", data={"username": "olduser", "password": PASSWORD,
                                                 "csrf_token": csrf})
    assert signed_in.status_code == 302


def insert_rows_in_first_schema() -> None:
    """A user, a confidential client and a live token, written with SQL in 0001_core's schema."""
    stamp = int(time.time())
    sha = lambda value: hashlib.sha256(value.encode()).hexdigest()  # noqa: E731
    with db.engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO users (id, username, email, password_hash, created_at, updated_at, is_admin)"
            " VALUES (1, 'olduser', 'old@example.com', :pw, :at, :at, :no)"
        ), {"pw": generate_password_hash(PASSWORD, method=TEST_PASSWORD_METHOD),
            "at": datetime.now(timezone.utc), "no": False})
        conn.execute(sa.text(
            "INSERT INTO oauth2_clients (id, client_id, client_secret_hash, client_id_issued_at,"
            " client_secret_expires_at, owner_id, client_name, redirect_uris, grant_types,"
            " response_types, scope, token_endpoint_auth_method, contacts, extra_metadata)"
            " VALUES (1, 'old-client', :secret, :stamp, 0, 1, 'Old App',"
            " '[\"https://old.example.com/cb\"]', '[\"authorization_code\", \"client_credentials\"]',"
            " '[\"code\"]', 'openid profile', 'client_secret_basic', '[]', '{}')"
        ), {"secret": sha("old-client-secret"), "stamp": stamp})
        conn.execute(sa.text(
            "INSERT INTO oauth2_tokens (id, client_id, user_id, token_type, access_token_hash,"
            " refresh_token_hash, scope, issued_at, expires_in, expires_at, access_token_revoked_at,"
            " refresh_token_revoked_at, family_id)"
            " VALUES (1, 'old-client', 1, 'Bearer', :access, :refresh, 'profile', :stamp, 3600,"
            " :expires, 0, 0, 'oldfamily')"
        ), {"access": sha("old-access-token"), "refresh": sha("old-refresh-token"), "stamp": stamp,
            "expires": stamp + 3600})
        if conn.dialect.name == "postgresql":
            # Rows inserted with explicit ids leave the sequences behind.
            for table in ("users", "oauth2_clients", "oauth2_tokens"):
                conn.execute(sa.text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), 1)"))


def test_migrated_database_matches_the_models(app):
    """The suite's database, built by `flask initdb`, has exactly the models' schema and types."""
    with app.app_context(), db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True,
                                                               "compare_server_default": True})
        assert compare_metadata(context, db.metadata) == []


def test_upgrade_never_hands_out_the_id_of_a_user_deleted_before_it(fresh_app):
    """Users deleted before ids stopped being reused (SQLite) are still named by id in the audit
    log: the first user made after the upgrade gets a higher id than any of them."""
    with fresh_app.app_context():
        flask_migrate.upgrade(revision="0401_audit_throttle_sessions")
        with db.engine.begin() as conn:
            conn.execute(sa.text(
                "INSERT INTO users (id, username, email, password_hash, created_at, updated_at, is_admin)"
                " VALUES (1, 'kept', 'kept@example.com', 'x', :at, :at, :no)"
            ), {"at": datetime.now(timezone.utc), "no": False})
            conn.execute(sa.text(
                "INSERT INTO audit_events (created_at, event, user_id, username, detail)"
                " VALUES (:at, 'login_succeeded', 7, 'deleted', '{}')"
            ), {"at": datetime.now(timezone.utc)})
            if conn.dialect.name == "postgresql":
                # PostgreSQL's sequence had handed out 7 before that user was deleted.
                conn.execute(sa.text("SELECT setval(pg_get_serial_sequence('users', 'id'), 7)"))
        flask_migrate.upgrade(revision="head")

    signup = fresh_app.test_client()
    csrf = form_token(signup, "/signup")
    response = signup.post("/signup", data={"username": "newcomer", "email": "new@example.com",
                                            "password": PASSWORD, "confirm": PASSWORD, "csrf_token": csrf})
    assert response.status_code == 302, response.get_data(as_text=True)
    with fresh_app.app_context(), db.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT username, id, sub FROM users ORDER BY id")).all()
    assert rows[0] == ("kept", 1, "1")
    assert rows[1].username == "newcomer" and rows[1].id > 7
    assert rows[1].sub not in ("1", "7", str(rows[1].id))


def test_upgrade_keeps_scope_based_api_access_as_explicit_grants(fresh_app):
    """Before 0503 a client that had registered one of an API's scopes got its tokens; the
    upgrade writes that down as a grant (and lets consents that allowed the scope name the API),
    while an API without scopes stops being open to every client."""
    before = script_directory(fresh_app).get_revision("0503_api_client_grants").down_revision
    with fresh_app.app_context():
        flask_migrate.upgrade(revision=FIRST_REVISION)
        insert_rows_in_first_schema()
        flask_migrate.upgrade(revision=before)
        at = datetime.now(timezone.utc)
        with db.engine.begin() as conn:
            conn.execute(sa.text("UPDATE oauth2_clients SET scope = 'openid profile read:orders'"))
            for api_id, identifier, scopes in ((1, "https://orders.example.com/", '["read:orders"]'),
                                               (2, "https://open.example.com/", "[]")):
                conn.execute(sa.text(
                    "INSERT INTO oauth2_resource_servers (id, identifier, name, scopes, access_token_lifetime,"
                    " created_at) VALUES (:id, :identifier, 'API', :scopes, 600, :at)"
                ), {"id": api_id, "identifier": identifier, "scopes": scopes, "at": at})
            conn.execute(sa.text(
                "INSERT INTO oauth2_consents (id, user_id, client_id, scope, created_at, updated_at)"
                " VALUES (1, 1, 'old-client', 'openid read:orders', :at, :at)"), {"at": at})

    assert fresh_app.test_cli_runner().invoke(args=["initdb"]).exit_code == 0
    test_client = fresh_app.test_client()

    def token(audience):
        return test_client.post("/oauth/token", auth=("old-client", "old-client-secret"), data={
            "grant_type": "client_credentials", "audience": audience})

    kept = token("https://orders.example.com/")
    assert kept.status_code == 200, kept.json
    assert token("https://open.example.com/").json["error"] == "invalid_target"
    with fresh_app.app_context(), db.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT audiences FROM oauth2_consents")).scalar() == "https://orders.example.com/"


def test_initdb_encrypts_the_private_keys_of_an_existing_database(fresh_app):
    """A database from before 0506 kept private JWKs in plain: the upgrade encrypts them with
    KEY_ENCRYPTION_KEYS in the same transaction, and the server signs with them as before."""
    revisions = ordered_revisions(fresh_app)
    before = revisions[revisions.index("0506_encrypted_signing_keys") - 1]
    key = RSAKey.generate_key(2048, auto_kid=True)
    public = {**key.as_dict(private=False), "use": "sig", "alg": "RS256"}
    with fresh_app.app_context():
        flask_migrate.upgrade(revision=before)
        with db.engine.begin() as conn:
            conn.execute(sa.text(
                "INSERT INTO oauth2_signing_keys (kid, alg, public_jwk, private_jwk, created_at)"
                " VALUES (:kid, 'RS256', :public, :private, :at)"
            ), {"kid": key.kid, "public": json.dumps(public),
                "private": json.dumps(key.as_dict(private=True)), "at": int(time.time())})

    result = fresh_app.test_cli_runner().invoke(args=["initdb"])
    assert result.exit_code == 0, result.output
    assert "Created the first signing key" not in result.output  # the old key is kept
    with fresh_app.app_context(), db.engine.connect() as conn:
        [(ciphertext,)] = conn.execute(
            sa.text("SELECT private_key_encrypted FROM oauth2_signing_keys")).all()
        columns = {c["name"] for c in sa.inspect(conn).get_columns("oauth2_signing_keys")}
    assert "private_jwk" not in columns
    assert key.as_dict(private=True)["d"] not in ciphertext
    decrypted = Fernet(TEST_KEY_ENCRYPTION_KEY).decrypt(ciphertext.encode())
    assert json.loads(decrypted) == key.as_dict(private=True)
    jwks = fresh_app.test_client().get("/.well-known/jwks.json")
    assert [k["kid"] for k in jwks.json["keys"]] == [key.kid]

    # And back: the downgrade decrypts them into the plain column again.
    with fresh_app.app_context():
        flask_migrate.downgrade(revision=before)
        with db.engine.connect() as conn:
            [(private,)] = conn.execute(sa.text("SELECT private_jwk FROM oauth2_signing_keys")).all()
    assert (json.loads(private) if isinstance(private, str) else private) == key.as_dict(private=True)


def test_username_canonical_upgrade_refuses_clashing_usernames_and_changes_nothing(fresh_app, caplog):
    """0502 makes usernames unique ignoring case and NFKC look-alikes; existing clashes are named."""
    revisions = ordered_revisions(fresh_app)
    before = revisions[revisions.index("0508_username_canonical") - 1]
    with fresh_app.app_context():
        flask_migrate.upgrade(revision=before)
        stamp = datetime.now(timezone.utc)
        with db.engine.begin() as conn:
            for user_id, name in [(1, "alice"), (2, "Alice"), (3, "ａｌｉｃｅ"), (4, "bob"), (5, "carol")]:
                conn.execute(sa.text(
                    # The schema just before 0508 (sub and session_secret came with 0501).
                    "INSERT INTO users (id, username, email, password_hash, created_at, updated_at, is_admin,"
                    " sub, session_secret) VALUES (:id, :name, NULL, 'x', :at, :at, :no, :sub, 's')"),
                    {"id": user_id, "name": name, "at": stamp, "no": False, "sub": str(user_id)})
    result = fresh_app.test_cli_runner().invoke(args=["initdb"])
    assert result.exit_code != 0
    message = caplog.text + result.output
    assert "'alice', 'Alice', 'ａｌｉｃｅ'" in message and "Rename" in message, message
    assert "bob" not in message
    assert current_revision(fresh_app) == before  # the database is unchanged
    with fresh_app.app_context(), db.engine.connect() as conn:
        assert "username_canonical" not in {c["name"] for c in sa.inspect(conn).get_columns("users")}

    with fresh_app.app_context(), db.engine.begin() as conn:  # the fix the message gives
        conn.execute(sa.text("UPDATE users SET username = 'alice2' WHERE id = 2"))
        conn.execute(sa.text("UPDATE users SET username = 'alice3' WHERE id = 3"))
    result = fresh_app.test_cli_runner().invoke(args=["initdb"])
    assert result.exit_code == 0, result.output
    with fresh_app.app_context(), db.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT username, username_canonical FROM users ORDER BY id")).all()
    assert [tuple(row) for row in rows] == [("alice", "alice"), ("alice2", "alice2"), ("alice3", "alice3"),
                                            ("bob", "bob"), ("carol", "carol")]


# --- what a serving worker imports ------------------------------------------------------------

def test_readiness_finds_the_same_newest_revisions_as_alembic(app, tmp_path):
    assert migration_heads() == set(script_directory(app).get_heads())
    # A merge (a tuple of parents), an annotated assignment and two heads, against alembic's reading.
    versions = tmp_path / "versions"
    versions.mkdir()
    for name, parents in {"a": None, "b": "a", "c": "a", "d": ("b", "c"), "e": "a"}.items():
        assignments = (f"revision: str = {name!r}\ndown_revision = {parents!r}\n" if name == "d"
                       else f"revision = {name!r}\ndown_revision = {parents!r}\n")
        (versions / f"{name}_rev.py").write_text(f'"""{name}"""\n{assignments}\n\ndef upgrade():\n    pass\n')
    assert migration_heads(str(tmp_path)) == {"d", "e"} == set(ScriptDirectory(str(tmp_path)).get_heads())


def test_a_serving_worker_imports_only_what_it_serves_and_flask_db_still_works(tmp_path):
    """Flask-Migrate imports alembic, 11 MiB per process: only migrations load it; py_webauthn
    (5 MiB) loads with the first passkey ceremony, Authlib's client and requests (6 MiB) with the
    first sign-in sent upstream, redis (3 MiB) only with REDIS_URL."""
    env = {"PATH": "/usr/bin:/bin", "SECRET_KEY": "x" * 40, "KEY_ENCRYPTION_KEYS": TEST_KEY_ENCRYPTION_KEY,
           "DATABASE_URL": f"sqlite:///{tmp_path / 'idp.sqlite'}"}

    def run(*args):
        return subprocess.run([sys.executable, *args], cwd=REPOSITORY, env=env, capture_output=True,
                              text=True, timeout=120)

    assert run("-m", "flask", "--app", "app", "initdb").returncode == 0
    serving = run("-c", "import sys\n"
                  "from app import app\n"
                  "client = app.test_client()\n"
                  "print(client.get('/readyz').status_code, client.get('/.well-known/openid-configuration').status_code)\n"
                  "print(sorted(m for m in sys.modules if m.split('.')[0] in ('alembic', 'flask_migrate', 'webauthn', 'requests', 'redis')\n"
                  "       or m.startswith('authlib.integrations.flask_client')))\n")
    assert serving.stdout.splitlines() == ["200 200", "[]"], serving.stderr
    heads = run("-m", "flask", "--app", "app", "db", "heads")
    assert heads.returncode == 0, heads.stderr
    assert {line.split()[0] for line in heads.stdout.splitlines() if "(head)" in line} == migration_heads()
