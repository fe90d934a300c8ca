"""Clients and APIs are kept in each process's memory for the token endpoint; a change made
through one instance (admin API, UI, CLI) stops the old client or grant on that instance at
once and on every other within CLIENT_CACHE_CHECK_INTERVAL. Two apps on one database stand
for two instances: A checks the version row only once an hour, so only its own commits can
drop its cache; B checks every 0.3 seconds."""

import base64
import json
import time

import pytest
from support.flows import get_user_token
from support.pages import csrf_token

from website import create_app
from website.models import db

INTERVAL = 0.3
AUDIENCE = "http://127.0.0.1/api/v2/"  # the admin API (OAUTH2_ISSUER of the tests + /api/v2/)
ORDERS = "https://orders.example.com/"


@pytest.fixture
def app_config(app_config):
    return {**app_config, "CLIENT_CACHE_CHECK_INTERVAL": 3600}


@pytest.fixture
def other(app_config):
    """Instance B: another app on the same database."""
    app = create_app({**app_config, "CLIENT_CACHE_CHECK_INTERVAL": INTERVAL})
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def client_credentials(test_client, client_id, secret, **data):
    return test_client.post("/oauth/token", data={"grant_type": "client_credentials", **data},
                            auth=(client_id, secret))


def refused_within(test_client, client_id, secret, seconds=INTERVAL + 3, **data) -> float:
    """Seconds until the instance refuses the request it granted before (fails after ``seconds``)."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        response = client_credentials(test_client, client_id, secret, **data)
        if response.status_code != 200:
            return time.monotonic() - started
        time.sleep(0.05)
    pytest.fail(f"still granted after {seconds} seconds: the change did not reach this instance")


def admin_api(runner, test_client):
    """Headers of an admin API caller with every scope, on instance A."""
    result = runner.invoke(args=["create-admin-api-client", "--name", "Provisioning", "--json",
                                 "--scope", "update:clients", "--scope", "delete:clients",
                                 "--scope", "delete:users"])
    assert result.exit_code == 0, result.output
    credentials = json.loads(result.output)
    response = client_credentials(test_client, credentials["client_id"], credentials["client_secret"],
                                  audience=AUDIENCE)
    assert response.status_code == 200, response.json
    return {"Authorization": f"Bearer {response.json['access_token']}"}


@pytest.fixture
def service(make_client, user):
    """A confidential client with the client credentials grant, owned by the user."""
    return make_client(owner=user, grant_types=["client_credentials"], redirect_uris=[], scope="profile")


@pytest.fixture
def both(test_client, other, service):
    """Both instances' test clients, each having issued the service a token (so each cached it)."""
    client, secret = service
    a, b = test_client, other.test_client()
    for instance in (a, b):
        assert client_credentials(instance, client.client_id, secret).status_code == 200
    return a, b


def test_a_secret_rotated_through_one_instance_stops_working_on_the_other(app, runner, service, both):
    client, old = service
    a, b = both
    rotated = a.post(f"/api/v2/clients/{client.client_id}/rotate-secret", headers=admin_api(runner, a))
    assert rotated.status_code == 200, rotated.json
    new = rotated.json["client_secret"]
    assert client_credentials(a, client.client_id, old).status_code == 401  # at once on A
    assert refused_within(b, client.client_id, old) <= INTERVAL + 1
    assert client_credentials(b, client.client_id, old).json["error"] == "invalid_client"
    for instance in (a, b):
        assert client_credentials(instance, client.client_id, new).status_code == 200


def test_a_client_deleted_through_one_instance_is_refused_by_the_other(app, runner, service, both):
    client, secret = service
    a, b = both
    assert a.delete(f"/api/v2/clients/{client.client_id}", headers=admin_api(runner, a)).status_code == 204
    assert client_credentials(a, client.client_id, secret).status_code == 401
    assert refused_within(b, client.client_id, secret) <= INTERVAL + 1


def test_a_grant_type_taken_away_is_refused_by_the_other(app, runner, service, both):
    client, secret = service
    a, b = both
    changed = a.patch(f"/api/v2/clients/{client.client_id}", headers=admin_api(runner, a),
                      json={"grant_types": ["authorization_code"],
                            "callbacks": ["https://app.example.com/callback"]})
    assert changed.status_code == 200, changed.json
    assert client_credentials(a, client.client_id, secret).json["error"] == "unauthorized_client"
    refused_within(b, client.client_id, secret)
    assert client_credentials(b, client.client_id, secret).json["error"] == "unauthorized_client"


def test_a_secret_rotated_in_the_owners_page_stops_working_on_the_other(app, auth, service, both):
    client, old = service
    a, b = both
    auth.login()  # on A's test client
    page = a.get(f"/clients/{client.client_id}/rotate-secret").get_data(as_text=True)
    response = a.post(f"/clients/{client.client_id}/rotate-secret",
                                data={"csrf_token": csrf_token(page), "confirm": "yes"})
    assert response.status_code == 303
    assert client_credentials(a, client.client_id, old).status_code == 401
    refused_within(b, client.client_id, old)


def test_a_client_goes_with_its_owner_on_every_instance(app, runner, user, service, both):
    client, secret = service
    a, b = both
    assert a.delete(f"/api/v2/users/{user.sub}?owned_clients=delete", headers=admin_api(runner, a)).status_code == 204
    assert client_credentials(a, client.client_id, secret).status_code == 401
    refused_within(b, client.client_id, secret)


def test_an_api_grant_revoked_with_the_cli_is_refused_by_the_other(app, runner, service, both):
    client, secret = service
    a, b = both
    result = runner.invoke(args=["create-api", "--identifier", ORDERS, "--name", "Orders",
                                 "--scope", "read:orders", "--allow-client", client.client_id])
    assert result.exit_code == 0, result.output
    for instance in (a, b):  # a new API shows at once on A, within the interval on B
        deadline = time.monotonic() + INTERVAL + 3
        while client_credentials(instance, client.client_id, secret, audience=ORDERS).status_code != 200:
            assert time.monotonic() < deadline, "the new API did not reach this instance"
            time.sleep(0.05)
    result = runner.invoke(args=["revoke-api", ORDERS, client.client_id])
    assert result.exit_code == 0, result.output
    assert client_credentials(a, client.client_id, secret, audience=ORDERS).json["error"] == "invalid_target"
    refused_within(b, client.client_id, secret, audience=ORDERS)
    assert client_credentials(b, client.client_id, secret, audience=ORDERS).json["error"] == "invalid_target"
    assert client_credentials(b, client.client_id, secret).status_code == 200  # the client itself still works


def test_with_interval_zero_the_other_instance_checks_at_every_request(app, app_config, runner, service):
    client, old = service
    b_app = create_app({**app_config, "CLIENT_CACHE_CHECK_INTERVAL": 0})
    try:
        a, b = app.test_client(), b_app.test_client()
        assert client_credentials(b, client.client_id, old).status_code == 200
        rotated = a.post(f"/api/v2/clients/{client.client_id}/rotate-secret", headers=admin_api(runner, a))
        assert rotated.status_code == 200
        assert client_credentials(b, client.client_id, old).status_code == 401
    finally:
        with b_app.app_context():
            db.session.remove()
            db.engine.dispose()


def test_a_wrong_secret_is_refused_from_the_cache_too(app, service, both):
    client, secret = service
    a, _ = both
    assert client_credentials(a, client.client_id, secret[:-1] + ("A" if secret[-1] != "A" else "B")).status_code == 401
    assert client_credentials(a, client.client_id, "").status_code == 401
    assert client_credentials(a, client.client_id, secret).status_code == 200


@pytest.mark.parametrize("value", ["-1", "nan"])
def test_a_negative_interval_is_a_configuration_error(app_config, monkeypatch, value):
    monkeypatch.setenv("CLIENT_CACHE_CHECK_INTERVAL", value)
    with pytest.raises(SystemExit, match="CLIENT_CACHE_CHECK_INTERVAL must be 0 seconds or more"):
        create_app({k: v for k, v in app_config.items() if k != "CLIENT_CACHE_CHECK_INTERVAL"})


def _versions(app) -> dict:
    from sqlalchemy import select

    from website.models.cache_versions import CacheVersion
    with app.app_context():
        return dict(db.session.execute(select(CacheVersion.name, CacheVersion.version)).all())


def test_people_signing_in_and_changing_their_account_leave_the_caches_alone(app, test_client, auth, user,
                                                                              make_user):
    """Only a person's deletion takes clients with it: a log-in (which updates the person's
    row) must not move the version rows, or every log-in would empty every instance's
    cache and queue on the version row's lock."""
    before = _versions(app)
    auth.login()
    make_user("bob")
    assert _versions(app) == before


def refreshed_id_token(test_client, client, secret, refresh_token) -> tuple[dict, str]:
    response = test_client.post("/oauth/token", auth=(client.client_id, secret), data={
        "grant_type": "refresh_token", "refresh_token": refresh_token})
    assert response.status_code == 200, response.json
    claims = json.loads(base64.urlsafe_b64decode(response.json["id_token"].split(".")[1] + "=="))
    return claims, response.json["refresh_token"]


def test_a_role_defined_through_one_instance_reaches_the_others_id_tokens(app, runner, test_client, auth,
                                                                          other, make_client, user):
    # Each instance remembers that the client defines no roles (no statement for the claim);
    # a role defined through A is in A's next id_token at once and in B's within the interval.
    client, secret = make_client(scope="openid profile offline_access")
    auth.login()
    refresh_token = get_user_token(test_client, client, secret, scope="openid profile offline_access")[
        "refresh_token"]
    b = other.test_client()
    for instance in (test_client, b):
        claims, refresh_token = refreshed_id_token(instance, client, secret, refresh_token)
        assert "roles" not in claims
    for args in (["create-role", client.client_id, "editor"],
                 ["assign-role", client.client_id, "editor", "--user", user.username]):
        result = runner.invoke(args=args)
        assert result.exit_code == 0, result.output
    claims, refresh_token = refreshed_id_token(test_client, client, secret, refresh_token)
    assert claims["roles"] == ["editor"]
    claims, started = {}, time.monotonic()
    while "roles" not in claims and time.monotonic() - started < INTERVAL + 3:
        claims, refresh_token = refreshed_id_token(b, client, secret, refresh_token)
        time.sleep(0.05)
    assert claims.get("roles") == ["editor"]
