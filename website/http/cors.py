"""CORS for the protocol endpoints a browser app calls from script, declared per endpoint in
the registry (``@protocol_endpoint(cors=ANY)`` or ``cors=CLIENT``).

- ``ANY`` (discovery, JWKS): public documents, ``Access-Control-Allow-Origin: *``.
- ``CLIENT`` (token, revocation, introspection, userinfo): only the origins of the calling
  client. Which client that is, the layers above decide (from the request body or Basic
  credentials, or the access token); they call ``check_client_origin`` *before* anything is
  consumed, and only an origin it approved is echoed in the response.

No ``Access-Control-Allow-Credentials`` ever: protocol requests carry their credentials in
the body or the Authorization header, never in this site's cookies.
"""

from urllib.parse import urlsplit

from flask import current_app, g, request

from website.http.endpoints import current_endpoint, spec_for

ANY = "any"
CLIENT = "client"

#: What a browser app may send: client credentials or a bearer token, a form or JSON body,
#: a DPoP proof (RFC 9449).
ALLOWED_HEADERS = "authorization, content-type, dpop"
#: Response headers a script may read besides the simple ones.
EXPOSED_HEADERS = "WWW-Authenticate, Retry-After, DPoP-Nonce"
#: Seconds a browser may cache a preflight answer.
PREFLIGHT_MAX_AGE = 600

_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: str) -> str | None:
    """The origin (``scheme://host[:port]``) of an http(s) URL, normalised as browsers send it:
    lower-case scheme and host, no default port; None for anything else."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except (ValueError, AttributeError):
        return None
    scheme = parts.scheme.lower()
    host = parts.hostname  # lower-cased by urlsplit
    if scheme not in _DEFAULT_PORTS or not host:
        return None
    if ":" in host:
        host = f"[{host}]"  # IPv6 literal
    if port is None or port == _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def request_origin() -> str | None:
    """The request's Origin header (None without one: a server-side client)."""
    return request.headers.get("Origin")


def check_client_origin(allowed_origins) -> bool:
    """Tell whether the request may go on for a client allowing ``allowed_origins``: it has no
    Origin, or one of those exactly. An allowed origin is echoed in the response."""
    origin = request_origin()
    if origin is None:
        return True
    # Browsers send the origin already normalised; anything else ("null", a path) never matches.
    if origin_of(origin) != origin or origin not in allowed_origins:
        return False
    g.cors_allowed_origin = origin
    return True


def answer_preflight():
    """Before every request: answer a CORS preflight (``OPTIONS``) to a CORS endpoint with 204.

    The preflight carries no body, so the client is not known yet: any origin passes it, and
    the real request's answer carries ``Access-Control-Allow-Origin`` only for the client's
    own origins (a simple form POST is not preflighted at all, so that check is the one
    that counts).
    """
    if request.method != "OPTIONS" or request.url_rule is None:
        return None
    spec = spec_for(request.endpoint)
    if spec is None or spec.cors is None:
        return None
    response = current_app.response_class(status=204)
    methods = sorted(request.url_rule.methods - {"OPTIONS", "HEAD"})
    response.headers["Access-Control-Allow-Methods"] = ", ".join(methods)
    response.headers["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
    response.headers["Access-Control-Max-Age"] = str(PREFLIGHT_MAX_AGE)
    response.headers["Allow"] = ", ".join(sorted(request.url_rule.methods))
    if spec.cors == ANY:
        response.headers["Access-Control-Allow-Origin"] = "*"
    else:
        response.vary.add("Origin")
        origin = request_origin()
        if origin is not None and origin_of(origin) == origin:
            response.headers["Access-Control-Allow-Origin"] = origin
    return response


def add_cors_headers(response):
    """After every request: ``Access-Control-Allow-Origin`` on CORS endpoints, ``*`` for public
    documents, the approved origin (see ``check_client_origin``) for client endpoints."""
    if request.method == "OPTIONS":
        return response  # a preflight answer is complete (answer_preflight)
    spec = spec_for(current_endpoint())
    if spec is None or spec.cors is None:
        return response
    if spec.cors == ANY:
        response.headers["Access-Control-Allow-Origin"] = "*"
        return response
    response.vary.add("Origin")
    origin = g.get("cors_allowed_origin")
    if origin is not None:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
    return response
