"""panva's openid-client (Node, v6, pinned in tests/interop/package.json) against the live
server in its default configuration: discovery, client credentials with client_secret_post,
introspection and revocation, private_key_jwt, code + PKCE, refresh, userinfo, end-session;
and with DPoP (server nonces on) and token exchange (openid_client_dpop.mjs).

The Node script (openid_client.mjs) does the client's side; this test registers the clients,
plays the person at the log-in and consent pages (support.oidc.Browser, through support.node.run_script), and checks each step.
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


API = "https://invoices.example/"


def test_openid_client_with_dpop_and_token_exchange(app, idp, user, make_client, runner):
    """DPoP with a server nonce (openid-client retries use_dpop_nonce by itself), dpop_jkt,
    userinfo and /api/me with proofs, refresh, then token exchange with an actor token."""
    node = node_or_skip()
    app.config["OAUTH2_DPOP_NONCE"] = True
    web_app, secret = make_client(
        redirect_uris=[REDIRECT_URI], token_endpoint_auth_method="client_secret_post",
        grant_types=["authorization_code", "refresh_token", "client_credentials",
                     "urn:ietf:params:oauth:grant-type:token-exchange"],
        scope="openid profile offline_access", dpop_bound_access_tokens=True)
    created = runner.invoke(args=["create-api", "--identifier", API, "--name", "Invoices",
                                  "--allow-client", web_app.client_id])
    assert created.exit_code == 0, created.output
    config = {"issuer": idp + "/", "app": {"client_id": web_app.client_id, "client_secret": secret,
                                           "redirect_uri": REDIRECT_URI, "audience": API}}

    result = run_script(node, "openid_client_dpop.mjs", config, Browser(idp))

    assert "ES256" in result["dpop_algs"]
    assert "urn:ietf:params:oauth:grant-type:token-exchange" in result["grant_types"]
    assert result["code"]["token_type"].lower() == "dpop" and result["code"]["refresh_token"] is True
    assert result["userinfo"]["sub"] == result["code"]["sub"]
    assert result["me"]["status"] == 200 and result["me"]["body"]["username"] == "alice"
    assert result["refresh"] == {"token_type": "dpop", "access_token_changed": True}  # openid-client lower-cases it
    # The code's token is bound to the key openid-client named in dpop_jkt.
    introspected = requests.post(f"{idp}/oauth/introspect", data={"token": result["access_token"]},
                                 auth=(web_app.client_id, secret), timeout=5).json()
    assert introspected["cnf"] == {"jkt": result["jkt"]}
    # Token exchange: a JWT for the API, for alice, with the app acting; bound to the new key.
    exchanged = result["exchanged"]
    assert exchanged["issued_token_type"] == "urn:ietf:params:oauth:token-type:access_token"
    assert exchanged["token_type"].lower() == "dpop" and exchanged["refresh_token"] is None
    claims = jwt.decode(exchanged["access_token"], server_keys(idp)).claims
    assert claims["aud"] == API and claims["sub"] == result["code"]["sub"]
    assert claims["act"] == {"sub": web_app.client_id, "client_id": web_app.client_id}
    assert claims["cnf"] == {"jkt": exchanged["jkt"]} and claims["scope"] == "profile"
