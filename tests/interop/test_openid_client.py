"""panva's openid-client (Node, v6, pinned in tests/interop/package.json) against the live
server in its default configuration: discovery, client credentials with client_secret_post,
introspection and revocation, private_key_jwt, code + PKCE, refresh, userinfo, end-session.

The Node script (openid_client.mjs) does the client's side; this test registers the clients,
plays the person at the log-in and consent pages (oidc_support.Browser), and checks each step.
`make test` installs the package with `npm ci`; without node_modules the test is skipped,
except in CI (CI=true), where it must run."""

from urllib.parse import parse_qs, urlsplit

import requests
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from support.node import node_or_skip, run_script
from support.oidc import Browser

REDIRECT_URI = "http://127.0.0.1:8765/callback"
LOGOUT_URI = "http://127.0.0.1:8765/signed-out"


def server_keys(base: str) -> KeySet:
    metadata = requests.get(f"{base}/.well-known/openid-configuration", timeout=5).json()
    return KeySet.import_key_set(requests.get(metadata["jwks_uri"], timeout=5).json())


def test_openid_client_in_its_default_configuration(idp, user, make_client):
    node = node_or_skip()
    web_app, web_secret = make_client(
        redirect_uris=[REDIRECT_URI], post_logout_redirect_uris=[LOGOUT_URI],
        token_endpoint_auth_method="client_secret_post", scope="openid profile email offline_access")
    service, service_secret = make_client(
        grant_types=["client_credentials"], redirect_uris=[], scope="profile",
        token_endpoint_auth_method="client_secret_post")
    key = RSAKey.generate_key(2048, parameters={"kid": "interop-1"})
    jwt_client, _ = make_client(
        grant_types=["client_credentials"], redirect_uris=[], scope="profile",
        token_endpoint_auth_method="private_key_jwt", jwks={"keys": [key.as_dict(private=False)]})
    config = {
        "issuer": idp + "/",
        "secret_client": {"client_id": web_app.client_id, "client_secret": web_secret,
                          "redirect_uri": REDIRECT_URI, "post_logout_redirect_uri": LOGOUT_URI},
        "service": {"client_id": service.client_id, "client_secret": service_secret, "scope": "profile"},
        "jwt_client": {"client_id": jwt_client.client_id, "private_jwk": key.as_dict(private=True),
                       "scope": "profile"},
    }

    browser = Browser(idp)
    result = run_script(node, "openid_client.mjs", config, browser)

    # Discovery: openid-client checks the issuer equals the URL it was given.
    assert result["discovered_issuer"] == idp + "/"
    # Client credentials with client_secret_post; introspection active, then inactive after revocation.
    assert result["client_credentials"]["access_token"]
    assert result["client_credentials"]["token_type"].lower() == "bearer"
    before = result["introspection_before"]
    assert before["active"] is True and before["client_id"] == service.client_id
    assert result["introspection_after"] == {"active": False}
    # private_key_jwt: openid-client's PrivateKeyJwt signs an assertion the server accepts.
    assert result["private_key_jwt"]["access_token"]
    # Code + PKCE: the id_token verifies with the server's keys and names alice.
    claims = jwt.decode(result["code"]["id_token"], server_keys(idp)).claims
    assert claims["iss"] == idp + "/" and claims["aud"] == web_app.client_id
    assert result["code"]["sub"] == claims["sub"] and result["code"]["refresh_token"] is True
    assert result["userinfo"]["sub"] == claims["sub"]
    assert result["refresh"]["access_token_changed"] is True
    assert result["refresh"]["sub"] in (None, claims["sub"])  # an id_token on refresh is optional
    # End-session: the URL openid-client builds is the discovered end_session_endpoint with the hint.
    end_session = urlsplit(result["end_session_url"])
    query = parse_qs(end_session.query)
    assert query["id_token_hint"] == [result["code"]["id_token"]]
    assert query["post_logout_redirect_uri"] == [LOGOUT_URI]
    signed_out = browser.session.get(result["end_session_url"], allow_redirects=False, timeout=5)
    assert signed_out.status_code == 302, signed_out.text[:300]
    assert signed_out.headers["Location"] == LOGOUT_URI
