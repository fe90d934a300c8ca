"""The composition root: the AuthorizationServer with every grant, endpoint and extension.

Everything the server does is registered in ``init_app`` below, and the discovery documents
read the same registrations, so they cannot drift from what the server does.
"""

import secrets

from authlib.integrations.flask_oauth2 import AuthorizationServer as _AuthorizationServer
from authlib.oauth2.base import invalid_error_characters
from authlib.oauth2.rfc6749 import InvalidScopeError, scope_to_list
from authlib.oauth2.rfc6749.errors import InvalidClientError, InvalidRequestError
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from flask import current_app
from flask import request as flask_request
from werkzeug.datastructures import MultiDict
from werkzeug.local import LocalProxy

from website.oauth2 import client_auth
from website.oauth2.audiences import ResourceIndicators, ResourceTokenGenerator
from website.oauth2.claims import ClaimsParameter
from website.oauth2.client_metadata import token_lifetime
from website.oauth2.compat import JsonBodyRequest, has_json_body, issuer_parameter, json_body_parameters
from website.oauth2.dpop import DPoPBinding, dpop_jkt_parameter
from website.oauth2.endpoints import EndSessionEndpoint, IntrospectionEndpoint, RevocationEndpoint
from website.oauth2.grants import (
    AuthorizationCodeGrant,
    ClientCredentialsGrant,
    CodeChallenge,
    ImplicitGrant,
    PasswordGrant,
    RefreshTokenGrant,
    save_token,
)
from website.oauth2.keys import KeyRing
from website.oauth2.token_exchange import TokenExchangeGrant
from website.oauth2.oidc import (
    OpenIDCode,
    OpenIDHybridGrant,
    OpenIDImplicitGrant,
    OpenIDRefresh,
    UserInfoEndpoint,
    refuse_request_objects,
)
from website.oauth2.protector import userinfo_protector
from website.oauth2.registration import ClientConfigurationEndpoint, ClientRegistrationEndpoint
from website.store.apis import api_scopes
from website.store.clients import query_client


class AuthorizationServer(_AuthorizationServer):
    """Authlib's server, also taking token requests with a JSON body as Auth0 does, telling
    which grants and endpoints are registered (for the discovery documents), and kept from
    building error descriptions it cannot send; failed client authentications are throttled
    per client and address."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        #: What was registered, for the discovery documents.
        self.authorization_grant_classes: list[type] = []
        self.token_grant_classes: list[type] = []
        self.endpoint_registry: dict[str, list] = {}

    def register_grant(self, grant_cls, extensions=None):
        super().register_grant(grant_cls, extensions)
        if hasattr(grant_cls, "check_authorization_endpoint"):
            self.authorization_grant_classes.append(grant_cls)
        if hasattr(grant_cls, "check_token_endpoint"):
            self.token_grant_classes.append(grant_cls)

    def register_endpoint(self, endpoint):
        super().register_endpoint(endpoint)
        name = endpoint.ENDPOINT_NAME
        self.endpoint_registry[name] = self.endpoint_registry.get(name, []) + [endpoint]

    def create_oauth2_request(self, request):
        if has_json_body():
            return JsonBodyRequest(flask_request, json_body_parameters(flask_request) or MultiDict())
        return super().create_oauth2_request(request)

    def create_token_response(self, request=None):
        if has_json_body() and json_body_parameters(flask_request) is None:
            error = InvalidRequestError("A JSON request body must be an object whose values are strings.")
            return self.handle_error_response(None, error)
        return super().create_token_response(request)

    def authenticate_client(self, request, methods, endpoint="token"):
        # Every grant and endpoint authenticates the client before anything else, so the
        # origin check here comes before any code, refresh token or password is used.
        wait = client_auth.read_client_with_lock(request)
        client_auth.check_origin(request)
        if wait:
            raise client_auth.LockedOutClientError(wait)
        try:
            return super().authenticate_client(request, methods, endpoint)
        except InvalidClientError as error:
            if wait := client_auth.record_failure(request):
                raise client_auth.LockedOutClientError(wait)
            # Authlib's "The client cannot authenticate with methods: [...]" becomes a sentence
            # naming the method the client registered; the status (401 with WWW-Authenticate
            # Basic where Authlib gives it) stays.
            error.description = client_auth.failure_description(request, error, methods, endpoint)
            raise

    def get_authorization_grant(self, request):
        # Authlib quotes these values in error descriptions, which may hold only printable
        # ASCII (RFC 6749 §4.1.2.1); anything else made Authlib raise ValueError, a 500.
        for name in ("response_type", "redirect_uri"):
            value = request.payload.data.get(name)
            if value and invalid_error_characters(value):
                raise InvalidRequestError(f"Invalid '{name}' in request.")
        return super().get_authorization_grant(request)

    def validate_requested_scope(self, scope):
        # Registered APIs define scopes of their own besides the server's (audiences.py).
        if scope and self.scopes_supported:
            requested = set(scope_to_list(scope)) - set(self.scopes_supported)
            # Only a scope the server does not define needs the query for the APIs' scopes.
            if requested and not api_scopes().issuperset(requested):
                raise InvalidScopeError()


#: The current app's AuthorizationServer (one per app, built by ``init_app``).
authorization: AuthorizationServer = LocalProxy(lambda: current_app.extensions["authorization_server"])


def create_token_generator(config) -> BearerTokenGenerator:
    """Random opaque bearer tokens, living as long as the client chose or the site says."""
    # secrets.token_urlsafe reads the OS random source once per token; Authlib's
    # generate_token draws each character separately, much slower for the same entropy.
    return BearerTokenGenerator(
        access_token_generator=lambda **kwargs: secrets.token_urlsafe(32),  # 256 bits
        refresh_token_generator=lambda **kwargs: secrets.token_urlsafe(36),  # 288 bits
        expires_generator=lambda client, grant_type: token_lifetime(client, "access_token"),
    )


def init_app(app) -> AuthorizationServer:
    """Build the app's authorization server with every grant, endpoint and extension."""
    server = AuthorizationServer()
    server.init_app(app, query_client=query_client, save_token=save_token)
    server.scopes_supported = app.config["OAUTH2_SCOPES"]
    client_auth.register(server)
    # A JWT (RFC 9068) for the API a request names, else an opaque bearer token.
    server.register_token_generator("default", ResourceTokenGenerator(create_token_generator(app.config)))
    # Every grant takes ``resource`` / ``audience`` (RFC 8707); code flows take PKCE; those
    # that issue id_tokens take OpenID Connect's claims parameter; every authorization-endpoint
    # grant refuses request objects (OIDC Core §6) until they are supported.
    # Every token-endpoint grant binds its tokens to the key of a DPoP proof (RFC 9449), and
    # the grants that issue codes take dpop_jkt.
    server.register_grant(AuthorizationCodeGrant, [CodeChallenge(required=True), OpenIDCode(),
                                                   refuse_request_objects, ResourceIndicators(),
                                                   ClaimsParameter(), dpop_jkt_parameter, DPoPBinding()])
    server.register_grant(ImplicitGrant, [refuse_request_objects, ResourceIndicators()])
    server.register_grant(PasswordGrant, [ResourceIndicators(), DPoPBinding()])
    server.register_grant(ClientCredentialsGrant, [ResourceIndicators(), DPoPBinding()])
    server.register_grant(RefreshTokenGrant, [OpenIDRefresh(), ResourceIndicators(), DPoPBinding()])
    server.register_grant(OpenIDImplicitGrant, [refuse_request_objects, ResourceIndicators(), ClaimsParameter()])
    server.register_grant(OpenIDHybridGrant, [CodeChallenge(required=True), refuse_request_objects,
                                              ResourceIndicators(), ClaimsParameter(), dpop_jkt_parameter])
    if app.config["OAUTH2_TOKEN_EXCHANGE"]:
        server.register_grant(TokenExchangeGrant, [DPoPBinding()])
    for endpoint in (RevocationEndpoint, IntrospectionEndpoint, ClientRegistrationEndpoint,
                     ClientConfigurationEndpoint, EndSessionEndpoint):
        server.register_endpoint(endpoint)
    server.register_endpoint(UserInfoEndpoint(resource_protector=userinfo_protector))
    server.register_extension(issuer_parameter)
    app.extensions["authorization_server"] = server
    app.extensions["oidc_key_ring"] = KeyRing()
    app.extensions["oidc_discovery"] = {}
    return server
