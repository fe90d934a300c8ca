"""Walking the OAuth flows through the test client: build an authorization request, consent,
get a code, get tokens, and use them."""

import base64
import hashlib
import secrets
from urllib.parse import urlencode

from support.pages import csrf_token, query_params


def pkce_pair() -> tuple[str, str]:
    """A PKCE (verifier, S256 challenge) pair."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorize_url(client, **params) -> str:
    """An /oauth/authorize URL for the client; ``None`` values leave a parameter out."""
    values = {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": client.redirect_uris[0],
        "scope": "profile",
        "state": "xyz",
    }
    values.update(params)
    return "/oauth/authorize?" + urlencode({k: v for k, v in values.items() if v is not None})


def approve(test_client, url, button="allow"):
    """Open the consent page and press Allow (or Deny); return the response. When the user
    already allowed these scopes, the page redirects at once and that redirect is returned."""
    page = test_client.get(url)
    if page.status_code == 302:
        return page
    return test_client.post(url, data={"csrf_token": csrf_token(page), button: button.title()})


def bearer(access_token: str) -> dict:
    """The Authorization header for a bearer token."""
    return {"Authorization": f"Bearer {access_token}"}


def get_code(test_client, client, **params) -> tuple[str, str]:
    """Approve a PKCE code request as the signed-in user; return (code, PKCE verifier)."""
    verifier, challenge = pkce_pair()
    params.setdefault("code_challenge", challenge)
    params.setdefault("code_challenge_method", "S256")
    response = approve(test_client, authorize_url(client, **params))
    assert response.status_code == 302, response.get_data(as_text=True)
    return query_params(response.headers["Location"])["code"], verifier


def login_and_get_code(test_client, auth, client, **params) -> tuple[str, str]:
    """Log in (as alice), then ``get_code``."""
    auth.login()
    return get_code(test_client, client, **params)


def exchange_code(test_client, client, secret, code, verifier, **extra):
    """POST the code to the token endpoint with HTTP Basic client authentication."""
    data = {"grant_type": "authorization_code", "code": code,
            "redirect_uri": client.redirect_uris[0], "code_verifier": verifier, **extra}
    return test_client.post("/oauth/token", data=data, auth=(client.client_id, secret))


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


def refresh(test_client, client, refresh_token, secret=None, **extra):
    """Exchange a refresh token (a public client without ``secret``); return the response."""
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token, **extra}
    if secret is None:
        data["client_id"] = client.client_id
        return test_client.post("/oauth/token", data=data)
    return test_client.post("/oauth/token", data=data, auth=(client.client_id, secret))


def me(test_client, access_token):
    """GET /api/me with the access token."""
    return test_client.get("/api/me", headers=bearer(access_token))


def get_user_token(test_client, client, secret, scope="profile", **params) -> dict:
    """Run the code flow for the signed-in user (consenting if asked); return the token response."""
    verifier, challenge = pkce_pair()
    url = authorize_url(client, scope=scope, code_challenge=challenge, code_challenge_method="S256", **params)
    response = approve(test_client, url)
    assert response.status_code == 302, response.get_data(as_text=True)
    params = query_params(response.headers["Location"])
    assert "code" in params, params
    token = exchange_code(test_client, client, secret, params["code"], verifier)
    assert token.status_code == 200, token.json
    return token.json
