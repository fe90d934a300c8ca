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

A client endpoint (``@protocol_endpoint(client_answer=...)``, introspection) is the same for a
plain POST: a form body of at most MAX_PLAIN_BODY bytes of printable ASCII without escapes
(``%``, ``+``), each parameter once, no query, Origin or DPoP proof, and HTTP Basic
credentials without escapes. The front reads the body (and hands Flask a copy when it does
not answer) and gives the credentials, the parameters and the caller's address to the
endpoint's ``client_answer``, which answers only what the endpoint would answer 200: a wrong
secret, a locked-out client and every error are Flask's, which counts the failure.
"""

import base64
import binascii
import io
import re
import time

from flask import Flask, current_app, g, has_request_context, request
from werkzeug.http import parse_etags

from website.http import ops
from website.http.endpoints import FORM, is_enabled

#: Headers that belong to one request, never kept in an answer.
_PER_REQUEST = frozenset({"x-request-id", "date", "server"})

#: Seconds a bearer resource's headers are kept before Flask answers one request again.
RESOURCE_HEADERS_LIFETIME = 60

#: The longest body of a client POST the front reads (an introspection request is a few
#: hundred bytes); a longer one goes to Flask unread.
MAX_PLAIN_BODY = 8192

#: A form body the front parses itself: printable ASCII without spaces, ``%`` or ``+`` (so
#: nothing to decode, and nothing check_protocol_request would refuse but a length).
_PLAIN_FORM = re.compile(rb"[!-$&-*,-~]*")

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


def _plain_client_post(environ, limit: int) -> tuple[str, str, dict[str, str]] | None:
    """The HTTP Basic client_id and secret and the parameters of a plain form POST (see the
    module's docstring), else None. Reads the body and puts a copy back for Flask."""
    length = environ.get("CONTENT_LENGTH", "")
    if (environ.get("REQUEST_METHOD") != "POST" or environ.get("QUERY_STRING")
            or environ.get("CONTENT_TYPE") != FORM or not length.isdigit() or not 0 < int(length) <= MAX_PLAIN_BODY
            or "HTTP_TRANSFER_ENCODING" in environ or "HTTP_ORIGIN" in environ or "HTTP_DPOP" in environ):
        return None
    credentials = _basic_credentials(environ.get("HTTP_AUTHORIZATION", ""))
    if credentials is None:
        return None
    body = environ["wsgi.input"].read(int(length))
    environ["wsgi.input"] = io.BytesIO(body)
    if len(body) != int(length) or not _PLAIN_FORM.fullmatch(body):
        return None
    params = {}
    for part in body.decode("ascii").split("&"):
        name, sep, value = part.partition("=")
        if not sep or not name or name in params or len(name) > limit or len(value) > limit:
            return None
        params[name] = value
    return *credentials, params


def _basic_credentials(header: str) -> tuple[str, str] | None:
    """The client_id and secret of HTTP Basic credentials with nothing to unescape, else None."""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("ascii")
    except (binascii.Error, ValueError):
        return None
    client_id, _, secret = decoded.partition(":")
    if not client_id or not secret or "%" in decoded:
        return None
    return client_id, secret


class Front:
    """WSGI middleware answering the app's document paths from kept answers, and its bearer
    resources' usual requests with kept headers."""

    def __init__(self, app: Flask, wsgi_app, paths: dict[str, str], resources: dict[str, tuple],
                 client_endpoints: dict[str, tuple]):
        self.app = app
        self.wsgi_app = wsgi_app
        #: path -> Flask endpoint name (for the metrics' labels).
        self.paths = paths
        #: path -> (Flask endpoint name, its spec, its bearer_answer or client_answer).
        self.resources = resources
        self.client_endpoints = client_endpoints
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
            if method == "GET" and (resource := self.resources.get(path)) is not None:
                token = _plain_bearer_get(environ)
                if token is not None:
                    return self._below_flask(path, *resource, (token,), environ, start_response)
            elif method == "POST" and (client_endpoint := self.client_endpoints.get(path)) is not None:
                found = _plain_client_post(environ, self.app.config["OAUTH2_MAX_PARAMETER_LENGTH"])
                if found is not None:
                    return self._below_flask(path, *client_endpoint, (*found, environ.get("REMOTE_ADDR")),
                                             environ, start_response)
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

    def _below_flask(self, path, endpoint, spec, answer, arguments, environ, start_response):
        """Answer with ``answer(*arguments)`` and the kept headers of Flask's last JSON 200
        (Flask answers the first request, and whenever ``answer`` gives None or raises)."""
        started = time.perf_counter()
        key = _key(path, environ)
        kept = self.answers.get((*key, 200))
        if kept is None or kept.expires <= time.monotonic():
            return self._through_flask(key, environ, start_response, document=False)
        try:
            with self.app.app_context():
                g.front_environ = environ  # for request_url_root
                body = answer(*arguments) if is_enabled(spec) else None
        except Exception as error:  # noqa: BLE001 - raised again inside Flask, which answers it
            environ[ops.FRONT_ERROR] = error
            return self.wsgi_app(environ, start_response)
        if body is None:
            return self.wsgi_app(environ, start_response)
        request_id = _request_id(environ)
        start_response(kept.status, [*kept.headers, ("Content-Length", str(len(body))),
                                     (ops.REQUEST_ID_HEADER, request_id)])
        ops.log_request(request_id, endpoint, environ["REQUEST_METHOD"], path, 200, time.perf_counter() - started,
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


#: What a request's URL root is made of (Werkzeug's get_host and root_path).
_URL_ROOT_PARTS = ("wsgi.url_scheme", "HTTP_HOST", "SERVER_NAME", "SERVER_PORT", "SCRIPT_NAME")


def request_url_root() -> str:
    """The URL the request came in on, up to the app's root: Flask's ``request.url_root``, also
    for a request the front answers without a request context (built from its environ then,
    as Flask would). Kept per set of parts it is made of: building it costs more than the
    rest of an introspection answer."""
    environ = request.environ if has_request_context() else g.get("front_environ")
    if environ is None:
        raise RuntimeError("No OAUTH2_ISSUER is configured and there is no request to take the URL from.")
    parts = tuple(environ.get(name) for name in _URL_ROOT_PARTS)
    roots = current_app.extensions["url_roots"]
    root = roots.get(parts)
    if root is None:
        if has_request_context():
            root = request.url_root  # the host checked against TRUSTED_HOSTS by Flask
        else:
            below = current_app.request_class(environ)
            if (trusted_hosts := current_app.config.get("TRUSTED_HOSTS")) is not None:
                below.trusted_hosts = trusted_hosts
            root = below.url_root
        if len(roots) >= MAX_KEPT:
            roots.clear()
        roots[parts] = root
    return root


def jsonify_body(obj) -> bytes:
    """The body ``jsonify(obj)`` answers, without building a Response (for a ``bearer_answer``)."""
    provider = current_app.json
    if (provider.compact is None and current_app.debug) or provider.compact is False:
        return provider.response(obj).get_data()  # the indented form, as jsonify writes it
    return f"{provider.dumps(obj, separators=(',', ':'))}\n".encode()


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
    resources = {rule.rule: (rule.endpoint, specs[rule.endpoint], specs[rule.endpoint].bearer_answer)
                 for rule in rules if specs[rule.endpoint].bearer_answer is not None and "GET" in rule.methods}
    client_endpoints = {rule.rule: (rule.endpoint, specs[rule.endpoint], specs[rule.endpoint].client_answer)
                        for rule in rules if specs[rule.endpoint].client_answer is not None and "POST" in rule.methods}
    front = Front(app, app.wsgi_app, paths, resources, client_endpoints)
    app.extensions["document_front"] = front
    app.extensions["url_roots"] = {}
    app.wsgi_app = front
