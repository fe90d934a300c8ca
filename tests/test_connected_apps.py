"""Remembered consent and the Connected apps page (/account/apps)."""

from support.flows import approve, authorize_url, exchange_code, get_user_token, pkce_pair
from support.pages import AuthActions, form_token, query_params

from website.models import AuthorizationCode, Consent, db


def test_consent_is_remembered_for_the_same_or_fewer_scopes(app, test_client, auth, user, make_client):
    client, secret = make_client()
    auth.login()
    get_user_token(test_client, client, secret, scope="profile email")
    # Same scopes, and a subset: straight back to the app with a code, no consent page.
    for scope in ("profile email", "email"):
        verifier, challenge = pkce_pair()
        response = test_client.get(authorize_url(client, scope=scope, code_challenge=challenge,
                                                 code_challenge_method="S256"))
        assert response.status_code == 302, scope
        code = query_params(response.headers["Location"])["code"]
        assert exchange_code(test_client, client, secret, code, verifier).json["scope"] == scope
    # A scope never allowed, or prompt=consent, asks again.
    _, challenge = pkce_pair()
    assert test_client.get(authorize_url(client, scope="profile openid", code_challenge=challenge,
                                         code_challenge_method="S256")).status_code == 200
    assert test_client.get(authorize_url(client, scope="profile", prompt="consent", code_challenge=challenge,
                                         code_challenge_method="S256")).status_code == 200


def test_consent_is_per_user_and_per_client(app, test_client, auth, make_user, make_client):
    make_user("alice")
    make_user("bob")
    client, secret = make_client()
    other, _ = make_client(client_name="Other App")
    auth.login("alice")
    get_user_token(test_client, client, secret)
    _, challenge = pkce_pair()
    pkce = {"code_challenge": challenge, "code_challenge_method": "S256"}
    assert test_client.get(authorize_url(other, **pkce)).status_code == 200
    bob_browser = app.test_client()
    AuthActions(bob_browser).login("bob")
    assert bob_browser.get(authorize_url(client, **pkce)).status_code == 200


def test_denying_remembers_nothing(app, test_client, auth, user, make_client):
    client, _ = make_client()
    auth.login()
    _, challenge = pkce_pair()
    url = authorize_url(client, code_challenge=challenge, code_challenge_method="S256")
    response = test_client.post(url, data={"csrf_token": form_token(test_client, url), "deny": "Deny"})
    assert query_params(response.headers["Location"])["error"] == "access_denied"
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count(Consent.id))) == 0


def test_connected_apps_lists_approved_apps_in_words(test_client, auth, user, make_client):
    client, secret = make_client(client_name="Photo Printer")
    make_client(client_name="Never Approved")
    auth.login()
    get_user_token(test_client, client, secret, scope="profile email")
    page = test_client.get("/account/apps")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Photo Printer" in html
    assert "Never Approved" not in html
    assert "See your email address." in html
    assert "Allowed on" in html


def test_revoking_an_app_stops_its_tokens_at_once(app, test_client, auth, user, make_client):
    client, secret = make_client()
    other, other_secret = make_client(client_name="Other App")
    auth.login()
    token = get_user_token(test_client, client, secret)
    kept = get_user_token(test_client, other, other_secret)
    # An approved but not yet redeemed code must not survive the revocation either.
    verifier, challenge = pkce_pair()
    response = test_client.get(authorize_url(client, code_challenge=challenge, code_challenge_method="S256"))
    pending_code = query_params(response.headers["Location"])["code"]
    bearer = {"Authorization": f"Bearer {token['access_token']}"}
    assert test_client.get("/api/me", headers=bearer).status_code == 200

    response = test_client.post(f"/account/apps/{client.client_id}/revoke",
                                data={"csrf_token": form_token(test_client, "/account/apps")})
    assert response.status_code == 302
    assert test_client.get("/api/me", headers=bearer).status_code == 401
    refreshed = test_client.post("/oauth/token", data={"grant_type": "refresh_token",
                                                       "refresh_token": token["refresh_token"]},
                                 auth=(client.client_id, secret))
    assert refreshed.json["error"] == "invalid_grant"
    assert exchange_code(test_client, client, secret, pending_code, verifier).json["error"] == "invalid_grant"
    # The other app keeps working, and the revoked one has to ask again.
    assert test_client.get("/api/me", headers={"Authorization": f"Bearer {kept['access_token']}"}).status_code == 200
    assert "Test App" not in test_client.get("/account/apps").get_data(as_text=True)
    assert test_client.get(authorize_url(client, code_challenge=challenge,
                                         code_challenge_method="S256")).status_code == 200
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count(AuthorizationCode.id))
                                 .where(AuthorizationCode.used_at.is_(None))) == 0


def test_revoke_needs_csrf_and_an_approved_app(test_client, auth, user, make_client):
    client, secret = make_client()
    auth.login()
    get_user_token(test_client, client, secret)
    assert test_client.post(f"/account/apps/{client.client_id}/revoke").status_code == 400
    token = form_token(test_client, "/account/apps")
    assert test_client.post("/account/apps/unknown/revoke", data={"csrf_token": token}).status_code == 404
    assert "Test App" in test_client.get("/account/apps").get_data(as_text=True)


def test_connected_apps_needs_login(test_client):
    response = test_client.get("/account/apps")
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


def test_approve_helper_returns_a_redirect(test_client, auth, user, make_client):
    client, _ = make_client()
    auth.login()
    _, challenge = pkce_pair()
    response = approve(test_client, authorize_url(client, code_challenge=challenge, code_challenge_method="S256"))
    assert response.status_code == 302


def test_prompt_none_succeeds_once_consent_is_remembered(test_client, auth, user, make_client):
    client, secret = make_client()
    auth.login()
    _, challenge = pkce_pair()
    pkce = {"code_challenge": challenge, "code_challenge_method": "S256"}
    before = test_client.get(authorize_url(client, prompt="none", **pkce))
    assert query_params(before.headers["Location"])["error"] == "consent_required"
    get_user_token(test_client, client, secret)
    after = test_client.get(authorize_url(client, prompt="none", **pkce))
    assert "code" in query_params(after.headers["Location"])
    wider = test_client.get(authorize_url(client, prompt="none", scope="profile email", **pkce))
    assert query_params(wider.headers["Location"])["error"] == "consent_required"


def test_deleting_a_client_removes_its_consents(app, test_client, auth, user, make_client):
    client, secret = make_client(owner=user)
    auth.login()
    get_user_token(test_client, client, secret)
    page = f"/clients/{client.client_id}/delete"
    assert test_client.post(page, data={"csrf_token": form_token(test_client, page)}).status_code == 302
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count(Consent.id))) == 0
    assert "You have not allowed any apps" in test_client.get("/account/apps").get_data(as_text=True)


def test_a_request_without_scope_consents_to_the_clients_scopes(test_client, auth, user, make_client):
    # Tokens for a request without scope carry every scope the client registered, so the
    # consent page lists them and a narrower remembered consent does not cover it.
    client, secret = make_client(scope="profile email")
    auth.login()
    get_user_token(test_client, client, secret, scope="profile")
    _, challenge = pkce_pair()
    page = test_client.get(authorize_url(client, scope=None, code_challenge=challenge, code_challenge_method="S256"))
    assert page.status_code == 200
    assert "See your email address." in page.get_data(as_text=True)
    token = get_user_token(test_client, client, secret, scope=None)
    assert token["scope"] == "profile email"
    assert "Allowed on" in test_client.get("/account/apps").get_data(as_text=True)
    assert test_client.get(authorize_url(client, scope="email", code_challenge=challenge,
                                         code_challenge_method="S256")).status_code == 302


ORDERS = "https://api.example.com/orders"


def allowed_api_client(runner, make_client, name="Orders <API>"):
    """A client that an API (registered without scopes) allows."""
    client, secret = make_client()
    result = runner.invoke(args=["create-api", "--identifier", ORDERS, "--name", name,
                                 "--allow-client", client.client_id])
    assert result.exit_code == 0, result.output
    return client, secret


def test_remembered_consent_covers_only_the_apis_it_named(app, test_client, auth, user, make_client, runner):
    client, secret = allowed_api_client(runner, make_client)
    auth.login()
    get_user_token(test_client, client, secret, scope="openid profile")  # sign-in only, no API
    _, challenge = pkce_pair()
    pkce = {"code_challenge": challenge, "code_challenge_method": "S256"}
    # The same client now asks for a token for the API: the person is asked, not skipped past.
    for parameter in ("audience", "resource"):
        page = test_client.get(authorize_url(client, scope="openid profile", **{parameter: ORDERS}, **pkce))
        assert page.status_code == 200, parameter
        html = page.get_data(as_text=True)
        assert "It may use these APIs as you:" in html
        assert '<span class="api-name">Orders &lt;API&gt;</span>' in html and ORDERS in html
    silent = test_client.get(authorize_url(client, scope="openid profile", prompt="none", audience=ORDERS, **pkce))
    assert query_params(silent.headers["Location"])["error"] == "consent_required"

    token = get_user_token(test_client, client, secret, scope="openid profile", audience=ORDERS)
    assert token["token_type"] == "Bearer" and token["access_token"].count(".") == 2  # a JWT for the API
    with app.app_context():
        assert db.session.scalar(db.select(Consent)).audiences == ORDERS
    # Now the consent names the API: asking again (or for sign-in only) goes straight back.
    for extra in ({"audience": ORDERS}, {}):
        again = test_client.get(authorize_url(client, scope="openid profile", **extra, **pkce))
        assert again.status_code == 302 and "code" in query_params(again.headers["Location"]), extra
    # Connected apps names the API too.
    apps = test_client.get("/account/apps").get_data(as_text=True)
    assert "Orders &lt;API&gt;" in apps and ORDERS in apps
