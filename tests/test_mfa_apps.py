"""What apps ask for and see about two-step sign-in: acr_values (and an essential acr claim)
step a weaker session up; id_tokens (verified with PyJWT against the JWKS, fetched with
Authlib's OAuth 2.0 client), refreshed id_tokens, introspection and JWT access tokens carry
amr, acr and auth_time; a client can require MFA (form, CLI, registration); the MFA policy for
admins or everyone with its grace period; the password grant refuses accounts that need a
second factor."""

import json
import time

import jwt
import pytest
import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from support.factories import PASSWORD, config_for, update_rows
from support.mail import text_of
from support.mfa import Authenticator, answer_totp, enrol_totp, secret_on_page
from support.oidc import CALLBACK, Browser, authorization_url
from support.pages import csrf_token, query_params

from website import create_app
from website.models import AuditEvent, OAuth2Client, User, db
from website.oauth2.acr import ACR_MFA, ACR_PAPE_MFA, ACR_PWD

SCOPE = "openid profile offline_access"


@pytest.fixture(autouse=True)
def plain_http_for_loopback(monkeypatch):
    # Authlib's client insists on https; the live server listens on plain http on loopback.
    monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")


@pytest.fixture
def app_client(make_client):
    return make_client(redirect_uris=[CALLBACK], scope=SCOPE,
                       grant_types=["authorization_code", "refresh_token", "password"])


def sign_in_with_authlib(idp, client, secret, browser, **params) -> dict:
    """The code flow with PKCE as an app does it with Authlib's client; the person's browser
    answers the pages. Returns the token response."""
    session = OAuth2Session(client.client_id, secret, redirect_uri=CALLBACK, scope=SCOPE,
                            code_challenge_method="S256")
    verifier = generate_token(48)
    url, _ = session.create_authorization_url(f"{idp}/authorize", code_verifier=verifier,
                                           nonce=generate_token(16), **params)
    callback = browser.authorize(url)
    assert "code=" in callback, callback
    return session.fetch_token(f"{idp}/oauth/token", authorization_response=callback, code_verifier=verifier)


def verified(idp, client, id_token: str) -> dict:
    """The id_token's claims, its signature checked with the server's JWKS (PyJWT)."""
    key = jwt.PyJWKClient(f"{idp}/.well-known/jwks.json").get_signing_key_from_jwt(id_token)
    return jwt.decode(id_token, key.key, algorithms=["RS256"], audience=client.client_id, issuer=idp + "/")


def test_discovery_advertises_acr_values_and_the_amr_claim(idp):
    doc = requests.get(f"{idp}/.well-known/openid-configuration").json()
    assert doc["acr_values_supported"] == [ACR_PWD, ACR_MFA, ACR_PAPE_MFA]
    assert {"acr", "amr", "auth_time"} <= set(doc["claims_supported"])


def test_a_password_sign_in_says_so(idp, user, app_client):
    client, secret = app_client
    token = sign_in_with_authlib(idp, client, secret, Browser(idp))
    claims = verified(idp, client, token["id_token"])
    assert claims["amr"] == ["pwd"] and claims["acr"] == ACR_PWD and claims["auth_time"] <= time.time()


def test_an_app_asking_for_mfa_steps_the_session_up(app, idp, user, app_client):
    client, secret = app_client
    browser = Browser(idp)
    browser.login()  # a password-only session
    before = int(time.time())
    token = sign_in_with_authlib(idp, client, secret, browser, acr_values=ACR_MFA)
    # alice had no second factor: she set one up on the way (the recovery codes shown once).
    assert "/account/security/totp" in browser.pages and len(browser.recovery_codes) == 10
    claims = verified(idp, client, token["id_token"])
    assert claims["amr"] == ["pwd", "otp", "mfa"] and claims["acr"] == ACR_MFA
    assert claims["auth_time"] >= before  # the step-up is a fresh authentication

    # The session now has two factors: asking again needs no page but consent.
    browser.pages.clear()
    again = sign_in_with_authlib(idp, client, secret, browser, acr_values=ACR_MFA)
    assert "/login/second-factor" not in browser.pages
    assert verified(idp, client, again["id_token"])["acr"] == ACR_MFA

    # Another browser signs in with both factors from the start.
    other = Browser(idp, authenticator=browser.authenticator)
    token = sign_in_with_authlib(idp, client, secret, other)
    assert "/login/second-factor" in other.pages
    assert verified(idp, client, token["id_token"])["amr"] == ["pwd", "otp", "mfa"]


def test_a_session_from_before_the_second_factor_is_stepped_up_with_it(idp, user, app_client):
    client, secret = app_client
    browser = Browser(idp)
    browser.login()
    page = browser.session.get(f"{idp}/account/security/totp")
    browser.authenticator = Authenticator(secret_on_page(page.text))
    done = browser.session.post(f"{idp}/account/security/totp",
                                data={"csrf_token": csrf_token(page.text), "code": browser.authenticator.code()})
    assert done.status_code == 200
    token = sign_in_with_authlib(idp, client, secret, browser, acr_values=ACR_PAPE_MFA)
    assert "/login/second-factor" in browser.pages
    claims = verified(idp, client, token["id_token"])
    assert claims["acr"] == ACR_PAPE_MFA  # the name the app asked for (Auth0's)
    assert claims["amr"] == ["pwd", "otp", "mfa"]


def test_an_essential_acr_claim_steps_up_and_an_impossible_one_is_refused(idp, user, app_client):
    client, secret = app_client
    browser = Browser(idp)
    browser.login()
    claims = '{"id_token": {"acr": {"essential": true, "values": ["%s"]}}}' % ACR_MFA
    token = sign_in_with_authlib(idp, client, secret, browser, claims=claims)
    assert verified(idp, client, token["id_token"])["acr"] == ACR_MFA
    impossible = '{"id_token": {"acr": {"essential": true, "values": ["urn:example:retina"]}}}'
    callback = browser.authorize(authorization_url(idp, client, claims=impossible))
    error = query_params(callback)
    assert error["error"] == "access_denied" and "urn:example:retina" in error["error_description"]
    bad = '{"id_token": {"acr": {"values": "%s"}}}' % ACR_MFA
    assert query_params(browser.authorize(authorization_url(idp, client, claims=bad)))["error"] == "invalid_request"


def test_prompt_none_cannot_step_up(idp, user, app_client):
    client, _ = app_client
    browser = Browser(idp)
    browser.login()
    callback = browser.authorize(authorization_url(idp, client, acr_values=ACR_MFA, prompt="none"))
    assert query_params(callback)["error"] == "interaction_required"


def test_refresh_introspection_and_jwt_access_tokens_carry_the_sign_in(idp, runner, test_client, user, app_client):
    client, secret = app_client
    api = "https://api.example.com/orders"
    assert runner.invoke(args=["create-api", "--identifier", api, "--name", "Orders",
                               "--scope", "read:orders"]).exit_code == 0
    assert runner.invoke(args=["grant-api", "--", api, client.client_id]).exit_code == 0
    browser = Browser(idp)
    browser.login()
    token = sign_in_with_authlib(idp, client, secret, browser, acr_values=ACR_MFA)
    first = verified(idp, client, token["id_token"])

    refreshed = requests.post(f"{idp}/oauth/token", auth=(client.client_id, secret), data={
        "grant_type": "refresh_token", "refresh_token": token["refresh_token"]}).json()
    claims = verified(idp, client, refreshed["id_token"])
    assert (claims["amr"], claims["acr"], claims["auth_time"]) == (first["amr"], first["acr"], first["auth_time"])

    body = requests.post(f"{idp}/oauth/introspect", auth=(client.client_id, secret),
                         data={"token": refreshed["access_token"]}).json()
    assert body["active"] and body["acr"] == ACR_MFA and body["amr"] == ["pwd", "otp", "mfa"]
    assert body["auth_time"] == first["auth_time"]

    # A JWT access token for an API says how the person signed in too (RFC 9068 §2.2.1).
    session = OAuth2Session(client.client_id, secret, redirect_uri=CALLBACK, scope="openid read:orders",
                            code_challenge_method="S256")
    verifier = generate_token(48)
    url, _ = session.create_authorization_url(f"{idp}/authorize", code_verifier=verifier, audience=api)
    jwt_token = session.fetch_token(f"{idp}/oauth/token", authorization_response=browser.authorize(url),
                                    code_verifier=verifier)
    key = jwt.PyJWKClient(f"{idp}/.well-known/jwks.json").get_signing_key_from_jwt(jwt_token["access_token"])
    access = jwt.decode(jwt_token["access_token"], key.key, algorithms=["RS256"], audience=api)
    assert access["acr"] == ACR_MFA and access["amr"] == ["pwd", "otp", "mfa"] and access["auth_time"]


def test_password_grant_refuses_an_account_with_a_second_factor(app, test_client, auth, user, app_client):
    client, secret = app_client
    data = {"grant_type": "password", "username": "alice", "password": PASSWORD, "scope": "profile"}
    ok = test_client.post("/oauth/token", data=data, auth=(client.client_id, secret))
    assert ok.status_code == 200
    token = ok.json["access_token"]
    body = test_client.post("/oauth/introspect", data={"token": token}, auth=(client.client_id, secret)).json
    assert body["amr"] == ["pwd"] and body["acr"] == ACR_PWD
    auth.login()
    enrol_totp(test_client)
    refused = test_client.post("/oauth/token", data=data, auth=(client.client_id, secret))
    assert refused.status_code == 400 and refused.json["error"] == "invalid_grant"
    assert "second factor" in refused.json["error_description"]
    with app.app_context():
        assert db.session.query(AuditEvent).filter_by(event="login_refused").count() == 1


def test_a_client_that_requires_mfa(app, runner, test_client, auth, idp, user):
    result = runner.invoke(args=["create-client", "--name", "Payroll", "--redirect-uri", CALLBACK,
                                 "--grant-type", "authorization_code", "--grant-type", "password",
                                 "--scope", SCOPE, "--require-mfa", "--json"])
    assert result.exit_code == 0, result.output
    created = json.loads(result.output)
    assert created["require_mfa"] is True
    with app.app_context():
        client = db.session.query(OAuth2Client).filter_by(client_id=created["client_id"]).one()
        db.session.expunge(client)
    secret = created["client_secret"]
    # A person without a second factor sets one up to use this app.
    browser = Browser(idp)
    token = sign_in_with_authlib(idp, client, secret, browser)
    assert "/account/security/totp" in browser.pages
    assert verified(idp, client, token["id_token"])["acr"] == ACR_MFA
    # The password grant cannot ask for it, and says why.
    bob = {"grant_type": "password", "username": "alice", "password": PASSWORD}
    refused = requests.post(f"{idp}/oauth/token", data=bob, auth=(client.client_id, secret)).json()
    assert refused["error"] == "invalid_grant" and "This app requires a second factor" in refused["error_description"]


def test_require_mfa_in_the_client_form_and_registration(app, test_client, auth, user, make_client):
    client, _ = make_client(owner=user)
    auth.login()
    path = f"/clients/{client.client_id}/edit"
    form = {"client_name": "Test App", "redirect_uris": "https://app.example.com/callback",
            "grant_types": ["authorization_code"], "scope": "openid profile",
            "token_endpoint_auth_method": "client_secret_basic"}
    page = test_client.get(path)
    assert 'name="require_mfa"' in page.get_data(as_text=True)
    assert test_client.post(path, data={**form, "require_mfa": "y", "csrf_token": csrf_token(page)}).status_code == 302
    with app.app_context():
        assert db.session.get(OAuth2Client, client.id).require_mfa is True
    assert "Required: people sign in" in test_client.get(f"/clients/{client.client_id}").get_data(as_text=True)
    assert test_client.post(path, data={**form, "csrf_token": csrf_token(page)}).status_code == 302
    with app.app_context():
        assert db.session.get(OAuth2Client, client.id).require_mfa is False
        changes = db.session.query(AuditEvent).filter_by(event="mfa_policy_changed").all()
        assert [e.detail["require_mfa"] for e in changes] == [True, False]
    app.config["OAUTH2_OPEN_REGISTRATION"] = True
    registration = {"client_name": "X", "redirect_uris": ["https://x.example.com/cb"]}
    bad = test_client.post("/oauth/register", json={**registration, "require_mfa": "yes"})
    assert bad.status_code == 400 and bad.json["error"] == "invalid_client_metadata"
    good = test_client.post("/oauth/register", json={**registration, "require_mfa": True})
    assert good.status_code == 201 and good.json["require_mfa"] is True
    assert "require_mfa" not in test_client.post("/oauth/register", json=registration).json


def test_policy_for_admins_without_grace(app, test_client, auth, make_user, user):
    app.config.update(MFA_REQUIRED_FOR="admins", MFA_ENROLMENT_GRACE_DAYS=0)
    make_user("root", is_admin=True)
    assert auth.login().headers["Location"] == "/"  # alice is no admin
    auth.logout()
    response = auth.login("root")
    assert response.headers["Location"] == "/account/security/totp"
    assert test_client.get("/account/").status_code == 302  # not signed in before the factor
    page = test_client.get("/account/security/totp")
    assert "required for administrators" in page.get_data(as_text=True)
    authenticator, _, done = enrol_totp(test_client)
    assert test_client.get("/account/").status_code == 200
    auth.logout()
    assert auth.login("root").headers["Location"] == "/login/second-factor"
    assert answer_totp(test_client, authenticator.code()).status_code == 302


def test_policy_for_everyone_with_a_grace_period(app, test_client, auth, user, app_client, mailbox):
    app.config.update(MFA_REQUIRED_FOR="everyone", MFA_ENROLMENT_GRACE_DAYS=7)
    assert auth.login().headers["Location"] == "/"  # within the grace period
    notice = mailbox.wait_for(1)[0]
    assert notice["Subject"].endswith("Your account now needs a second factor")
    assert "your password alone still signs you in" in text_of(notice)
    security = test_client.get("/account/security").get_data(as_text=True)
    assert "requires a second factor" in security and "Set one up before" in security
    with app.app_context():
        started = db.session.query(AuditEvent).filter_by(event="mfa_grace_started").one()
        assert started.detail["days"] == 7
    client, secret = app_client
    data = {"grant_type": "password", "username": "alice", "password": PASSWORD}
    assert test_client.post("/oauth/token", data=data, auth=(client.client_id, secret)).status_code == 200
    # Eight days later the password is no longer enough.
    update_rows(app, User, {"mfa_grace_started_at": int(time.time()) - 8 * 86400}, User.username == "alice")
    auth.logout()
    assert auth.login().headers["Location"] == "/account/security/totp"
    refused = test_client.post("/oauth/token", data=data, auth=(client.client_id, secret))
    assert refused.json["error"] == "invalid_grant"


def test_mfa_settings_are_checked(database_url):
    with pytest.raises(SystemExit, match="MFA_REQUIRED_FOR must be none, admins or everyone"):
        create_app(config_for(database_url, MFA_REQUIRED_FOR="some"))
