"""HTTP plumbing below every other layer: the protocol-endpoint registry, the input
guard, security headers, error responses and operations."""

import base64
import binascii
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

from flask import current_app, has_request_context, jsonify, render_template, request
from flask.sessions import SecureCookieSessionInterface
from werkzeug.exceptions import (
    HTTPException,
    InternalServerError,
    MethodNotAllowed,
    NotFound,
    RequestEntityTooLarge,
)

from website.http.errors import _forbidden_description_response, _prefer_json, http_error_response
from website.http.guard import _guard_protocol_request
from website.http.headers import CONTENT_SECURITY_POLICY, SessionInterface, _set_security_headers


def init_app(app) -> None:
    """Install the headers, the protocol input checks, the error responses and the cookie rules."""
    app.config.setdefault("CONTENT_SECURITY_POLICY", CONTENT_SECURITY_POLICY)
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    # Flask's own default is None, so setdefault would never apply: set it unless configured.
    app.config["SESSION_COOKIE_SAMESITE"] = app.config.get("SESSION_COOKIE_SAMESITE") or "Lax"
    app.session_interface = SessionInterface()
    app.before_request(_guard_protocol_request)
    app.after_request(_set_security_headers)
    app.register_error_handler(HTTPException, http_error_response)
    app.register_error_handler(ValueError, _forbidden_description_response)
    for code in (404, 405, 500):
        _prefer_json(app, code)
