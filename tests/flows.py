"""Helpers that walk the authorization code flow through Flask's test client."""

from urllib.parse import urlencode

from conftest import pkce_pair, query_params


def authorize_url(client, **params) -> str:
    """An /oauth/authorize URL for the client; ``None`` values are left out."""
    values = {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": client.redirect_uris[0],
        "scope": "profile",
        "state": "xyz",
    }
    values.update(params)
    return "/oauth/authorize?" + urlencode({k: v for k, v in values.items() if v is not None})


def csrf_token(test_client, path: str) -> str:
    """The CSRF token of the first form on a page."""
    html = test_client.get(path).get_data(as_text=True)
    return html.split('name="csrf_token" type="hidden" value="', 1)[1].split('"', 1)[0]


def approve(test_client, url: str):
    """Open the consent page and press Allow; return the response."""
    return test_client.post(url, data={"csrf_token": csrf_token(test_client, url), "allow": "Allow"})


def exchange_code(test_client, client, secret, code: str, verifier: str, **extra):
    """Redeem an authorization code at the token endpoint."""
    return test_client.post(
        "/oauth/token",
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": client.redirect_uris[0],
              "code_verifier": verifier, **extra},
        auth=(client.client_id, secret),
    )


def get_user_token(test_client, client, secret, scope="profile", **params) -> dict:
    """Run the code flow for the signed-in user (consenting if asked); return the token response."""
    verifier, challenge = pkce_pair()
    url = authorize_url(client, scope=scope, code_challenge=challenge, code_challenge_method="S256", **params)
    response = test_client.get(url)
    if response.status_code == 200:  # the consent page
        response = approve(test_client, url)
    assert response.status_code == 302, response.get_data(as_text=True)
    params = query_params(response.headers["Location"])
    assert "code" in params, params
    token = exchange_code(test_client, client, secret, params["code"], verifier)
    assert token.status_code == 200, token.json
    return token.json
