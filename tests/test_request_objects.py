"""Request objects (RFC 9101, OpenID Connect Core §6) against a live server, built by hand with
joserfc: signed with the client's registered keys (the ones private_key_jwt uses), by value and
pushed (RFC 9126); merged with the query as the specs say; every refusal."""

import base64
import json
import time
import uuid
from urllib.parse import urlencode

import pytest
import requests
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey
from support.flows import pkce_pair
from support.loopback import LoopbackServer, QuietHandler
from support.oidc import CALLBACK, Browser
from support.pages import query_params

KEY = RSAKey.generate_key(2048, parameters={"kid": "ro-1"})


@pytest.fixture
def signing_client(make_client):
    """A confidential client that registered its public key (inline jwks)."""
    return make_client(redirect_uris=[CALLBACK], jwks={"keys": [KEY.as_dict(private=False)]})


def request_object(idp, client, key=KEY, alg="RS256", **claims) -> str:
    """A request object for a code + PKCE request, signed (or, with alg none, not)."""
    values = {"iss": client.client_id, "aud": idp + "/", "client_id": client.client_id, "response_type": "code",
              "redirect_uri": CALLBACK, "scope": "openid profile", "state": "from-object", "nonce": "n-object",
              "code_challenge": pkce_pair()[1], "code_challenge_method": "S256",
              "iat": int(time.time()), "exp": int(time.time()) + 300, "jti": uuid.uuid4().hex}
    values.update(claims)
    values = {k: v for k, v in values.items() if v is not None}
    if alg == "none":
        return f"{_segment({'alg': 'none'})}.{_segment(values)}."
    return jwt.encode({"alg": alg, "kid": key.kid, "typ": "oauth-authz-req+jwt"}, values, key, [alg])


def _segment(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def url(idp, client, request, **query) -> str:
    return f"{idp}/authorize?" + urlencode({"client_id": client.client_id, "request": request, **query})


def signed_in(idp) -> Browser:
    browser = Browser(idp)
    browser.login()
    return browser


def test_discovery_advertises_request_objects(idp):
    doc = requests.get(f"{idp}/.well-known/openid-configuration", timeout=5).json()
    assert doc["request_parameter_supported"] is True
    assert "RS256" in doc["request_object_signing_alg_values_supported"]


def test_a_signed_request_object_by_value(idp, user, signing_client):
    client, secret = signing_client
    browser = signed_in(idp)
    location = browser.authorize(url(idp, client, request_object(idp, client), response_type="code"))
    params = query_params(location)
    assert location.startswith(CALLBACK) and params["state"] == "from-object" and "code" in params


def test_openid_requests_merge_the_query_and_plain_oauth_ones_do_not(idp, user, signing_client):
    client, _ = signing_client
    browser = signed_in(idp)
    # OpenID Connect (§6.3.3): the object's values win; a value only in the query still applies.
    without_state = request_object(idp, client, state=None)
    params = query_params(browser.authorize(url(idp, client, without_state, state="from-query")))
    assert params["state"] == "from-query"
    params = query_params(browser.authorize(url(idp, client, request_object(idp, client), state="from-query")))
    assert params["state"] == "from-object"
    # Plain OAuth (RFC 9101 §5): only the request object counts.
    plain = request_object(idp, client, state=None, scope="profile", nonce=None)
    params = query_params(browser.authorize(url(idp, client, plain, state="from-query")))
    assert "code" in params and "state" not in params


@pytest.mark.parametrize("make, error", [
    (lambda idp, c: request_object(idp, c, key=RSAKey.generate_key(2048, parameters={"kid": "ro-1"})),
     "invalid_request_object"),
    (lambda idp, c: request_object(idp, c, alg="none"), "invalid_request"),
    (lambda idp, c: request_object(idp, c, client_id="someone-else"), "invalid_request"),
    (lambda idp, c: request_object(idp, c, aud="https://other.example.com/"), "invalid_request_object"),
    (lambda idp, c: request_object(idp, c, iss="someone-else"), "invalid_request_object"),
    (lambda idp, c: request_object(idp, c, exp=int(time.time()) - 600), "invalid_request_object"),
    (lambda idp, c: request_object(idp, c, request_uri="https://app.example.com/r"), "invalid_request"),
    (lambda idp, c: "not.a.jwt", "invalid_request_object"),
    # What the input guard refuses in a query is refused in a request object too.
    (lambda idp, c: request_object(idp, c, nonce="a\u0000b"), "invalid_request_object"),
    (lambda idp, c: request_object(idp, c, state="caf\u00e9"), "invalid_request_object"),
    (lambda idp, c: request_object(idp, c, aud=5), "invalid_request_object"),
])
def test_refused_request_objects(idp, user, signing_client, make, error):
    client, _ = signing_client
    response = signed_in(idp).session.get(url(idp, client, make(idp, client)), allow_redirects=False)
    assert response.status_code == 400, response.text[:300]
    assert f"<code>{error}</code>" in response.text
    assert "Location" not in response.headers  # nothing reaches a redirect URI the object named


def test_the_response_type_must_match_the_query(idp, user, signing_client):
    client, _ = signing_client
    response = signed_in(idp).session.get(url(idp, client, request_object(idp, client), response_type="token"),
                                          allow_redirects=False)
    assert response.status_code == 400 and "response_type" in response.text


def test_a_registered_algorithm_is_the_only_one(idp, user, make_client):
    key = ECKey.generate_key("P-256", parameters={"kid": "ec-1"})
    client, _ = make_client(redirect_uris=[CALLBACK], jwks={"keys": [key.as_dict(private=False)]},
                            request_object_signing_alg="ES256")
    browser = signed_in(idp)
    assert "code" in query_params(browser.authorize(url(idp, client, request_object(idp, client, key=key,
                                                                                     alg="ES256"))))
    rsa_client, _ = make_client(redirect_uris=[CALLBACK], jwks={"keys": [KEY.as_dict(private=False)]},
                                request_object_signing_alg="PS256")
    refused = browser.session.get(url(idp, rsa_client, request_object(idp, rsa_client)), allow_redirects=False)
    assert refused.status_code == 400 and "<code>invalid_request</code>" in refused.text


def test_unsigned_only_for_a_client_that_registered_none(idp, user, make_client):
    client, _ = make_client(redirect_uris=[CALLBACK], request_object_signing_alg="none")
    browser = signed_in(idp)
    assert "code" in query_params(browser.authorize(url(idp, client, request_object(idp, client, alg="none"))))
    # ... and then a signed one is not what it registered.
    refused = browser.session.get(url(idp, client, request_object(idp, client)), allow_redirects=False)
    assert refused.status_code == 400


def test_keys_from_the_clients_jwks_uri(idp, user, make_client):
    class Handler(QuietHandler):
        def do_GET(self):
            self.send_body(json.dumps({"keys": [KEY.as_dict(private=False)]}).encode(), "application/json")

    host = LoopbackServer(Handler, poll_interval=0.05)
    try:
        client, _ = make_client(redirect_uris=[CALLBACK], jwks_uri=host.url + "/jwks.json")
        assert "code" in query_params(signed_in(idp).authorize(url(idp, client, request_object(idp, client))))
    finally:
        host.close()


def test_a_pushed_request_object(idp, user, signing_client):
    client, secret = signing_client
    pushed = requests.post(f"{idp}/oauth/par", auth=(client.client_id, secret),
                           data={"request": request_object(idp, client)}, timeout=5)
    assert pushed.status_code == 201, pushed.text
    location = signed_in(idp).authorize(f"{idp}/authorize?" + urlencode(
        {"client_id": client.client_id, "request_uri": pushed.json()["request_uri"]}))
    assert query_params(location)["state"] == "from-object"
    forged = requests.post(f"{idp}/oauth/par", auth=(client.client_id, secret), timeout=5, data={
        "request": request_object(idp, client, key=RSAKey.generate_key(2048, parameters={"kid": "ro-1"}))})
    assert forged.status_code == 400 and forged.json()["error"] == "invalid_request_object"
    with_nul = requests.post(f"{idp}/oauth/par", auth=(client.client_id, secret), timeout=5,
                             data={"request": request_object(idp, client, nonce="a\u0000b")})
    assert with_nul.status_code == 400 and with_nul.json()["error"] == "invalid_request_object"


def test_prompt_login_in_a_request_object_asks_once(idp, user, signing_client):
    client, _ = signing_client
    browser = signed_in(idp)
    location = browser.authorize(url(idp, client, request_object(idp, client, prompt="login")))
    assert "code" in query_params(location)
    assert browser.pages.count("/login") == 1


def test_registration_checks_request_object_metadata(app, idp):
    app.config["OAUTH2_OPEN_REGISTRATION"] = True
    no_keys = requests.post(f"{idp}/oauth/register", json={
        "client_name": "JAR", "redirect_uris": [CALLBACK], "request_object_signing_alg": "RS256"}, timeout=5)
    assert no_keys.status_code == 400 and "jwks" in no_keys.json()["error_description"]
    unknown = requests.post(f"{idp}/oauth/register", json={
        "client_name": "JAR", "redirect_uris": [CALLBACK], "request_object_signing_alg": "HS256"}, timeout=5)
    assert unknown.status_code == 400
    ok = requests.post(f"{idp}/oauth/register", json={
        "client_name": "JAR", "redirect_uris": [CALLBACK], "request_object_signing_alg": "RS256",
        "jwks": {"keys": [KEY.as_dict(private=False)]}}, timeout=5)
    assert ok.status_code == 201 and ok.json()["request_object_signing_alg"] == "RS256"


@pytest.fixture
def request_objects_off(app_config):
    app_config["OAUTH2_REQUEST_OBJECTS"] = False


def test_turned_off(request_objects_off, idp, user, signing_client):
    client, secret = signing_client
    doc = requests.get(f"{idp}/.well-known/openid-configuration", timeout=5).json()
    assert doc["request_parameter_supported"] is False
    assert "request_object_signing_alg_values_supported" not in doc
    pushed = requests.post(f"{idp}/oauth/par", auth=(client.client_id, secret),
                           data={"request": request_object(idp, client)}, timeout=5)
    assert pushed.status_code == 400 and pushed.json()["error"] == "request_not_supported"


@pytest.mark.parametrize("client_id", [None, "no-such-client"])
def test_a_request_object_without_a_known_client(idp, client_id):
    query = {"request": "x.y.z", **({"client_id": client_id} if client_id else {})}
    response = requests.get(f"{idp}/authorize?" + urlencode(query), allow_redirects=False, timeout=5)
    assert response.status_code == 400 and "<code>invalid_client</code>" in response.text
