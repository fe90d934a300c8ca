"""flask list-users, export-users and import-users: accounts move between servers with their
werkzeug password hashes and subjects; an import is all or nothing, with a message per line."""

import json
import os
import stat

import pytest
from sqlalchemy import select
from support.factories import PASSWORD, count_rows
from support.mail import link_path
from support.pages import csrf_token
from werkzeug.security import generate_password_hash

from test_cli import assert_one_line_error
from website.models import AccountLink, AuditEvent, User, db


@pytest.fixture
def two_users(make_user, app):
    make_user("ada", email="ada@example.com", is_admin=True)
    make_user("bob")
    with app.app_context():
        db.session.execute(db.update(User).where(User.username == "ada").values(name="Ada Lovelace"))
        db.session.commit()


def test_list_users_prints_a_table(runner, two_users):
    result = runner.invoke(args=["list-users"])
    assert result.exit_code == 0, result.output
    header, ada, bob = result.output.splitlines()
    assert header.split() == ["ID", "USERNAME", "EMAIL", "NAME", "ADMIN", "CREATED", "STATUS"]
    assert ada.split()[1:6] == ["ada", "ada@example.com", "Ada", "Lovelace", "yes"]
    assert bob.split()[1:5] == ["bob", "bob@example.com", "-", "no"]
    assert "scrypt" not in result.output


def test_list_users_json(runner, two_users):
    result = runner.invoke(args=["list-users", "--json"])
    assert result.exit_code == 0, result.output
    users = json.loads(result.output)
    assert [u["username"] for u in users] == ["ada", "bob"]
    assert users[0]["is_admin"] is True and users[0]["name"] == "Ada Lovelace"
    assert set(users[0]) == {"id", "username", "email", "email_verified", "name", "is_admin", "sub", "created_at",
                             "disabled_at"}


def test_list_users_of_an_empty_server(runner):
    result = runner.invoke(args=["list-users"])
    assert (result.exit_code, result.output) == (0, "No users.\n")
    assert json.loads(runner.invoke(args=["list-users", "--json"]).output) == []


@pytest.mark.parametrize("args", [["list-users", "--table"], ["list-users", "extra"], ["export-users"],
                                  ["import-users"], ["import-users", "/no/such/file.jsonl"],
                                  ["unlock-user"], ["unlock-user", "nobody"]])
def test_wrong_calls(runner, two_users, args):
    assert_one_line_error(runner.invoke(args=args))


def test_export_then_import_on_another_server_keeps_passwords_and_subjects(app, runner, two_users, tmp_path,
                                                                             test_client, auth):
    target = tmp_path / "users.jsonl"
    result = runner.invoke(args=["export-users", str(target)])
    assert result.exit_code == 0, result.output
    assert "Exported 2 users" in result.output
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600  # password hashes: the owner only
    records = [json.loads(line) for line in target.read_text().splitlines()]
    assert records[0]["password_hash"].startswith(("scrypt:", "pbkdf2:"))
    with app.app_context():
        subs = {u.username: u.sub for u in db.session.scalars(select(User))}
        db.session.execute(db.delete(User))
        db.session.commit()
    result = runner.invoke(args=["import-users", str(target)])
    assert result.exit_code == 0, result.output
    assert result.output == "Imported 2 users.\n"
    with app.app_context():
        users = {u.username: u for u in db.session.scalars(select(User))}
        assert {name: u.sub for name, u in users.items()} == subs
        assert users["ada"].is_admin and users["ada"].name == "Ada Lovelace"
        assert users["ada"].email == "ada@example.com" and not users["bob"].is_admin
        assert db.session.scalar(select(AuditEvent.detail).where(AuditEvent.event == "users_imported"))["count"] == 2
    assert auth.login("ada").status_code == 302  # the same password works


def test_export_to_standard_output(runner, two_users):
    result = runner.invoke(args=["export-users", "-"])
    assert result.exit_code == 0
    assert [json.loads(line)["username"] for line in result.output.splitlines()] == ["ada", "bob"]


def test_export_never_overwrites_a_file(runner, two_users, tmp_path):
    target = tmp_path / "users.jsonl"
    target.write_text("keep me")
    result = runner.invoke(args=["export-users", str(target)])
    assert_one_line_error(result)
    assert "it exists" in result.output
    assert target.read_text() == "keep me"


def test_other_password_hashes_get_no_usable_password_and_are_listed(app, runner, tmp_path, test_client, auth):
    pbkdf2 = generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000")
    lines = [
        {"username": "carol", "email": "carol@example.com", "password_hash": "$2b$12$" + "a" * 53},  # bcrypt
        {"username": "dave", "password_hash": pbkdf2},
        {"username": "gina", "password_hash": generate_password_hash(PASSWORD, method="scrypt")},
        {"username": "erin"},
        {"username": "frank", "password_hash": PASSWORD},  # a password in clear is no hash
    ]
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(json.dumps(line) for line in lines) + "\n\n")
    result = runner.invoke(args=["import-users", str(source)])
    assert result.exit_code == 0, result.output
    assert "Imported 5 users." in result.output
    assert "3 accounts have no usable password" in result.output
    assert "need a password reset: carol, erin, frank\n" in result.output
    assert "MAIL_SERVER is not set: wrote to the log a password-reset link (valid for 30 minutes) for carol." \
        in result.output
    assert result.output.rstrip().endswith("No mail for erin (no email address), frank (no email address); once "
                                           "that is fixed, send one with `flask send-password-reset USERNAME`.")
    for name in ("dave", "gina"):
        assert auth.login(name).status_code == 302
        test_client.delete_cookie("idp_session")
    for name in ("carol", "frank"):
        assert auth.login(name, password=lines[0]["password_hash"] if name == "carol" else PASSWORD).status_code == 400
    with app.app_context():
        frank = db.session.scalar(select(User).where(User.username == "frank"))
        assert PASSWORD not in frank.password_hash


BAD_LINES = [
    ("[1, 2]", "expected a JSON object"),
    ("{not json", "not JSON"),
    ('{"email": "x@example.com"}', "'username' is missing"),
    ('{"username": "a b"}', "username 'a b'"),
    ('{"username": "ALICE"}', "username 'ALICE' is taken"),
    ('{"username": "zoe", "email": "nope"}', "'nope' is not an email address"),
    ('{"username": "zoe", "is_admin": "yes"}', "'is_admin' must be true or false"),
    ('{"username": "zoe", "email_verified": 1}', "'email_verified' must be true or false"),
    ('{"username": "zoe", "name": ""}', "'name' must be 1 to 100 characters"),
    ('{"username": "zoe", "created_at": "yesterday"}', "'created_at' must be an ISO 8601"),
    ('{"username": "zoe", "disabled_at": 5}', "'disabled_at' must be an ISO 8601"),
    ('{"username": "zoe", "password_hash": 5}', "'password_hash' must be a string"),
    ('{"username": "zoe", "sub": ""}', "'sub' must be 1 to 255"),
    ('{"username": "zoe", "colour": "red"}', "unknown field colour"),
    # PostgreSQL cannot store a NUL character: each field that holds one is named.
    ('{"username": "zoe", "name": "Zo\\u0000e"}', "'name' holds a NUL character"),
    ('{"username": "zoe", "email": "z\\u0000@example.com"}', "'email' holds a NUL character"),
    ('{"username": "zo\\u0000e"}', "'username' holds a NUL character"),
]


@pytest.mark.parametrize("line, message", BAD_LINES)
def test_a_bad_line_imports_nothing_and_names_its_line(app, runner, user, tmp_path, line, message):
    source = tmp_path / "in.jsonl"
    source.write_text('{"username": "yves"}\n' + line + "\n")
    result = runner.invoke(args=["import-users", str(source)])
    assert_one_line_error(result)
    assert f"line 2: {message}" in result.output
    assert "Nothing was imported: 1 problem" in result.output
    assert count_rows(app, User) == 1  # yves, on the good line, was not created either


def test_a_name_or_sub_repeated_in_the_file_is_refused(app, runner, user, tmp_path):
    with app.app_context():
        alice_sub = db.session.scalar(select(User.sub))
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join([
        '{"username": "yves", "sub": "s-1"}', '{"username": "Yves"}', '{"username": "zoe", "sub": "s-1"}',
        json.dumps({"username": "walt", "sub": alice_sub})]) + "\n")
    result = runner.invoke(args=["import-users", str(source)])
    assert_one_line_error(result)
    assert "line 2: username 'Yves' is taken" in result.output
    assert "line 3: sub 's-1' belongs to another account" in result.output
    assert "line 4: sub" in result.output
    assert "3 problems" in result.output
    assert count_rows(app, User) == 1


@pytest.mark.parametrize("content", [b"", b"\n\n", b"\xff\xfe not utf-8"])
def test_an_empty_or_undecodable_file_is_an_error(app, runner, tmp_path, content):
    source = tmp_path / "in.jsonl"
    source.write_bytes(content)
    assert_one_line_error(runner.invoke(args=["import-users", str(source)]))
    assert count_rows(app, User) == 0


def test_a_disabled_account_stays_disabled_through_export_and_import(app, runner, two_users, tmp_path, auth):
    assert runner.invoke(args=["disable-user", "bob"]).exit_code == 0
    listed = runner.invoke(args=["list-users"]).output.splitlines()
    assert listed[1].endswith("active") and listed[2].endswith("disabled")
    target = tmp_path / "users.jsonl"
    assert runner.invoke(args=["export-users", str(target)]).exit_code == 0
    with app.app_context():
        db.session.execute(db.delete(User))
        db.session.commit()
    assert runner.invoke(args=["import-users", str(target)]).exit_code == 0
    assert [u["disabled_at"] is not None for u in json.loads(runner.invoke(args=["list-users", "--json"]).output)] \
        == [False, True]
    assert auth.login("bob").status_code == 400


def bcrypt_accounts(tmp_path, *names) -> str:
    """An export from another server whose password hashes (bcrypt) this one cannot check."""
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"username": name, "email": f"{name}@example.org",
                                          "password_hash": "$2b$12$" + "a" * 53}) + "\n" for name in names))
    return str(source)


def test_accounts_without_a_usable_password_are_mailed_a_reset_link_after_the_import(app, runner, tmp_path,
                                                                                   mailbox, test_client, auth):
    result = runner.invoke(args=["import-users", bcrypt_accounts(tmp_path, "carol", "hal")])
    assert result.exit_code == 0, result.output
    assert "Mailed a password-reset link (valid for 30 minutes) for carol, hal." in result.output
    mails = mailbox.wait_for(2)
    carol = mailbox.last_to("carol@example.org")
    assert {m["To"] for m in mails} == {"carol@example.org", "hal@example.org"}
    path = link_path(carol)
    page = test_client.get(path)
    done = test_client.post(path, data={"csrf_token": csrf_token(page), "password": PASSWORD, "confirm": PASSWORD})
    assert done.status_code == 302
    assert auth.login("carol").status_code == 302


def test_with_the_mail_server_down_the_accounts_are_imported_and_the_message_says_how_to_resend(
        app, runner, tmp_path, mailbox):
    mailbox.refuse = True
    result = runner.invoke(args=["import-users", bcrypt_accounts(tmp_path, "carol", "hal", "ivy", "joe", "kim")])
    assert_one_line_error(result)
    assert result.exit_code == 1
    [error] = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert error.startswith("Error: The accounts are imported, but 5 password-reset mails were not sent (")
    assert "451" in error
    assert error.endswith("carol, hal, ivy, joe, kim. Send each with `flask send-password-reset USERNAME` once the "
                          "mail server takes mail.")
    assert count_rows(app, User) == 5  # committed before any mail was tried
    assert count_rows(app, AuditEvent, AuditEvent.event == "users_imported") == 1
    assert count_rows(app, AccountLink) == 0  # the refused mails left no link behind
    mailbox.refuse = False
    resent = runner.invoke(args=["send-password-reset", "carol"])
    assert resent.exit_code == 0, resent.output
    assert mailbox.wait_for(1)[0]["To"] == "carol@example.org"
