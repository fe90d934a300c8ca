"""Prometheus metrics at ``/metrics`` (prometheus_client): requests by endpoint and status,
latency, tokens issued by grant, audit events (failed log-ins among them) and the database
connection pool.

Under gunicorn, set ``PROMETHEUS_MULTIPROC_DIR`` to an empty directory (gunicorn.conf.py does
when it is unset) so every worker's counts are summed at each scrape. ``/metrics`` answers only
the addresses in ``METRICS_ALLOWED_ADDRESSES`` or a request bearing ``METRICS_TOKEN``.
"""

import hmac
import ipaddress
import os

from flask import Blueprint, current_app, jsonify, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from sqlalchemy import event

bp = Blueprint("metrics", __name__)

REQUESTS = Counter("idp_http_requests_total", "HTTP requests answered, by endpoint, method and status.",
                   ["endpoint", "method", "status"])
LATENCY = Histogram("idp_http_request_duration_seconds", "Time to answer a request, by endpoint.",
                    ["endpoint"], buckets=(.002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10))
TOKENS_ISSUED = Counter("idp_tokens_issued_total", "Tokens issued, by grant type.", ["grant_type"])
EVENTS = Counter("idp_audit_events_total", "Audit events recorded, by kind (login_failed, ...).", ["event"])
POOL_CHECKED_OUT = Gauge("idp_db_pool_connections_in_use", "Database connections checked out of the pool.",
                         multiprocess_mode="livesum")
POOL_CONNECTIONS = Gauge("idp_db_pool_connections_open", "Database connections the pool holds open.",
                         multiprocess_mode="livesum")


#: The methods counted by name; any other (a client may send any token) is counted as "other",
#: so made-up methods cannot add label values without end.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
#: (endpoint, method, status) -> the two children's bound methods: prometheus_client's
#: ``labels()`` costs a few microseconds a call, on every request.
_CHILDREN: dict[tuple, tuple] = {}
_CHILDREN_KEPT = 4096


def observe_request(endpoint: str | None, method: str, status: int, seconds: float) -> None:
    """Count one answered request (called from the request log, one pass per request)."""
    key = (endpoint, method, status)
    children = _CHILDREN.get(key)
    if children is None:
        name = endpoint or "unmatched"
        if len(_CHILDREN) >= _CHILDREN_KEPT:
            _CHILDREN.clear()
        children = _CHILDREN[key] = (
            REQUESTS.labels(name, method if method in _METHODS else "other", str(status)).inc,
            LATENCY.labels(name).observe,
        )
    count, observe = children
    count()
    observe(seconds)


def count_event(event_name: str, detail: dict) -> None:
    """Count an audit event; a ``token_issued`` one also by its grant type."""
    EVENTS.labels(event_name).inc()
    if event_name == "token_issued":
        TOKENS_ISSUED.labels(str(detail.get("grant_type") or "unknown")).inc()


def watch_pool(engine) -> None:
    """Keep the pool gauges current from the pool's own events."""
    event.listen(engine, "checkout", lambda *args: POOL_CHECKED_OUT.inc())
    event.listen(engine, "checkin", lambda *args: POOL_CHECKED_OUT.dec())
    event.listen(engine, "connect", lambda *args: POOL_CONNECTIONS.inc())
    event.listen(engine, "close", lambda *args: POOL_CONNECTIONS.dec())
    # A detached connection (store/driver.py keeps some) leaves the pool checked out.
    event.listen(engine, "detach", lambda *args: (POOL_CHECKED_OUT.dec(), POOL_CONNECTIONS.dec()))


def _allowed() -> bool:
    token = current_app.config.get("METRICS_TOKEN")
    header = request.headers.get("Authorization", "")
    if token and header.startswith("Bearer ") and hmac.compare_digest(header[7:].encode(), token.encode()):
        return True
    try:
        address = ipaddress.ip_address(request.remote_addr or "")
    except ValueError:
        return False
    return any(address in network for network in current_app.config["METRICS_NETWORKS"])


@bp.route("/metrics")
def metrics():
    """The metrics in Prometheus' text format, for allowed scrapers only (403 otherwise)."""
    if not _allowed():
        response = jsonify(error="access_denied",
                           error_description="Metrics are served only to the addresses in"
                                             " METRICS_ALLOWED_ADDRESSES or with METRICS_TOKEN.")
        response.status_code = 403
        return response
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        body = generate_latest(registry)
    else:
        body = generate_latest()
    return body, 200, {"Content-Type": CONTENT_TYPE_LATEST, "Cache-Control": "no-store"}


def init_app(app) -> None:
    """Serve /metrics."""
    app.register_blueprint(bp)
