"""Blueprint: the admin API under /api/v2/ — people, groups, clients and their roles, and
sessions — in the shapes of Auth0's Management API v2 where they fit.

Every operation is declared once with ``@operation``: its route, the scope its token needs,
and what the OpenAPI document (``/api/v2/openapi.json``) says about it, so the document lists
exactly the routes that exist. Tokens come from the client credentials grant for the audience
``{issuer}/api/v2/`` (``flask create-admin-api-client``)."""

import functools
import hashlib
import json
from dataclasses import dataclass, field

from authlib.oauth2 import OAuth2Error
from flask import Blueprint, g, jsonify, make_response, request
from sqlalchemy import func, select, update
from werkzeug.http import HTTP_STATUS_CODES

from website.extensions import db
from website.http.endpoints import JSON, protocol_endpoint
from website.oauth2.management import management_protector

bp = Blueprint("admin_api", __name__, url_prefix="/api/v2")


@dataclass(frozen=True)
class Operation:
    """One route of the admin API, as the OpenAPI document describes it."""

    rule: str
    method: str
    endpoint: str
    scope: str | None
    summary: str
    request: str | None = None  # a schema name in openapi.SCHEMAS
    response: str | None = None
    status: int = 200
    list_response: bool = False
    query: tuple = field(default=())


#: Every operation, in the order declared.
OPERATIONS: list[Operation] = []


class ApiError(Exception):
    """An error answered as Auth0's Management API does: statusCode, error, message, errorCode."""

    def __init__(self, status: int, message: str, code: str):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


def error_response(status: int, message: str, code: str):
    response = jsonify(statusCode=status, error=HTTP_STATUS_CODES.get(status, "Error"), message=message,
                       errorCode=code)
    response.status_code = status
    return response


def operation(rule: str, method: str, scope: str | None, summary: str, **details):
    """Declare an admin API operation: route it, require ``scope``, describe it."""

    def decorate(view):
        endpoint = f"{view.__name__}"

        @functools.wraps(view)
        def guarded(**kwargs):
            if scope is not None:
                try:
                    g.management_token = management_protector.acquire_token(scope)
                except OAuth2Error as error:
                    status, body, headers = management_protector.error_response(error)
                    return make_response(jsonify(body), status, headers)
            try:
                return view(**kwargs)
            except ApiError as error:
                db.session.rollback()
                return error_response(error.status, error.message, error.code)

        bp.add_url_rule(rule, endpoint=endpoint, view_func=protocol_endpoint(JSON)(guarded), methods=[method])
        OPERATIONS.append(Operation(rule, method, endpoint, scope, summary, **details))
        return guarded

    return decorate


def json_body() -> dict:
    """The request's JSON object; ApiError 400 for anything else."""
    data = request.get_json(silent=True) if request.mimetype == JSON else None
    if not isinstance(data, dict):
        raise ApiError(400, "Send a JSON object with Content-Type: application/json.", "invalid_body")
    return data


def only_fields(data: dict, allowed: set[str]) -> None:
    """ApiError 400 naming the first field the operation does not take."""
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ApiError(400, f"Unknown field {unknown[0]!r}; this operation takes: {', '.join(sorted(allowed))}.",
                       "invalid_body")


def string_field(data: dict, name: str, max_length: int, required: bool = False) -> str | None:
    value = data.get(name)
    if value is None:
        if required:
            raise ApiError(400, f"{name!r} is required.", "invalid_body")
        return None
    if not isinstance(value, str) or len(value) > max_length or "\x00" in value:
        raise ApiError(400, f"{name!r} must be a string of at most {max_length} characters.", "invalid_body")
    return value


def bool_field(data: dict, name: str) -> bool | None:
    value = data.get(name)
    if value is not None and not isinstance(value, bool):
        raise ApiError(400, f"{name!r} must be true or false.", "invalid_body")
    return value


def etag_of(representation: dict) -> str:
    """A strong ETag of what a GET answers for the resource."""
    return hashlib.sha256(json.dumps(representation, sort_keys=True, default=str).encode()).hexdigest()[:24]


def with_etag(representation: dict, status: int = 200):
    response = jsonify(representation)
    response.status_code = status
    response.set_etag(etag_of(representation))
    response.headers["Cache-Control"] = "no-store"
    return response


def check_if_match(representation: dict) -> None:
    """ApiError 412 when the request's If-Match names another version than the current one."""
    if request.if_match and not request.if_match.contains(etag_of(representation)) and not request.if_match.star_tag:
        raise ApiError(412, "It changed since you read it: read it again (GET) and retry with the new ETag"
                            " in If-Match.", "precondition_failed")


def lock_row(column, value) -> None:
    """Hold the row's write lock until the commit (PostgreSQL: its row lock; SQLite: the
    database's), so a version check and the change it guards are one step."""
    table = column.class_.__table__
    # Each column set to itself; those with an onupdate default too, or the no-op would change them.
    unchanged = {c.key: c for c in table.columns if c.onupdate is not None} | {column.key: column}
    db.session.execute(update(table).where(table.c[column.key] == value).values(unchanged))


PER_PAGE_DEFAULT, PER_PAGE_MAX = 50, 100


def page_args() -> tuple[int, int, bool]:
    """``page`` (from 0), ``per_page`` (1 to 100) and ``include_totals``, as Auth0 takes them."""
    try:
        page = int(request.args.get("page", 0))
        per_page = int(request.args.get("per_page", PER_PAGE_DEFAULT))
    except ValueError:
        raise ApiError(400, "'page' and 'per_page' must be whole numbers.", "invalid_query_string") from None
    if page < 0 or page > 100_000 or not 1 <= per_page <= PER_PAGE_MAX:
        raise ApiError(400, f"'page' must be 0 or more and 'per_page' 1 to {PER_PAGE_MAX}.",
                       "invalid_query_string")
    totals = request.args.get("include_totals", "false").lower() in ("true", "1")
    return page, per_page, totals


def paged(key: str, statement, represent):
    """One page of ``statement``'s rows: a plain list, or with include_totals Auth0's
    ``{start, limit, length, total, <key>: [...]}``."""
    page, per_page, totals = page_args()
    rows = db.session.scalars(statement.limit(per_page).offset(page * per_page)).all()
    items = [represent(row) for row in rows]
    if not totals:
        return jsonify(items)
    total = db.session.scalar(select(func.count()).select_from(statement.order_by(None).subquery()))
    return jsonify({"start": page * per_page, "limit": per_page, "length": len(items), "total": total, key: items})


def no_content():
    return "", 204


# The operations, one module per resource (imported for their @operation declarations).
from website.views.admin_api import clients, groups, openapi, sessions, users  # noqa: E402,F401
