"""The admin API's OpenAPI 3.1 document, built from the ``@operation`` declarations (so every
route is in it, and only those) and the schemas below."""

from flask import jsonify, url_for

from website.oauth2.management import MANAGEMENT_SCOPES, management_identifier
from website.views.admin_api import OPERATIONS, PER_PAGE_MAX, operation

_STRING = {"type": "string"}
_NULLABLE_STRING = {"type": ["string", "null"]}
_STRINGS = {"type": "array", "items": {"type": "string"}}

SCHEMAS = {
    "User": {"type": "object", "required": ["user_id", "username", "email_verified", "blocked"], "properties": {
        "user_id": {**_STRING, "description": "The OpenID Connect sub."}, "username": _STRING,
        "email": _NULLABLE_STRING, "email_verified": {"type": "boolean"}, "name": _STRING,
        "blocked": {"type": "boolean", "description": "Disabled: no sign-in, tokens refused."},
        "is_admin": {"type": "boolean"}, "created_at": _NULLABLE_STRING, "updated_at": _NULLABLE_STRING}},
    "UserCreate": {"type": "object", "required": ["username", "password"], "additionalProperties": False,
                   "properties": {"username": _STRING, "email": _STRING, "password": {**_STRING, "minLength": 8},
                                  "name": _STRING, "email_verified": {"type": "boolean"},
                                  "blocked": {"type": "boolean"},
                                  "connection": {**_STRING, "description": "Accepted and ignored (Auth0)."}}},
    "UserUpdate": {"type": "object", "additionalProperties": False, "properties": {
        "username": _STRING, "email": _NULLABLE_STRING, "password": {**_STRING, "minLength": 8},
        "name": _NULLABLE_STRING, "email_verified": {"type": "boolean"}, "blocked": {"type": "boolean"},
        "is_admin": {"type": "boolean"}}},
    "Group": {"type": "object", "required": ["id", "name"], "properties": {
        "id": _STRING, "name": _STRING, "description": _STRING,
        "members": {**_STRINGS, "description": "user_ids"}, "created_at": _NULLABLE_STRING}},
    "GroupCreate": {"type": "object", "required": ["name"], "additionalProperties": False,
                    "properties": {"name": _STRING, "description": _STRING}},
    "GroupUpdate": {"type": "object", "additionalProperties": False,
                    "properties": {"name": _STRING, "description": _STRING}},
    "MemberIds": {"type": "object", "required": ["members"], "properties": {"members": _STRINGS}},
    "GroupIds": {"type": "object", "required": ["groups"], "properties": {"groups": _STRINGS}},
    "Role": {"type": "object", "required": ["id", "name", "client_id"], "properties": {
        "id": _STRING, "name": _STRING, "description": _STRING, "client_id": _STRING}},
    "RoleCreate": {"type": "object", "required": ["name"], "additionalProperties": False,
                   "properties": {"name": _STRING, "description": _STRING}},
    "RoleIds": {"type": "object", "required": ["roles"], "properties": {"roles": _STRINGS}},
    "Client": {"type": "object", "required": ["client_id", "name", "grant_types"], "properties": {
        "client_id": _STRING, "name": _STRING, "callbacks": _STRINGS, "allowed_logout_urls": _STRINGS,
        "web_origins": _STRINGS, "grant_types": _STRINGS, "response_types": _STRINGS, "scope": _STRING,
        "token_endpoint_auth_method": _STRING, "logo_uri": _NULLABLE_STRING, "client_uri": _NULLABLE_STRING,
        "owner": {**_NULLABLE_STRING, "description": "The owner's user_id."}, "allowed_groups": _STRINGS,
        "created_at": {"type": "integer"}}},
    "ClientWithSecret": {"allOf": [{"$ref": "#/components/schemas/Client"}, {
        "type": "object", "properties": {"client_secret": _STRING}}]},
    "ClientCreate": {"type": "object", "required": ["name"], "additionalProperties": False, "properties": {
        "name": _STRING, "callbacks": _STRINGS, "allowed_logout_urls": _STRINGS, "web_origins": _STRINGS,
        "grant_types": _STRINGS, "response_types": _STRINGS, "scope": _STRING,
        "token_endpoint_auth_method": _STRING, "logo_uri": _STRING, "client_uri": _STRING,
        "owner": _NULLABLE_STRING, "allowed_groups": _STRINGS}},
    "Session": {"type": "object", "required": ["id", "user_id", "clients", "authentication"], "properties": {
        "id": {**_STRING, "description": "The OpenID Connect sid."}, "user_id": _STRING,
        "created_at": _NULLABLE_STRING, "updated_at": _NULLABLE_STRING, "authenticated_at": _NULLABLE_STRING,
        "last_interacted_at": _NULLABLE_STRING, "idle_expires_at": _NULLABLE_STRING,
        "expires_at": {**_NULLABLE_STRING, "description": "Always null: sessions end only when unused."},
        "device": {"type": "object", "properties": {"initial_user_agent": _NULLABLE_STRING,
                                                     "initial_ip": _NULLABLE_STRING}},
        "clients": {"type": "array", "items": {"type": "object", "required": ["client_id"],
                                               "properties": {"client_id": _STRING}}},
        "authentication": {"type": "object", "properties": {"methods": {"type": "array", "items": {
            "type": "object", "required": ["name"], "properties": {"name": {
                **_STRING, "description": "An RFC 8176 amr value."}, "timestamp": _NULLABLE_STRING}}}}}}},
    "SessionPage": {"type": "object", "required": ["sessions", "next"], "properties": {
        "sessions": {"type": "array", "items": {"$ref": "#/components/schemas/Session"}},
        "next": {**_NULLABLE_STRING, "description": "Pass as ?from= for the next page; null on the last."}}},
    "Error": {"type": "object", "required": ["statusCode", "error", "message", "errorCode"], "properties": {
        "statusCode": {"type": "integer"}, "error": _STRING, "message": _STRING, "errorCode": _STRING}},
}
SCHEMAS["ClientUpdate"] = {**SCHEMAS["ClientCreate"], "required": []}

_QUERY = {
    "q": {"description": "Text in the username or email.", "schema": _STRING},
    "email": {"description": "The exact email address (any case).", "schema": _STRING, "required": True},
    "page": {"description": "The page, from 0.", "schema": {"type": "integer", "minimum": 0}},
    "per_page": {"description": "Items per page.", "schema": {"type": "integer", "minimum": 1,
                                                               "maximum": PER_PAGE_MAX}},
    "include_totals": {"description": "Answer {start, limit, length, total, <items>} instead of a list.",
                       "schema": {"type": "boolean"}},
    "from": {"description": "The next of the page before.", "schema": _STRING},
    "take": {"description": "Sessions per page.", "schema": {"type": "integer", "minimum": 1, "maximum": 100}},
    "owned_clients": {"description": "delete: delete the clients the person owns.",
                      "schema": {"enum": ["delete"]}},
    "transfer_clients_to": {"description": "Give the person's clients to this user_id.", "schema": _STRING},
}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _openapi_path(rule: str) -> tuple[str, list[str]]:
    """/users/<user_id> -> /users/{user_id} and its path parameters."""
    parts, names = [], []
    for part in rule.split("/"):
        if part.startswith("<") and part.endswith(">"):
            name = part[1:-1].split(":")[-1]
            names.append(name)
            part = "{" + name + "}"
        parts.append(part)
    return "/".join(parts), names


def _operation_object(op) -> dict:
    path, names = _openapi_path(op.rule)
    item = {"operationId": op.endpoint, "summary": op.summary,
            "parameters": [{"name": name, "in": "path", "required": True, "schema": _STRING} for name in names]
            + [{"name": name, "in": "query", **_QUERY[name]} for name in op.query]}
    if op.scope:
        item["security"] = [{"bearer": [op.scope]}]
    if op.request:
        item["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(op.request)}}}
    if op.status == 204:
        success = {"description": "Done."}
    elif op.response:
        schema = {"type": "array", "items": _ref(op.response)} if op.list_response else _ref(op.response)
        success = {"description": "OK.", "content": {"application/json": {"schema": schema}}}
    else:
        success = {"description": "OK."}
    error = {"content": {"application/json": {"schema": _ref("Error")}}}
    item["responses"] = {str(op.status): success, "400": {"description": "Bad input.", **error},
                         "401": {"description": "No valid token (RFC 6750)."},
                         "403": {"description": "The token lacks the scope."}}
    if names:
        item["responses"]["404"] = {"description": "Not found.", **error}
    if op.method in ("PATCH", "DELETE"):
        item["parameters"].append({"name": "If-Match", "in": "header", "required": False, "schema": _STRING,
                                   "description": "The ETag you read: a concurrent change answers 412."})
        item["responses"]["412"] = {"description": "Changed since you read it.", **error}
    return path, item


def document() -> dict:
    paths: dict = {}
    for op in OPERATIONS:
        if op.scope is None:
            continue  # the document itself
        path, item = _operation_object(op)
        paths.setdefault(path, {})[op.method.lower()] = item
    return {
        "openapi": "3.1.0",
        "info": {"title": "Admin API", "version": "2",
                 "description": "People, groups, clients and their roles, and sessions, in the shapes of"
                                " Auth0's Management API v2 where they fit. Get a token with the client"
                                " credentials grant and audience " + management_identifier() + "."},
        "servers": [{"url": management_identifier().rstrip("/")}],
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearer": {"type": "oauth2", "flows": {"clientCredentials": {
                "tokenUrl": url_for("oauth.issue_token", _external=True), "scopes": MANAGEMENT_SCOPES}}}},
        },
    }


@operation("/openapi.json", "GET", None, "This document.")
def openapi_document():
    return jsonify(document())
