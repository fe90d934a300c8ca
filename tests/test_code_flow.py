"""The authorization code grant, end to end through the Flask test client."""

from urllib.parse import urlencode

from conftest import pkce_pair, query_params


def authorize_url(client, **params):
    values = {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": client.redirect_uris[0],
        "scope": "profile",
        "state": "xyz",
    }
    values.update(params)
    return "/oauth/authorize?" + urlencode({k: v for k, v in values.items() if v is not None})


def approve(test_client, auth, url):
    """Open the consent page and press Allow; return the redirect."""
    token = auth.csrf_token(url)
    return test_client.post(url, data={"csrf_token": token, "allow": "Allow"})


def test_code_flow_with_pkce_gets_tokens_and_reads_me(test_client, auth, user, make_client):
    client, secret = make_client()
    auth.login()
    verifier, challenge = pkce_pair()
    url = authorize_url(client, code_challenge=challenge, code_challenge_method="S256")
    page = test_client.get(url)
    assert page.status_code == 200
    assert "Test App" in page.get_data(as_text=True)
    response = approve(test_client, auth, url)
    assert response.status_code == 302
    params = query_params(response.headers["Location"])
    assert params["state"] == "xyz"
    token = test_client.post(
        "/oauth/token",
        data={"grant_type": "authorization_code", "code": params["code"],
              "redirect_uri": client.redirect_uris[0], "code_verifier": verifier},
        auth=(client.client_id, secret),
    )
    assert token.status_code == 200, token.json
    body = token.json
    assert body["token_type"].lower() == "bearer"
    assert body["refresh_token"]
    assert token.headers["Cache-Control"] == "no-store"
    me = test_client.get("/api/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200
    assert me.json == {"id": user.id, "username": "alice", "email": "alice@example.com"}
    # The code works once only.
    again = test_client.post(
        "/oauth/token",
        data={"grant_type": "authorization_code", "code": params["code"],
              "redirect_uri": client.redirect_uris[0], "code_verifier": verifier},
        auth=(client.client_id, secret),
    )
    assert again.status_code == 400
    assert again.json["error"] == "invalid_grant"
    me = test_client.get("/api/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 401
