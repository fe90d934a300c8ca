"""The registry of protocol endpoints: how each takes input and answers errors."""

from dataclasses import dataclass

#: Metadata name -> view function, filled by ``advertise`` where the views are defined.
ADVERTISED_ENDPOINTS: dict[str, object] = {}


def advertise(name: str):
    """Decorator: list this view in the discovery documents as ``name`` (e.g. token_endpoint)."""

    def decorate(view):
        ADVERTISED_ENDPOINTS[name] = view
        return view

    return decorate


FORM = "application/x-www-form-urlencoded"


JSON = "application/json"


@dataclass(frozen=True)
class ProtocolEndpoint:
    """How a protocol endpoint takes its input."""

    #: Body media types accepted on POST; () for endpoints without a body.
    content_types: tuple[str, ...] = ()
    #: The endpoint authenticates clients (HTTP Basic is checked for well-formedness).
    client_auth: bool = False
    #: The error code for a body that is not what the endpoint takes (RFC 7591 has its own).
    body_error: str = "invalid_request"


#: Endpoints that answer JSON (errors per RFC 6749 §5.2 / RFC 6750), by Flask endpoint name.
JSON_ENDPOINTS = {
    # JSON bodies too: Auth0's SDKs post token requests as JSON.
    "oauth.issue_token": ProtocolEndpoint((FORM, JSON), client_auth=True),
    "oauth.revoke_token": ProtocolEndpoint((FORM,), client_auth=True),
    "introspection.introspect_token": ProtocolEndpoint((FORM,), client_auth=True),
    "registration.register_client": ProtocolEndpoint((JSON,), body_error="invalid_client_metadata"),
    "registration.manage_client": ProtocolEndpoint((JSON,), body_error="invalid_client_metadata"),
    "oauth.userinfo": ProtocolEndpoint((FORM,)),
    "oauth.discovery": ProtocolEndpoint(),
    "oauth.jwks": ProtocolEndpoint(),
    "api.me": ProtocolEndpoint(),
}


#: Protocol endpoints a browser visits: same input checks, but errors are pages, never
#: redirects (the redirect URI is not trusted until it has been validated).
PAGE_ENDPOINTS = {
    "oauth.authorize": ProtocolEndpoint((FORM,)),
    "logout.end_session": ProtocolEndpoint((FORM,)),
    "logout.auth0_logout": ProtocolEndpoint(),
}
