"""A throwaway HTTP server on a free loopback port, for the client apps and key hosts that the
tests put beside the identity provider."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


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
