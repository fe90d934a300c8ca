"""The front: public documents (discovery, JWKS) and the usual answer of bearer resources
(/api/me) given below Flask.

A document endpoint (``@protocol_endpoint(document=True)``) answers every caller the same
bytes. The first GET through Flask builds its answer with every header the hooks add
(security headers, CORS, ETag, Cache-Control); the front keeps that answer, per path,
scheme and host, and serves it again for OIDC_KEY_CHECK_INTERVAL seconds without a request
context, hooks, routing or a session: only a request id, the 304 check, the metrics and the
request's log line. After the interval the next request goes through Flask again, which is
when the key ring looks for another instance's rotation. A change seen by this process (a
rotation here, a new key) calls ``documents_changed`` and the next request goes through Flask.

Answers that are not a 200 or 304 (a 503 while the database is down) are never kept, nor
one that sets a cookie.

A bearer resource (``@protocol_endpoint(bearer_answer=...)``) answers each token its own
body, so only the headers of Flask's last JSON 200 are kept (RESOURCE_HEADERS_LIFETIME). A plain
GET (no query, body, Origin or DPoP proof) with ``Authorization: Bearer`` is given to the
endpoint's ``bearer_answer`` in an app context: the token is read and checked by the same
validator as the view's, on every request (nothing about tokens is kept). A token it does
not accept, and every other request, goes to Flask, which answers as always; an exception
is raised again inside Flask (ops.FRONT_ERROR), so a lost database answers its 503 there.
"""

import time

from flask import Flask, current_app
from werkzeug.http import parse_etags

from website.http import ops

#: Headers that belong to one request, never kept in an answer.
_PER_REQUEST = frozenset({"x-request-id", "date", "server"})

#: Seconds a bearer resource's headers are kept before Flask answers one request again.
RESOURCE_HEADERS_LIFETIME = 60

#: Answers kept at most: they are per Host header, which any client can make up; past this
#: many the front starts again rather than grow.
MAX_KEPT = 256


class _Answer:
    __slots__ = ("body", "etag", "expires", "generation", "headers", "status")

    def __init__(self, status, headers, body, etag, expires, generation):
        self.status, self.headers, self.body = status, headers, body
        self.etag, self.expires, self.generation = etag, expires, generation


def _plain_bearer_get(environ) -> str | None:
    """The bearer token of a GET with nothing else to check (what Authlib's protector takes
    from the Authorization header), else None."""
    if (environ.get("REQUEST_METHOD") != "GET" or environ.get("QUERY_STRING")
            or environ.get("CONTENT_LENGTH") not in (None, "", "0") or "HTTP_TRANSFER_ENCODING" in environ
            or "HTTP_ORIGIN" in environ or "HTTP_DPOP" in environ):
        return None
    parts = environ.get("HTTP_AUTHORIZATION", "").split(None, 1)
    if len(parts) != 2 or parts[0].lower() != "bearer":
        return None
    return parts[1]


class Front:
    """WSGI middleware answering the app's document paths from kept answers, and its bearer
    resources' usual requests with kept headers."""

    def __init__(self, app: Flask, wsgi_app, paths: dict[str, str], resources: dict[str, tuple]):
        self.app = app
        self.wsgi_app = wsgi_app
        #: path -> Flask endpoint name (for the metrics' labels).
        self.paths = paths
        #: path -> (Flask endpoint name, its bearer_answer).
        self.resources = resources
        #: (path, scheme, host, status) -> the answer Flask gave.
        self.answers: dict[tuple, _Answer] = {}
        self.generation = 0

    def changed(self) -> None:
        """Forget every kept answer (the documents' content changed)."""
        self.generation += 1
        self.answers = {}

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        endpoint = self.paths.get(path)
        method = environ.get("REQUEST_METHOD")
        if endpoint is None or method not in ("GET", "HEAD"):
            resource = self.resources.get(path)
            if resource is not None:
                return self._resource(path, *resource, environ, start_response)
            return self.wsgi_app(environ, start_response)
        started = time.perf_counter()
        key = _key(path, environ)
        full = self.answers.get((*key, 200))
        if full is None or full.expires <= time.monotonic() or full.generation != self.generation:
            return self._through_flask(key, environ, start_response)
        if_none_match = environ.get("HTTP_IF_NONE_MATCH")
        answer = full
        if if_none_match and parse_etags(if_none_match).contains_weak(full.etag):
            answer = self.answers.get((*key, 304))
            if answer is None or answer.etag != full.etag:
                return self._through_flask(key, environ, start_response)
        request_id = _request_id(environ)
        start_response(answer.status, [*answer.headers, (ops.REQUEST_ID_HEADER, request_id)])
        status = int(answer.status[:3])
        ops.log_request(request_id, endpoint, method, path, status, time.perf_counter() - started,
                        environ.get("REMOTE_ADDR"), environ.get("wsgi.errors"))
        return [b""] if method == "HEAD" or status == 304 else [answer.body]

    def _resource(self, path, endpoint, bearer_answer, environ, start_response):
        token = _plain_bearer_get(environ)
        if token is None:
            return self.wsgi_app(environ, start_response)
        started = time.perf_counter()
        key = _key(path, environ)
        kept = self.answers.get((*key, 200))
        if kept is None or kept.expires <= time.monotonic():
            return self._through_flask(key, environ, start_response, document=False)
        try:
            with self.app.app_context():
                body = bearer_answer(token)
        except Exception as error:  # noqa: BLE001 - raised again inside Flask, which answers it
            environ[ops.FRONT_ERROR] = error
            return self.wsgi_app(environ, start_response)
        if body is None:
            return self.wsgi_app(environ, start_response)
        request_id = _request_id(environ)
        start_response(kept.status, [*kept.headers, ("Content-Length", str(len(body))),
                                     (ops.REQUEST_ID_HEADER, request_id)])
        ops.log_request(request_id, endpoint, "GET", path, 200, time.perf_counter() - started,
                        environ.get("REMOTE_ADDR"), environ.get("wsgi.errors"))
        return [body]

    def _keep(self, key: tuple, answer: _Answer) -> None:
        if len(self.answers) >= MAX_KEPT:
            self.answers = {}
        self.answers[key] = answer

    def _through_flask(self, key, environ, start_response, document=True):
        """Let Flask answer, and keep its 200 or 304 for the next callers (of a resource: the
        200's headers)."""
        seen = {}

        def keep(status, headers, exc_info=None):
            seen["status"], seen["headers"] = status, headers
            return start_response(status, headers, exc_info)

        app_iter = self.wsgi_app(environ, keep)
        code = int(seen.get("status", "500")[:3])
        names = {name.lower() for name, _ in seen.get("headers", ())}
        if code not in (200, 304) or "set-cookie" in names:
            return app_iter
        if not document:
            # Only a JSON 200 is what bearer_answer answers like (UserInfo may answer a JWT).
            if code == 200 and any(name.lower() == "content-type" and value == "application/json"
                                   for name, value in seen["headers"]):
                headers = [(name, value) for name, value in seen["headers"]
                           if name.lower() not in _PER_REQUEST and name.lower() != "content-length"]
                self._keep((*key, 200), _Answer(seen["status"], headers, None, "",
                                                time.monotonic() + RESOURCE_HEADERS_LIFETIME, self.generation))
            return app_iter
        try:
            body = b"".join(app_iter)
        finally:
            if hasattr(app_iter, "close"):
                app_iter.close()
        if code == 200 and environ.get("REQUEST_METHOD") == "HEAD":
            return [body]  # no body to keep; a GET will bring it
        headers = [(name, value) for name, value in seen["headers"] if name.lower() not in _PER_REQUEST]
        etag = next((value for name, value in headers if name.lower() == "etag"), "").strip('"')
        lifetime = self.app.config["OIDC_KEY_CHECK_INTERVAL"]
        if etag and lifetime > 0:
            # The generation after Flask answered: building the answer may itself have loaded
            # the keys (the first request creates the first key).
            self._keep((*key, code), _Answer(
                seen["status"], headers, body, etag, time.monotonic() + lifetime, self.generation))
        return [body]


def _key(path: str, environ) -> tuple:
    return path, environ.get("wsgi.url_scheme"), environ.get("HTTP_HOST") or environ.get("SERVER_NAME")


def _request_id(environ) -> str:
    incoming = environ.get("HTTP_X_REQUEST_ID", "")
    return incoming if ops.sane_request_id(incoming) else ops.new_request_id()


def documents_changed() -> None:
    """Tell the current app's front that the documents changed (a key rotation, a new key)."""
    front = current_app.extensions.get("document_front")
    if front is not None:
        front.changed()


def init_app(app: Flask) -> None:
    """Put the front before the app for the paths of its document endpoints and bearer
    resources (after every blueprint is registered, before the proxy middleware wraps it)."""
    specs = app.extensions["protocol_endpoints"]
    rules = [rule for rule in app.url_map.iter_rules() if rule.endpoint in specs and not rule.arguments]
    paths = {rule.rule: rule.endpoint for rule in rules if specs[rule.endpoint].document}
    resources = {rule.rule: (rule.endpoint, specs[rule.endpoint].bearer_answer) for rule in rules
                 if specs[rule.endpoint].bearer_answer is not None and "GET" in rule.methods}
    front = Front(app, app.wsgi_app, paths, resources)
    app.extensions["document_front"] = front
    app.wsgi_app = front
