"""The flask commands: initdb, create-user, create-client, purge-expired."""

import json
import re

import pytest
from sqlalchemy import select
from support.factories import PASSWORD, count_rows

from website.models import AuthorizationCode, OAuth2Client, Token, User, db, hash_secret, now


def assert_one_line_error(result):
    """A wrong call: non-zero exit, a message starting with 'Error:', no traceback."""
    assert result.exit_code != 0
    assert result.exception is None or isinstance(result.exception, SystemExit)
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    assert "Traceback" not in result.output


def test_initdb_twice_is_harmless(app, runner, user):
    for _ in range(2):
        result = runner.invoke(args=["initdb"])
        assert result.exit_code == 0, result.output
        assert "newest schema" in result.output
    assert count_rows(app, User) == 1


def test_create_user(app, runner):
    result = runner.invoke(args=["create-user", "carol", "--password", PASSWORD, "--email", "carol@example.com",
                                 "--admin"])
    assert result.exit_code == 0, result.output
    assert "Created user carol" in result.output
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == "carol"))
        assert user.is_admin and user.email == "carol@example.com"
        assert user.check_password(PASSWORD)
        assert PASSWORD not in user.password_hash


@pytest.mark.parametrize("args", [
    ["create-user", "carol", "--password", "short"],
    ["create-user", "ca", "--password", PASSWORD],
    ["create-user", "c" * 41, "--password", PASSWORD],
    ["create-user", "carol smith", "--password", PASSWORD],
    ["create-user", "carol\n", "--password", PASSWORD],
    ["create-user", "carol", "--password", PASSWORD, "--email", "carol@example.com\n"],
    ["create-user", "carol", "--password", PASSWORD, "--email", "not-an-email"],
    ["create-user", "carol", "--password", PASSWORD, "--email", "c" * 250 + "@example.com"],
    ["create-user", "carol"],
    ["create-user", "--password", PASSWORD],
    ["create-user", "carol", "--password", PASSWORD, "--bogus"],
])
def test_create_user_wrong_calls(app, runner, args):
    assert_one_line_error(runner.invoke(args=args))
    assert count_rows(app, User) == 0


# Each of these gave a traceback on PostgreSQL, which cannot store (or compare with) a NUL.
NUL_CALLS = {
    "create-user --name": (["create-user", "carol", "--password", PASSWORD, "--name", "Carol\x00"], "--name"),
    "create-api --name": (["create-api", "--identifier", "https://api.example.com/", "--name", "A\x00"], "--name"),
    "create-api --introspection-client": (["create-api", "--identifier", "https://api.example.com/", "--name",
                                           "A", "--introspection-client", "c\x00"], "--introspection-client"),
    "create-group --description": (["create-group", "staff", "--description", "d\x00"], "--description"),
    "delete-group": (["delete-group", "st\x00aff"], "NAME"),
    "add-to-group": (["add-to-group", "st\x00aff", "alice"], "GROUP"),
    "add-to-group, a username": (["add-to-group", "staff", "alice", "b\x00b"], "USERNAMES"),
    "remove-from-group": (["remove-from-group", "staff", "al\x00ice"], "USERNAME"),
    "add-upstream --client-id": (["add-upstream", "--name", "up", "--issuer", "https://up.example.com",
                                  "--client-id", "c\x00", "--client-secret", "s"], "--client-id"),
    "unlock-user": (["unlock-user", "al\x00ice"], "USERNAME"),
}


@pytest.mark.parametrize("args, where", NUL_CALLS.values(), ids=NUL_CALLS.keys())
def test_a_nul_character_in_any_argument_is_refused_in_one_line(app, runner, user, args, where):
    result = runner.invoke(args=args)
    assert_one_line_error(result)
    assert f"Error: {where}: a NUL character (\\0) is not allowed." in result.output
    assert count_rows(app, User) == 1


@pytest.mark.parametrize("name", ["alice", "Alice", "ＡＬＩＣＥ"])
def test_create_user_twice_is_refused(app, runner, user, name):
    result = runner.invoke(args=["create-user", name, "--password", PASSWORD])
    assert_one_line_error(result)
    assert "taken" in result.output
    assert count_rows(app, User) == 1


def test_create_client_owner_is_found_in_canonical_form(app, runner, user):
    result = runner.invoke(args=["create-client", "--name", "Owned", "--redirect-uri", "https://o.example.com/cb",
                                 "--owner", "Alice", "--json"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        assert db.session.scalar(select(OAuth2Client).where(OAuth2Client.client_name == "Owned")).owner_id == user.id


def test_create_client_prints_id_and_secret(app, runner, user):
    result = runner.invoke(args=[
        "create-client", "--name", "CLI App", "--redirect-uri", "https://cli.example.com/cb",
        "--redirect-uri", "http://127.0.0.1:9000/cb", "--grant-type", "authorization_code",
        "--grant-type", "refresh_token", "--response-type", "code", "--scope", "openid profile",
        "--auth-method", "client_secret_post", "--owner", "alice"])
    assert result.exit_code == 0, result.output
    lines = dict(line.split(": ", 1) for line in result.output.splitlines())
    with app.app_context():
        client = db.session.scalar(select(OAuth2Client))
        assert client.client_id == lines["client_id"]
        assert client.client_secret_hash == hash_secret(lines["client_secret"])
        assert client.owner_id == user.id
        assert client.redirect_uris == ["https://cli.example.com/cb", "http://127.0.0.1:9000/cb"]
        assert client.grant_types == ["authorization_code", "refresh_token"]
        assert client.scope == "openid profile"
        assert client.token_endpoint_auth_method == "client_secret_post"


def test_create_client_json(app, runner, test_client):
    result = runner.invoke(args=["create-client", "--name", "Service", "--grant-type", "client_credentials",
                                 "--scope", "profile", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["client_name"] == "Service"
    assert data["grant_types"] == ["client_credentials"]
    assert data["token_endpoint_auth_method"] == "client_secret_basic"
    token = test_client.post("/oauth/token", data={"grant_type": "client_credentials"},
                             auth=(data["client_id"], data["client_secret"]))
    assert token.status_code == 200, token.json


def test_client_ids_are_letters_and_digits_so_every_command_takes_them(runner, test_client):
    # A client_id starting with "-" was read as an option (`flask limit-client -dX...`: "No such
    # option '-d'"); about one id in 64 started with "-" or "_".
    ids = []
    for n in range(40):
        result = runner.invoke(args=["create-client", "--name", f"S{n}", "--grant-type", "client_credentials",
                                     "--scope", "profile", "--json"])
        assert result.exit_code == 0, result.output
        ids.append(json.loads(result.output)["client_id"])
    registered = test_client.post("/oauth/register", json={"client_name": "Dyn", "grant_types": ["client_credentials"],
                                                           "token_endpoint_auth_method": "client_secret_basic"})
    if registered.status_code == 201:
        ids.append(registered.json["client_id"])
    assert all(re.fullmatch(r"[A-Za-z0-9]{32}", client_id) for client_id in ids), ids
    result = runner.invoke(args=["limit-client", ids[0], "--everyone"])
    assert result.exit_code == 0, result.output


def test_create_public_client_json(runner):
    result = runner.invoke(args=["create-client", "--name", "SPA", "--redirect-uri", "https://spa.example.com/",
                                 "--auth-method", "none", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["client_secret"] is None
    assert data["response_types"] == ["code"]


@pytest.mark.parametrize("args", [
    [],
    ["--name", "X"],  # authorization_code needs a redirect URI
    ["--name", "", "--redirect-uri", "https://x.example.com/cb"],
    ["--name", "X", "--redirect-uri", "http://x.example.com/cb"],
    ["--name", "X", "--redirect-uri", "https://x.example.com/cb#f"],
    ["--name", "X", "--redirect-uri", "javascript:alert(1)"],
    ["--name", "X", "--redirect-uri", "https://x.example.com/cb", "--grant-type", "magic"],
    ["--name", "X", "--redirect-uri", "https://x.example.com/cb", "--response-type", "token"],
    ["--name", "X", "--redirect-uri", "https://x.example.com/cb", "--response-type", "magic"],
    ["--name", "X", "--redirect-uri", "https://x.example.com/cb", "--scope", "admin"],
    ["--name", "X", "--redirect-uri", "https://x.example.com/cb", "--auth-method", "private_key_jwt"],
    ["--name", "X", "--grant-type", "client_credentials", "--auth-method", "none"],
    ["--name", "X", "--redirect-uri", "https://x.example.com/cb", "--owner", "nobody"],
    ["--name", "x" * 101, "--redirect-uri", "https://x.example.com/cb"],
])
def test_create_client_wrong_calls(app, runner, args):
    assert_one_line_error(runner.invoke(args=["create-client", *args]))
    assert count_rows(app, OAuth2Client) == 0


def test_purge_expired(app, runner, user, make_client):
    client, _ = make_client()
    stamp = now()
    old, fresh = stamp - 10, stamp + 600

    def token(n, expires_at, refresh=False, refresh_expires_at=None, refresh_revoked_at=0):
        return Token(client_id=client.client_id, user_id=user.id, access_token_hash=hash_secret(f"a{n}"),
                     refresh_token_hash=hash_secret(f"r{n}") if refresh else None, scope="profile",
                     issued_at=stamp, expires_in=60, expires_at=expires_at, family_id=f"f{n}",
                     refresh_token_expires_at=refresh_expires_at, refresh_token_revoked_at=refresh_revoked_at)

    def code(n, expires_at):
        return AuthorizationCode(code_hash=hash_secret(f"c{n}"), client_id=client.client_id, user_id=user.id,
                                 redirect_uri="https://app.example.com/callback", response_type="code",
                                 scope="profile", expires_at=expires_at)

    with app.app_context():
        db.session.add_all([
            code(1, old), code(2, old), code(3, fresh),
            token(1, old),  # dead
            token(2, old, refresh=True, refresh_expires_at=old),  # both expired
            token(3, old, refresh=True, refresh_expires_at=fresh, refresh_revoked_at=stamp),  # revoked
            token(4, old, refresh=True, refresh_expires_at=fresh),  # refresh token still good
            token(5, fresh),  # access token still good
        ])
        db.session.commit()
    result = runner.invoke(args=["purge-expired"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "Deleted 2 expired authorization codes and 3 expired tokens."
    assert count_rows(app, AuthorizationCode) == 1
    with app.app_context():
        left = set(db.session.scalars(select(Token.family_id)).all())
    assert left == {"f4", "f5"}
    result = runner.invoke(args=["purge-expired"])
    assert result.output.strip() == "Deleted 0 expired authorization codes and 0 expired tokens."
