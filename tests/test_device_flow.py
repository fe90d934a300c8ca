"""The device authorization grant (RFC 8628) against a live server: a device (Authlib's
OAuth2Session) asks for codes and polls; a person types the user code at /device, sees the
app and the scopes, and allows or denies; every refusal the spec lists."""

import time

import pytest
import requests
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc8628 import DEVICE_CODE_GRANT_TYPE
from joserfc import jwt
from joserfc.jwk import KeySet
from support.factories import count_rows, update_rows
from support.oidc import Browser

from website.models import AuditEvent, DeviceCode, Token, hash_secret


@pytest.fixture
def device_client(make_client):
    """A public client for the device grant (a TV app has no secret to keep)."""
    client, _ = make_client(grant_types=[DEVICE_CODE_GRANT_TYPE, "refresh_token"], redirect_uris=[],
                            token_endpoint_auth_method="none", scope="openid profile offline_access")
    return client


def device_session(client, secret=None) -> OAuth2Session:
    method = "none" if secret is None else "client_secret_basic"
    return OAuth2Session(client.client_id, secret, token_endpoint_auth_method=method, scope="openid profile")


def ask(idp, session, **data):
    """POST to the device authorization endpoint, authenticated as the session's client."""
    auth = session.client_auth(session.token_endpoint_auth_method)
    # Authlib's client auth adds client_id to the body for "none" and client_secret_post.
    return session.post(f"{idp}/oauth/device/code", data=data, withhold_token=True, auth=auth, timeout=5)


def start(idp, session) -> dict:
    """Ask for a device code and a user code (RFC 8628 §3.1)."""
    response = ask(idp, session, scope="openid profile")
    assert response.status_code == 200, response.text
    assert response.headers["Cache-Control"] == "no-store"
    return response.json()


def poll(idp, session, device_code: str):
    """One poll at the token endpoint (RFC 8628 §3.4) with Authlib's fetch_token."""
    return session.fetch_token(f"{idp}/oauth/token", grant_type=DEVICE_CODE_GRANT_TYPE, device_code=device_code,
                               timeout=5)


def poll_error(idp, session, device_code: str) -> OAuthError:
    with pytest.raises(OAuthError) as caught:
        poll(idp, session, device_code)
    return caught.value


def allow_polling_now(app, device_code: str) -> None:
    """Make the previous poll old enough (instead of sleeping through the interval)."""
    update_rows(app, DeviceCode, {"last_polled_at": 0}, DeviceCode.device_code_hash == hash_secret(device_code))


def test_discovery_advertises_the_device_flow(idp):
    doc = requests.get(f"{idp}/.well-known/openid-configuration", timeout=5).json()
    assert doc["device_authorization_endpoint"] == f"{idp}/oauth/device/code"
    assert DEVICE_CODE_GRANT_TYPE in doc["grant_types_supported"]


def test_a_device_signs_in_with_the_person_allowing_it(app, idp, user, device_client):
    session = device_session(device_client)
    codes = start(idp, session)
    assert codes["verification_uri"] == f"{idp}/device"
    assert codes["verification_uri_complete"] == f"{idp}/device?user_code={codes['user_code']}"
    assert codes["expires_in"] == app.config["OAUTH2_DEVICE_CODE_LIFETIME"]
    assert codes["interval"] == app.config["OAUTH2_DEVICE_INTERVAL"]
    letters = codes["user_code"].replace("-", "")
    assert len(letters) == 8 and set(letters) <= set("BCDFGHJKLMNPQRSTVWXZ")
    # Only hashes are stored.
    assert count_rows(app, DeviceCode, DeviceCode.device_code_hash == hash_secret(codes["device_code"]),
                      DeviceCode.user_code_hash == hash_secret(letters)) == 1

    assert poll_error(idp, session, codes["device_code"]).error == "authorization_pending"
    # Polling again at once is too fast: slow_down, and 5 seconds more from now on (§3.5).
    assert poll_error(idp, session, codes["device_code"]).error == "slow_down"
    with app.app_context():
        row = DeviceCode.query.filter_by(device_code_hash=hash_secret(codes["device_code"])).one()
        assert row.interval == codes["interval"] + 5

    browser = Browser(idp)
    consent = browser.enter_user_code(codes["verification_uri_complete"])  # logs in on the way
    assert consent.status_code == 200
    assert "Test App" in consent.text and codes["user_code"] in consent.text
    assert "profile" in consent.text
    done = browser.answer_device(consent)
    assert done.status_code == 200 and "Your device is connected" in done.text

    allow_polling_now(app, codes["device_code"])
    token = poll(idp, session, codes["device_code"])
    assert token["access_token"] and token["refresh_token"]
    assert token["scope"] == "openid profile"
    keys = KeySet.import_key_set(requests.get(f"{idp}/.well-known/jwks.json", timeout=5).json())
    claims = jwt.decode(token["id_token"], keys).claims
    assert claims["aud"] == device_client.client_id and claims["iss"] == idp + "/"
    assert claims["auth_time"] <= time.time()
    me = requests.get(f"{idp}/userinfo", headers={"Authorization": f"Bearer {token['access_token']}"}, timeout=5)
    assert me.json()["preferred_username"] == "alice"
    assert count_rows(app, AuditEvent, AuditEvent.event == "device_authorized") == 1

    # A device code is redeemed once.
    allow_polling_now(app, codes["device_code"])
    assert poll_error(idp, session, codes["device_code"]).error == "invalid_grant"
    assert count_rows(app, Token) == 1


def test_the_person_denies(app, idp, user, device_client):
    session = device_session(device_client)
    codes = start(idp, session)
    browser = Browser(idp)
    browser.login()
    done = browser.answer_device(browser.enter_user_code(f"{idp}/device", code=codes["user_code"]), allow=False)
    assert done.status_code == 200 and "Request denied" in done.text
    assert poll_error(idp, session, codes["device_code"]).error == "access_denied"
    assert count_rows(app, AuditEvent, AuditEvent.event == "device_denied") == 1
    assert count_rows(app, Token) == 0


def test_user_codes_ignore_case_dashes_and_spaces(idp, user, device_client):
    codes = start(idp, device_session(device_client))
    typed = codes["user_code"].replace("-", " ").lower()
    browser = Browser(idp)
    browser.login()
    consent = browser.enter_user_code(f"{idp}/device", code=typed)
    assert consent.status_code == 200 and codes["user_code"] in consent.text


def test_an_expired_device_code(app, idp, user, device_client):
    session = device_session(device_client)
    codes = start(idp, session)
    update_rows(app, DeviceCode, {"expires_at": int(time.time()) - 1})
    assert poll_error(idp, session, codes["device_code"]).error == "expired_token"
    browser = Browser(idp)
    browser.login()
    page = browser.enter_user_code(f"{idp}/device", code=codes["user_code"])
    assert page.status_code == 400 and "not valid" in page.text


def test_a_code_answered_once_only(app, idp, user, make_user, device_client):
    codes = start(idp, device_session(device_client))
    first, second = Browser(idp), Browser(idp)
    first.login()
    make_user("bob")
    second.login("bob")
    consent_a = first.enter_user_code(f"{idp}/device", code=codes["user_code"])
    consent_b = second.enter_user_code(f"{idp}/device", code=codes["user_code"])
    assert first.answer_device(consent_a).status_code == 200
    late = second.answer_device(consent_b, allow=True)
    assert late.status_code == 400 and "not valid" in late.text
    with app.app_context():
        assert DeviceCode.query.one().user.username == "alice"


def test_another_clients_device_code_is_invalid(idp, user, device_client, make_client):
    codes = start(idp, device_session(device_client))
    other, _ = make_client(grant_types=[DEVICE_CODE_GRANT_TYPE], redirect_uris=[], token_endpoint_auth_method="none")
    assert poll_error(idp, device_session(other), codes["device_code"]).error == "invalid_grant"
    assert poll_error(idp, device_session(other), "made-up").error == "invalid_grant"


def test_a_client_not_registered_for_the_grant(idp, make_client):
    web, secret = make_client()
    response = requests.post(f"{idp}/oauth/device/code", auth=(web.client_id, secret), timeout=5)
    assert response.status_code == 400 and response.json()["error"] == "unauthorized_client"
    wrong = requests.post(f"{idp}/oauth/device/code", auth=(web.client_id, "wrong"), timeout=5)
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"


def test_a_confidential_device_client_authenticates(idp, user, make_client):
    client, secret = make_client(grant_types=[DEVICE_CODE_GRANT_TYPE], redirect_uris=[], scope="profile")
    session = device_session(client, secret)
    response = ask(idp, session, scope="email")
    assert response.status_code == 400 and response.json()["error"] == "invalid_scope"
    codes = ask(idp, session).json()
    assert poll_error(idp, session, codes["device_code"]).error == "authorization_pending"
    assert poll_error(idp, device_session(client, "wrong"), codes["device_code"]).error == "invalid_client"


def test_wrong_user_codes_are_throttled(app_config, app, idp, user, device_client):
    app.config["THROTTLE_USER_CODE_LIMIT"] = 3
    codes = start(idp, device_session(device_client))
    browser = Browser(idp)
    browser.login()
    for _ in range(3):
        page = browser.enter_user_code(f"{idp}/device", code="BCDF-GHJK")
        assert page.status_code == 400
    assert "Too many failed attempts" in page.text
    # Locked: even the right code is not looked up now.
    locked = browser.enter_user_code(f"{idp}/device", code=codes["user_code"])
    assert locked.status_code == 400 and "Too many failed attempts" in locked.text
    assert count_rows(app, AuditEvent, AuditEvent.event == "device_code_failed") == 3


def test_the_device_page_needs_a_session_and_csrf(idp, user, device_client):
    codes = start(idp, device_session(device_client))
    signed_out = requests.get(codes["verification_uri_complete"], allow_redirects=False, timeout=5)
    assert signed_out.status_code == 302 and signed_out.headers["Location"].startswith("/login?next=")
    browser = Browser(idp)
    browser.login()
    forged = browser.session.post(f"{idp}/device", data={"user_code": codes["user_code"], "allow": "Allow"},
                                  allow_redirects=False)
    assert forged.status_code == 400
    assert browser.session.post(f"{idp}/device", data={"user_code": codes["user_code"]}).status_code == 400


@pytest.fixture
def device_flow_off(app_config):
    app_config["OAUTH2_DEVICE_FLOW"] = False


def test_turned_off_it_is_not_there(device_flow_off, idp, runner, user):
    doc = requests.get(f"{idp}/.well-known/openid-configuration", timeout=5).json()
    assert "device_authorization_endpoint" not in doc
    assert DEVICE_CODE_GRANT_TYPE not in doc["grant_types_supported"]
    assert requests.post(f"{idp}/oauth/device/code", data={"client_id": "x"}, timeout=5).status_code == 404
    assert requests.get(f"{idp}/device", timeout=5).status_code == 404
    result = runner.invoke(args=["create-client", "--name", "TV", "--grant-type", DEVICE_CODE_GRANT_TYPE,
                                 "--auth-method", "none"])
    assert result.exit_code != 0 and "device flow is turned off" in result.output


def test_cli_and_registration_make_device_clients(app, idp, runner):
    result = runner.invoke(args=["create-client", "--name", "TV", "--grant-type", DEVICE_CODE_GRANT_TYPE,
                                 "--auth-method", "none", "--scope", "openid profile"])
    assert result.exit_code == 0, result.output
    app.config["OAUTH2_OPEN_REGISTRATION"] = True
    registered = requests.post(f"{idp}/oauth/register", json={
        "client_name": "Console", "grant_types": [DEVICE_CODE_GRANT_TYPE], "token_endpoint_auth_method": "none"},
        timeout=5)
    assert registered.status_code == 201, registered.text
    assert registered.json()["grant_types"] == [DEVICE_CODE_GRANT_TYPE]
    codes = requests.post(f"{idp}/oauth/device/code", data={"client_id": registered.json()["client_id"]}, timeout=5)
    assert codes.status_code == 200 and codes.json()["user_code"]


def test_client_groups_and_disabled_accounts_are_honoured(app, idp, runner, user, make_user, device_client):
    assert runner.invoke(args=["create-group", "family"]).exit_code == 0
    assert runner.invoke(args=["limit-client", device_client.client_id, "--group", "family"]).exit_code == 0
    codes = start(idp, device_session(device_client))
    browser = Browser(idp)
    browser.login()
    refused = browser.enter_user_code(f"{idp}/device", code=codes["user_code"])
    assert refused.status_code == 400 and "only for members of certain groups" in refused.text
    assert runner.invoke(args=["add-to-group", "family", "alice"]).exit_code == 0
    browser.answer_device(browser.enter_user_code(f"{idp}/device", code=codes["user_code"]))
    # Disabled after allowing: the device gets no tokens.
    assert runner.invoke(args=["disable-user", "alice"]).exit_code == 0
    session = device_session(device_client)
    assert poll_error(idp, session, codes["device_code"]).error == "access_denied"
    assert count_rows(app, Token) == 0
