"""Throwaway servers on free loopback ports: a plain HTTP handler for the fake client apps and
key hosts that the tests put beside the identity provider, and WSGI / ASGI servers for the live
identity provider and the real client apps (tests/interop)."""

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import uvicorn
from werkzeug.serving import WSGIRequestHandler, make_server


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that logs nothing and answers with one call."""

    def send_body(self, body: bytes, content_type: str = "text/html; charset=utf-8") -> None:
        """Answer 200 with ``body``."""
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class LoopbackServer:
    """Serve ``handler`` on 127.0.0.1 in a thread until ``close``; ``url`` is its origin."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], poll_interval: float = 0.5):
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": poll_interval}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


#: What the fake client apps show when the browser comes back to them.
FAKE_APP_PAGE = b"<!doctype html><title>Fake App</title><h1>Back at the Fake App</h1>"


class _ClosingRequestHandler(WSGIRequestHandler):
    """Werkzeug's handler, but the app's response iterable is always closed. Werkzeug closes it
    at the end of a ``finally`` that first drains the socket, and a browser that resets the
    connection (a page it left) makes that drain raise, so the close is skipped: a static file
    stays open until garbage collection, which warns in whatever test runs then."""

    def run_wsgi(self):
        self.server.responses.iterable = None
        try:
            super().run_wsgi()
        finally:
            iterable, self.server.responses.iterable = self.server.responses.iterable, None
            if hasattr(iterable, "close"):
                iterable.close()


class WSGIServer:
    """Serve a WSGI ``app`` (Flask, Django, the identity provider itself) on a free loopback port
    in a thread until ``close``; with ``ssl_context`` it speaks HTTPS. ``url`` is its origin.
    ``app`` may be set later, for an app that needs its own URL (a redirect URI) to be made."""

    def __init__(self, app=None, ssl_context=None):
        self.app = app
        self.server = make_server("127.0.0.1", 0, self._dispatch, threaded=True, ssl_context=ssl_context,
                                  request_handler=_ClosingRequestHandler)
        # The response iterable each handler thread is serving (closed by _ClosingRequestHandler).
        self.server.responses = threading.local()
        scheme = "https" if ssl_context is not None else "http"
        self.url = f"{scheme}://127.0.0.1:{self.server.server_port}"
        # A short poll interval makes shutdown quick at the end of each test.
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def _dispatch(self, environ, start_response):
        iterable = self.app(environ, start_response)
        self.server.responses.iterable = iterable
        return iterable

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


class ASGIServer:
    """Serve an ASGI ``app`` (Starlette, Datasette) with uvicorn on a free loopback port in a
    thread until ``close``. ``url`` is its origin; ``app`` may be set later, as with WSGIServer."""

    def __init__(self, app=None, start_timeout: float = 10):
        self.app = app
        self._socket = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        config = uvicorn.Config(self._dispatch, interface="asgi3", log_level="warning", lifespan="off",
                                access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self._socket]},
                                       daemon=True)
        self.thread.start()
        deadline = time.monotonic() + start_timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)

    async def _dispatch(self, scope, receive, send):
        await self.app(scope, receive, send)

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=5)
        self._socket.close()
