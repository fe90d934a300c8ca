"""The ResourceProtector that guards /api/me and UserInfo."""


from authlib.consts import default_json_headers
from authlib.integrations.flask_oauth2 import ResourceProtector as _ResourceProtector
from authlib.integrations.flask_oauth2.errors import raise_http_exception
from authlib.oauth2.rfc6749.errors import (
    MissingAuthorizationError,
    UnsupportedTokenTypeError,
)
from authlib.oauth2.rfc6750 import BearerTokenValidator, InsufficientScopeError
from flask import json

from website.models.grants import Token
from website.store.tokens import MAX_TOKEN_LENGTH, read_token_by_access_token


class BearerValidator(BearerTokenValidator):
    """Checks a bearer token by the hash of its value: unknown, expired and revoked tokens fail."""

    def authenticate_token(self, token_string: str) -> Token | None:
        if not token_string or len(token_string) > MAX_TOKEN_LENGTH:
            return None
        # Read-only: a plain record, so every request sees the row as stored now.
        token = read_token_by_access_token(token_string)
        if token is not None and token.audience:
            # A token issued for an API (RFC 8707 / 9068) is for that API only, not for this
            # server's own resources (/api/me, userinfo): no token mix-up.
            return None
        return token


class ResourceProtector(_ResourceProtector):
    """Answers resource requests per RFC 6750 §3, which Authlib leaves loose: no bearer token
    is a 401 with a bare ``Bearer`` challenge (Authlib sends a lower-case scheme and a made-up
    error code), and a 403 for a missing scope names the error in the challenge too."""

    def raise_error_response(self, error):
        if isinstance(error, (MissingAuthorizationError, UnsupportedTokenTypeError)):
            body = {"error": "invalid_token",
                    "error_description": "Send an access token in an 'Authorization: Bearer' header."}
            headers = [*default_json_headers, ("WWW-Authenticate", "Bearer")]
            raise_http_exception(401, json.dumps(body), headers)
        if isinstance(error, InsufficientScopeError):
            body = dict(error.get_body())
            challenge = f'Bearer error="insufficient_scope", error_description="{error.description}"'
            headers = [*default_json_headers, ("WWW-Authenticate", challenge)]
            raise_http_exception(403, json.dumps(body), headers)
        super().raise_error_response(error)


#: Protects resource endpoints such as /api/me; its validator holds no per-app state.
require_oauth = ResourceProtector()


require_oauth.register_token_validator(BearerValidator())
