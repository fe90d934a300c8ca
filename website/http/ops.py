"""Production serving: reverse-proxy headers, secure cookies, /healthz, one log line per
request with a request id, and 503 answers while the database is unreachable."""

import logging
import re
import sys
import time
import uuid
from urllib.parse import quote

from flask import Blueprint, Flask, g, jsonify, make_response, render_template, request
from flask import logging as flask_logging
from sqlalchemy import text
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from werkzeug.middleware.proxy_fix import ProxyFix

from website.extensions import db

bp = Blueprint("ops", __name__)


#: One line per request: ``request_id=... method=... path=... status=... duration_ms=... remote_addr=...``.
access_log = logging.getLogger("website.access")


REQUEST_ID_HEADER = "X-Request-ID"


#: An incoming request id is kept only if it is short and made of safe characters (it is
#: written to the log and echoed in a header, so nothing that could forge a line or header).
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@+=/-]{0,127}")


#: Paths that always answer JSON; other paths answer a page unless the client prefers JSON.
_JSON_PATH_PREFIXES = ("/oauth/", "/api/", "/.well-known/", "/healthz", "/userinfo", "/jwks")


_PAGE_PATHS = ("/oauth/authorize",)


@bp.route("/healthz")
def healthz():
    """Answer 200 when the database answers ``SELECT 1``, 503 otherwise (for load balancers)."""
    try:
        db.session.execute(text("SELECT 1"))
    except SQLAlchemyError:
        db.session.rollback()
        response = jsonify(status="unavailable")
        response.status_code = 503
    else:
        response = jsonify(status="ok")
    response.headers["Cache-Control"] = "no-store"
    return response


def current_request_id() -> str | None:
    """The id of the request being served (also in the log line and the X-Request-ID header)."""
    return g.get("request_id")


def _start_request() -> None:
    incoming = request.headers.get(REQUEST_ID_HEADER, "")
    g.request_id = incoming if _SANE_REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
    g.request_started = time.perf_counter()


#: Paths needing no quoting in the log line (nearly all): skip urllib's quote for them.
_PLAIN_PATH = re.compile(r"[A-Za-z0-9/:@!$&'()*+,;=._~-]*")


def _log_request(response):
    req = request._get_current_object()  # one context lookup instead of one per attribute
    request_id = g.get("request_id") or uuid.uuid4().hex
    response.headers[REQUEST_ID_HEADER] = request_id
    started = g.get("request_started")
    duration_ms = (time.perf_counter() - started) * 1000 if started is not None else 0.0
    if access_log.isEnabledFor(logging.INFO):
        # The path only: query strings carry codes, tokens and state. Quoting keeps the line one line.
        path = req.path
        if not _PLAIN_PATH.fullmatch(path):
            path = quote(path, safe="/:@!$&'()*+,;=-._~")
        access_log.info(
            "request_id=%s method=%s path=%s status=%d duration_ms=%.1f remote_addr=%s",
            request_id, req.method, path, response.status_code, duration_ms, req.remote_addr or "-",
        )
    return response


def _wants_json() -> bool:
    path = request.path
    if path.startswith(_JSON_PATH_PREFIXES) and path not in _PAGE_PATHS:
        return True
    return request.accept_mimetypes.best_match(["application/json", "text/html"]) != "text/html"


def database_unavailable(error):
    """Answer 503 (JSON for protocol endpoints, a page for people) when the database is down."""
    try:
        db.session.rollback()
    except SQLAlchemyError:
        pass
    # One line, no traceback: an outage is an operational event, not a bug.
    logging.getLogger("website").warning(
        "request_id=%s database unavailable (%s); answered 503", g.get("request_id"), type(error).__name__
    )
    if request.endpoint == "ops.healthz":
        response = jsonify(status="unavailable")  # failed before the check itself ran
        response.status_code = 503
    elif _wants_json():
        response = jsonify(error="temporarily_unavailable",
                           error_description="The service is temporarily unavailable; try again shortly.")
        response.status_code = 503
    else:
        response = make_response(render_template(
            "error.html", title="Temporarily unavailable",
            message="The service cannot reach its database right now. Please try again in a moment.",
        ), 503)
    response.headers["Retry-After"] = "5"
    response.headers["Cache-Control"] = "no-store"
    return response


class _ErrorStreamHandler(logging.StreamHandler):
    """Flask's default log handler (same format, same stream: the request's ``wsgi.errors``,
    else stderr), resolving that stream once per line: Flask's resolves it through a context
    proxy on every write and flush."""

    def __init__(self):
        super().__init__(sys.stderr)
        self.setFormatter(flask_logging.default_handler.formatter)
        self.setLevel(flask_logging.default_handler.level)

    def emit(self, record) -> None:
        # Handler.handle holds the handler's lock around emit: no other thread sees this swap.
        self.stream = flask_logging.wsgi_errors_stream._get_current_object()
        super().emit(record)


_error_stream_handler = _ErrorStreamHandler()


def _use_faster_default_handler(app: Flask) -> None:
    """Swap Flask's default handler on the app's logger, when Flask added it, for the same
    output written with less work."""
    logger = app.logger
    if flask_logging.default_handler in logger.handlers:
        logger.removeHandler(flask_logging.default_handler)
        logger.addHandler(_error_stream_handler)


def init_app(app: Flask) -> None:
    """Trust the configured proxies, log requests, and register /healthz."""
    proxies = int(app.config["PROXY_COUNT"] or 0)
    if proxies > 0:
        # Only the headers the README's proxy sets (overwriting whatever the client sent):
        # a trusted header the proxy passes through untouched would be the client's to forge.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies)
    if access_log.level == logging.NOTSET:
        access_log.setLevel(logging.INFO)
    app.logger  # noqa: B018 -- creating it attaches Flask's handler, which the access log propagates to
    _use_faster_default_handler(app)
    # First of all before-request functions, so a failure in any other still has an id.
    app.before_request_funcs.setdefault(None, []).insert(0, _start_request)
    app.after_request(_log_request)
    # Lost or refused connections (OperationalError, InterfaceError) and an exhausted pool
    # mean "try again later", not a bug: 503 rather than 500.
    for error_class in (OperationalError, InterfaceError, PoolTimeoutError):
        app.register_error_handler(error_class, database_unavailable)
    app.register_blueprint(bp)
