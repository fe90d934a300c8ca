"""The admin API (/api/v2) over real HTTP: tokens by the client credentials grant for the
audience ISSUER/api/v2/, scopes enforced, Auth0-shaped answers, paging, concurrent edits
refused with ETags, and an OpenAPI document that validates and lists exactly the routes."""

import json

import jsonschema
import pytest
import requests
from openapi_spec_validator import validate

from support.factories import PASSWORD
from support.flows import bearer
from support.oidc import Browser
from website.oauth2.management import MANAGEMENT_SCOPES

AUDIENCE = "http://127.0.0.1/api/v2/"  # OAUTH2_ISSUER of the tests + /api/v2/
ALL = list(MANAGEMENT_SCOPES)


def admin_client(runner, *scopes):
    args = ["create-admin-api-client", "--name", "Provisioning", "--json"]
    for scope in scopes:
        args += ["--scope", scope]
    result = runner.invoke(args=args)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def token_for(base, credentials, scope=None):
    data = {"grant_type": "client_credentials", "audience": AUDIENCE}
    if scope:
        data["scope"] = scope
    response = requests.post(f"{base}/oauth/token", data=data,
                             auth=(credentials["client_id"], credentials["client_secret"]), timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


class Api:
    """A real HTTP client of the admin API with a bearer token."""

    def __init__(self, base, token):
        self.base, self.session = base, requests.Session()
        self.session.headers.update(bearer(token))

    def __getattr__(self, method):
        def call(path, **kwargs):
            return self.session.request(method.upper(), f"{self.base}/api/v2{path}", timeout=10, **kwargs)
        return call


@pytest.fixture
def api(live_server, runner):
    return Api(live_server, token_for(live_server, admin_client(runner, *ALL)))


def test_without_a_token_the_api_answers_401(live_server):
    response = requests.get(f"{live_server}/api/v2/users", timeout=10)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_tokens_of_other_audiences_are_refused(live_server, runner, make_client, user):
    client, secret = make_client(grant_types=["client_credentials"], redirect_uris=[], scope="profile")
    token = requests.post(f"{live_server}/oauth/token", data={"grant_type": "client_credentials"},
                          auth=(client.client_id, secret), timeout=10).json()["access_token"]
    assert Api(live_server, token).get("/users").status_code == 401


def test_scopes_are_enforced(live_server, runner, make_user):
    make_user("alice")
    reader = Api(live_server, token_for(live_server, admin_client(runner, "read:users")))
    assert reader.get("/users").status_code == 200
    refused = reader.post("/users", json={"username": "mallory", "password": PASSWORD})
    assert refused.status_code == 403
    assert refused.json()["error"] == "insufficient_scope"
    assert 'error="insufficient_scope"' in refused.headers["WWW-Authenticate"]
    # A client asking for a scope it was not given does not get it.
    credentials = admin_client(runner, "read:clients")
    response = requests.post(f"{live_server}/oauth/token", data={
        "grant_type": "client_credentials", "audience": AUDIENCE, "scope": "delete:users read:clients"},
        auth=(credentials["client_id"], credentials["client_secret"]), timeout=10)
    assert response.status_code == 200
    assert response.json()["scope"] == "read:clients"
    alice = reader.get("/users").json()[0]
    narrowed = Api(live_server, response.json()["access_token"])
    assert narrowed.delete(f"/users/{alice['user_id']}").status_code == 403


def test_a_revoked_token_stops_at_once(live_server, runner):
    credentials = admin_client(runner, "read:users")
    token = token_for(live_server, credentials)
    assert Api(live_server, token).get("/users").status_code == 200
    requests.post(f"{live_server}/oauth/revoke", data={"token": token},
                  auth=(credentials["client_id"], credentials["client_secret"]), timeout=10)
    assert Api(live_server, token).get("/users").status_code == 401


def test_users_create_read_update_delete(api, live_server):
    created = api.post("/users", json={"username": "carol", "email": "carol@example.com", "password": PASSWORD,
                                       "name": "Carol", "connection": "Username-Password-Authentication"})
    assert created.status_code == 201, created.text
    carol = created.json()
    assert carol["username"] == "carol" and carol["email_verified"] is False and carol["blocked"] is False
    assert api.get(f"/users/{carol['user_id']}").json() == carol
    assert [u["username"] for u in api.get("/users-by-email", params={"email": "CAROL@example.com"}).json()] == ["carol"]

    changed = api.patch(f"/users/{carol['user_id']}", json={"name": "Carol Danvers", "email_verified": True})
    assert changed.status_code == 200
    assert changed.json()["name"] == "Carol Danvers" and changed.json()["email_verified"] is True

    assert api.delete(f"/users/{carol['user_id']}").status_code == 204
    missing = api.get(f"/users/{carol['user_id']}")
    assert missing.status_code == 404
    assert missing.json() == {"statusCode": 404, "error": "Not Found", "message": "The user does not exist.",
                              "errorCode": "inexistent_user"}


def test_a_blocked_user_cannot_sign_in_and_is_unblocked_again(api, live_server):
    carol = api.post("/users", json={"username": "carol", "password": PASSWORD}).json()
    assert api.patch(f"/users/{carol['user_id']}", json={"blocked": True}).json()["blocked"] is True
    browser = Browser(live_server)
    with pytest.raises(AssertionError):
        browser.login("carol")
    assert api.patch(f"/users/{carol['user_id']}", json={"blocked": False}).json()["blocked"] is False
    Browser(live_server).login("carol")


def test_a_concurrent_edit_is_refused(api):
    carol = api.post("/users", json={"username": "carol", "password": PASSWORD})
    user_id, etag = carol.json()["user_id"], carol.headers["ETag"]
    first = api.patch(f"/users/{user_id}", json={"name": "First"}, headers={"If-Match": etag})
    assert first.status_code == 200
    second = api.patch(f"/users/{user_id}", json={"name": "Second"}, headers={"If-Match": etag})
    assert second.status_code == 412
    assert second.json()["errorCode"] == "precondition_failed"
    assert api.get(f"/users/{user_id}").json()["name"] == "First"
    assert api.delete(f"/users/{user_id}", headers={"If-Match": etag}).status_code == 412
    assert api.patch(f"/users/{user_id}", json={"name": "Third"},
                     headers={"If-Match": first.headers["ETag"]}).status_code == 200


def test_paging_and_filtering(api, make_user):
    for name in ("ann", "ben", "cat", "dan", "eve"):
        make_user(name, email=f"{name}@example.com")
    first = api.get("/users", params={"per_page": 2, "page": 0, "include_totals": "true"}).json()
    assert first["total"] == 5 and first["start"] == 0 and first["limit"] == 2 and first["length"] == 2
    assert [u["username"] for u in first["users"]] == ["eve", "dan"]
    assert [u["username"] for u in api.get("/users", params={"per_page": 2, "page": 2}).json()] == ["ann"]
    assert [u["username"] for u in api.get("/users", params={"q": "ben@"}).json()] == ["ben"]
    for params in ({"per_page": 0}, {"per_page": 101}, {"page": -1}, {"page": "x"}):
        response = api.get("/users", params=params)
        assert response.status_code == 400, params
        assert response.json()["errorCode"] == "invalid_query_string"


@pytest.mark.parametrize("body, status, message", [
    ({"username": "carol"}, 400, "'password' is required."),
    ({"password": PASSWORD}, 400, "'username' is required."),
    ({"username": "carol", "password": "short"}, 400, "at least 8 characters"),
    ({"username": "carol", "password": PASSWORD, "email": "nope"}, 400, "not an email address"),
    ({"username": "carol", "password": PASSWORD, "role": "admin"}, 400, "Unknown field 'role'"),
    ({"username": "al ice", "password": PASSWORD}, 400, "'username':"),
    ({"username": "alice", "password": PASSWORD}, 409, "The user already exists."),
    ({"username": 5, "password": PASSWORD}, 400, "must be a string"),
    ({"username": "carol", "password": PASSWORD, "email_verified": "yes"}, 400, "must be true or false"),
])
def test_bad_users_are_refused_with_a_message(api, make_user, body, status, message):
    make_user("alice")
    response = api.post("/users", json=body)
    assert response.status_code == status, response.text
    assert message in response.json()["message"]
    assert [u["username"] for u in api.get("/users").json()] == ["alice"]


def test_bodies_that_are_not_json_objects_are_refused(api):
    for kwargs in ({"data": "username=carol"}, {"json": ["carol"]},
                   {"data": b"{not json", "headers": {"Content-Type": "application/json"}}):
        response = api.post("/users", **kwargs)
        assert response.status_code in (400, 415), response.text
        assert response.headers["Content-Type"].startswith("application/json")


def test_deleting_a_user_who_owns_clients_asks_what_happens_to_them(api, make_user, make_client):
    owner = make_user("owner")
    heir = make_user("heir")
    client, _ = make_client(owner=owner)
    refused = api.delete(f"/users/{owner.sub}")
    assert refused.status_code == 409
    assert "owns 1 client(s)" in refused.json()["message"]
    assert api.delete(f"/users/{owner.sub}", params={"transfer_clients_to": heir.sub}).status_code == 204
    assert api.get(f"/clients/{client.client_id}").json()["owner"] == heir.sub
    assert api.delete(f"/users/{heir.sub}", params={"owned_clients": "delete"}).status_code == 204
    assert api.get(f"/clients/{client.client_id}").status_code == 404


def test_clients_roles_and_groups(api, live_server, make_user):
    alice = make_user("alice")
    created = api.post("/clients", json={"name": "Team Wiki", "callbacks": ["https://wiki.example.com/cb"],
                                         "grant_types": ["authorization_code", "refresh_token"],
                                         "scope": "openid profile"})
    assert created.status_code == 201, created.text
    wiki = created.json()
    assert wiki["client_secret"] and wiki["callbacks"] == ["https://wiki.example.com/cb"]
    assert "client_secret" not in api.get(f"/clients/{wiki['client_id']}").json()
    rotated = api.post(f"/clients/{wiki['client_id']}/rotate-secret").json()
    assert rotated["client_secret"] != wiki["client_secret"]

    bad = api.patch(f"/clients/{wiki['client_id']}", json={"callbacks": ["http://wiki.example.com/cb"]})
    assert bad.status_code == 400 and bad.json()["message"].startswith("callbacks:")

    group = api.post("/groups", json={"name": "editors", "description": "Write the wiki"}).json()
    assert api.post(f"/groups/{group['id']}/members", json={"members": [alice.sub]}).status_code == 204
    assert api.get(f"/groups/{group['id']}").json()["members"] == [alice.sub]
    assert api.post("/groups", json={"name": "editors"}).status_code == 409
    role = api.post(f"/clients/{wiki['client_id']}/roles", json={"name": "editor"}).json()
    assert api.post(f"/clients/{wiki['client_id']}/roles/{role['id']}/groups",
                    json={"groups": [group["id"]]}).status_code == 204
    assert api.post(f"/users/{alice.sub}/roles", json={"roles": [role["id"]]}).status_code == 204
    assert [r["name"] for r in api.get(f"/users/{alice.sub}/roles").json()] == ["editor"]
    assert [g["name"] for g in api.get(f"/users/{alice.sub}/groups").json()] == ["editors"]
    limited = api.patch(f"/clients/{wiki['client_id']}", json={"allowed_groups": ["editors"]})
    assert limited.json()["allowed_groups"] == ["editors"]
    assert api.patch(f"/clients/{wiki['client_id']}", json={"allowed_groups": ["nobody"]}).status_code == 404
    assert api.delete(f"/clients/{wiki['client_id']}/roles/{role['id']}").status_code == 204
    assert api.get(f"/users/{alice.sub}/roles").json() == []
    # The wiki's only group: deleting it would open the wiki to everyone.
    in_use = api.delete(f"/groups/{group['id']}")
    assert in_use.status_code == 409 and in_use.json()["errorCode"] == "group_in_use", in_use.text
    assert "only group allowed to use Team Wiki" in in_use.json()["message"]
    assert api.patch(f"/clients/{wiki['client_id']}", json={"allowed_groups": []}).status_code == 200
    assert api.delete(f"/groups/{group['id']}").status_code == 204
    assert api.delete(f"/clients/{wiki['client_id']}").status_code == 204
    assert api.get(f"/clients/{wiki['client_id']}").status_code == 404


def test_ending_a_persons_sessions(api, live_server, make_user):
    alice = make_user("alice")
    browser = Browser(live_server)
    browser.login("alice")
    assert browser.session.get(f"{live_server}/account/", allow_redirects=False).status_code == 200
    assert api.delete(f"/users/{alice.sub}/sessions").status_code == 204
    assert browser.session.get(f"{live_server}/account/", allow_redirects=False).status_code == 302


def test_a_persons_sessions_are_listed_read_and_ended_one_by_one(api, live_server, make_user, make_client):
    alice = make_user("alice")
    phone, laptop = Browser(live_server), Browser(live_server)
    phone.session.headers["User-Agent"] = "Mozilla/5.0 (iPhone) Version/17 Safari/605"
    phone.login("alice")
    laptop.login("alice")
    listed = api.get(f"/users/{alice.sub}/sessions")
    assert listed.status_code == 200, listed.text
    sessions = listed.json()["sessions"]
    assert len(sessions) == 2 and listed.json()["next"] is None
    assert {s["user_id"] for s in sessions} == {alice.sub}
    assert "Mozilla/5.0 (iPhone) Version/17 Safari/605" in {s["device"]["initial_user_agent"] for s in sessions}
    assert sessions[0]["authentication"]["methods"][0]["name"] == "pwd" and sessions[0]["expires_at"] is None
    first = api.get(f"/users/{alice.sub}/sessions", params={"take": 1})
    assert len(first.json()["sessions"]) == 1 and first.json()["next"] == "1"
    second = api.get(f"/users/{alice.sub}/sessions", params={"take": 1, "from": first.json()["next"]}).json()
    assert second["next"] is None and second["sessions"][0]["id"] != first.json()["sessions"][0]["id"]
    for params in ({"take": 0}, {"take": 101}, {"from": "x"}, {"take": "¹"}):
        response = api.get(f"/users/{alice.sub}/sessions", params=params)
        assert response.status_code == 400 and response.json()["errorCode"] == "invalid_query_string", params

    phone_session = next(s for s in sessions if "iPhone" in (s["device"]["initial_user_agent"] or ""))
    read = api.get(f"/sessions/{phone_session['id']}")
    assert read.json() == phone_session
    assert api.delete(f"/sessions/{phone_session['id']}", headers={"If-Match": '"other"'}).status_code == 412
    assert api.delete(f"/sessions/{phone_session['id']}", headers={"If-Match": read.headers["ETag"]}).status_code == 204
    assert phone.session.get(f"{live_server}/account/", allow_redirects=False).status_code == 302
    assert laptop.session.get(f"{live_server}/account/", allow_redirects=False).status_code == 200
    gone = api.get(f"/sessions/{phone_session['id']}")
    assert gone.status_code == 404 and gone.json()["errorCode"] == "inexistent_session"
    assert api.delete(f"/sessions/{phone_session['id']}").status_code == 404
    assert len(api.get(f"/users/{alice.sub}/sessions").json()["sessions"]) == 1


def test_sessions_need_their_scopes(live_server, runner, make_user):
    alice = make_user("alice")
    Browser(live_server).login("alice")
    users_only = Api(live_server, token_for(live_server, admin_client(runner, "read:users", "delete:sessions")))
    assert users_only.get(f"/users/{alice.sub}/sessions").status_code == 403
    reader = Api(live_server, token_for(live_server, admin_client(runner, "read:sessions")))
    [session] = reader.get(f"/users/{alice.sub}/sessions").json()["sessions"]
    assert reader.delete(f"/sessions/{session['id']}").status_code == 403
    assert users_only.delete(f"/sessions/{session['id']}").status_code == 204


def test_the_openapi_document_validates_and_lists_exactly_the_routes(app, live_server, api, make_user):
    document = requests.get(f"{live_server}/api/v2/openapi.json", timeout=10).json()
    validate(document)
    declared = {(path, method.upper()) for path, item in document["paths"].items() for method in item}
    routed = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v2/") and rule.rule != "/api/v2/openapi.json":
            path = rule.rule.removeprefix("/api/v2").replace("<", "{").replace(">", "}")
            routed |= {(path, method) for method in rule.methods - {"HEAD", "OPTIONS"}}
    assert declared == routed
    # What the API answers is what the document says.
    alice = make_user("alice")
    Browser(live_server).login("alice")
    schemas = document["components"]["schemas"]
    resolver = {"components": {"schemas": schemas}}
    for path, schema in (("/users", {"type": "array", "items": {"$ref": "#/components/schemas/User"}}),
                         ("/clients", {"type": "array", "items": {"$ref": "#/components/schemas/Client"}}),
                         (f"/users/{alice.sub}/sessions", {"$ref": "#/components/schemas/SessionPage"}),
                         ("/users/nobody", {"$ref": "#/components/schemas/Error"})):
        jsonschema.validate(api.get(path).json(), {**schema, **resolver})
