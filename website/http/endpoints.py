"""The registry of protocol endpoints: one decorator declares how an endpoint takes input,
how it answers errors, whether it is exempt from CSRF and what discovery calls it.

    @bp.route("/oauth/token", methods=["POST"])
    @protocol_endpoint(FORM, JSON, client_auth=True, advertise="token_endpoint", cors="client")
    def issue_token(): ...

The input guard (``guard.py``), the error handlers (``errors.py``), the headers
(``headers.py``), CORS (``cors.py``), CSRF and the discovery documents all read this one declaration.
"""

from collections.abc import Callable
from dataclasses import dataclass

from flask import current_app, has_request_context, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"


@dataclass(frozen=True)
class ProtocolEndpoint:
    """How a protocol endpoint takes its input and answers errors."""

    #: Body media types accepted on POST; () for endpoints without a body.
    content_types: tuple[str, ...] = ()
    #: The endpoint authenticates clients (HTTP Basic is checked for well-formedness).
    client_auth: bool = False
    #: The error code for a body that is not what the endpoint takes (RFC 7591 has its own).
    body_error: str = "invalid_request"
    #: Errors are JSON (RFC 6749 §5.2 / RFC 6750); False for endpoints a browser visits,
    #: whose errors are pages, never redirects (the redirect URI is not yet trusted).
    json: bool = True
    #: Called by clients with their own credentials, not a browser session: no CSRF token.
    csrf_exempt: bool = True
    #: The name discovery lists the endpoint under (e.g. ``token_endpoint``).
    advertise: str | None = None
    #: CORS for browser apps (``cors.py``): "any" origin, the calling "client"'s origins, or None.
    cors: str | None = None
    #: The boolean setting that turns the endpoint on; while it is off the endpoint answers
    #: 404 and discovery does not list it.
    setting: str | None = None
    #: The same bytes for every caller (discovery, JWKS): answered by the front (``front.py``)
    #: from Flask's last answer, without a request context.
    document: bool = False
    #: A bearer resource's usual answer, given below Flask by the front (``front.py``): called
    #: with a plain GET's bearer token in an app context, it returns the JSON body the view
    #: would answer that token with, or None to let Flask answer (every error, anything else).
    bearer_answer: Callable[[str], bytes | None] | None = None
    #: A client endpoint's usual answer, given below Flask by the front: called with the HTTP
    #: Basic credentials, the parameters of a plain form POST and the caller's address (see
    #: ``front.py``) in an app context, it returns the JSON body the view would answer, or
    #: None to let Flask answer.
    client_answer: Callable[[str, str, dict[str, str], str | None], bytes | None] | None = None


#: View function -> its declaration, filled by the decorator at import time.
_DECLARED: dict[object, ProtocolEndpoint] = {}


def protocol_endpoint(*content_types: str, client_auth: bool = False, body_error: str = "invalid_request",
                      json: bool = True, csrf_exempt: bool | None = None, advertise: str | None = None,
                      cors: str | None = None, setting: str | None = None, document: bool = False,
                      bearer_answer: Callable[[str], bytes | None] | None = None,
                      client_answer: Callable[[str, str, dict[str, str], str | None], bytes | None] | None = None):
    """Declare a view a protocol endpoint (put it below ``@bp.route``)."""
    spec = ProtocolEndpoint(tuple(content_types), client_auth, body_error, json,
                            json if csrf_exempt is None else csrf_exempt, advertise, cors, setting, document,
                            bearer_answer, client_answer)

    def decorate(view):
        _DECLARED[view] = spec
        return view

    return decorate


def init_app(app, csrf) -> None:
    """Index the app's protocol endpoints by endpoint name and exempt those that need it from CSRF.

    Call it after every blueprint is registered.
    """
    registry = {}
    for name, view in app.view_functions.items():
        spec = _DECLARED.get(view)
        if spec is not None:
            registry[name] = spec
            if spec.csrf_exempt:
                csrf.exempt(view)
    app.extensions["protocol_endpoints"] = registry


def spec_for(endpoint: str | None) -> ProtocolEndpoint | None:
    """The declaration of the endpoint with this Flask endpoint name, if it is a protocol endpoint."""
    return current_app.extensions["protocol_endpoints"].get(endpoint)


def is_json_endpoint(endpoint: str | None) -> bool:
    """Tell whether the endpoint answers JSON (its errors are JSON too)."""
    spec = current_app.extensions["protocol_endpoints"].get(endpoint)
    return spec is not None and spec.json


def reads_no_session() -> bool:
    """Tell whether this request is for a JSON protocol endpoint: its callers prove who they
    are with their own credentials (client authentication, a bearer token) or nothing (JWKS,
    discovery), never with this site's cookie. The signed-in user is not loaded for it (no
    query, no session read), so its answer never varies on the cookie."""
    spec = current_app.extensions["protocol_endpoints"].get(request.endpoint)
    return spec is not None and spec.json


def advertised_endpoints() -> dict[str, str]:
    """Discovery metadata name -> Flask endpoint name, for every advertised endpoint."""
    return {spec.advertise: name for name, spec in current_app.extensions["protocol_endpoints"].items()
            if spec.advertise and is_enabled(spec)}


def is_enabled(spec: ProtocolEndpoint) -> bool:
    """Tell whether the endpoint is on (an endpoint without a setting always is)."""
    return spec.setting is None or bool(current_app.config[spec.setting])


def current_endpoint() -> str | None:
    """The endpoint the request is for, also when routing failed on the method (405)."""
    if request.url_rule is not None:
        return request.url_rule.endpoint
    if isinstance(request.routing_exception, MethodNotAllowed):
        adapter = current_app.url_map.bind_to_environ(request.environ)
        for method in request.routing_exception.valid_methods or ():
            try:
                return adapter.match(method=method)[0]
            except HTTPException:
                continue
    return None


#: Paths that always answer JSON; other paths answer a page unless the client prefers JSON.
JSON_PATH_PREFIXES = ("/oauth/", "/api/", "/.well-known/", "/healthz", "/readyz", "/metrics", "/userinfo", "/jwks")

PAGE_PATHS = ("/oauth/authorize",)


def is_json_path(path: str) -> bool:
    """Tell whether a path is among those that always answer JSON (an API's, say)."""
    return path.startswith(JSON_PATH_PREFIXES) and path not in PAGE_PATHS


def wants_json() -> bool:
    """Tell whether this request is for a JSON protocol endpoint (its errors are JSON), or for
    no route at all under a JSON path (a mistyped admin API URL is a JSON 404, not a page)."""
    if not has_request_context():
        return False
    endpoint = current_endpoint()
    return is_json_endpoint(endpoint) or (endpoint is None and is_json_path(request.path))
