"""How confidential clients authenticate: the client secret in HTTP Basic or in the body
(either, unless the client is strict), private_key_jwt (RFC 7523, OpenID Connect Core §9)
with single-use jti, and error descriptions a person can act on."""

import base64
import json
import time
import uuid

import pytest
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey, OKPKey, RSAKey
from support.factories import count_rows
from support.flows import login_and_get_code
from support.loopback import LoopbackServer, QuietHandler

from website.models import ClientAssertionJti, Token

TOKEN_URL = "http://127.0.0.1/oauth/token"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
CC = {"grant_type": "client_credentials"}


@pytest.fixture(scope="module")
def rsa_key():
    return RSAKey.generate_key(2048, parameters={"kid": "rsa-1"})


def public_jwks(*keys) -> dict:
    return {"keys": [key.as_dict(private=False) for key in keys]}


def assertion(key, client_id, alg="RS256", aud=TOKEN_URL, lifetime=60, **claims) -> str:
    issued = int(time.time())
    payload = {"iss": client_id, "sub": client_id, "aud": aud, "iat": issued, "exp": issued + lifetime,
               "jti": uuid.uuid4().hex, **claims}
    header = {"alg": alg}
    if key.kid:
        header["kid"] = key.kid
    return jwt.encode(header, {k: v for k, v in payload.items() if v is not None}, key, algorithms=[alg])


def assertion_form(token: str, **extra) -> dict:
    return {**CC, "client_assertion_type": ASSERTION_TYPE, "client_assertion": token, **extra}


@pytest.fixture
def service(make_client):
    """Make a client_credentials client: ``service(method, **metadata)``."""
    def make(method="client_secret_basic", **metadata):
        return make_client(grant_types=["client_credentials"], redirect_uris=[], scope="profile",
                           token_endpoint_auth_method=method, **metadata)
    return make


@pytest.fixture
def key_client(service, rsa_key):
    client, secret = service("private_key_jwt", jwks=public_jwks(rsa_key))
    assert secret is None  # the key is its credential
    return client


def post_secret(client, secret) -> dict:
    return {**CC, "client_id": client.client_id, "client_secret": secret}


# The client secret: HTTP Basic or the body.

@pytest.mark.parametrize("registered", ["client_secret_basic", "client_secret_post"])
@pytest.mark.parametrize("used", ["basic", "post"])
def test_a_secret_client_authenticates_with_basic_or_post(test_client, service, registered, used):
    """openid-client 6 posts the secret by default, datasette-auth0 uses Basic: both work
    for a client registered with either."""
    client, secret = service(registered)
    if used == "basic":
        response = test_client.post("/oauth/token", data=CC, auth=(client.client_id, secret))
    else:
        response = test_client.post("/oauth/token", data=post_secret(client, secret))
    assert response.status_code == 200, response.json


def test_both_secret_methods_work_at_revocation_and_introspection(test_client, service):
    client, secret = service("client_secret_basic")
    token = test_client.post("/oauth/token", data=post_secret(client, secret)).json["access_token"]
    introspection = test_client.post("/oauth/introspect", data={
        "token": token, "client_id": client.client_id, "client_secret": secret})
    assert introspection.status_code == 200 and introspection.json["active"] is True
    revocation = test_client.post("/oauth/revoke", data={
        "token": token, "client_id": client.client_id, "client_secret": secret})
    assert revocation.status_code == 200


@pytest.mark.parametrize("registered, used, expected", [
    ("client_secret_basic", "post", "Client authentication failed: this client authenticates with "
                                    "client_secret_basic (HTTP Basic)."),
    ("client_secret_post", "basic", "Client authentication failed: this client authenticates with "
                                    "client_secret_post (the secret in the request body)."),
])
def test_a_strict_client_is_refused_with_the_other_method(app, test_client, service, registered, used, expected):
    client, secret = service(registered, strict_auth_method=True)
    if used == "basic":
        response = test_client.post("/oauth/token", data=CC, auth=(client.client_id, secret))
        assert response.headers["WWW-Authenticate"].startswith("Basic")
    else:
        response = test_client.post("/oauth/token", data=post_secret(client, secret))
    assert response.status_code == 401
    assert response.json["error"] == "invalid_client"
    assert response.json["error_description"] == expected
    assert count_rows(app, Token) == 0
    # Its own method still works.
    if used == "basic":
        response = test_client.post("/oauth/token", data=post_secret(client, secret))
    else:
        response = test_client.post("/oauth/token", data=CC, auth=(client.client_id, secret))
    assert response.status_code == 200, response.json


def test_two_methods_in_one_request_are_still_refused(test_client, service, rsa_key):
    client, secret = service("client_secret_basic")
    response = test_client.post("/oauth/token", data=post_secret(client, secret), auth=(client.client_id, secret))
    assert response.status_code == 400
    assert response.json["error"] == "invalid_request"
    response = test_client.post("/oauth/token", data=assertion_form(assertion(rsa_key, client.client_id)),
                                auth=(client.client_id, secret))
    assert response.status_code == 400
    assert response.json["error"] == "invalid_request"


@pytest.mark.parametrize("how, expected", [
    ("wrong-secret", "Client authentication failed: the client secret is wrong."),
    ("no-secret", "Client authentication failed: this client authenticates with client_secret_basic "
                  "(HTTP Basic) or client_secret_post (the secret in the request body)."),
    ("unknown-client", "Client authentication failed."),
])
def test_error_descriptions_are_sentences_naming_the_registered_method(test_client, service, how, expected):
    client, secret = service("client_secret_basic")
    if how == "wrong-secret":
        response = test_client.post("/oauth/token", data=CC, auth=(client.client_id, "wrong"))
    elif how == "no-secret":
        response = test_client.post("/oauth/token", data={**CC, "client_id": client.client_id})
    else:
        response = test_client.post("/oauth/token", data=CC, auth=("nobody-here", secret))
    assert response.json["error"] == "invalid_client"
    description = response.json["error_description"]
    assert description == expected
    assert "[" not in description and "'" not in description


def test_a_public_client_at_introspection_is_told_what_the_endpoint_takes(test_client, make_client):
    client, _ = make_client(token_endpoint_auth_method="none")
    response = test_client.post("/oauth/introspect", data={"token": "x", "client_id": client.client_id})
    assert response.json["error"] == "invalid_client"
    assert response.json["error_description"] == (
        "Client authentication failed: this client authenticates with none (a public client: its client_id "
        "and no secret), which this endpoint does not accept; it accepts client_secret_basic, "
        "client_secret_post, private_key_jwt.")


# private_key_jwt.

@pytest.mark.parametrize("alg, make_key", [
    ("RS256", lambda: RSAKey.generate_key(2048, parameters={"kid": "r"})),
    ("PS256", lambda: RSAKey.generate_key(2048, parameters={"kid": "p"})),
    ("ES256", lambda: ECKey.generate_key("P-256", parameters={"kid": "e"})),
    ("Ed25519", lambda: OKPKey.generate_key("Ed25519", parameters={"kid": "o"})),
])
def test_private_key_jwt_with_inline_jwks_gets_a_token(app, test_client, service, alg, make_key):
    key = make_key()
    client, _ = service("private_key_jwt", jwks=public_jwks(key))
    response = test_client.post("/oauth/token", data=assertion_form(assertion(key, client.client_id, alg=alg)))
    assert response.status_code == 200, response.json
    assert response.json["access_token"]
    assert count_rows(app, ClientAssertionJti) == 1


@pytest.mark.parametrize("aud", [TOKEN_URL, "http://127.0.0.1"])
def test_the_audience_may_be_the_token_endpoint_or_the_issuer(test_client, key_client, rsa_key, aud):
    response = test_client.post("/oauth/token", data=assertion_form(assertion(rsa_key, key_client.client_id, aud=aud)))
    assert response.status_code == 200, response.json


def test_a_client_id_beside_the_assertion_must_be_its_subject(test_client, key_client, rsa_key):
    token = assertion(rsa_key, key_client.client_id)
    response = test_client.post("/oauth/token", data=assertion_form(token, client_id=key_client.client_id))
    assert response.status_code == 200, response.json
    token = assertion(rsa_key, key_client.client_id)
    response = test_client.post("/oauth/token", data=assertion_form(token, client_id="someone-else"))
    assert response.status_code == 400
    assert response.json["error"] == "invalid_request"


def test_a_replayed_assertion_is_refused(app, test_client, key_client, rsa_key):
    token = assertion(rsa_key, key_client.client_id)
    assert test_client.post("/oauth/token", data=assertion_form(token)).status_code == 200
    response = test_client.post("/oauth/token", data=assertion_form(token))
    assert response.status_code == 400
    assert response.json["error"] == "invalid_client"
    assert response.json["error_description"] == (
        "Client authentication failed: the client assertion was used before (each jti only once).")
    assert count_rows(app, Token) == 1


@pytest.mark.parametrize("change, reason", [
    ({"lifetime": -300}, "the client assertion has expired"),
    ({"aud": "https://elsewhere.example/token"}, "the client assertion's 'aud' claim is missing or wrong"),
    ({"aud": None}, "the client assertion's 'aud' claim is missing or wrong"),
    ({"exp": None}, "the client assertion's 'exp' claim is missing or wrong"),
    ({"jti": None}, "the client assertion has no 'jti' claim"),
    ({"jti": 12}, "the client assertion's 'jti' must be a non-empty string"),
    ({"iss": "another-client"}, "the client assertion's 'iss' and 'sub' must both be the client_id"),
    ({"lifetime": 2 * 3600}, "the client assertion must expire within 3600 seconds"),
    ({"key": "other"}, "the client assertion's signature does not match the client's registered keys"),
])
def test_a_bad_assertion_is_refused(app, test_client, key_client, rsa_key, change, reason):
    change = dict(change)
    key = rsa_key
    if change.pop("key", None):
        key = RSAKey.generate_key(2048, parameters={"kid": "rsa-1"})  # same kid, another key
    token = assertion(key, key_client.client_id, **change)
    response = test_client.post("/oauth/token", data=assertion_form(token))
    assert response.status_code == 400, response.json
    assert response.json["error"] == "invalid_client"
    assert response.json["error_description"] == f"Client authentication failed: {reason}."
    assert count_rows(app, Token) == 0


@pytest.mark.parametrize("form", [
    {"client_assertion": "not-a-jwt"},
    {"client_assertion": "a.b.c"},
    {"client_assertion": "eyJhbGciOiJSUzI1NiJ9.WzFd.c2ln"},  # a JSON list, not an object
    {"client_assertion": "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOjF9.c2ln"},  # sub is a number
    {"client_assertion_type": "urn:wrong"},
    {"client_assertion_type": ASSERTION_TYPE, "client_assertion": ""},
])
def test_a_malformed_assertion_is_invalid_client_never_a_500(test_client, key_client, form):
    data = {**CC, "client_assertion_type": ASSERTION_TYPE, **form}
    response = test_client.post("/oauth/token", data=data)
    assert response.status_code in (400, 401), response.get_data(as_text=True)
    assert response.json["error"] in ("invalid_client", "invalid_request")
    assert "[" not in response.json.get("error_description", "")


def test_hs256_is_not_accepted(test_client, key_client):
    """client_secret_jwt is not supported (the secret is kept only as a hash): an HMAC-signed
    assertion never authenticates."""
    token = assertion(OctKey.generate_key(256), key_client.client_id, alg="HS256")
    response = test_client.post("/oauth/token", data=assertion_form(token))
    assert response.json["error"] == "invalid_client"


def test_a_client_that_did_not_register_private_key_jwt_cannot_use_it(app, test_client, service, rsa_key):
    client, _ = service("client_secret_basic", jwks=public_jwks(rsa_key))
    response = test_client.post("/oauth/token", data=assertion_form(assertion(rsa_key, client.client_id)))
    assert response.json["error"] == "invalid_client"
    assert response.json["error_description"] == (
        "Client authentication failed: this client authenticates with client_secret_basic (HTTP Basic) "
        "or client_secret_post (the secret in the request body).")
    assert count_rows(app, Token) == 0


def test_a_private_key_jwt_client_cannot_use_a_secret_or_none(test_client, key_client):
    for data in ({**CC, "client_id": key_client.client_id, "client_secret": "guess"},
                 {**CC, "client_id": key_client.client_id}):
        response = test_client.post("/oauth/token", data=data)
        assert response.json["error"] == "invalid_client"
        assert response.json["error_description"] == (
            "Client authentication failed: this client authenticates with private_key_jwt "
            "(a client assertion signed with its key).")


def test_private_key_jwt_exchanges_a_code(test_client, auth, user, make_client, rsa_key):
    client, _ = make_client(token_endpoint_auth_method="private_key_jwt", jwks=public_jwks(rsa_key))
    code, verifier = login_and_get_code(test_client, auth, client, scope="openid profile")
    response = test_client.post("/oauth/token", data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": client.redirect_uris[0],
        "code_verifier": verifier, "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion(rsa_key, client.client_id)})
    assert response.status_code == 200, response.json
    assert response.json["id_token"]
    # Introspection and revocation take the assertion too (aud: that endpoint or the token endpoint).
    token = response.json["access_token"]
    introspection = test_client.post("/oauth/introspect", data={
        "token": token, "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion(rsa_key, client.client_id, aud="http://127.0.0.1/oauth/introspect")})
    assert introspection.status_code == 200, introspection.json
    assert introspection.json["active"] is True
    revocation = test_client.post("/oauth/revoke", data={
        "token": token, "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion(rsa_key, client.client_id)})
    assert revocation.status_code == 200, revocation.json


class JwksServer:
    """A loopback HTTP server publishing a JWKS, counting the fetches."""

    def __init__(self, jwks: dict):
        self.jwks = jwks
        self.fetches = 0
        owner = self

        class Handler(QuietHandler):
            def do_GET(self):
                owner.fetches += 1
                self.send_body(json.dumps(owner.jwks).encode(), "application/json")

        self.loopback = LoopbackServer(Handler, poll_interval=0.05)
        self.url = self.loopback.url + "/jwks.json"

    def close(self):
        self.loopback.close()


@pytest.fixture
def jwks_server(rsa_key):
    server = JwksServer(public_jwks(rsa_key))
    yield server
    server.close()


def test_private_key_jwt_with_jwks_uri_gets_a_token_and_caches_the_keys(test_client, service, rsa_key, jwks_server):
    client, _ = service("private_key_jwt", jwks_uri=jwks_server.url)
    for _ in range(2):
        response = test_client.post("/oauth/token", data=assertion_form(assertion(rsa_key, client.client_id)))
        assert response.status_code == 200, response.json
    assert jwks_server.fetches == 1
    # The client rotates its key: an assertion with the new kid fetches the set again.
    new_key = RSAKey.generate_key(2048, parameters={"kid": "rsa-2"})
    jwks_server.jwks = public_jwks(new_key)
    cache = test_client.application.extensions["client_jwks_cache"]
    cache[jwks_server.url] = (cache[jwks_server.url][0], cache[jwks_server.url][1], 0)  # fetched long ago
    response = test_client.post("/oauth/token", data=assertion_form(assertion(new_key, client.client_id)))
    assert response.status_code == 200, response.json
    assert jwks_server.fetches == 2


def test_an_unreachable_jwks_uri_is_invalid_client(test_client, service, rsa_key, jwks_server):
    client, _ = service("private_key_jwt", jwks_uri=jwks_server.url)
    jwks_server.close()
    response = test_client.post("/oauth/token", data=assertion_form(assertion(rsa_key, client.client_id)))
    assert response.status_code == 400
    assert response.json["error_description"] == (
        "Client authentication failed: the client's jwks_uri could not be fetched.")


def test_authlib_client_with_private_key_jwt_against_a_live_server(idp, service, rsa_key):
    client, _ = service("private_key_jwt", jwks=public_jwks(rsa_key))
    token_url = f"{idp}/oauth/token"
    session = OAuth2Session(client.client_id, rsa_key, token_endpoint_auth_method=PrivateKeyJWT(token_url),
                            scope="profile")
    token = session.fetch_token(token_url, grant_type="client_credentials")
    assert token["access_token"] and token["token_type"].lower() == "bearer"
    session.close()


def test_discovery_lists_private_key_jwt_and_its_algorithms(test_client):
    metadata = test_client.get("/.well-known/openid-configuration").json
    assert metadata["token_endpoint_auth_methods_supported"] == [
        "client_secret_basic", "client_secret_post", "private_key_jwt", "none"]
    assert metadata["token_endpoint_auth_signing_alg_values_supported"] == ["RS256", "PS256", "ES256", "Ed25519"]
    assert "client_secret_jwt" not in metadata["token_endpoint_auth_methods_supported"]
    assert "private_key_jwt" in metadata["revocation_endpoint_auth_methods_supported"]
    assert metadata["introspection_endpoint_auth_signing_alg_values_supported"] == ["RS256", "PS256", "ES256", "Ed25519"]


# Registering a private_key_jwt or strict client.

def test_register_a_private_key_jwt_client_with_rfc_7591(test_client, app, rsa_key):
    app.config["OAUTH2_OPEN_REGISTRATION"] = True
    response = test_client.post("/oauth/register", json={
        "client_name": "Key App", "grant_types": ["client_credentials"], "scope": "profile",
        "token_endpoint_auth_method": "private_key_jwt", "jwks": public_jwks(rsa_key)})
    assert response.status_code == 201, response.json
    body = response.json
    assert "client_secret" not in body
    assert body["jwks"] == public_jwks(rsa_key)
    token = test_client.post("/oauth/token", data=assertion_form(assertion(rsa_key, body["client_id"])))
    assert token.status_code == 200, token.json


@pytest.mark.parametrize("metadata, message", [
    ({}, "must register its public keys"),
    ({"jwks": {"keys": []}}, "1 to 20 keys"),
    ({"jwks": "not a key set"}, "JSON Web Key Set"),
    ({"jwks": {"keys": [{"kty": "RSA"}]}}, "cannot be read"),
    ({"jwks_uri": "http://keys.example.com/jwks.json"}, "must use https"),
    ({"jwks_uri": "https://keys.example.com/jwks.json", "jwks": "private"}, "not both"),
    ({"jwks": "private"}, "private key"),
    ({"jwks": "oct"}, "only public RSA, EC or OKP keys"),
    ({"jwks": "small"}, "too weak to use: Key size should be >= 2048 bits"),
])
def test_registration_refuses_unusable_keys(test_client, app, rsa_key, metadata, message):
    replace = {"private": {"keys": [rsa_key.as_dict(private=True)]},
               "oct": {"keys": [OctKey.generate_key(256).as_dict()]},
               "small": {"keys": [_small_rsa_jwk()]}}
    metadata = {k: replace.get(v, v) if isinstance(v, str) else v for k, v in metadata.items()}
    app.config["OAUTH2_OPEN_REGISTRATION"] = True
    response = test_client.post("/oauth/register", json={
        "client_name": "Key App", "grant_types": ["client_credentials"],
        "token_endpoint_auth_method": "private_key_jwt", **metadata})
    assert response.status_code == 400, response.json
    assert response.json["error"] == "invalid_client_metadata"
    assert message in response.json["error_description"]


def _small_rsa_jwk() -> dict:
    numbers = rsa.generate_private_key(65537, 1024).public_key().public_numbers()
    return {"kty": "RSA", "n": _b64(numbers.n), "e": _b64(numbers.e)}


def _b64(number: int) -> str:
    return base64.urlsafe_b64encode(number.to_bytes((number.bit_length() + 7) // 8, "big")).rstrip(b"=").decode()


def test_cli_creates_a_private_key_jwt_client(runner, test_client, rsa_key, tmp_path):
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(public_jwks(rsa_key)))
    result = runner.invoke(args=["create-client", "--name", "Key Service", "--grant-type", "client_credentials",
                                 "--scope", "profile", "--auth-method", "private_key_jwt",
                                 "--jwks-file", str(path), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["client_secret"] is None and data["jwks"] == public_jwks(rsa_key)
    response = test_client.post("/oauth/token", data=assertion_form(assertion(rsa_key, data["client_id"])))
    assert response.status_code == 200, response.json


def test_cli_private_key_jwt_needs_keys_and_jwks_uri_must_be_https(runner):
    result = runner.invoke(args=["create-client", "--name", "K", "--grant-type", "client_credentials",
                                 "--auth-method", "private_key_jwt"])
    assert result.exit_code != 0 and "jwks or jwks_uri" in result.output
    result = runner.invoke(args=["create-client", "--name", "K", "--grant-type", "client_credentials",
                                 "--auth-method", "private_key_jwt", "--jwks-uri", "http://keys.example/jwks"])
    assert result.exit_code != 0 and "https" in result.output


def test_cli_strict_client_takes_only_its_method(runner, test_client):
    result = runner.invoke(args=["create-client", "--name", "Strict", "--grant-type", "client_credentials",
                                 "--scope", "profile", "--strict-auth-method", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["strict_auth_method"] is True
    assert test_client.post("/oauth/token", data=CC, auth=(data["client_id"], data["client_secret"])).status_code == 200
    response = test_client.post("/oauth/token", data={**CC, "client_id": data["client_id"],
                                                      "client_secret": data["client_secret"]})
    assert response.status_code == 401
