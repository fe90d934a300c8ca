"""Secure defaults for every response and every protocol request.

- One ``after_request`` hook sets the security headers on every response (CSP, framing,
  referrer, nosniff, HSTS over https) and ``Cache-Control: no-store`` on protocol responses.
- One ``before_request`` hook checks the raw input of protocol endpoints before Authlib sees
  it: content type, repeated parameters (RFC 6749 §3.1), parameter sizes, UTF-8, Basic auth
  and JSON syntax. A client error is a 400 in the shape the spec gives, never a 500.
- Errors on JSON endpoints are JSON (RFC 6749 §5.2 shape), without a traceback.
- The session cookie is Secure whenever the site is served over https.

A new protocol endpoint gets all of this by adding one line to ``JSON_ENDPOINTS`` or
``PAGE_ENDPOINTS``.
"""

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

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"


@dataclass(frozen=True)
class ProtocolEndpoint:
    """How a protocol endpoint takes its input."""

    #: Body media types accepted on POST; () for endpoints without a body.
    content_types: tuple[str, ...] = ()
    #: The endpoint authenticates clients (HTTP Basic is checked for well-formedness).
    client_auth: bool = False
    #: The error code for a body that is not what the endpoint takes (RFC 7591 has its own).
    body_error: str = "invalid_request"


#: Endpoints that answer JSON (errors per RFC 6749 §5.2 / RFC 6750), by Flask endpoint name.
JSON_ENDPOINTS = {
    # JSON bodies too: Auth0's SDKs post token requests as JSON.
    "oauth.issue_token": ProtocolEndpoint((FORM, JSON), client_auth=True),
    "oauth.revoke_token": ProtocolEndpoint((FORM,), client_auth=True),
    "introspection.introspect_token": ProtocolEndpoint((FORM,), client_auth=True),
    "registration.register_client": ProtocolEndpoint((JSON,), body_error="invalid_client_metadata"),
    "registration.manage_client": ProtocolEndpoint((JSON,), body_error="invalid_client_metadata"),
    "oauth.userinfo": ProtocolEndpoint((FORM,)),
    "oauth.discovery": ProtocolEndpoint(),
    "oauth.jwks": ProtocolEndpoint(),
    "api.me": ProtocolEndpoint(),
}

#: Protocol endpoints a browser visits: same input checks, but errors are pages, never
#: redirects (the redirect URI is not trusted until it has been validated).
PAGE_ENDPOINTS = {
    "oauth.authorize": ProtocolEndpoint((FORM,)),
    "logout.end_session": ProtocolEndpoint((FORM,)),
    "logout.auth0_logout": ProtocolEndpoint(),
}

#: Parameters whose syntax is ASCII VSCHAR (%x20-7E) per RFC 6749 Appendix A, RFC 7636 §4 and
#: RFC 7009 §2.1. Refusing anything else up front also keeps Authlib from building an error
#: description it must reject (it raises ValueError on characters RFC 6749 §5.2 forbids).
VSCHAR_PARAMETERS = {
    "client_id", "client_secret", "response_type", "scope", "state", "redirect_uri", "grant_type",
    "code", "refresh_token", "code_verifier", "code_challenge", "code_challenge_method", "token",
    "token_type_hint", "response_mode",
}

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' https:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


class ProtocolInputError(Exception):
    """A malformed protocol request: ``error`` is the OAuth error code."""

    def __init__(self, description: str, error: str = "invalid_request", status_code: int = 400):
        super().__init__(description)
        self.description = description
        self.error = error
        self.status_code = status_code

    def get_error_description(self) -> str:
        """The description, as OAuth2Error names it (the error page shows it)."""
        return self.description


class SessionInterface(SecureCookieSessionInterface):
    """The signed-cookie session, with the Secure flag whenever the site is served over https.

    Flask builds a new serializer for every request (a fifth of a discovery request's CPU);
    this one is built once per secret key (and fallbacks), and an empty session that nothing
    changed costs no cookie work at all, as clients of protocol endpoints send no cookie.
    """

    def __init__(self):
        self._serializer = (None, None)

    def get_signing_serializer(self, app):
        keys = (app.secret_key, tuple(app.config["SECRET_KEY_FALLBACKS"] or ()))
        cached_keys, serializer = self._serializer
        if cached_keys != keys:
            serializer = super().get_signing_serializer(app)
            self._serializer = (keys, serializer)
        return serializer

    def save_session(self, app, session, response) -> None:
        if not session and not session.modified:
            # What Flask's save_session does for it, without computing the cookie settings.
            if session.accessed:
                response.vary.add("Cookie")
            return
        super().save_session(app, session, response)

    def get_cookie_secure(self, app) -> bool:
        # An explicit SESSION_COOKIE_SECURE (True or False) wins; None means automatic.
        if app.config["SESSION_COOKIE_SECURE"] is not None:
            return bool(app.config["SESSION_COOKIE_SECURE"])
        issuer = app.config.get("OAUTH2_ISSUER") or ""
        return issuer.startswith("https://") or (has_request_context() and request.is_secure)


def _endpoint_name() -> str | None:
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


def wants_json() -> bool:
    """Tell whether this request is for a JSON protocol endpoint (its errors are JSON)."""
    return has_request_context() and _endpoint_name() in JSON_ENDPOINTS


def json_error(error: str, description: str, status_code: int, headers=None):
    """An RFC 6749 §5.2 error response that no cache keeps."""
    response = jsonify(error=error, error_description=description)
    response.status_code = status_code
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def http_error_response(error: HTTPException):
    """Answer an HTTP error as JSON on protocol endpoints and as a page elsewhere."""
    code = error.code or 500
    if error.response is not None or _is_json(error):
        return error  # already a complete response, such as Authlib's RFC 6750 errors
    if wants_json():
        if code >= 500:
            return json_error("server_error", "The server could not complete the request.", code)
        if isinstance(error, RequestEntityTooLarge):
            return json_error("invalid_request", "The request body is too large.", 400)
        name = "invalid_request" if code != 404 else "not_found"
        return json_error(name, error.description or error.name, code)
    if code >= 500:
        message = "Something went wrong on our side. Please try again in a moment."
    else:
        message = error.description or error.name
    return render_template("error.html", title=error.name, message=message), code


def _is_vschar(value: str) -> bool:
    return all(0x20 <= ord(c) <= 0x7E for c in value)


def _printable(text: str) -> str:
    """Text safe in an error_description (RFC 6749 §5.2 allows %x20-21 / %x23-5B / %x5D-7E)."""
    return "".join(c if 0x20 <= ord(c) <= 0x7E and c not in '"\\' else "?" for c in text)


def _is_json(error: HTTPException) -> bool:
    try:
        headers = dict(error.get_headers())
    except Exception:  # noqa: BLE001 - a broken exception must still get an answer
        return False
    return headers.get("Content-Type", "").startswith("application/json")


def _check_utf8(raw: bytes, where: str) -> None:
    # Plain ASCII without escapes is valid as it stands (nearly every client's request).
    if raw.isascii() and b"%" not in raw:
        return
    # One decode of the whole string answers for every name and value: "&" and "=" are ASCII,
    # which never occurs inside a valid multi-byte sequence, so the whole is valid UTF-8
    # exactly when each part between them is.
    try:
        unquote_to_bytes(raw.replace(b"+", b" ")).decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolInputError(f"The {where} is not valid UTF-8.")


def _check_basic_auth() -> None:
    header = request.headers.get("Authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() != "basic":
        return
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        decoded = None
    if decoded is None or ":" not in decoded:
        raise ProtocolInputError(
            "Malformed HTTP Basic credentials: send base64 of 'client_id:client_secret' in UTF-8.",
            error="invalid_client", status_code=401,
        )


def check_protocol_request(spec: ProtocolEndpoint) -> None:
    """Refuse malformed input before Authlib reads it; raise ProtocolInputError."""
    limit = current_app.config["OAUTH2_MAX_PARAMETER_LENGTH"]
    _check_utf8(request.query_string, "query string")
    has_body = request.method in ("POST", "PUT", "PATCH") and (request.content_length or request.mimetype)
    if has_body:
        if request.mimetype not in spec.content_types:
            accepted = " or ".join(spec.content_types) or "no body"
            raise ProtocolInputError(f"The request body must be {accepted}, not {_printable(request.mimetype) or 'untyped'}.",
                                     error=spec.body_error)
        if request.mimetype == FORM:
            _check_utf8(request.get_data(cache=True), "request body")
        elif request.mimetype == JSON:
            body = request.get_json(silent=True)
            if not isinstance(body, dict):
                raise ProtocolInputError("The request body must be a JSON object.", error=spec.body_error)
    if spec.client_auth:
        _check_basic_auth()
    seen = set()
    for source in (request.args, request.form if has_body and request.mimetype == FORM else {}):
        for key in source:
            values = source.getlist(key)
            if key in seen or len(values) > 1:
                raise ProtocolInputError(f"The parameter '{_printable(key[:40])}' was sent more than once.")
            seen.add(key)
            if len(key) > limit or any(len(value) > limit for value in values):
                raise ProtocolInputError(f"The parameter '{_printable(key[:40])}' is too long (limit {limit} characters).")
            if key in VSCHAR_PARAMETERS and any(not _is_vschar(value) for value in values):
                raise ProtocolInputError(
                    f"The parameter '{key}' may contain only printable ASCII characters (RFC 6749 Appendix A).")


def _guard_protocol_request():
    name = request.endpoint
    spec = JSON_ENDPOINTS.get(name) or PAGE_ENDPOINTS.get(name)
    if spec is None:
        return None
    try:
        check_protocol_request(spec)
    except ProtocolInputError as error:
        if name in JSON_ENDPOINTS:
            headers = {"WWW-Authenticate": 'Basic realm="token"'} if error.status_code == 401 else None
            return json_error(error.error, error.description, error.status_code, headers)
        return render_template("oauth/error.html", error=error), error.status_code
    return None


def _set_security_headers(response):
    headers = response.headers
    # One pass over the response's headers instead of one per setdefault (each lower-cases
    # every header name): this hook ran longer than the discovery view itself.
    present = {name.lower() for name in headers.keys()}  # noqa: SIM118 - iterating Headers gives pairs
    req = request._get_current_object()
    # No URL of ours ever reaches another site as a referrer (authorization requests carry
    # state and PKCE challenges; redirects carry codes). Pages say "same-origin" rather than
    # "no-referrer" because their forms need a same-origin Referer: Flask-WTF's CSRF check
    # over https requires one, and browsers send "Origin: null" under no-referrer.
    is_page = response.mimetype == "text/html" and response.status_code < 300
    defaults = [
        ("Content-Security-Policy", current_app.config["CONTENT_SECURITY_POLICY"]),
        ("X-Frame-Options", "DENY"),
        ("Referrer-Policy", "same-origin" if is_page else "no-referrer"),
        ("X-Content-Type-Options", "nosniff"),
        ("Cross-Origin-Opener-Policy", "same-origin"),
    ]
    if req.is_secure:
        defaults.append(("Strict-Transport-Security", "max-age=31536000"))
    for name, value in defaults:
        if name.lower() not in present:
            headers.add(name, value)
    if _endpoint_name() in JSON_ENDPOINTS:
        if "cache-control" in present:
            headers["Cache-Control"] = headers.get("Cache-Control") or "no-store"
        else:
            headers.add("Cache-Control", "no-store")
        if "no-store" in headers["Cache-Control"] and "pragma" not in present:
            headers.add("Pragma", "no-cache")
    elif req.endpoint != "static" and response.mimetype == "text/html" and "cache-control" not in present:
        # Pages can show secrets (a new client secret) and personal data.
        headers.add("Cache-Control", "no-store")
    return response


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


def _forbidden_description_response(error: ValueError):
    """Authlib refuses to build an error whose description would echo characters RFC 6749 §5.2
    forbids (a quote in a response_type, say): that is the client's malformed request, a 400."""
    if not str(error).startswith("Error description contains forbidden characters"):
        raise error
    problem = ProtocolInputError("The request contains a parameter value with characters that are not allowed.")
    if wants_json():
        return json_error(problem.error, problem.description, 400)
    return render_template("oauth/error.html", error=problem), 400


def _prefer_json(app, code: int) -> None:
    """Keep the page for ``code`` but answer JSON on protocol endpoints."""
    exc_class = {404: NotFound, 405: MethodNotAllowed, 500: InternalServerError}[code]
    page_handler = app.error_handler_spec[None][code].get(exc_class)

    def handler(error):
        if page_handler is None or wants_json():
            return http_error_response(error)
        return page_handler(error)

    app.register_error_handler(code, handler)
