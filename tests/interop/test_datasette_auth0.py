"""datasette-auth0 (seed 000), unchanged, in Datasette against the live server behind TLS.

The plugin only speaks https to ``https://{domain}/``, so the provider is served here with a
certificate from a throwaway CA (support.tls) and the plugin's HTTP client (httpx, which reads
SSL_CERT_FILE) trusts that CA. Its ``domain`` setting is the provider's host:port, as for an
Auth0 tenant. The plugin always sends the secret with HTTP Basic; an Auth0 application is
registered client_secret_post by default, so both registrations must sign in."""

import re

import pytest
from datasette.app import Datasette
from support.loopback import ASGIServer, WSGIServer
from support.oidc import Browser
from support.tls import ThrowawayCA


@pytest.fixture
def tls_idp(app, tmp_path, monkeypatch):
    """The app served over HTTPS, issuer set to its https URL, trusted by HTTP clients in this
    process; yields its URL."""
    ca = ThrowawayCA(tmp_path)
    server = WSGIServer(app, ssl_context=ca.server_context())
    app.config["OAUTH2_ISSUER"] = server.url + "/"
    # Trusted by the plugin's httpx (SSL_CERT_FILE) and the person's browser, requests
    # (REQUESTS_CA_BUNDLE, which outranks a session's own verify=).
    monkeypatch.setenv("SSL_CERT_FILE", str(ca.ca_file))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca.ca_file))
    yield server.url
    server.close()


@pytest.mark.parametrize("auth_method", ["client_secret_basic", "client_secret_post"])
def test_datasette_auth0_signs_in(tls_idp, user, make_client, auth_method):
    idp = tls_idp
    server = ASGIServer()
    try:
        client, secret = make_client(redirect_uris=[server.url + "/-/auth0-callback"],
                                     scope="openid profile email", token_endpoint_auth_method=auth_method)
        datasette = Datasette(memory=True, metadata={"plugins": {"datasette-auth0": {
            "domain": idp.removeprefix("https://"), "client_id": client.client_id, "client_secret": secret}}})
        server.app = datasette.app()
        browser = Browser(idp)

        home = browser.session.get(server.url + "/", timeout=10)
        assert "Sign in with Auth0" in home.text  # the plugin's menu link for a signed-out visitor
        start = browser.session.get(server.url + "/-/auth0-login", allow_redirects=False, timeout=10)
        assert start.status_code == 302 and start.headers["Location"].startswith(idp + "/authorize?")
        callback = browser.authorize(start.headers["Location"])
        assert callback.startswith(server.url + "/-/auth0-callback?"), callback
        landed = browser.session.get(callback, timeout=10)
        assert landed.status_code == 200 and landed.url == server.url + "/", landed.text[:500]
        actor = browser.session.get(server.url + "/-/actor.json", timeout=10).json()["actor"]
        # On failure the plugin redirects home too, with its error among Datasette's messages.
        messages = re.findall(r'<p class="message-error">(.*?)</p>', landed.text, re.S)
        assert actor is not None, messages
        home = browser.session.get(server.url + "/", timeout=10)
    finally:
        server.close()
    # The actor is the provider's UserInfo answer, which the plugin fetched over TLS.
    assert actor["preferred_username"] == "alice" and actor["email"] == "alice@example.com"
    assert actor["sub"]
    assert "Sign in with Auth0" not in home.text
