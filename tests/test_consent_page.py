"""The consent page tells people who is asking, for what, and where they go next."""

from urllib.parse import urlencode

from support.flows import pkce_pair


def consent_page(test_client, client, scope):
    _, challenge = pkce_pair()
    return test_client.get("/oauth/authorize?" + urlencode({
        "response_type": "code", "client_id": client.client_id, "redirect_uri": client.redirect_uris[0],
        "scope": scope, "state": "s", "code_challenge": challenge, "code_challenge_method": "S256",
    }))


def test_consent_page_shows_the_app_and_each_scope_in_words(test_client, auth, user, make_client):
    client, _ = make_client(client_name="Photo <Gallery>", client_uri="https://photos.example.com",
                            logo_uri="https://photos.example.com/logo.png",
                            scope="openid profile email offline_access")
    auth.login()
    response = consent_page(test_client, client, "openid profile email offline_access")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "Photo &lt;Gallery&gt;</span> wants to access your account" in html
    assert '<img class="app-mark" src="https://photos.example.com/logo.png" alt="Photo &lt;Gallery&gt; logo"' in html
    assert '<a href="https://photos.example.com" rel="noopener noreferrer">' in html
    for words in ("Confirm who you are (sign you in).", "See your username and profile.",
                  "See your email address.", "Keep access while you are away (refresh tokens)."):
        assert words in html
    assert "sent back to <strong>app.example.com</strong>" in html
    assert '<input class="button secondary" id="deny" name="deny" type="submit" value="Deny">' in html
    assert '<input class="button" id="allow" name="allow" type="submit" value="Allow">' in html


def test_consent_page_without_logo_shows_the_initial(test_client, auth, user, make_client):
    client, _ = make_client(client_name="weather")
    auth.login()
    html = consent_page(test_client, client, "profile").get_data(as_text=True)
    assert '<div class="app-mark app-initial" aria-hidden="true">W</div>' in html
    assert "<img" not in html


def test_consent_page_names_the_api_it_grants(test_client, auth, user, make_client, runner):
    client, _ = make_client(scope="openid profile")
    result = runner.invoke(args=["create-api", "--identifier", "https://api.example.com/<x>", "--name",
                                 "Billing <script>", "--allow-client", client.client_id])
    assert result.exit_code == 0, result.output
    auth.login()
    _, challenge = pkce_pair()
    response = test_client.get("/oauth/authorize?" + urlencode({
        "response_type": "code", "client_id": client.client_id, "redirect_uri": client.redirect_uris[0],
        "scope": "openid", "state": "s", "code_challenge": challenge, "code_challenge_method": "S256",
        "audience": "https://api.example.com/<x>"}))
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert '<span class="api-name">Billing &lt;script&gt;</span>' in html
    assert '<span class="scope-name">https://api.example.com/&lt;x&gt;</span>' in html
    assert "<script>" not in html.split("<body", 1)[1]
    # A request for no API lists none.
    assert "api-name" not in consent_page(test_client, client, "openid").get_data(as_text=True)
