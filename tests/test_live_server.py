"""The tests' live server (tests/support/loopback.py) itself: a browser that leaves a page resets
connections mid-response, and that must not leave files open for a later test to trip over."""

import gc
import socket
import struct
import time
from urllib.parse import urlsplit


def test_a_client_that_resets_the_connection_leaves_no_file_open(live_server):
    address = urlsplit(live_server)
    for _ in range(30):
        connection = socket.create_connection((address.hostname, address.port))
        connection.sendall(b"GET /static/app.js HTTP/1.1\r\nHost: idp\r\n\r\n")
        connection.recv(1)  # the server has answered, and now drains the socket
        # Close with a reset (linger 0), as Chromium does with a request it no longer needs.
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        connection.close()
    time.sleep(0.5)
    # An iterable the server did not close warns here (an error under this suite's warnings filter).
    gc.collect()
