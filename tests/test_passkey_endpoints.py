"""The passkey endpoints through Flask's test client: what they hand out (relying party,
challenge, user verification), and that anything else a browser could send gets a 400 with a
sentence, never a 500 (the ceremonies themselves run in Chromium: test_passkeys.py)."""

import base64
import hashlib
import json
import uuid

import pytest
import redis
from support.factories import config_for, count_rows, update_rows
from support.pages import form_token

from website import create_app
from website.models import AuditEvent, Passkey, User, WebAuthnChallenge, db
from website.store import passkeys as passkey_store


@pytest.fixture
def app_config(app_config):
    """WebAuthn needs a host name: the test app's issuer is http://localhost."""
    return {**app_config, "OAUTH2_ISSUER": "http://localhost"}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def post_json(test_client, path, body=None, csrf=True, **kwargs):
    headers = {"X-CSRFToken": form_token(test_client, "/login")} if csrf else {}
    return test_client.post(path, json=body if body is not None else {}, headers=headers, **kwargs)


@pytest.fixture
def add_passkey(app, user):
    """Give alice a passkey row (its key is never used: no ceremony reaches it here); call it
    after signing in with the password, which a passkey would otherwise make a first step only."""
    def add():
        with app.app_context():
            row = Passkey(user_id=user.id, credential_id=b64url(b"alice-credential"), public_key=b"\xa5",
                          sign_count=0, transports="internal usb", name="Laptop")
            db.session.add(row)
            db.session.commit()
            return row.id

    return add


def test_sign_in_options_ask_for_a_discoverable_passkey_with_user_verification(app, test_client):
    response = post_json(test_client, "/passkeys/sign-in/options")
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    options = response.json
    assert options["rpId"] == "localhost"
    assert options["allowCredentials"] == [] and options["userVerification"] == "required"
    challenge = base64.urlsafe_b64decode(options["challenge"] + "==")
    assert len(challenge) == 32
    # Only its hash is kept, with a short life, for anyone's passkey.
    with app.app_context():
        [row] = db.session.scalars(db.select(WebAuthnChallenge)).all()
        assert row.challenge_hash == hashlib.sha256(challenge).hexdigest()
        assert row.purpose == "sign_in" and row.user_id is None
    assert options["timeout"] == 300_000


def test_registration_options_name_the_account_and_exclude_its_passkeys(app, test_client, auth, user, add_passkey):
    auth.login()
    add_passkey()
    options = post_json(test_client, "/passkeys/register/options").json
    assert options["rp"] == {"id": "localhost", "name": "Identity Provider"}
    with app.app_context():
        sub = db.session.get(User, user.id).sub
    assert base64.urlsafe_b64decode(options["user"]["id"] + "==") == sub.encode()  # opaque, not the name
    assert options["user"]["name"] == "alice"
    assert options["authenticatorSelection"]["residentKey"] == "required"
    assert options["authenticatorSelection"]["userVerification"] == "required"
    assert options["excludeCredentials"] == [{"id": b64url(b"alice-credential"), "type": "public-key",
                                              "transports": ["internal", "usb"]}]


def test_the_relying_party_can_be_configured(app, test_client):
    app.config.update(OAUTH2_ISSUER="http://login.example.com/", WEBAUTHN_RP_ID="example.com")
    assert post_json(test_client, "/passkeys/sign-in/options").json["rpId"] == "example.com"


def test_an_ip_address_cannot_be_the_relying_party(app, test_client, auth, user):
    app.config["OAUTH2_ISSUER"] = "http://127.0.0.1:5000"
    response = post_json(test_client, "/passkeys/sign-in/options")
    assert response.status_code == 400
    assert "cannot be used while the site is opened at an IP address" in response.json["error"]
    assert count_rows(app, WebAuthnChallenge) == 0
    assert "Sign in with a passkey" not in test_client.get("/login").get_data(as_text=True)
    auth.login()
    assert "open it by its name" in test_client.get("/account/").get_data(as_text=True)


def test_the_log_in_page_offers_passkeys_in_the_username_field(test_client):
    page = test_client.get("/login").get_data(as_text=True)
    assert 'autocomplete="username webauthn"' in page
    assert "Sign in with a passkey" in page and "/static/passkeys.js" in page


def test_the_endpoints_need_the_csrf_token(app, test_client):
    response = post_json(test_client, "/passkeys/sign-in/options", csrf=False)
    assert response.status_code == 400
    assert count_rows(app, WebAuthnChallenge) == 0


def test_adding_a_passkey_needs_a_signed_in_person(test_client):
    for path in ("/passkeys/register/options", "/passkeys/register"):
        response = post_json(test_client, path)
        assert response.status_code == 401
        assert response.json == {"error": "You are signed out. Sign in again, then add the passkey."}


def test_the_second_factor_needs_a_pending_sign_in(test_client):
    for path in ("/passkeys/second-factor/options", "/passkeys/second-factor"):
        assert post_json(test_client, path).status_code == 401
    response = test_client.get("/passkeys/second-factor")
    assert response.status_code == 302 and response.headers["Location"] == "/login"


def client_data(**fields) -> str:
    return b64url(json.dumps(fields).encode())


BAD_CREDENTIALS = {
    "no credential": None,
    "a string": "credential",
    "a list": [1, 2],
    "no response": {"id": "x"},
    "response not an object": {"id": "x", "response": "x"},
    "clientDataJSON not base64url": {"id": "x", "response": {"clientDataJSON": "!!!"}},
    "clientDataJSON not JSON": {"id": "x", "response": {"clientDataJSON": b64url(b"\xff\xfe")}},
    "no challenge": {"id": "x", "response": {"clientDataJSON": client_data(type="webauthn.get")}},
    "challenge not a string": {"id": "x", "response": {"clientDataJSON": client_data(challenge=7)}},
    "a challenge never issued": {"id": "x", "response": {"clientDataJSON": client_data(challenge=b64url(b"n" * 32))}},
}


@pytest.mark.parametrize("credential", BAD_CREDENTIALS.values(), ids=BAD_CREDENTIALS.keys())
def test_anything_but_a_webauthn_answer_is_a_400_with_a_sentence(test_client, auth, user, credential):
    auth.login()
    for path, body in (("/passkeys/sign-in", {"credential": credential, "next": "/"}),
                       ("/passkeys/register", {"credential": credential, "name": "Laptop"})):
        response = post_json(test_client, path, body)
        assert response.status_code == 400, (path, response.get_data(as_text=True)[:300])
        assert response.json["error"].endswith("Please try again.")


def test_an_issued_challenge_answered_with_garbage_is_spent_and_refused(app, test_client):
    challenge = post_json(test_client, "/passkeys/sign-in/options").json["challenge"]
    garbage = {"id": b64url(b"alice-credential"), "rawId": "???", "type": "public-key",
               "response": {"clientDataJSON": client_data(challenge=challenge, type="webauthn.get",
                                                          origin="http://localhost"),
                            "authenticatorData": "", "signature": ""}}
    response = post_json(test_client, "/passkeys/sign-in", {"credential": garbage})
    assert response.status_code == 400
    assert count_rows(app, WebAuthnChallenge) == 0  # used up, even by a failed answer
    assert post_json(test_client, "/passkeys/sign-in", {"credential": garbage}).json["error"] == (
        "This passkey request expired or was already used. Please try again.")


def test_a_challenge_serves_only_its_own_ceremony(app, test_client, auth, user):
    auth.login()
    challenge = post_json(test_client, "/passkeys/register/options").json["challenge"]
    answer = {"id": "x", "response": {"clientDataJSON": client_data(challenge=challenge)}}
    response = post_json(test_client, "/passkeys/sign-in", {"credential": answer})
    assert response.json["error"] == "This passkey request expired or was already used. Please try again."
    assert count_rows(app, WebAuthnChallenge) == 1  # the registration's challenge is still there


def test_expired_challenges_are_swept(app, test_client):
    post_json(test_client, "/passkeys/sign-in/options")
    update_rows(app, WebAuthnChallenge, {"expires_at": 1})
    post_json(test_client, "/passkeys/sign-in/options")
    assert count_rows(app, WebAuthnChallenge) == 1


def test_passwordless_sign_ins_started_are_limited_per_address(app, test_client):
    app.config["PASSKEY_SIGN_IN_ADDRESS_LIMIT"] = 3
    for _ in range(3):
        assert post_json(test_client, "/passkeys/sign-in/options").status_code == 200
    refused = post_json(test_client, "/passkeys/sign-in/options")
    assert refused.status_code == 429
    assert refused.json["error"].startswith("Too many sign-ins started. Try again in")
    assert int(refused.headers["Retry-After"]) > 0
    assert count_rows(app, WebAuthnChallenge) == 3
    # Another address is not held back.
    other = post_json(test_client, "/passkeys/sign-in/options", environ_base={"REMOTE_ADDR": "192.0.2.9"})
    assert other.status_code == 200


@pytest.mark.parametrize("name, message", [
    ("", "Give the passkey a name"), ("   ", "Give the passkey a name"), (None, "Give the passkey a name"),
    (7, "Give the passkey a name"), ("x" * 65, "Use at most 64 characters"),
])
def test_a_passkey_needs_a_name(app, test_client, auth, user, name, message):
    auth.login()
    response = post_json(test_client, "/passkeys/register", {"name": name, "credential": {}})
    assert response.status_code == 400 and response.json["error"].startswith(message)
    assert count_rows(app, WebAuthnChallenge) == 0


def test_only_the_owner_removes_a_passkey(app, test_client, auth, make_user, add_passkey):
    passkey = add_passkey()
    make_user("bob")
    auth.login("bob")
    token = form_token(test_client, "/account/")
    assert test_client.post(f"/passkeys/{passkey}/remove", data={"csrf_token": token}).status_code == 404
    assert test_client.post(f"/passkeys/{passkey}/remove").status_code == 400  # no CSRF token
    assert count_rows(app, Passkey) == 1
    assert count_rows(app, AuditEvent, AuditEvent.event == "passkey_removed") == 0


def test_the_account_page_lists_passkeys_with_their_use(test_client, auth, user, add_passkey):
    auth.login()
    add_passkey()
    page = test_client.get("/account/").get_data(as_text=True)
    assert "Laptop" in page and "not used yet" in page
    assert 'aria-label="Remove the passkey Laptop"' in page


def test_with_a_passkey_the_password_alone_no_longer_signs_in(test_client, auth, add_passkey):
    add_passkey()
    response = auth.login()
    assert response.status_code == 302 and response.headers["Location"] == "/login/second-factor"
    assert test_client.get("/login/second-factor").headers["Location"] == "/passkeys/second-factor"
    page = test_client.get("/passkeys/second-factor").get_data(as_text=True)
    assert "Use your passkey" in page and "data-passkey-second-factor" in page
    assert test_client.get("/account/").status_code == 302  # not signed in yet
    options = post_json(test_client, "/passkeys/second-factor/options").json
    assert options["allowCredentials"] == [{"id": b64url(b"alice-credential"), "type": "public-key",
                                            "transports": ["internal", "usb"]}]
    assert options["userVerification"] == "preferred"  # the password was the first factor


@pytest.mark.parametrize("settings, problem", [
    ({"WEBAUTHN_RP_ID": "127.0.0.1"}, "WEBAUTHN_RP_ID must be a host name, not the address '127.0.0.1'"),
    ({"OAUTH2_ISSUER": "https://login.example.com", "WEBAUTHN_RP_ID": "other.example"},
     "WEBAUTHN_RP_ID 'other.example' must be the host of OAUTH2_ISSUER (login.example.com) or a parent domain"),
    ({"WEBAUTHN_ORIGINS": "login.example.com"}, "WEBAUTHN_ORIGINS: 'login.example.com' is not an origin"),
    ({"WEBAUTHN_CHALLENGE_LIFETIME": 0}, "WEBAUTHN_CHALLENGE_LIFETIME must be 30 seconds or more"),
])
def test_passkey_settings_webauthn_would_refuse_stop_the_start(database_url, settings, problem):
    with pytest.raises(SystemExit) as stopped:
        create_app(config_for(database_url, **settings))
    assert problem in str(stopped.value)


def test_a_parent_domain_may_be_the_relying_party(database_url):
    app = create_app(config_for(database_url, OAUTH2_ISSUER="https://login.example.com",
                                WEBAUTHN_RP_ID="example.com", WEBAUTHN_ORIGINS="https://login.example.com"))
    with app.app_context():
        db.engine.dispose()


@pytest.fixture
def redis_challenges(app):
    """Challenges in the Redis on 127.0.0.1:6379 (a key prefix of this test's own); yields the client."""
    prefix = f"idp:test-webauthn:{uuid.uuid4().hex}:"
    app.config.update(REDIS_URL="redis://127.0.0.1:6379/0", WEBAUTHN_REDIS_PREFIX=prefix)
    client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    yield client, prefix
    for key in client.scan_iter(prefix + "*"):
        client.delete(key)
    client.close()
    passkey_store.close(app)


def test_with_redis_challenges_live_there_and_expire_by_themselves(app, test_client, redis_challenges):
    client, prefix = redis_challenges
    challenge = post_json(test_client, "/passkeys/sign-in/options").json["challenge"]
    key = prefix + hashlib.sha256(base64.urlsafe_b64decode(challenge + "==")).hexdigest()
    assert client.get(key) == b"sign_in:" and 0 < client.ttl(key) <= 300
    assert count_rows(app, WebAuthnChallenge) == 0
    answer = {"id": "x", "response": {"clientDataJSON": client_data(challenge=challenge)}}
    assert post_json(test_client, "/passkeys/sign-in", {"credential": answer}).status_code == 400
    assert client.get(key) is None  # spent by the first answer, good or bad
    again = post_json(test_client, "/passkeys/sign-in", {"credential": answer})
    assert again.json["error"] == "This passkey request expired or was already used. Please try again."


def test_with_redis_a_challenge_serves_only_its_own_ceremony(app, test_client, auth, user, redis_challenges):
    auth.login()
    challenge = post_json(test_client, "/passkeys/register/options").json["challenge"]
    answer = {"id": "x", "response": {"clientDataJSON": client_data(challenge=challenge)}}
    response = post_json(test_client, "/passkeys/sign-in", {"credential": answer})
    assert response.json["error"] == "This passkey request expired or was already used. Please try again."


def test_while_redis_is_down_the_database_keeps_the_challenges(app, test_client, caplog):
    app.config.update(REDIS_URL="redis://127.0.0.1:1/0")
    try:
        challenge = post_json(test_client, "/passkeys/sign-in/options").json["challenge"]
        assert count_rows(app, WebAuthnChallenge) == 1
        assert "Redis is unavailable for passkey challenges" in caplog.text
        answer = {"id": "x", "response": {"clientDataJSON": client_data(challenge=challenge)}}
        post_json(test_client, "/passkeys/sign-in", {"credential": answer})
        assert count_rows(app, WebAuthnChallenge) == 0  # found and spent in the database
    finally:
        passkey_store.close(app)


def test_removing_a_passkey_is_mailed_and_reads_as_a_sentence_in_the_audit_log(
        app, test_client, auth, user, make_user, add_passkey, mailbox):
    auth.login()
    passkey = add_passkey()
    token = form_token(test_client, "/account/")
    response = test_client.post(f"/passkeys/{passkey}/remove", data={"csrf_token": token})
    assert response.status_code == 302 and response.headers["Location"] == "/account/#passkeys-title"
    assert count_rows(app, Passkey) == 0
    assert "a passkey was removed" in mailbox.wait_for(1)[-1]["Subject"]
    make_user("root", is_admin=True)
    auth.logout()
    auth.login("root")
    page = test_client.get("/admin/audit").get_data(as_text=True)
    assert "alice removed the passkey “Laptop”" in page


def test_a_passkey_stays_when_its_removal_cannot_be_mailed(app, test_client, auth, user, add_passkey, mailbox):
    auth.login()
    passkey = add_passkey()
    mailbox.refuse = True
    token = form_token(test_client, "/account/")
    page = test_client.post(f"/passkeys/{passkey}/remove", data={"csrf_token": token}, follow_redirects=True)
    assert "The mail could not be sent just now" in page.get_data(as_text=True)
    assert count_rows(app, Passkey) == 1
    assert count_rows(app, AuditEvent, AuditEvent.event == "passkey_removed") == 0
