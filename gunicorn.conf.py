"""Gunicorn settings for production: ``gunicorn -c gunicorn.conf.py`` (see README, "Production").

Every setting can be changed from the environment, so one file serves every instance.
"""

import multiprocessing
import os
import tempfile


def _int(name: str, default: int) -> int:
    value = os.environ.get(name)
    try:
        return int(value) if value else default
    except ValueError:
        raise SystemExit(f"Configuration error: {name} must be a whole number, not {value!r}")


#: What to serve: the app object in app.py.
wsgi_app = "app:app"

#: Where to listen. GUNICORN_BIND wins; else HOST:PORT (PORT as set by most platforms).
bind = os.environ.get("GUNICORN_BIND") or f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"

#: Sync workers: requests are short and database-bound, and each worker holds its own small
#: connection pool. Default: two per CPU plus one, at most 8 (each worker is a PostgreSQL client).
worker_class = "sync"
workers = _int("WEB_CONCURRENCY", min(2 * multiprocessing.cpu_count() + 1, 8))

#: A worker silent for this long is killed and replaced; a request waits at most a few seconds
#: for the database (DATABASE_CONNECT_TIMEOUT), so 30 s only catches real hangs.
timeout = _int("GUNICORN_TIMEOUT", 30)
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 30)
#: Behind a reverse proxy that reuses connections.
keepalive = _int("GUNICORN_KEEPALIVE", 5)

#: Recycle workers now and then (jittered, so they do not all restart together).
max_requests = _int("GUNICORN_MAX_REQUESTS", 5000)
max_requests_jitter = max(max_requests // 10, 0)

#: Each worker opens its own database connections after the fork; sharing a pool opened
#: before the fork between processes would corrupt connections.
preload_app = False

#: The app writes one line per request with its request id (website/ops.py); gunicorn's own
#: access log would duplicate it, and would include query strings, which can hold codes.
accesslog = None
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOGLEVEL", "info")

#: X-Forwarded-* headers are trusted by the app (PROXY_COUNT, werkzeug's ProxyFix), not by
#: gunicorn, so there is one place to configure it.
secure_scheme_headers = {}
forwarded_allow_ips = ""

#: /metrics sums every worker's counts (prometheus_client's multiprocess mode): the workers write
#: them to files in this directory, which must be empty when the server starts. A directory of
#: its own per start unless PROMETHEUS_MULTIPROC_DIR is set (then it is emptied here).
if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    for _name in os.listdir(os.environ["PROMETHEUS_MULTIPROC_DIR"]):
        if _name.endswith(".db"):
            os.unlink(os.path.join(os.environ["PROMETHEUS_MULTIPROC_DIR"], _name))
else:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="idp-metrics-")


def child_exit(server, worker):
    """A worker that ended no longer counts in the live gauges (connections in use)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
