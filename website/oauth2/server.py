"""The composition root: the AuthorizationServer with every grant, endpoint and extension."""

import secrets

from authlib.integrations.flask_oauth2 import AuthorizationServer as _AuthorizationServer
from authlib.oauth2.base import invalid_error_characters
from authlib.oauth2.rfc6749 import InvalidScopeError, scope_to_list
from authlib.oauth2.rfc6749.errors import (
    InvalidClientError,
    InvalidRequestError,
)
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from flask import current_app, g
from flask import request as flask_request
from werkzeug.datastructures import MultiDict
from werkzeug.local import LocalProxy

from website.cli import (
    create_api_command,
    delete_api_command,
    grant_api_command,
    list_apis_command,
    revoke_api_command,
)
from website.extensions import db
from website.oauth2.audiences import ResourceIndicators, ResourceTokenGenerator
from website.oauth2.client_auth import authenticating_client_id
from website.oauth2.compat import (
    JsonBodyRequest,
    _has_json_body,
    authenticate_client_secret_basic,
    issuer_parameter,
    json_body_parameters,
)
from website.oauth2.endpoints import RevocationEndpoint
from website.oauth2.grants import (
    AuthorizationCodeGrant,
    ClientCredentialsGrant,
    CodeChallenge,
    ImplicitGrant,
    LockedOutClientError,
    PasswordGrant,
    RefreshTokenGrant,
    save_token,
)
from website.oauth2.keys import KeyRing
from website.oauth2.oidc import OpenIDCode, OpenIDHybridGrant, OpenIDImplicitGrant, UserInfoEndpoint
from website.store import throttle
from website.store.apis import api_scopes
from website.store.clients import _CLIENT_AND_LOCK, _possible_client_id, query_client


class AuthorizationServer(_AuthorizationServer):
    """Authlib's server, also taking token requests with a JSON body as Auth0 does, telling
    which grants and endpoints are registered (for the discovery documents), and kept from
    building error descriptions it cannot send; failed client authentications are throttled
    per client and address."""

    def create_oauth2_request(self, request):
        if _has_json_body():
            return JsonBodyRequest(flask_request, json_body_parameters(flask_request) or MultiDict())
        return super().create_oauth2_request(request)

    def create_token_response(self, request=None):
        if _has_json_body() and json_body_parameters(flask_request) is None:
            error = InvalidRequestError("A JSON request body must be an object whose values are strings.")
            return self.handle_error_response(None, error)
        return super().create_token_response(request)

    def authenticate_client(self, request, methods, endpoint="token"):
        client_id = authenticating_client_id(request)  # one method only, or invalid_request
        subjects = (("client", client_id[:200]), ("client_address", throttle.client_address()))
        if wait := self._locked_for_prefetching_client(client_id, subjects):
            raise LockedOutClientError(wait)
        try:
            return super().authenticate_client(request, methods, endpoint)
        except InvalidClientError:
            if wait := throttle.record_failure(*subjects):
                raise LockedOutClientError(wait)
            raise
        finally:
            g.pop("prefetched_client", None)

    @staticmethod
    def _locked_for_prefetching_client(client_id: str, subjects) -> int:
        """The lockout of the subjects; with counters in the database, read in the same query
        as the client, which query_client then returns without a second query."""
        if throttle.uses_database() and _possible_client_id(client_id):
            row = db.session.execute(
                _CLIENT_AND_LOCK, {"client_id": client_id, **throttle.key_parameters(*subjects)}
            ).first()
            if row is not None:
                g.prefetched_client = row[0]
                return throttle.wait_until(row[1])
        return throttle.locked_for(*subjects)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        #: Extensions applied to every grant, whichever registered it (see register_grant_extension).
        self._grant_extensions = []

    def register_grant_extension(self, extension) -> None:
        """Apply ``extension`` to every grant the server creates, like a per-grant extension."""
        self._grant_extensions.append(extension)

    def get_authorization_grant(self, request):
        # Values are stored with the code (nonce, scope, ...): PostgreSQL text cannot hold NUL.
        if any("\x00" in value for values in request.payload.datalist.values() for value in values):
            raise InvalidRequestError("Request parameters must not contain NUL characters.")
        # Authlib quotes these values in error descriptions, which may hold only printable
        # ASCII (RFC 6749 §4.1.2.1); anything else made Authlib raise ValueError, a 500.
        for name in ("response_type", "redirect_uri"):
            value = request.payload.data.get(name)
            if value and invalid_error_characters(value):
                raise InvalidRequestError(f"Invalid '{name}' in request.")
        grant = super().get_authorization_grant(request)
        for extension in self._grant_extensions:
            extension(grant)
        return grant

    def get_token_grant(self, request):
        grant = super().get_token_grant(request)
        for extension in self._grant_extensions:
            extension(grant)
        return grant

    def validate_requested_scope(self, scope):
        # Registered APIs define scopes of their own besides the server's (resources.py).
        if scope and self.scopes_supported:
            requested = set(scope_to_list(scope)) - set(self.scopes_supported)
            # Only a scope the server does not define needs the query for the APIs' scopes.
            if requested and not api_scopes().issuperset(requested):
                raise InvalidScopeError()

    @property
    def authorization_grant_classes(self) -> list[type]:
        """The grants registered for the authorization endpoint."""
        return [grant_cls for grant_cls, _ in self._authorization_grants]

    @property
    def token_grant_classes(self) -> list[type]:
        """The grants registered for the token endpoint."""
        return [grant_cls for grant_cls, _ in self._token_grants]

    @property
    def endpoint_registry(self) -> dict[str, list]:
        """Endpoint name (revocation, userinfo, ...) -> its registered endpoint objects."""
        return self._endpoints


#: The current app's AuthorizationServer (one per app, built by ``init_app``).
authorization: AuthorizationServer = LocalProxy(lambda: current_app.extensions["authorization_server"])


def create_token_generator(config) -> BearerTokenGenerator:
    """Random opaque bearer tokens with the configured lifetime."""
    lifetime = config["OAUTH2_ACCESS_TOKEN_LIFETIME"]
    # secrets.token_urlsafe reads the OS random source once per token; Authlib's
    # generate_token draws each character separately, 50x slower for the same entropy.
    return BearerTokenGenerator(
        access_token_generator=lambda **kwargs: secrets.token_urlsafe(32),  # 256 bits
        refresh_token_generator=lambda **kwargs: secrets.token_urlsafe(36),  # 288 bits
        expires_generator=lambda client, grant_type: lifetime,
    )


def init_app(app) -> AuthorizationServer:
    """Build the app's authorization server with its grants and endpoints."""

    authorization = AuthorizationServer()
    authorization.init_app(app, query_client=query_client, save_token=save_token)
    authorization.register_client_auth_method("client_secret_basic", authenticate_client_secret_basic)
    authorization.register_token_generator("default", create_token_generator(app.config))
    authorization.scopes_supported = app.config["OAUTH2_SCOPES_SUPPORTED"].split()
    authorization.register_grant(AuthorizationCodeGrant, [CodeChallenge(required=True), OpenIDCode()])
    authorization.register_grant(ImplicitGrant)
    authorization.register_grant(PasswordGrant)
    authorization.register_grant(ClientCredentialsGrant)
    authorization.register_grant(RefreshTokenGrant)
    authorization.register_endpoint(RevocationEndpoint)
    register(app, authorization)
    app.extensions["authorization_server"] = authorization
    return authorization


def register(app, server) -> None:
    """Add OpenID Connect to the app's authorization server."""
    from .oauth2 import CodeChallenge, require_oauth

    server.register_grant(OpenIDImplicitGrant)
    server.register_grant(OpenIDHybridGrant, [CodeChallenge(required=True)])
    server.register_endpoint(UserInfoEndpoint(resource_protector=require_oauth))
    server.register_extension(issuer_parameter)
    app.extensions["oidc_key_ring"] = KeyRing()
    app.extensions["oidc_discovery"] = {}


def init_audiences(app) -> None:
    """Make the server issue JWT access tokens for registered APIs, and add the CLI commands."""
    from .oauth2 import create_token_generator

    server = app.extensions["authorization_server"]
    server.register_token_generator("default", ResourceTokenGenerator(create_token_generator(app.config)))
    server.register_grant_extension(ResourceIndicators())
    for command in (create_api_command, list_apis_command, delete_api_command, grant_api_command,
                    revoke_api_command):
        app.cli.add_command(command)
