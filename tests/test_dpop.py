"""DPoP (RFC 9449): a client proves with each request that it holds a key, and its tokens are
bound to that key (token_type DPoP, cnf.jkt) at the token endpoint, /api/me, UserInfo and
introspection. Every refusal the spec lists: wrong key, wrong htu/htm, stale iat, replayed
jti, missing nonce, bound token sent as Bearer. Proofs are built by hand (support/dpop.py);
tests/interop/test_openid_client.py runs panva's openid-client with DPoP end to end."""

import time

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet
from support.dpop import ME_URL, TOKEN_URL, DPoPKey
from support.factories import OnRedis, count_rows
from support.flows import authorize_url, bearer, code_request, get_code, pkce_pair, approve
from support.pages import query_params

from website.models import AuditEvent, SpentJti, Token
from website.oauth2.dpop import DPOP_SIGNING_ALGS

USERINFO_URL = "http://localhost/userinfo"


@pytest.fixture
def service(make_client):
    return make_client(grant_types=["client_credentials"], redirect_uris=[], scope="profile")


@pytest.fixture
def auth(auth, user):
    """Logs in as alice, who exists."""
    return auth


@pytest.fixture
def key():
    return DPoPKey()


def client_credentials(test_client, service, headers=None):
    client, secret = service
    return test_client.post("/oauth/token", data={"grant_type": "client_credentials", "scope": "profile"},
                            auth=(client.client_id, secret), headers=headers or {})


def user_token(test_client, auth, client, secret, key, **params):
    """The code flow for alice with a DPoP proof at the token endpoint; the token response."""
    auth.login()
    params.setdefault("scope", "openid profile")
    params.setdefault("nonce", "n-0S6_WzA2Mj")
    code, verifier = get_code(test_client, client, **params)
    data, basic = code_request(client, code, verifier, secret)
    return test_client.post("/oauth/token", data=data, auth=basic, headers=key.headers("POST", TOKEN_URL))


def error_of(response) -> str:
    return response.get_json()["error"]


def test_discovery_advertises_dpop_algorithms(test_client):
    metadata = test_client.get("/.well-known/openid-configuration").get_json()
    assert metadata["dpop_signing_alg_values_supported"] == DPOP_SIGNING_ALGS
    assert "none" not in metadata["dpop_signing_alg_values_supported"]


class TestDPoPOff:
    @pytest.fixture
    def app_config(self, app_config):
        return {**app_config, "OAUTH2_DPOP": False}

    def test_nothing_is_advertised_and_proofs_are_ignored(self, test_client, service, key):
        metadata = test_client.get("/.well-known/openid-configuration").get_json()
        assert "dpop_signing_alg_values_supported" not in metadata
        response = client_credentials(test_client, service, key.headers("POST", TOKEN_URL))
        assert response.status_code == 200
        assert response.get_json()["token_type"] == "Bearer"

    def test_the_dpop_scheme_is_not_taken(self, test_client, service, key):
        access_token = client_credentials(test_client, service).get_json()["access_token"]
        response = test_client.get("/api/me", headers=key.headers("GET", ME_URL, access_token))
        assert response.status_code == 401
        assert response.headers.getlist("WWW-Authenticate") == ["Bearer"]


def test_a_proof_binds_the_token_to_the_key(app, test_client, service, key):
    response = client_credentials(test_client, service, key.headers("POST", TOKEN_URL))
    assert response.status_code == 200, response.get_json()
    token = response.get_json()
    assert token["token_type"] == "DPoP"
    client, secret = service
    introspected = test_client.post("/oauth/introspect", data={"token": token["access_token"]},
                                    auth=(client.client_id, secret)).get_json()
    assert introspected["active"] is True
    assert introspected["token_type"] == "DPoP"
    assert introspected["cnf"] == {"jkt": key.jkt}
    # The jti is spent in the database (no Redis configured).
    assert count_rows(app, SpentJti) == 1


def test_without_a_proof_the_token_is_a_bearer_token(test_client, service):
    token = client_credentials(test_client, service).get_json()
    assert token["token_type"] == "Bearer"


@pytest.mark.parametrize("change, message", [
    ({"claims": {"htu": "http://localhost/oauth/revoke"}}, "htu"),
    ({"claims": {"htu": "http://evil.example/oauth/token"}}, "htu"),
    ({"claims": {"htm": "GET"}}, "htm"),
    ({"iat": int(time.time()) - 3600}, "iat"),
    ({"iat": int(time.time()) + 3600}, "iat"),
    ({"claims": {"iat": "now"}}, "iat"),
    ({"claims": {"jti": None}}, "jti"),
    ({"header": {"typ": "JWT"}}, "typ"),
    ({"header": {"alg": "none"}}, "alg"),
    ({"header": {"alg": "HS256"}}, "alg"),
    ({"header": {"jwk": None}}, "jwk"),
    ({"header": {"jwk": ECKey.generate_key("P-256").as_dict(private=True)}}, "public key"),
    ({"signer": DPoPKey()}, "signature"),
])
def test_a_wrong_proof_is_refused_at_the_token_endpoint(test_client, service, key, change, message):
    response = client_credentials(test_client, service, {"DPoP": key.proof("POST", TOKEN_URL, **change)})
    assert response.status_code == 400
    assert error_of(response) == "invalid_dpop_proof"
    assert message in response.get_json()["error_description"]


@pytest.mark.parametrize("proof", ["", "not-a-jwt", "a.b.c", "x" * 9000])
def test_garbage_proofs_are_refused_not_a_500(test_client, service, proof):
    response = client_credentials(test_client, service, {"DPoP": proof})
    assert (response.status_code, error_of(response)) == (400, "invalid_dpop_proof")


def test_two_proofs_are_refused(test_client, service, key):
    client, secret = service
    response = test_client.post("/oauth/token", data={"grant_type": "client_credentials"},
                                auth=(client.client_id, secret),
                                headers=[("DPoP", key.proof("POST", TOKEN_URL)), ("DPoP", key.proof("POST", TOKEN_URL))])
    assert (response.status_code, error_of(response)) == (400, "invalid_dpop_proof")


def test_a_replayed_proof_is_refused_and_audited(app, test_client, service, key):
    proof = key.proof("POST", TOKEN_URL)
    assert client_credentials(test_client, service, {"DPoP": proof}).status_code == 200
    again = client_credentials(test_client, service, {"DPoP": proof})
    assert (again.status_code, error_of(again)) == (400, "invalid_dpop_proof")
    assert "jti" in again.get_json()["error_description"]
    assert count_rows(app, AuditEvent, AuditEvent.event == "dpop_proof_replayed") == 1


def test_the_issuer_url_is_an_accepted_htu(test_client, service, key):
    # Behind a proxy the client names the public URL (the issuer's), not the one Flask sees.
    response = client_credentials(test_client, service, key.headers("POST", "http://127.0.0.1/oauth/token"))
    assert response.status_code == 200, response.get_json()


def test_api_me_takes_a_dpop_token_with_its_proof(test_client, auth, make_client, key):
    client, secret = make_client()
    token = user_token(test_client, auth, client, secret, key).get_json()
    assert token["token_type"] == "DPoP"
    access_token = token["access_token"]
    response = test_client.get("/api/me", headers=key.headers("GET", ME_URL, access_token))
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["username"] == "alice"
    userinfo = test_client.get("/userinfo", headers=key.headers("GET", USERINFO_URL, access_token))
    assert userinfo.status_code == 200, userinfo.get_json()


def test_a_bound_token_sent_as_bearer_is_refused(test_client, auth, make_client, key):
    client, secret = make_client()
    access_token = user_token(test_client, auth, client, secret, key).get_json()["access_token"]
    for path in ("/api/me", "/userinfo"):
        response = test_client.get(path, headers=bearer(access_token))
        assert response.status_code == 401
        assert error_of(response) == "invalid_token"
        challenges = response.headers.getlist("WWW-Authenticate")
        assert challenges[0].startswith('Bearer error="invalid_token"')
        assert challenges[1] == f'DPoP algs="{" ".join(DPOP_SIGNING_ALGS)}"'


@pytest.fixture
def me_token(test_client, auth, make_client, key):
    client, secret = make_client()
    return user_token(test_client, auth, client, secret, key).get_json()["access_token"]


@pytest.mark.parametrize("wrong, error", [
    ("other key", "invalid_token"),
    ("no proof", "invalid_dpop_proof"),
    ("no ath", "invalid_dpop_proof"),
    ("ath of another token", "invalid_dpop_proof"),
    ("htm", "invalid_dpop_proof"),
    ("htu", "invalid_dpop_proof"),
    ("stale", "invalid_dpop_proof"),
])
def test_a_wrong_proof_is_refused_at_the_resource(test_client, key, me_token, wrong, error):
    headers = {"Authorization": f"DPoP {me_token}"}
    if wrong == "other key":
        headers["DPoP"] = DPoPKey().proof("GET", ME_URL, me_token)
    elif wrong == "no ath":
        headers["DPoP"] = key.proof("GET", ME_URL)
    elif wrong == "ath of another token":
        headers["DPoP"] = key.proof("GET", ME_URL, "another-token")
    elif wrong == "htm":
        headers["DPoP"] = key.proof("POST", ME_URL, me_token)
    elif wrong == "htu":
        headers["DPoP"] = key.proof("GET", "http://localhost/api/other", me_token)
    elif wrong == "stale":
        headers["DPoP"] = key.proof("GET", ME_URL, me_token, iat=int(time.time()) - 3600)
    response = test_client.get("/api/me", headers=headers)
    assert response.status_code == 401
    assert error_of(response) == error
    assert response.headers["WWW-Authenticate"].startswith(f'DPoP error="{error}"')
    assert f'algs="{" ".join(DPOP_SIGNING_ALGS)}"' in response.headers["WWW-Authenticate"]


def test_a_proof_replayed_at_the_resource_is_refused(test_client, key, me_token):
    headers = key.headers("GET", ME_URL, me_token)
    assert test_client.get("/api/me", headers=headers).status_code == 200
    again = test_client.get("/api/me", headers=headers)
    assert (again.status_code, error_of(again)) == (401, "invalid_dpop_proof")


def test_an_unbound_token_is_refused_with_the_dpop_scheme(test_client, auth, make_client, key):
    client, secret = make_client()
    auth.login()
    code, verifier = get_code(test_client, client, scope="profile")
    data, basic = code_request(client, code, verifier, secret)
    access_token = test_client.post("/oauth/token", data=data, auth=basic).get_json()["access_token"]
    response = test_client.get("/api/me", headers=key.headers("GET", ME_URL, access_token))
    assert (response.status_code, error_of(response)) == (401, "invalid_token")


class TestNonces:
    @pytest.fixture
    def app_config(self, app_config):
        return {**app_config, "OAUTH2_DPOP_NONCE": True}

    def test_the_token_endpoint_asks_for_a_nonce_and_takes_it(self, test_client, service, key):
        first = client_credentials(test_client, service, key.headers("POST", TOKEN_URL))
        assert (first.status_code, error_of(first)) == (400, "use_dpop_nonce")
        nonce = first.headers["DPoP-Nonce"]
        second = client_credentials(test_client, service, key.headers("POST", TOKEN_URL, nonce=nonce))
        assert second.status_code == 200, second.get_json()
        assert second.get_json()["token_type"] == "DPoP"

    @pytest.mark.parametrize("nonce", ["made-up", "1.abc", str(int(time.time())) + ".x"],
                             ids=["made-up", "bad-time", "now-with-a-bad-mac"])
    def test_a_nonce_this_server_did_not_give_is_refused(self, test_client, service, key, nonce):
        response = client_credentials(test_client, service, key.headers("POST", TOKEN_URL, nonce=nonce))
        assert (response.status_code, error_of(response)) == (400, "use_dpop_nonce")

    def test_the_resource_asks_for_a_nonce_in_its_challenge(self, test_client, service, key):
        nonce = client_credentials(test_client, service, key.headers("POST", TOKEN_URL)).headers["DPoP-Nonce"]
        access_token = client_credentials(test_client, service, key.headers("POST", TOKEN_URL, nonce=nonce)
                                          ).get_json()["access_token"]
        response = test_client.get("/api/me", headers=key.headers("GET", ME_URL, access_token))
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"].startswith('DPoP error="use_dpop_nonce"')
        assert response.headers["DPoP-Nonce"]


def test_a_dpop_bound_client_must_send_a_proof(test_client, make_client, key):
    service = make_client(grant_types=["client_credentials"], redirect_uris=[], scope="profile",
                          dpop_bound_access_tokens=True)
    refused = client_credentials(test_client, service)
    assert (refused.status_code, error_of(refused)) == (400, "invalid_dpop_proof")
    assert "dpop_bound_access_tokens" in refused.get_json()["error_description"]
    assert client_credentials(test_client, service, key.headers("POST", TOKEN_URL)).status_code == 200


def test_dpop_jkt_binds_the_code_to_a_key(test_client, auth, make_client, key):
    client, secret = make_client()
    auth.login()
    code, verifier = get_code(test_client, client, scope="profile", dpop_jkt=key.jkt)
    data, basic = code_request(client, code, verifier, secret)
    without = test_client.post("/oauth/token", data=data, auth=basic)
    assert (without.status_code, error_of(without)) == (400, "invalid_grant")
    other = test_client.post("/oauth/token", data=data, auth=basic, headers=DPoPKey().headers("POST", TOKEN_URL))
    assert (other.status_code, error_of(other)) == (400, "invalid_grant")
    code, verifier = get_code(test_client, client, scope="profile", dpop_jkt=key.jkt)
    data, basic = code_request(client, code, verifier, secret)
    right = test_client.post("/oauth/token", data=data, auth=basic, headers=key.headers("POST", TOKEN_URL))
    assert right.status_code == 200, right.get_json()
    assert right.get_json()["token_type"] == "DPoP"


def test_a_malformed_dpop_jkt_is_refused_at_the_authorization_endpoint(test_client, auth, make_client):
    client, _ = make_client()
    auth.login()
    verifier, challenge = pkce_pair()
    response = approve(test_client, authorize_url(client, dpop_jkt="short", code_challenge=challenge,
                                                  code_challenge_method="S256"))
    assert response.status_code == 302
    assert query_params(response.headers["Location"])["error"] == "invalid_request"


def test_a_public_clients_refresh_token_is_bound_to_its_key(test_client, auth, make_client, key):
    client, _ = make_client(token_endpoint_auth_method="none", scope="openid profile offline_access")
    token = user_token(test_client, auth, client, None, key, prompt="consent").get_json()
    refresh = {"grant_type": "refresh_token", "refresh_token": token["refresh_token"], "client_id": client.client_id}
    without = test_client.post("/oauth/token", data=refresh)
    assert (without.status_code, error_of(without)) == (400, "invalid_grant")
    other = test_client.post("/oauth/token", data=refresh, headers=DPoPKey().headers("POST", TOKEN_URL))
    assert (other.status_code, error_of(other)) == (400, "invalid_grant")
    right = test_client.post("/oauth/token", data=refresh, headers=key.headers("POST", TOKEN_URL))
    assert right.status_code == 200, right.get_json()
    assert right.get_json()["token_type"] == "DPoP"


def test_a_confidential_clients_refresh_token_is_not_bound(test_client, auth, make_client, key):
    client, secret = make_client(scope="openid profile offline_access")
    token = user_token(test_client, auth, client, secret, key, prompt="consent").get_json()
    refreshed = test_client.post("/oauth/token", data={"grant_type": "refresh_token",
                                                       "refresh_token": token["refresh_token"]},
                                 auth=(client.client_id, secret))
    assert refreshed.status_code == 200, refreshed.get_json()
    assert refreshed.get_json()["token_type"] == "Bearer"  # RFC 9449 §5: only the access token is bound


def test_a_jwt_access_token_carries_cnf_jkt(app, test_client, runner, service, key):
    client, _ = service
    assert runner.invoke(args=["create-api", "--identifier", "https://orders.example/", "--name", "Orders",
                               "--allow-client", client.client_id]).exit_code == 0
    response = test_client.post("/oauth/token", data={"grant_type": "client_credentials",
                                                      "audience": "https://orders.example/"},
                                auth=(client.client_id, service[1]), headers=key.headers("POST", TOKEN_URL))
    assert response.status_code == 200, response.get_json()
    jwks = KeySet.import_key_set(test_client.get("/.well-known/jwks.json").get_json())
    claims = jwt.decode(response.get_json()["access_token"], jwks).claims
    assert claims["cnf"] == {"jkt": key.jkt}
    assert response.get_json()["token_type"] == "DPoP"


def test_registration_cli_and_form_take_dpop_bound_access_tokens(app, test_client, runner):
    result = runner.invoke(args=["create-client", "--name", "Bound", "--grant-type", "client_credentials",
                                 "--dpop-bound", "--json"])
    assert result.exit_code == 0, result.output
    assert '"dpop_bound_access_tokens": true' in result.output
    app.config["OAUTH2_OPEN_REGISTRATION"] = True
    registered = test_client.post("/oauth/register", json={
        "client_name": "Bound", "redirect_uris": ["https://app.example.com/cb"], "dpop_bound_access_tokens": True})
    assert registered.status_code == 201, registered.get_json()
    assert registered.get_json()["dpop_bound_access_tokens"] is True
    wrong = test_client.post("/oauth/register", json={
        "client_name": "Bound", "redirect_uris": ["https://app.example.com/cb"], "dpop_bound_access_tokens": "yes"})
    assert (wrong.status_code, wrong.get_json()["error"]) == (400, "invalid_client_metadata")


class TestRedisReplayCache(OnRedis):
    """With REDIS_URL the jtis live in Redis, where every instance sees them."""

    def test_a_replayed_proof_is_refused_from_redis(self, app, test_client, service, key):
        proof = key.proof("POST", TOKEN_URL)
        assert client_credentials(test_client, service, {"DPoP": proof}).status_code == 200
        again = client_credentials(test_client, service, {"DPoP": proof})
        assert (again.status_code, error_of(again)) == (400, "invalid_dpop_proof")
        assert count_rows(app, SpentJti) == 0
        assert count_rows(app, Token, Token.dpop_jkt == key.jkt) == 1
