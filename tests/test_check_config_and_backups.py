"""`flask check-config` names each problem in one line; `flask backup` / `flask restore` keep
the whole database, and a restored backup signs people in."""

import sqlite3
import subprocess
import sys

import pytest

from support.databases import on_postgresql
from support.factories import config_for
from support.instances import REPOSITORY
from support.mail import smtp_server
from website import create_app
from website.extensions import db
from website.models import User


def check(runner, *args):
    result = runner.invoke(args=["check-config", *args])
    return result.exit_code, result.output.splitlines()


def test_a_usable_configuration_passes_with_warnings(app, runner):
    code, lines = check(runner)
    assert code == 0, lines
    assert "warning: MAIL_SERVER is unset: mails (account links, notices) are written to the log, not sent." in lines
    assert lines[-1] == "The configuration is usable. (See the warnings.)"
    code, _ = check(runner, "--strict")
    assert code == 1


def test_every_problem_of_what_the_settings_point_at_gets_a_line(app, runner):
    app.config.update(
        OAUTH2_ISSUER="http://id.example.com",
        REDIS_URL="redis://127.0.0.1:1/0",
        SIGNUP_POLICY="domain", SIGNUP_ALLOWED_DOMAINS="",
        MAIL_SERVER="127.0.0.1", MAIL_PORT=1, MAIL_TIMEOUT=2,
    )
    code, lines = check(runner)
    assert code == 1
    errors = [line for line in lines if line.startswith("error: ")]
    assert any(line.startswith("error: REDIS_URL: unavailable") for line in errors), lines
    assert ("error: OAUTH2_ISSUER http://id.example.com is plain http on a host other than loopback:"
            " tokens and cookies would travel in the clear; use https.") in errors
    assert "error: SIGNUP_POLICY is domain but SIGNUP_ALLOWED_DOMAINS names no domain: nobody can sign up." in errors
    assert any(line.startswith("error: MAIL_SERVER 127.0.0.1:1 cannot be reached") for line in errors), lines
    assert len(errors) == 4


def test_an_insecure_cookie_with_an_https_issuer_is_an_error(app, runner):
    app.config.update(OAUTH2_ISSUER="https://id.example.com", SESSION_COOKIE_SECURE=False)
    code, lines = check(runner)
    assert code == 1
    assert any("SESSION_COOKIE_SECURE is off while OAUTH2_ISSUER is https" in line for line in lines)


def test_a_reachable_mail_server_passes(app, runner):
    with smtp_server() as (_, port):
        app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=port)
        code, lines = check(runner)
    assert code == 0, lines
    assert not any("MAIL_SERVER" in line for line in lines)


def test_bad_settings_are_all_reported_at_once_before_anything_starts(database_url, tmp_path):
    env = {"PATH": "/usr/bin:/bin", "SECRET_KEY": "x" * 40, "DATABASE_URL": database_url,
           "KEY_ENCRYPTION_KEYS": "not-a-key", "OAUTH2_CODE_LIFETIME": "five minutes",
           "SIGNUP_POLICY": "sometimes", "LOG_FORMAT": "xml", "METRICS_ALLOWED_ADDRESSES": "10.0.0.0/33",
           "OAUTH2_ISSUER": "https://id.example.com/?x=1"}
    result = subprocess.run([sys.executable, "-m", "flask", "--app", "app", "check-config"], cwd=REPOSITORY,
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.startswith("Configuration error:")]
    assert len(lines) == 6, result.stderr
    assert "Configuration error: OAUTH2_CODE_LIFETIME must be a whole number, not 'five minutes'" in lines
    assert "Configuration error: SIGNUP_POLICY must be open, invite, domain or closed, not 'sometimes'" in lines
    assert "Configuration error: LOG_FORMAT must be text or json, not 'xml'" in lines
    assert any(line.startswith("Configuration error: key 1 of KEY_ENCRYPTION_KEYS is not a Fernet key") for line in lines)
    assert any("METRICS_ALLOWED_ADDRESSES: '10.0.0.0/33'" in line for line in lines)
    assert any(line.startswith("Configuration error: OAUTH2_ISSUER must be an http(s) URL") for line in lines)
    assert "Traceback" not in result.stderr


# --- backup and restore ----------------------------------------------------------------------

def test_backup_then_restore_brings_back_the_accounts_and_signs_in(app, runner, make_user, tmp_path, auth):
    make_user("alice")
    backup = tmp_path / "idp.backup"
    result = runner.invoke(args=["backup", str(backup)])
    assert result.exit_code == 0, result.output
    assert f"Backed up the database to {backup}." in result.output
    # After the backup, alice is deleted and someone else signs up.
    with app.app_context():
        db.session.delete(db.session.scalar(db.select(User).filter_by(username="alice")))
        db.session.commit()
    make_user("bob")
    assert auth.login("alice").status_code == 400

    result = runner.invoke(args=["restore", str(backup), "--yes"])
    assert result.exit_code == 0, result.output
    assert "it is at the newest schema" in result.output
    response = auth.login("alice")
    assert response.status_code == 302, response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(db.select(User).filter_by(username="bob")) is None


def test_backup_never_overwrites_a_file(runner, tmp_path):
    existing = tmp_path / "taken"
    existing.write_text("keep me")
    result = runner.invoke(args=["backup", str(existing)])
    assert result.exit_code == 1
    assert "exists; choose a new file" in result.output
    assert existing.read_text() == "keep me"


def test_backup_into_a_missing_directory_is_refused(runner, tmp_path):
    result = runner.invoke(args=["backup", str(tmp_path / "nowhere" / "file")])
    assert result.exit_code == 1
    assert "is not a directory" in result.output


@pytest.mark.skipif(on_postgresql(), reason="checks what a SQLite restore accepts")
def test_restore_refuses_what_is_not_a_backup_and_changes_nothing(app, runner, make_user, tmp_path, auth):
    make_user("alice")
    junk = tmp_path / "junk"
    junk.write_bytes(b"this is not a database" * 100)
    result = runner.invoke(args=["restore", str(junk), "--yes"])
    assert result.exit_code == 1
    assert "is not a backup of this server" in result.output
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE notes (x)")
    conn.close()
    assert "is not a backup of this server" in runner.invoke(args=["restore", str(other), "--yes"]).output
    newer = tmp_path / "newer.sqlite"
    with sqlite3.connect(newer) as conn:
        conn.execute("CREATE TABLE alembic_version (version_num VARCHAR(32))")
        conn.execute("INSERT INTO alembic_version VALUES ('9999_from_the_future')")
    conn.close()
    result = runner.invoke(args=["restore", str(newer), "--yes"])
    assert "made by a newer version of this server (schema 9999_from_the_future)" in result.output
    assert runner.invoke(args=["restore", str(tmp_path / "missing"), "--yes"]).exit_code == 1
    assert auth.login("alice").status_code == 302  # nothing was replaced


def test_restore_asks_first(runner, tmp_path, make_user):
    make_user("alice")
    backup = tmp_path / "idp.backup"
    assert runner.invoke(args=["backup", str(backup)]).exit_code == 0
    result = runner.invoke(args=["restore", str(backup)], input="n\n")
    assert result.exit_code == 1
    assert "Aborted" in result.output


@pytest.mark.skipif(on_postgresql(), reason="SQLite's online backup while another connection writes")
def test_a_sqlite_backup_is_consistent_while_another_connection_writes(app, runner, tmp_path):
    path = app.config["SQLALCHEMY_DATABASE_URI"].removeprefix("sqlite:///")
    writer = sqlite3.connect(path, timeout=30, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # holds the write lock, uncommitted, during the backup
    writer.execute("CREATE TABLE pending_write (x)")
    try:
        backup = tmp_path / "during-write.backup"
        result = runner.invoke(args=["backup", str(backup)])  # while the write is uncommitted
        assert result.exit_code == 0, result.output
    finally:
        writer.rollback()
        writer.close()
    with sqlite3.connect(backup) as copy:
        assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert copy.execute("SELECT count(*) FROM sqlite_master WHERE name = 'pending_write'").fetchone() == (0,)
        assert copy.execute("SELECT count(*) FROM alembic_version").fetchone() == (1,)
    copy.close()


def test_an_app_on_a_restored_file_serves(database_url, runner, tmp_path, make_user):
    if on_postgresql():
        pytest.skip("a SQLite file restored into a new location")
    make_user("alice")
    backup = tmp_path / "idp.backup"
    assert runner.invoke(args=["backup", str(backup)]).exit_code == 0
    other = create_app(config_for("sqlite:///" + str(backup)))
    response = other.test_client().get("/readyz")
    assert response.status_code == 200, response.json
    with other.app_context():
        assert db.session.scalar(db.select(User.username)) == "alice"
        db.engine.dispose()
