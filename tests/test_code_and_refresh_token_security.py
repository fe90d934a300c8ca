"""RFC 9700 §2.1, §4.2, §4.5, §4.14: codes single-use and bound to client, redirect URI and
PKCE; refresh tokens rotated with reuse detection; secrets only as hashes at rest."""

import pytest
from sqlalchemy import select, text

from support.flows import authorize_url, get_code, me, redeem, refresh
from website.models import AuthorizationCode, OAuth2Client, Token, db


@pytest.fixture
def signed_in(auth, user):
    auth.login()
    return user


def test_second_redemption_fails_and_revokes_tokens_from_the_code(test_client, signed_in, make_client):
    client, secret = make_client()
    code, verifier = get_code(test_client, client)
    first = redeem(test_client, client, code, verifier, secret)
    assert first.status_code == 200
    tokens = first.json
    assert me(test_client, tokens["access_token"]).status_code == 200
    second = redeem(test_client, client, code, verifier, secret)
    assert second.status_code == 400
    assert second.json["error"] == "invalid_grant"
    # Everything the code produced is dead: the access token and its refresh token.
    assert me(test_client, tokens["access_token"]).status_code == 401
    assert refresh(test_client, client, tokens["refresh_token"], secret).json["error"] == "invalid_grant"


def test_code_is_bound_to_its_client(test_client, signed_in, make_client):
    client, _ = make_client()
    other, other_secret = make_client(client_name="Other")
    code, verifier = get_code(test_client, client)
    response = test_client.post(
        "/oauth/token", auth=(other.client_id, other_secret),
        data={"grant_type": "authorization_code", "code": code,
              "redirect_uri": client.redirect_uris[0], "code_verifier": verifier},
    )
    assert response.status_code == 400
    assert response.json["error"] == "invalid_grant"


def test_code_is_bound_to_its_redirect_uri(test_client, signed_in, make_client):
    client, secret = make_client(redirect_uris=["https://app.example.com/a", "https://app.example.com/b"])
    code, verifier = get_code(test_client, client)  # issued for /a
    response = test_client.post(
        "/oauth/token", auth=(client.client_id, secret),
        data={"grant_type": "authorization_code", "code": code,
              "redirect_uri": "https://app.example.com/b", "code_verifier": verifier},
    )
    assert response.status_code == 400
    assert response.json["error"] == "invalid_grant"


@pytest.mark.parametrize("verifier", ["wrong-verifier-" + "x" * 40, None])
def test_code_is_bound_to_its_pkce_challenge(test_client, signed_in, make_client, verifier):
    client, secret = make_client()
    code, _ = get_code(test_client, client)
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": client.redirect_uris[0]}
    if verifier:
        data["code_verifier"] = verifier
    response = test_client.post("/oauth/token", auth=(client.client_id, secret), data=data)
    assert response.status_code == 400
    assert response.json["error"] in {"invalid_grant", "invalid_request"}


def test_public_client_must_use_pkce_s256(test_client, signed_in, make_client):
    client, _ = make_client(token_endpoint_auth_method="none")
    page = test_client.get(authorize_url(client))
    assert page.status_code == 302
    assert "error=invalid_request" in page.headers["Location"]
    plain = test_client.get(authorize_url(client, code_challenge="a" * 43, code_challenge_method="plain"))
    assert "error=invalid_request" in plain.headers["Location"]


def test_public_refresh_tokens_rotate_and_reuse_revokes_the_family(test_client, signed_in, make_client):
    client, _ = make_client(token_endpoint_auth_method="none")
    code, verifier = get_code(test_client, client)
    first = redeem(test_client, client, code, verifier).json
    second = refresh(test_client, client, first["refresh_token"])
    assert second.status_code == 200
    second = second.json
    assert second["refresh_token"] != first["refresh_token"]
    third = refresh(test_client, client, second["refresh_token"]).json
    assert me(test_client, third["access_token"]).status_code == 200
    # An attacker replays the first (rotated) refresh token: the whole family dies.
    replay = refresh(test_client, client, first["refresh_token"])
    assert replay.status_code == 400
    assert replay.json["error"] == "invalid_grant"
    assert me(test_client, third["access_token"]).status_code == 401
    assert refresh(test_client, client, third["refresh_token"]).json["error"] == "invalid_grant"


@pytest.mark.parametrize("rotate", [True, False])
def test_confidential_rotation_is_configurable(app, test_client, signed_in, make_client, rotate):
    app.config["OAUTH2_ROTATE_CONFIDENTIAL_REFRESH_TOKENS"] = rotate
    client, secret = make_client()
    code, verifier = get_code(test_client, client)
    first = redeem(test_client, client, code, verifier, secret).json
    second = refresh(test_client, client, first["refresh_token"], secret)
    assert second.status_code == 200
    if rotate:
        assert second.json["refresh_token"] != first["refresh_token"]
        assert refresh(test_client, client, first["refresh_token"], secret).status_code == 400
    else:
        assert "refresh_token" not in second.json
        again = refresh(test_client, client, first["refresh_token"], secret)
        assert again.status_code == 200
        assert me(test_client, again.json["access_token"]).status_code == 200


def test_refresh_token_is_bound_to_its_client(test_client, signed_in, make_client):
    client, secret = make_client()
    other, other_secret = make_client(client_name="Other")
    code, verifier = get_code(test_client, client)
    tokens = redeem(test_client, client, code, verifier, secret).json
    stolen = refresh(test_client, other, tokens["refresh_token"], other_secret)
    assert stolen.status_code == 400
    assert stolen.json["error"] == "invalid_grant"


def test_secrets_codes_and_tokens_are_stored_only_as_hashes(app, test_client, signed_in, make_client):
    client, secret = make_client()
    code, verifier = get_code(test_client, client)
    tokens = redeem(test_client, client, code, verifier, secret).json
    plain_values = [secret, code, tokens["access_token"], tokens["refresh_token"]]
    with app.app_context():
        dump = []
        for model in (OAuth2Client, AuthorizationCode, Token):
            for row in db.session.execute(text(f"SELECT * FROM {model.__tablename__}")):
                dump.extend(str(value) for value in row)
        stored = db.session.scalar(select(OAuth2Client).where(OAuth2Client.client_id == client.client_id))
        assert len(stored.client_secret_hash) == 64
    joined = "\n".join(dump)
    for value in plain_values:
        assert value not in joined


def test_client_secret_comparison_is_constant_time(monkeypatch, make_client, app):
    """The secret check goes through hmac.compare_digest (timing-safe)."""
    import hmac

    from website.models import clients as models

    calls = []
    real = hmac.compare_digest
    monkeypatch.setattr(models.hmac, "compare_digest", lambda a, b: calls.append((a, b)) or real(a, b))
    client, secret = make_client()
    with app.app_context():
        stored = db.session.scalar(select(OAuth2Client).where(OAuth2Client.client_id == client.client_id))
        assert stored.check_client_secret(secret)
        assert not stored.check_client_secret(secret + "x")
    assert len(calls) == 2
