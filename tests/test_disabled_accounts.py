"""An administrator disables an account: the person cannot sign in, their sessions end and
every token of theirs is refused at once (/api/me, UserInfo, introspection, refresh)."""

import pytest

from support.factories import PASSWORD
from support.flows import bearer, get_user_token, me, refresh


def test_a_disabled_person_is_stopped_everywhere_at_once(app, test_client, auth, runner, user, make_client):
    client, secret = make_client(scope="openid profile offline_access")
    auth.login()
    token = get_user_token(test_client, client, secret, scope="openid profile offline_access")
    assert me(test_client, token["access_token"]).status_code == 200

    result = runner.invoke(args=["disable-user", "alice"])
    assert result.exit_code == 0, result.output
    assert "signed out everywhere, every token revoked" in result.output

    assert me(test_client, token["access_token"]).status_code == 401
    assert test_client.get("/userinfo", headers=bearer(token["access_token"])).status_code == 401
    introspection = test_client.post("/oauth/introspect", data={"token": token["access_token"]},
                                     auth=(client.client_id, secret))
    assert introspection.json == {"active": False}
    assert refresh(test_client, client, token["refresh_token"], secret).json["error"] == "invalid_grant"
    # The browser session ended; signing in again is refused like a wrong password.
    assert test_client.get("/account/").status_code == 302
    response = auth.login()
    assert response.status_code == 400
    assert "Wrong username or password." in response.get_data(as_text=True)
    password_grant = make_client(grant_types=["password"], redirect_uris=[], scope="profile")
    refused = test_client.post("/oauth/token", auth=(password_grant[0].client_id, password_grant[1]), data={
        "grant_type": "password", "username": "alice", "password": PASSWORD})
    assert refused.json["error"] == "invalid_grant"

    result = runner.invoke(args=["enable-user", "alice"])
    assert result.exit_code == 0, result.output
    assert auth.login().status_code == 302
    # Old tokens stay revoked after the account is enabled again.
    assert me(test_client, token["access_token"]).status_code == 401


@pytest.mark.parametrize("args, message", [
    (["disable-user", "nobody"], "No user named 'nobody'."),
    (["enable-user", "nobody"], "No user named 'nobody'."),
    (["enable-user", "alice"], "alice is not disabled."),
])
def test_wrong_calls(runner, user, args, message):
    result = runner.invoke(args=args)
    assert result.exit_code == 1
    assert message in result.output


def test_disabling_twice_says_so(runner, user):
    assert runner.invoke(args=["disable-user", "alice"]).exit_code == 0
    result = runner.invoke(args=["disable-user", "alice"])
    assert result.exit_code == 1
    assert "alice is disabled already." in result.output
