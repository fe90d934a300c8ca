"""Every admin API operation in the OpenAPI document, sent bad ids in its path and bad values
in its body and query: each answers a JSON error (4xx), never a 500, on SQLite and PostgreSQL
(which refuses NUL in text and integers past its column types)."""

import json
import re
from urllib.parse import quote

import pytest

from support.factories import PASSWORD
from support.flows import bearer
from support.pages import AuthActions
from website.models import ClientRole, Group, UserSession, db
from website.oauth2.management import MANAGEMENT_SCOPES
from website.views.admin_api import OPERATIONS
from website.views.admin_api.openapi import SCHEMAS, _openapi_path

AUDIENCE = "http://127.0.0.1/api/v2/"

#: Path ids no resource has: a digit int() refuses, integers past every column type, NUL,
#: control and non-ASCII characters, an encoded slash, a very long one, an empty-ish one.
BAD_IDS = ["¹", "٣", "9" * 40, "9" * 11, str(2**31), str(2**63), "-1", "0", "a\x00b", "\x00", "\x7f", "%", "a/b", " ", "é" * 300,
           "x" * 5000, "1e9", "null"]

#: Values that fit no field: NUL, huge numbers, wrong types, nested structures, very long text.
BAD_VALUES = ["\x00", "a\x00", "x" * 100_000, 10**40, -(10**40), 1.5e308, True, [], {}, {"$gt": ""}, ["\x00"],
              ["¹"], [10**40], [None], [["nested"]], ["x" * 100_000]]

#: Query values that fit no parameter.
BAD_QUERY = ["¹", "9" * 40, "-1", "\x00", "x" * 5000, "true\x00", "1.5"]

#: The operations the document lists, one test each.
DOCUMENTED = [op for op in OPERATIONS if op.scope is not None]


def _id(op):
    return f"{op.method} {_openapi_path(op.rule)[0]}"


@pytest.fixture
def world(app, test_client, runner, make_user, make_client):
    """A token with every scope and one of each thing the paths name (ids as the API shows them)."""
    result = runner.invoke(args=["create-admin-api-client", "--name", "Fuzz", "--json",
                                 *[arg for scope in MANAGEMENT_SCOPES for arg in ("--scope", scope)]])
    credentials = json.loads(result.output)
    token = test_client.post("/oauth/token", data={"grant_type": "client_credentials", "audience": AUDIENCE},
                             auth=(credentials["client_id"], credentials["client_secret"])).get_json()["access_token"]
    alice = make_user("alice")
    client, _ = make_client(client_name="Team Wiki")
    browser = app.test_client()
    AuthActions(browser).login("alice")
    with app.app_context():
        role = ClientRole(client_id=client.client_id, name="editor")
        group = Group(name="editors")
        db.session.add_all([role, group])
        db.session.commit()
        sid = db.session.scalar(db.select(UserSession.id))
        ids = {"user_id": alice.sub, "client_id": client.client_id, "role_id": str(role.id),
               "group_id": str(group.id), "session_id": sid}
    return {"headers": bearer(token), "ids": ids}


def call(test_client, world, op, ids=None, **kwargs):
    path = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: quote((ids or world["ids"])[m.group(1)], safe=""), op.rule)
    return test_client.open("/api/v2" + path, method=op.method, headers=world["headers"], **kwargs)


def assert_json_error(response, what):
    assert response.status_code < 500, (what, response.status_code, response.get_data(as_text=True)[:300])
    if response.status_code >= 400:
        assert response.mimetype == "application/json", (what, response.status_code, response.mimetype)
        body = response.get_json()
        assert body.get("message") or body.get("error_description") or body.get("error"), (what, body)


def _body_for(op) -> dict:
    """A body the operation could take, so only the one bad field is wrong."""
    return {"RoleIds": {"roles": ["1"]}, "MemberIds": {"members": ["nobody"]}, "GroupIds": {"groups": ["1"]},
            "UserCreate": {"username": "carol", "password": PASSWORD}, "GroupCreate": {"name": "staff"},
            "RoleCreate": {"name": "viewer"}, "ClientCreate": {"name": "Fuzz app"}}.get(op.request, {})


@pytest.mark.parametrize("op", [op for op in DOCUMENTED if "<" in op.rule], ids=_id)
def test_bad_path_ids_are_json_errors(test_client, world, op):
    for name in re.findall(r"<(?:\w+:)?(\w+)>", op.rule):
        for bad in BAD_IDS:
            kwargs = {"json": _body_for(op)} if op.request else {}
            response = call(test_client, world, op, {**world["ids"], name: bad}, **kwargs)
            assert_json_error(response, (name, bad))
            assert response.status_code in (400, 404, 405), (name, bad, response.status_code)


@pytest.mark.parametrize("op", [op for op in DOCUMENTED if op.request], ids=_id)
def test_bad_bodies_are_json_errors(app, test_client, world, op):
    schema = SCHEMAS[op.request]
    fields = list(schema.get("properties", {})) or list(SCHEMAS["Client"]["properties"])
    for field in fields:
        for bad in BAD_VALUES:
            response = call(test_client, world, op, json={**_body_for(op), field: bad})
            assert_json_error(response, (field, bad if not isinstance(bad, str) else bad[:20]))
    for raw in (b"\x00", b"[]", b'"x"', b"1e999999", b'{"a": ' * 5000, "{\"name\": \"\\u0000\"}".encode(),
                b"\xff\xfe"):
        response = call(test_client, world, op, data=raw, content_type="application/json")
        assert_json_error(response, raw[:20])


@pytest.mark.parametrize("op", [op for op in DOCUMENTED if op.query], ids=_id)
def test_bad_query_values_are_json_errors(test_client, world, op):
    for name in op.query:
        for bad in BAD_QUERY:
            response = call(test_client, world, op, query_string={name: bad})
            assert_json_error(response, (name, bad[:20]))
