"""Groups and per-client roles in tokens, and clients limited to members of groups: made with
the CLI, verified in id_tokens (PyJWT against the JWKS), UserInfo and JWT access tokens."""

import json

import jwt
import pytest
import requests

from support.factories import PASSWORD
from support.flows import authorize_url, get_user_token, pkce_pair, refresh
from support.oidc import CALLBACK, Browser, code_flow_tokens

ISSUER = "http://127.0.0.1"
API = "https://api.example.com/wiki"


def cli(runner, *args, ok=True):
    result = runner.invoke(args=list(args))
    if ok:
        assert result.exit_code == 0, result.output
    return result


def id_token_claims(live_server, token: dict, client) -> dict:
    key = jwt.PyJWKClient(f"{live_server}/.well-known/jwks.json").get_signing_key_from_jwt(token["id_token"])
    return jwt.decode(token["id_token"], key.key, algorithms=["RS256"], audience=client.client_id, issuer=ISSUER)


@pytest.fixture
def wiki(make_client):
    return make_client(client_name="Team Wiki", redirect_uris=[CALLBACK], scope="openid profile groups")


@pytest.fixture
def staff(runner, make_user):
    """alice in engineering and staff; bob in staff only."""
    make_user("alice")
    make_user("bob")
    cli(runner, "create-group", "engineering", "--description", "People who build things")
    cli(runner, "create-group", "staff")
    cli(runner, "add-to-group", "engineering", "alice")
    cli(runner, "add-to-group", "staff", "alice", "bob")


def test_groups_are_in_the_id_token_and_userinfo_with_the_groups_scope(live_server, staff, wiki):
    client, secret = wiki
    token = code_flow_tokens(live_server, client, secret, scope="openid groups")
    assert id_token_claims(live_server, token, client)["groups"] == ["engineering", "staff"]
    userinfo = requests.get(f"{live_server}/userinfo", headers={"Authorization": f"Bearer {token['access_token']}"})
    assert userinfo.json()["groups"] == ["engineering", "staff"]


def test_no_groups_claim_without_the_groups_scope(live_server, staff, wiki):
    client, secret = wiki
    token = code_flow_tokens(live_server, client, secret, scope="openid profile")
    assert "groups" not in id_token_claims(live_server, token, client)
    userinfo = requests.get(f"{live_server}/userinfo", headers={"Authorization": f"Bearer {token['access_token']}"})
    assert "groups" not in userinfo.json()


def test_the_consent_page_names_the_groups_scope(test_client, auth, staff, wiki):
    client, _ = wiki
    auth.login("alice")
    _, challenge = pkce_pair()
    page = test_client.get(authorize_url(client, redirect_uri=CALLBACK, scope="openid groups",
                                         code_challenge=challenge, code_challenge_method="S256"))
    assert "See which groups you belong to." in page.get_data(as_text=True)


def test_roles_held_directly_and_through_groups_are_in_that_clients_tokens(live_server, runner, staff, wiki,
                                                                            make_client):
    client, secret = wiki
    other, other_secret = make_client(client_name="Payroll", redirect_uris=[CALLBACK], scope="openid")
    cli(runner, "create-role", client.client_id, "editor", "--description", "Edits pages")
    cli(runner, "create-role", client.client_id, "admin")
    cli(runner, "create-role", client.client_id, "reader")
    cli(runner, "assign-role", client.client_id, "editor", "--group", "engineering")
    cli(runner, "assign-role", client.client_id, "reader", "--group", "staff")
    cli(runner, "assign-role", client.client_id, "admin", "--user", "bob")

    alice = id_token_claims(live_server, code_flow_tokens(live_server, client, secret, scope="openid"), client)
    assert alice["roles"] == ["editor", "reader"]
    token = code_flow_tokens(live_server, client, secret, username="bob", scope="openid")
    assert id_token_claims(live_server, token, client)["roles"] == ["admin", "reader"]
    userinfo = requests.get(f"{live_server}/userinfo", headers={"Authorization": f"Bearer {token['access_token']}"})
    assert userinfo.json()["roles"] == ["admin", "reader"]
    # A client that defines no roles gets no roles claim; the wiki's roles stay the wiki's.
    payroll = code_flow_tokens(live_server, other, other_secret, scope="openid")
    assert "roles" not in id_token_claims(live_server, payroll, other)

    # Taken back, deleted: gone from the next token.
    cli(runner, "unassign-role", client.client_id, "admin", "--user", "bob")
    cli(runner, "delete-role", client.client_id, "reader")
    token = code_flow_tokens(live_server, client, secret, username="bob", scope="openid")
    assert id_token_claims(live_server, token, client)["roles"] == []


def test_groups_and_roles_are_in_jwt_access_tokens(live_server, runner, test_client, auth, staff, make_client):
    client, secret = make_client(redirect_uris=[CALLBACK], scope="openid groups")
    cli(runner, "create-api", "--identifier", API, "--name", "Wiki API")
    cli(runner, "grant-api", "--", API, client.client_id)
    cli(runner, "create-role", client.client_id, "editor")
    cli(runner, "assign-role", client.client_id, "editor", "--user", "alice")
    auth.login("alice")
    token = get_user_token(test_client, client, secret, scope="openid groups", audience=API,
                           redirect_uri=CALLBACK)
    key = jwt.PyJWKClient(f"{live_server}/.well-known/jwks.json").get_signing_key_from_jwt(token["access_token"])
    claims = jwt.decode(token["access_token"], key.key, algorithms=["RS256"], audience=API, issuer=ISSUER)
    assert claims["groups"] == ["engineering", "staff"]
    assert claims["roles"] == ["editor"]


def test_a_client_limited_to_a_group_refuses_everyone_else(live_server, runner, staff, wiki):
    client, secret = wiki
    cli(runner, "limit-client", client.client_id, "--group", "engineering")
    browser = Browser(live_server)
    browser.login("bob")
    _, challenge = pkce_pair()
    page = browser.session.get(live_server + authorize_url(client, redirect_uri=CALLBACK, scope="openid",
                                             code_challenge=challenge, code_challenge_method="S256"),
                               allow_redirects=False)
    assert page.status_code == 403
    assert "Team Wiki is only for members of certain groups" in page.text
    # A member gets through.
    assert code_flow_tokens(live_server, client, secret, scope="openid")["id_token"]
    cli(runner, "limit-client", client.client_id, "--everyone")
    assert code_flow_tokens(live_server, client, secret, username="bob", scope="openid")["id_token"]


def test_the_password_grant_and_refresh_honour_the_limit(test_client, runner, staff, make_client):
    client, secret = make_client(grant_types=["password", "refresh_token"], redirect_uris=[],
                                 scope="openid offline_access")
    cli(runner, "limit-client", client.client_id, "--group", "engineering")
    refused = test_client.post("/oauth/token", auth=(client.client_id, secret), data={
        "grant_type": "password", "username": "bob", "password": PASSWORD, "scope": "openid"})
    assert refused.status_code == 400
    assert refused.json["error"] == "invalid_grant"
    assert "may not use Test App" in refused.json["error_description"]
    token = test_client.post("/oauth/token", auth=(client.client_id, secret), data={
        "grant_type": "password", "username": "alice", "password": PASSWORD, "scope": "openid offline_access"})
    assert token.status_code == 200, token.json
    # alice leaves engineering: her refresh token gets nothing more.
    cli(runner, "remove-from-group", "engineering", "alice")
    response = refresh(test_client, client, token.json["refresh_token"], secret)
    assert response.status_code == 400
    assert response.json["error"] == "invalid_grant"


def test_list_groups_and_deleting_a_group(runner, staff, live_server, wiki):
    listed = json.loads(cli(runner, "list-groups", "--json").output)
    assert listed == [{"name": "engineering", "description": "People who build things", "members": ["alice"]},
                      {"name": "staff", "description": "", "members": ["alice", "bob"]}]
    assert "staff: alice, bob" in cli(runner, "list-groups").output
    cli(runner, "delete-group", "engineering")
    client, secret = wiki
    token = code_flow_tokens(live_server, client, secret, scope="openid groups")
    assert id_token_claims(live_server, token, client)["groups"] == ["staff"]


@pytest.mark.parametrize("args, message", [
    (["create-group", "has space"], "A group name is 1 to 64 letters"),
    (["create-group", "x" * 65], "A group name is 1 to 64 letters"),
    (["create-group", "staff"], "A group named 'staff' exists already."),
    (["create-group", "ok", "--description", "d" * 201], "at most 200 characters"),
    (["delete-group", "nobody"], "No group named 'nobody'"),
    (["add-to-group", "staff", "alice", "ghost"], "No user named 'ghost'."),
    (["add-to-group", "ghosts", "alice"], "No group named 'ghosts'"),
    (["remove-from-group", "engineering", "bob"], "bob is not in engineering."),
    (["create-role", "no-such-client", "editor"], "No client with client_id 'no-such-client'."),
    (["assign-role", "no-such-client", "editor", "--user", "alice"], "No client with client_id"),
    (["limit-client", "no-such-client", "--everyone"], "No client with client_id"),
])
def test_wrong_calls_are_one_line_errors_and_change_nothing(runner, staff, args, message):
    result = cli(runner, *args, ok=False)
    assert result.exit_code != 0
    assert message in result.output
    listed = json.loads(cli(runner, "list-groups", "--json").output)
    assert [(g["name"], g["members"]) for g in listed] == [("engineering", ["alice"]), ("staff", ["alice", "bob"])]


def test_role_commands_refuse_bad_calls(runner, staff, wiki):
    client, _ = wiki
    assert "A role name is 1 to 64" in cli(runner, "create-role", client.client_id, "bad role", ok=False).output
    cli(runner, "create-role", client.client_id, "editor")
    assert "has a role 'editor' already" in cli(runner, "create-role", client.client_id, "editor", ok=False).output
    assert "has no role 'boss'" in cli(runner, "assign-role", client.client_id, "boss", "--user", "alice",
                                        ok=False).output
    both = cli(runner, "assign-role", client.client_id, "editor", "--user", "alice", "--group", "staff", ok=False)
    assert "Name exactly one holder" in both.output
    assert "Name exactly one holder" in cli(runner, "assign-role", client.client_id, "editor", ok=False).output
    cli(runner, "assign-role", client.client_id, "editor", "--user", "alice")
    assert "has the role editor already" in cli(runner, "assign-role", client.client_id, "editor", "--user",
                                                "alice", ok=False).output
    assert "does not have the role editor" in cli(runner, "unassign-role", client.client_id, "editor",
                                                  "--group", "staff", ok=False).output
    assert "Give --group GROUP" in cli(runner, "limit-client", client.client_id, ok=False).output


def test_deleting_the_last_group_a_client_is_limited_to_is_refused(test_client, runner, staff, make_client):
    """A client limited to no group is open to everyone: deleting its only group would let in
    everyone it kept out. Refused until the client allows another group, or everyone."""
    password_only = {"grant_types": ["password"], "redirect_uris": [], "scope": "openid"}
    client, secret = make_client(client_name="Payroll", **password_only)
    other, _ = make_client(client_name="Wiki", **password_only)
    cli(runner, "limit-client", client.client_id, "--group", "engineering")
    cli(runner, "limit-client", other.client_id, "--group", "engineering", "--group", "staff")
    refused = cli(runner, "delete-group", "engineering", ok=False)
    assert refused.exit_code == 1 and len(refused.output.strip().splitlines()) == 1
    assert f"engineering is the only group allowed to use Payroll ({client.client_id})" in refused.output
    assert "Wiki" not in refused.output  # staff still limits it
    bob = {"grant_type": "password", "username": "bob", "password": PASSWORD, "scope": "openid"}
    assert test_client.post("/oauth/token", auth=(client.client_id, secret), data=bob).status_code == 400
    cli(runner, "limit-client", client.client_id, "--group", "staff")
    cli(runner, "delete-group", "engineering")
    assert [g["name"] for g in json.loads(cli(runner, "list-groups", "--json").output)] == ["staff"]
