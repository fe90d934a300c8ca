"""What introspection, dynamic registration and RP-initiated logout add to the discovery
documents (RFC 8414 / OpenID Connect Discovery), kept next to the endpoints they describe so
the discovery module can merge them and never drift from what the server serves."""

from flask import url_for

from .introspection import INTROSPECTION_AUTH_METHODS

#: Discovery metadata key -> Flask endpoint name (made absolute on the issuer's host).
ENDPOINTS = {
    "introspection_endpoint": "introspection.introspect_token",
    "registration_endpoint": "registration.register_client",
    "end_session_endpoint": "logout.end_session",
}

#: Static metadata these features add.
METADATA = {
    "introspection_endpoint_auth_methods_supported": INTROSPECTION_AUTH_METHODS,
}


def discovery_metadata(base_url: str | None = None) -> dict:
    """The metadata to merge into the discovery documents, with absolute endpoint URLs.

    ``base_url`` is the issuer's origin; without it Flask builds the URLs for the current request.
    """
    data = dict(METADATA)
    for key, endpoint in ENDPOINTS.items():
        path = url_for(endpoint)
        data[key] = base_url.rstrip("/") + path if base_url else url_for(endpoint, _external=True)
    return data
