"""HTTP plumbing below every other layer: the protocol-endpoint registry, the input
guard, security headers, error responses and operations. It imports nothing of the
layers above it."""

from werkzeug.exceptions import HTTPException

from website.http import endpoints, front, ops
from website.http.cors import add_cors_headers, answer_preflight
from website.http.errors import (
    forbidden_description_response,
    http_error_response,
    prefer_json,
    register_error_pages,
)
from website.http.guard import JSONProvider, guard_protocol_request, refuse_nul
from website.http.headers import CONTENT_SECURITY_POLICY, SessionInterface, set_security_headers


def init_app(app, csrf) -> None:
    """Install the registry, the error pages, operations, the headers, the protocol input
    checks and the cookie rules (after every blueprint is registered)."""
    endpoints.init_app(app, csrf)
    register_error_pages(app)
    front.init_app(app)  # inside the proxy middleware, which ops installs
    ops.init_app(app)  # /healthz, request log, proxies, 503 while the database is down
    app.config.setdefault("CONTENT_SECURITY_POLICY", CONTENT_SECURITY_POLICY)
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    # Flask's own default is None, so setdefault would never apply: set it unless configured.
    app.config["SESSION_COOKIE_SAMESITE"] = app.config.get("SESSION_COOKIE_SAMESITE") or "Lax"
    app.session_interface = SessionInterface()
    app.json = JSONProvider(app)
    app.before_request(answer_preflight)  # a CORS preflight has nothing for the guard to check
    app.before_request(refuse_nul)
    app.before_request(guard_protocol_request)
    app.after_request(set_security_headers)
    app.after_request(add_cors_headers)
    app.register_error_handler(HTTPException, http_error_response)
    app.register_error_handler(ValueError, forbidden_description_response)
    # After the error pages: keep them for people, answer JSON on protocol endpoints.
    for code in (404, 405, 500):
        prefer_json(app, code)
