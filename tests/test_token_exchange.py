"""Token exchange (RFC 8693): a client swaps a token this server issued about a person (an
access token or an id_token) for a token to another API. Delegation with an actor token puts
``act`` in the new token; impersonation only where an administrator allowed it; the scopes
and the API never go beyond the policy (ApiClientGrant) and the subject token; audited.
tests/interop/test_openid_client.py runs the exchange with openid-client too."""

import json
from datetime import datetime, timezone

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from support.factories import count_rows, update_rows
from support.flows import get_user_token

from website.models import AuditEvent, OAuth2Client, User, db

GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN = "urn:ietf:params:oauth:token-type:access_token"
ID_TOKEN = "urn:ietf:params:oauth:token-type:id_token"
ORDERS = "https://orders.example/"
INVOICES = "https://invoices.example/"


@pytest.fixture
def web_app(make_client, request):
    """The app the person signs in to; it may exchange its own tokens. Parametrized
    indirectly, the algorithm its id_tokens are signed with."""
    alg = {"id_token_signed_response_alg": request.param} if hasattr(request, "param") else {}
    return make_client(grant_types=["authorization_code", "refresh_token", "client_credentials", GRANT],
                       scope="openid profile email offline_access", **alg)


@pytest.fixture
def orders_service(make_client):
    """The orders API's own client: it introspects the orders API's tokens and calls onwards."""
    return make_client(grant_types=["client_credentials", GRANT], redirect_uris=[], scope="profile email")


@pytest.fixture
def apis(app, runner, web_app, orders_service):
    """The two APIs; the clients get the APIs' scopes once the APIs define them."""
    commands = [
        ["create-api", "--identifier", ORDERS, "--name", "Orders", "--scope", "orders:read",
         "--introspection-client", orders_service[0].client_id, "--allow-client", web_app[0].client_id],
        ["create-api", "--identifier", INVOICES, "--name", "Invoices", "--scope", "invoices:read",
         "--allow-client", web_app[0].client_id, "--allow-client", orders_service[0].client_id],
    ]
    for args in commands:
        result = runner.invoke(args=args)
        assert result.exit_code == 0, result.output
    for (client, _), scope in ((web_app, "openid profile email offline_access orders:read"),
                               (orders_service, "profile email invoices:read")):
        update_rows(app, OAuth2Client, {"scope": scope}, OAuth2Client.client_id == client.client_id)
        client.scope = scope


@pytest.fixture
def person_token(test_client, auth, user, web_app, apis):
    """alice's token from the web app (for this server's own resources)."""
    auth.login()
    client, secret = web_app
    return get_user_token(test_client, client, secret, scope="openid profile email", nonce="n-1")


def own_token(test_client, party) -> str:
    """The client's own (client credentials) access token: an actor token."""
    client, secret = party
    response = test_client.post("/oauth/token", data={"grant_type": "client_credentials"},
                                auth=(client.client_id, secret))
    assert response.status_code == 200, response.get_json()
    return response.get_json()["access_token"]


def exchange(test_client, party, subject_token, subject_token_type=ACCESS_TOKEN, **params):
    client, secret = party
    data = {"grant_type": GRANT, "subject_token": subject_token, "subject_token_type": subject_token_type,
            **params}
    return test_client.post("/oauth/token", data={k: v for k, v in data.items() if v is not None},
                            auth=(client.client_id, secret))


def claims_of(test_client, token: str) -> dict:
    return jwt.decode(token, KeySet.import_key_set(test_client.get("/.well-known/jwks.json").get_json())).claims


def error_of(response) -> tuple[int, str]:
    return response.status_code, response.get_json()["error"]


def test_discovery_lists_the_grant(test_client):
    metadata = test_client.get("/.well-known/openid-configuration").get_json()
    assert GRANT in metadata["grant_types_supported"]


class TestTokenExchangeOff:
    @pytest.fixture
    def app_config(self, app_config):
        return {**app_config, "OAUTH2_TOKEN_EXCHANGE": False}

    def test_nothing_is_advertised_and_no_client_registers_for_it(self, test_client, runner):
        assert GRANT not in test_client.get("/.well-known/openid-configuration").get_json()["grant_types_supported"]
        result = runner.invoke(args=["create-client", "--name", "X", "--grant-type", GRANT])
        assert result.exit_code != 0 and "Unsupported grant type" in result.output


def test_delegation_names_the_actor_in_act(app, test_client, web_app, person_token, user):
    actor = own_token(test_client, web_app)
    response = exchange(test_client, web_app, person_token["access_token"], actor_token=actor,
                        actor_token_type=ACCESS_TOKEN, audience=INVOICES)
    assert response.status_code == 200, response.get_json()
    token = response.get_json()
    assert token["issued_token_type"] == ACCESS_TOKEN
    assert token["token_type"] == "Bearer" and "refresh_token" not in token
    claims = claims_of(test_client, token["access_token"])
    assert claims["aud"] == INVOICES and claims["sub"] == user.sub
    assert claims["act"] == {"sub": web_app[0].client_id, "client_id": web_app[0].client_id}
    # By default the scopes the subject token has that the client and the API allow.
    assert set(token["scope"].split()) == {"openid", "profile", "email"}
    introspected = test_client.post("/oauth/introspect", data={"token": token["access_token"]},
                                    auth=(web_app[0].client_id, web_app[1])).get_json()
    assert introspected["active"] is True and introspected["act"] == claims["act"]
    with app.app_context():
        event = db.session.scalar(db.select(AuditEvent).where(AuditEvent.event == "token_exchanged"))
        assert event is not None and event.client_id == web_app[0].client_id


def test_an_api_exchanges_the_token_it_received_for_one_to_another_api(test_client, auth, user, web_app,
                                                                       orders_service, apis):
    auth.login()
    orders_token = get_user_token(test_client, *web_app, scope="profile orders:read", audience=ORDERS)
    actor = own_token(test_client, orders_service)
    response = exchange(test_client, orders_service, orders_token["access_token"], actor_token=actor,
                        actor_token_type=ACCESS_TOKEN, audience=INVOICES, scope="profile")
    assert response.status_code == 200, response.get_json()
    claims = claims_of(test_client, response.get_json()["access_token"])
    assert claims["aud"] == INVOICES and claims["sub"] == user.sub and claims["scope"] == "profile"
    assert claims["act"]["sub"] == orders_service[0].client_id


@pytest.mark.parametrize("scope", ["invoices:read", "email", "orders:read", "profile admin"])
def test_scopes_beyond_the_subject_token_or_the_policy_are_refused(app, test_client, auth, user, web_app,
                                                                   orders_service, apis, scope):
    # invoices:read: the subject token does not have it; email: not asked of the person;
    # orders:read: the invoices API does not define it; admin: exists nowhere.
    auth.login()
    orders_token = get_user_token(test_client, *web_app, scope="profile orders:read", audience=ORDERS)
    response = exchange(test_client, orders_service, orders_token["access_token"],
                        actor_token=own_token(test_client, orders_service), actor_token_type=ACCESS_TOKEN,
                        audience=INVOICES, scope=scope)
    assert error_of(response) == (400, "invalid_scope")
    assert count_rows(app, AuditEvent, AuditEvent.event == "token_exchange_refused") == 1


def test_impersonation_needs_an_administrators_allowance(app, test_client, runner, web_app, person_token, user):
    refused = exchange(test_client, web_app, person_token["access_token"], audience=INVOICES)
    assert error_of(refused) == (400, "invalid_request")
    assert "impersonate" in refused.get_json()["error_description"]
    # "--": a client_id may begin with "-".
    result = runner.invoke(args=["grant-api", "--impersonation", "--", INVOICES, web_app[0].client_id])
    assert result.exit_code == 0 and "impersonate" in result.output
    allowed = exchange(test_client, web_app, person_token["access_token"], audience=INVOICES)
    assert allowed.status_code == 200, allowed.get_json()
    claims = claims_of(test_client, allowed.get_json()["access_token"])
    assert claims["sub"] == user.sub and "act" not in claims
    assert count_rows(app, AuditEvent, AuditEvent.event == "api_impersonation_allowed") == 1
    assert runner.invoke(args=["grant-api", "--no-impersonation", "--", INVOICES, web_app[0].client_id]).exit_code == 0
    assert error_of(exchange(test_client, web_app, person_token["access_token"], audience=INVOICES)) == (
        400, "invalid_request")


@pytest.mark.parametrize("web_app", ["RS256", "ES256", "EdDSA"], indirect=True)
def test_an_id_token_is_a_subject_with_the_scopes_the_person_allowed(test_client, web_app, person_token, user):
    response = exchange(test_client, web_app, person_token["id_token"], ID_TOKEN,
                        actor_token=own_token(test_client, web_app), actor_token_type=ACCESS_TOKEN,
                        audience=INVOICES)
    assert response.status_code == 200, response.get_json()
    claims = claims_of(test_client, response.get_json()["access_token"])
    assert claims["sub"] == user.sub and set(claims["scope"].split()) == {"openid", "profile", "email"}


def test_another_clients_tokens_are_refused(test_client, make_client, runner, web_app, orders_service, person_token):
    # The orders service did not get alice's token for its API: it may not exchange it.
    refused = exchange(test_client, orders_service, person_token["access_token"],
                       actor_token=own_token(test_client, orders_service), actor_token_type=ACCESS_TOKEN,
                       audience=INVOICES)
    assert error_of(refused) == (400, "invalid_request")
    # Nor may the web app present another client's token as its actor.
    refused = exchange(test_client, web_app, person_token["access_token"],
                       actor_token=own_token(test_client, orders_service), actor_token_type=ACCESS_TOKEN,
                       audience=INVOICES)
    assert error_of(refused) == (400, "invalid_request")


def test_an_api_the_client_is_not_allowed_is_refused(test_client, runner, make_client, web_app, person_token):
    other = make_client(grant_types=["client_credentials"], redirect_uris=[], scope="profile")
    runner.invoke(args=["create-api", "--identifier", "https://hr.example/", "--name", "HR"])
    response = exchange(test_client, web_app, person_token["access_token"],
                        actor_token=own_token(test_client, web_app), actor_token_type=ACCESS_TOKEN,
                        audience="https://hr.example/")
    assert error_of(response) == (400, "invalid_target")
    assert error_of(exchange(test_client, web_app, person_token["access_token"],
                             audience="https://unknown.example/")) == (400, "invalid_target")
    assert error_of(exchange(test_client, web_app, person_token["access_token"])) == (400, "invalid_target")
    # A client not registered for the grant cannot use it at all.
    assert error_of(exchange(test_client, other, "x", audience=INVOICES)) == (400, "unauthorized_client")


@pytest.mark.parametrize("params", [
    {"subject_token": "not-a-token"},
    {"subject_token": None},
    {"subject_token_type": None},
    {"subject_token_type": "urn:ietf:params:oauth:token-type:saml2"},
    {"subject_token_type": ID_TOKEN},
    {"requested_token_type": "urn:ietf:params:oauth:token-type:refresh_token"},
    {"actor_token": "not-a-token", "actor_token_type": ACCESS_TOKEN},
    {"actor_token_type": ACCESS_TOKEN},
])
def test_bad_requests_are_invalid_request(test_client, web_app, person_token, params):
    data = {"subject_token": person_token["access_token"], "subject_token_type": ACCESS_TOKEN,
            "audience": INVOICES, **params}
    client, secret = web_app
    response = test_client.post("/oauth/token", data={"grant_type": GRANT, **{k: v for k, v in data.items() if v}},
                                auth=(client.client_id, secret))
    assert error_of(response) == (400, "invalid_request"), response.get_json()


def test_a_revoked_subject_token_is_refused_and_revoking_it_revokes_the_exchanged_one(
        test_client, web_app, person_token):
    client, secret = web_app
    exchanged = exchange(test_client, web_app, person_token["access_token"],
                         actor_token=own_token(test_client, web_app), actor_token_type=ACCESS_TOKEN,
                         audience=INVOICES).get_json()["access_token"]
    # The person's grant is withdrawn: the exchanged token belongs to its family and goes too.
    assert test_client.post("/oauth/revoke", data={"token": person_token["refresh_token"]},
                            auth=(client.client_id, secret)).status_code == 200
    introspected = test_client.post("/oauth/introspect", data={"token": exchanged},
                                    auth=(client.client_id, secret)).get_json()
    assert introspected == {"active": False}
    refused = exchange(test_client, web_app, person_token["access_token"],
                       actor_token=own_token(test_client, web_app), actor_token_type=ACCESS_TOKEN,
                       audience=INVOICES)
    assert error_of(refused) == (400, "invalid_request")


def test_a_public_client_cannot_register_for_token_exchange(runner):
    result = runner.invoke(args=["create-client", "--name", "SPA", "--auth-method", "none",
                                 "--redirect-uri", "https://spa.example/cb", "--grant-type", "authorization_code",
                                 "--grant-type", GRANT])
    assert result.exit_code != 0 and "public client" in result.output


def test_the_jwt_requested_token_type_is_issued_as_such(test_client, web_app, person_token):
    response = exchange(test_client, web_app, person_token["access_token"],
                        actor_token=own_token(test_client, web_app), actor_token_type=ACCESS_TOKEN,
                        audience=INVOICES, requested_token_type="urn:ietf:params:oauth:token-type:jwt")
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["issued_token_type"] == "urn:ietf:params:oauth:token-type:jwt"
    assert json.loads(json.dumps(claims_of(test_client, response.get_json()["access_token"])))["aud"] == INVOICES


def test_dynamic_registration_and_the_client_form_offer_the_grant(app, test_client, auth, user):
    app.config["OAUTH2_OPEN_REGISTRATION"] = True
    registered = test_client.post("/oauth/register", json={
        "client_name": "Orders backend", "grant_types": ["client_credentials", GRANT], "redirect_uris": []})
    assert registered.status_code == 201, registered.get_json()
    assert GRANT in registered.get_json()["grant_types"]
    public = test_client.post("/oauth/register", json={
        "client_name": "SPA", "grant_types": [GRANT], "token_endpoint_auth_method": "none"})
    assert (public.status_code, public.get_json()["error"]) == (400, "invalid_client_metadata")
    auth.login()
    form = test_client.get("/clients/new").get_data(as_text=True)
    assert f'value="{GRANT}"' in form and "Token exchange (RFC 8693)" in form


def test_the_id_token_of_a_disabled_account_is_refused(app, test_client, web_app, person_token, user):
    # Disabling revokes the person's tokens; an id_token cannot be revoked, so it is checked here.
    update_rows(app, User, {"disabled_at": datetime.now(timezone.utc)}, User.id == user.id)
    response = exchange(test_client, web_app, person_token["id_token"], ID_TOKEN,
                        actor_token=own_token(test_client, web_app), actor_token_type=ACCESS_TOKEN,
                        audience=INVOICES)
    assert error_of(response) == (400, "invalid_request")
    assert "disabled" in response.get_json()["error_description"]
