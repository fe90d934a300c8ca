"""The ceiling: a bare Flask app with one route returning a small JSON.

The benchmark serves it under exactly the same server configuration as the identity
provider; its throughput is the most any Flask view can reach on the machine, so every
endpoint is reported as a fraction of it.
"""

from flask import Flask, jsonify

app = Flask(__name__)


@app.get("/")
def index():
    """A small JSON document, about the size of a token response."""
    return jsonify(status="ok", service="ceiling")
