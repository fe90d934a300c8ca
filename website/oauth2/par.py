"""Pushed authorization requests (RFC 9126). Authlib (1.9) has no PAR endpoint, so this is
one in Authlib's endpoint shape: the client authenticates as at the token endpoint, the
request is validated as the authorization endpoint would (a ``request`` object in it is read
by ``request_objects.RequestObjects``), and its parameters are stored under a random
request_uri (kept as its SHA-256), bound to the client, short-lived, spent by the
authorization response (``spend_pushed_request``)."""

import secrets

from authlib.consts import default_json_headers
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import InvalidRequestError
from authlib.oauth2.rfc9101.errors import InvalidRequestUriError, RequestNotSupportedError
from flask import current_app

from website.oauth2.client_auth import CLIENT_AUTH_METHODS
from website.oauth2.request_objects import PAR_URI_PREFIX, ParametersPayload
from website.store.pushed_requests import claim_pushed_request, save_pushed_request

#: Client authentication parameters: not part of the authorization request that is stored.
CLIENT_AUTH_PARAMETERS = ("client_secret", "client_assertion", "client_assertion_type")


class PushedAuthorizationEndpoint:
    """The PAR endpoint (RFC 9126 §2): 201 with ``request_uri`` and ``expires_in``."""

    ENDPOINT_NAME = "pushed_authorization_request"
    #: The token endpoint's client authentication methods (RFC 9126 §2).
    AUTH_METHODS = CLIENT_AUTH_METHODS

    def __init__(self, server):
        self.server = server

    def create_endpoint_request(self, request):
        return self.server.create_oauth2_request(request)

    def __call__(self, request):
        client = self.server.authenticate_client(request, self.AUTH_METHODS, self.ENDPOINT_NAME)
        data = request.payload.data
        if "request_uri" in data:
            raise InvalidRequestError("A pushed request must not hold 'request_uri' (RFC 9126 §2.1).")
        if "request" in data and not current_app.config["OAUTH2_REQUEST_OBJECTS"]:
            raise RequestNotSupportedError("Request objects (the 'request' parameter) are not supported.")
        if data.get("client_id") and data["client_id"] != client.client_id:
            raise InvalidRequestError("The 'client_id' is not the authenticated client.")
        parameters = {k: v for k, v in data.items() if k not in CLIENT_AUTH_PARAMETERS}
        parameters["client_id"] = client.client_id
        request.payload = ParametersPayload(parameters)
        try:
            # Read a request object (server hook), then validate as the authorization endpoint:
            # client, redirect URI, response type, scope, PKCE.
            grant = self.server.get_authorization_grant(request)
            grant.validate_authorization_request()
        except OAuth2Error as error:
            # Answered here in JSON, never by a redirect (RFC 9126 §2.3).
            error.redirect_uri = None
            raise
        lifetime = current_app.config["OAUTH2_PAR_LIFETIME"]
        request_uri = PAR_URI_PREFIX + secrets.token_urlsafe(32)
        save_pushed_request(request_uri, client.client_id, dict(request.payload.data), lifetime)
        return 201, {"request_uri": request_uri, "expires_in": lifetime}, default_json_headers


def par_required(client) -> bool:
    """Tell whether the client must push its authorization requests: site-wide
    (OAUTH2_REQUIRE_PAR) or its ``require_pushed_authorization_requests`` (RFC 9126 §6)."""
    config = current_app.config
    if not config["OAUTH2_PAR"]:
        return False
    return config["OAUTH2_REQUIRE_PAR"] or client.client_metadata.get("require_pushed_authorization_requests") is True


def require_pushed_requests(grant) -> None:
    """A grant extension: refuse a request that was not pushed from a client that must push."""
    grant.register_hook("after_validate_consent_request", _check_pushed)


def _check_pushed(grant, redirect_uri) -> None:
    if getattr(grant.request, "pushed_request_id", None) is None and par_required(grant.request.client):
        raise InvalidRequestError(
            "This client must push its authorization requests first (pushed_authorization_request_endpoint).",
            redirect_uri=redirect_uri, redirect_fragment=isinstance(grant, grants.ImplicitGrant))


def spend_pushed_request(grant) -> None:
    """Spend the request_uri the grant's request came from (once only); raise
    invalid_request_uri, for the client, when it was already spent."""
    item_id = getattr(grant.request, "pushed_request_id", None)
    if item_id is not None and not claim_pushed_request(item_id):
        raise InvalidRequestUriError("This request_uri was already used or has expired: push the request again.",
                                     redirect_uri=grant.redirect_uri, state=grant.request.payload.state,
                                     redirect_fragment=isinstance(grant, grants.ImplicitGrant))
