"""Helpers for tests that walk the OAuth flows through the public HTTP surface."""

import re
from conftest import approve, authorize_url, pkce_pair, query_params  # noqa: F401 (re-exported)


def csrf_token(test_client, path: str) -> str:
    """The CSRF token of the form on the page at ``path``."""
    html = test_client.get(path).get_data(as_text=True)
    return re.search(r'<input[^>]*name="csrf_token"[^>]*value="([^"]+)"', html).group(1)


def get_code(test_client, client, **params) -> tuple[str, str]:
    """Approve an authorization request as the signed-in user; return (code, PKCE verifier)."""
    verifier, challenge = pkce_pair()
    url = authorize_url(client, code_challenge=challenge, code_challenge_method="S256", **params)
    response = approve(test_client, None, url)
    assert response.status_code == 302, response.get_data(as_text=True)
    return query_params(response.headers["Location"])["code"], verifier


def code_request(client, code: str, verifier: str, secret: str | None = None) -> tuple[dict, tuple | None]:
    """The form and Basic credentials of a code redemption."""
    data = {"grant_type": "authorization_code", "code": code,
            "redirect_uri": client.redirect_uris[0], "code_verifier": verifier}
    if secret is None:
        data["client_id"] = client.client_id
        return data, None
    return data, (client.client_id, secret)


def redeem(test_client, client, code, verifier, secret=None):
    """POST the code to the token endpoint; return the response."""
    data, basic = code_request(client, code, verifier, secret)
    return test_client.post("/oauth/token", data=data, auth=basic)


def refresh(test_client, client, refresh_token, secret=None):
    """Exchange a refresh token; return the response."""
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    if secret is None:
        data["client_id"] = client.client_id
        return test_client.post("/oauth/token", data=data)
    return test_client.post("/oauth/token", data=data, auth=(client.client_id, secret))


def me(test_client, access_token):
    """GET /api/me with the access token."""
    return test_client.get("/api/me", headers={"Authorization": f"Bearer {access_token}"})
