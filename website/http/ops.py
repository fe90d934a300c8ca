"""Production serving: reverse-proxy headers, secure cookies, /healthz, one log line per
request with a request id, and 503 answers while the database is unreachable."""

import ast
import json
import logging
import os
import re
import sys
import time
from pathlib import Path
from urllib.parse import quote

from flask import Blueprint, Flask, current_app, g, has_request_context, jsonify, make_response, render_template, request
from flask import logging as flask_logging
from sqlalchemy import text
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from werkzeug.middleware.proxy_fix import ProxyFix

from website.extensions import MIGRATIONS_DIR, db
from website.http import metrics
from website.http.endpoints import is_json_path

bp = Blueprint("ops", __name__)


#: One line per request: ``request_id=... method=... path=... status=... duration_ms=... remote_addr=...``.
access_log = logging.getLogger("website.access")


REQUEST_ID_HEADER = "X-Request-ID"


#: An incoming request id is kept only if it is short and made of safe characters (it is
#: written to the log and echoed in a header, so nothing that could forge a line or header).
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@+=/-]{0,127}")




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


@bp.route("/readyz")
def readyz():
    """Answer 200 when this instance can serve: the database answers, its schema is at the
    newest migration, and Redis answers when REDIS_URL is set; 503 naming what is not ready."""
    checks = readiness()
    ready = all(result in ("ok", "not configured") for result in checks.values())
    response = jsonify(status="ready" if ready else "not ready", checks=checks)
    response.status_code = 200 if ready else 503
    response.headers["Cache-Control"] = "no-store"
    return response


def readiness() -> dict[str, str]:
    """What /readyz checks: "ok", "not configured" or what is wrong, for the database, its
    migrations and Redis (also used by `flask check-config`)."""
    return {"database": _check_database(), "migrations": _check_migrations(), "redis": _check_redis()}


def _check_database() -> str:
    try:
        db.session.execute(text("SELECT 1"))
    except SQLAlchemyError as error:
        db.session.rollback()
        return f"unavailable ({type(error).__name__})"
    return "ok"


def _check_migrations() -> str:
    try:
        current = set(db.session.scalars(text("SELECT version_num FROM alembic_version")))
    except SQLAlchemyError:
        db.session.rollback()
        return "not migrated (run flask initdb)"
    heads = _migration_heads()
    if current == heads:
        return "ok"
    return f"at {', '.join(sorted(current)) or 'nothing'}, newest is {', '.join(sorted(heads))} (run flask initdb)"


def _migration_heads() -> set[str]:
    heads = current_app.extensions.get("migration_heads")
    if heads is None:
        heads = migration_heads()
        current_app.extensions["migration_heads"] = heads
    return heads


def migration_heads(directory: str = MIGRATIONS_DIR) -> set[str]:
    """The newest revisions in ``migrations/versions``: those no other revision revises. Read
    from each file's ``revision`` and ``down_revision`` assignments rather than through alembic,
    which a serving worker would import for this alone (11 MiB resident per process)."""
    revisions, revised = set(), set()
    for path in sorted(Path(directory, "versions").glob("*.py")):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
            names = [target.id for target in targets if isinstance(target, ast.Name)]
            if "revision" in names:
                revisions.add(ast.literal_eval(node.value))
            elif "down_revision" in names:
                down = ast.literal_eval(node.value)
                revised.update(down if isinstance(down, (tuple, list)) else filter(None, [down]))
    return revisions - revised


def _check_redis() -> str:
    url = current_app.config.get("REDIS_URL")
    if not url:
        return "not configured"
    import redis  # only with REDIS_URL: 3 MiB a worker without Redis does not carry

    # A connection of its own, closed at once: a readiness probe is rare, and a pooled socket
    # left to the garbage collector would outlive the app.
    client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as error:
        return f"unavailable ({type(error).__name__})"
    finally:
        client.close()
    return "ok"


def current_request_id() -> str | None:
    """The id of the request being served (also in the log line and the X-Request-ID header)."""
    return g.get("request_id")


def new_request_id() -> str:
    """A fresh request id: 32 random hex digits (os.urandom: a tenth of uuid4's cost)."""
    return os.urandom(16).hex()


def sane_request_id(value: str) -> bool:
    """Tell whether an incoming X-Request-ID may be kept (else the request gets a new one)."""
    return _SANE_REQUEST_ID.fullmatch(value) is not None


#: The WSGI environ key under which the front (front.py) hands Flask an exception its
#: answer below Flask raised: raised again here, it is answered as if the view raised it.
FRONT_ERROR = "website.front_error"


def _start_request() -> None:
    incoming = request.headers.get(REQUEST_ID_HEADER, "")
    g.request_id = incoming if sane_request_id(incoming) else new_request_id()
    g.request_started = time.perf_counter()
    if FRONT_ERROR in request.environ:
        raise request.environ.pop(FRONT_ERROR)


#: Paths needing no quoting in the log line (nearly all): skip urllib's quote for them.
_PLAIN_PATH = re.compile(r"[A-Za-z0-9/:@!$&'()*+,;=._~-]*")


def _log_request(response):
    """After every request: the request id header, the metrics, and the request's log line."""
    req = request._get_current_object()  # one context lookup instead of one per attribute
    request_id = g.get("request_id") or new_request_id()
    response.headers[REQUEST_ID_HEADER] = request_id
    started = g.get("request_started")
    duration = time.perf_counter() - started if started is not None else 0.0
    log_request(request_id, req.endpoint, req.method, req.path, response.status_code, duration, req.remote_addr)
    return response


def log_request(request_id, endpoint, method, path, status, seconds, remote_addr, stream=None) -> None:
    """Count an answered request in the metrics and write its log line (also for the requests
    the front answers without Flask, which pass their ``wsgi.errors`` stream)."""
    metrics.observe_request(endpoint, method, status, seconds)
    if access_log.isEnabledFor(logging.INFO):
        # The path only: query strings carry codes, tokens and state. Quoting keeps the line one line.
        if not _PLAIN_PATH.fullmatch(path):
            path = quote(path, safe="/:@!$&'()*+,;=-._~")
        duration_ms = seconds * 1000
        if _direct_write_applies():
            _error_stream_handler.write_access_line(request_id, method, path, status, duration_ms, remote_addr,
                                                    stream)
        else:
            access_log.info(
                "request_id=%s method=%s path=%s status=%d duration_ms=%.1f remote_addr=%s",
                request_id, method, path, status, duration_ms, remote_addr or "-",
                extra={"request_id": request_id,
                       "http": {"method": method, "path": path, "status": status,
                                "duration_ms": round(duration_ms, 1), "remote_addr": remote_addr}},
            )


def _direct_write_applies() -> bool:
    """Tell whether the access log's line would reach only this module's handler, unfiltered:
    then the line is written preformatted, without a LogRecord or a Formatter (the same text).
    Anything else configured (a handler on the root logger, a filter, another handler) gets
    the record through ``logging`` as before."""
    app_logger = access_log.parent
    return (not access_log.handlers and not access_log.filters and access_log.propagate
            and app_logger.handlers == [_error_stream_handler] and not app_logger.filters
            and (not app_logger.propagate or not logging.root.handlers)
            and not _error_stream_handler.filters and _error_stream_handler.level <= logging.INFO
            and _error_stream_handler.preformats)


def _wants_json() -> bool:
    if is_json_path(request.path):
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
    if request.endpoint in ("ops.healthz", "ops.readyz"):
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


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the request id (when a request
    is being served) and, on request-log lines, the request's fields under ``http``."""

    converter = time.gmtime

    def format(self, record) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None)
        if request_id is None and has_request_context():
            request_id = g.get("request_id")
        if request_id:
            entry["request_id"] = request_id
        if http := getattr(record, "http", None):
            entry["http"] = http
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class _ErrorStreamHandler(logging.StreamHandler):
    """Flask's default log handler (same format, same stream: the request's ``wsgi.errors``,
    else stderr), resolving that stream once per line: Flask's resolves it through a context
    proxy on every write and flush. The request log's lines it can also write preformatted
    (``write_access_line``): the same text as through ``logging``, a few microseconds each."""

    def __init__(self):
        super().__init__(sys.stderr)
        self.setFormatter(flask_logging.default_handler.formatter)
        self.setLevel(flask_logging.default_handler.level)

    def setFormatter(self, fmt) -> None:  # noqa: N802 - logging's name
        super().setFormatter(fmt)
        self._second = (None, "")  # (int(time), its formatted text), reused within a second
        self._json = isinstance(fmt, JsonFormatter)
        #: Lines are preformatted only in the two formats this module knows.
        self.preformats = self._json or fmt is flask_logging.default_handler.formatter

    def emit(self, record) -> None:
        # Handler.handle holds the handler's lock around emit: no other thread sees this swap.
        self.stream = flask_logging.wsgi_errors_stream._get_current_object()
        super().emit(record)

    def _timestamp(self, now: float) -> str:
        second = int(now)
        cached, text = self._second
        if cached != second:
            if self._json:
                text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            else:
                text = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
            self._second = (second, text)
        return text

    def write_access_line(self, request_id, method, path, status, duration_ms, remote_addr, stream=None) -> None:
        """Write the request log's line as ``access_log.info`` through this handler would (to
        ``stream``, else the request's ``wsgi.errors``, else stderr)."""
        now = time.time()
        msecs = int((now - int(now)) * 1000)
        message = (f"request_id={request_id} method={method} path={path} status={status:d} "
                   f"duration_ms={duration_ms:.1f} remote_addr={remote_addr or '-'}")
        if self._json:
            line = json.dumps({
                "time": f"{self._timestamp(now)}.{msecs:03d}Z", "level": "INFO", "logger": access_log.name,
                "message": message, "request_id": request_id,
                "http": {"method": method, "path": path, "status": status,
                         "duration_ms": round(duration_ms, 1), "remote_addr": remote_addr},
            }, ensure_ascii=False)
        else:
            line = f"[{self._timestamp(now)},{msecs:03d}] INFO in ops: {message}"
        if stream is None:
            stream = flask_logging.wsgi_errors_stream._get_current_object()
        with self.lock:
            try:
                stream.write(line + self.terminator)
                stream.flush()
            except Exception:  # noqa: BLE001 - as logging does: a log write never fails a request
                self.handleError(logging.makeLogRecord({"msg": line}))


_error_stream_handler = _ErrorStreamHandler()


def _set_log_format(app: Flask) -> None:
    _error_stream_handler.setFormatter(
        JsonFormatter() if app.config["LOG_FORMAT"] == "json" else flask_logging.default_handler.formatter)


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
    _set_log_format(app)
    # First of all before-request functions, so a failure in any other still has an id.
    app.before_request_funcs.setdefault(None, []).insert(0, _start_request)
    app.after_request(_log_request)
    # Lost or refused connections (OperationalError, InterfaceError) and an exhausted pool
    # mean "try again later", not a bug: 503 rather than 500.
    for error_class in (OperationalError, InterfaceError, PoolTimeoutError):
        app.register_error_handler(error_class, database_unavailable)
    app.register_blueprint(bp)
    metrics.init_app(app)
    with app.app_context():
        metrics.watch_pool(db.engine)
