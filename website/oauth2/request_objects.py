"""Request objects (RFC 9101, OpenID Connect Core §6) and pushed authorization requests
(RFC 9126) as the authorization endpoint reads them.

Authlib's ``JWTAuthenticationRequest`` decodes a ``request`` parameter before the grant is
chosen, verified with the keys the client registered (``client_keys.py``, the same as
``private_key_jwt``), with the one algorithm the client registered as
``request_object_signing_alg`` or else any of SIGNING_ALGS; ``none`` (unsigned) only for a
client that registered exactly that. A ``request_uri`` this server issued at the PAR endpoint
brings the pushed parameters instead. A ``request_uri`` on another server is never fetched:
it is refused (``oidc.refuse_request_objects``).

How the parameters combine (the two specs differ): for an OpenID Connect request (``openid``
in scope) the request object's values take precedence and the other query parameters still
apply (OIDC Core §6.3.3); for a plain OAuth request only the request object's parameters
count (RFC 9101 §5). A pushed request's parameters are the whole request (RFC 9126 §4).
"""

import base64
import json
import warnings
from collections import defaultdict

from authlib.oauth2.rfc6749.errors import InvalidClientError, InvalidRequestError
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from authlib.oauth2.rfc9101 import JWTAuthenticationRequest
from authlib.oauth2.rfc9101.errors import InvalidRequestObjectError, InvalidRequestUriError
from authlib.oidc.core.grants.util import is_openid_scope
from flask import current_app, g
from joserfc.errors import SecurityWarning

from website.http.guard import VSCHAR_PARAMETERS
from website.oauth2.client_keys import SIGNING_ALGS, ClientKeysError, client_key_set
from website.oauth2.keys import get_issuer
from website.store.pushed_requests import pushed_parameters, query_pushed_request

#: What a request object may be signed with: the asymmetric algorithms of client assertions,
#: and ``none`` for a client that registered it.
REQUEST_OBJECT_ALGS = [*SIGNING_ALGS, "none"]

#: The prefix of the request_uris the PAR endpoint issues (RFC 9126 §2.2).
PAR_URI_PREFIX = "urn:ietf:params:oauth:request_uri:"

#: A request object's JWT claims that are not authorization request parameters.
JWT_CLAIMS = {"iss", "aud", "exp", "iat", "nbf", "jti", "sub"}


class ParametersPayload(BasicOAuth2Payload):
    """An authorization request's parameters from a request object or a pushed request."""

    def __init__(self, parameters: dict):
        super().__init__(parameters)
        self._datalist = defaultdict(list, self._datalist)

    def getlist(self, name: str) -> list:
        return self._datalist.get(name, [])


def as_parameter(value) -> str:
    """A request object's claim as the string the parameter would be: numbers as digits
    (max_age), objects as JSON (claims)."""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


def checked_parameters(claims: dict) -> dict:
    """A request object's claims as parameters, held to the input guard's rules for the query
    (a signed object is still what the client sent): no NUL anywhere (PostgreSQL cannot store
    one), printable ASCII where RFC 6749 asks it. No value is longer than the ``request``
    parameter, which the guard limits."""
    parameters = {}
    for name, claim in claims.items():
        if name in JWT_CLAIMS:
            continue
        value = as_parameter(claim)
        if "\x00" in name or "\x00" in value:
            raise InvalidRequestObjectError("The request object holds a NUL character, which is never valid.")
        if name in VSCHAR_PARAMETERS and not all(0x20 <= ord(c) <= 0x7E for c in value):
            raise InvalidRequestObjectError(f"The request object's '{name}' may contain only printable ASCII.")
        parameters[name] = value
    return parameters


def merged_parameters(query: dict, claims: dict) -> dict:
    """The request's parameters from the query and the request object's claims (see above)."""
    parameters = checked_parameters(claims)
    query = {k: v for k, v in query.items() if k not in ("request", "request_uri")}
    if query.get("response_type") and parameters.get("response_type", query["response_type"]) != query["response_type"]:
        # OIDC Core §6.1: the query's response_type must match the request object's.
        raise InvalidRequestError("The 'response_type' in the request object differs from the query's.")
    if is_openid_scope(parameters.get("scope") or query.get("scope") or ""):
        return {**query, **parameters}
    return parameters


def _header_kid(token: str) -> str | None:
    try:
        segment = token.split(".", 1)[0]
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, TypeError):
        return None
    kid = header.get("kid") if isinstance(header, dict) else None
    return kid if isinstance(kid, str) else None


class RequestObjects(JWTAuthenticationRequest):
    """The server extension reading ``request`` (when OAUTH2_REQUEST_OBJECTS is on) and this
    server's PAR ``request_uri`` (when OAUTH2_PAR is on) before the grant is chosen."""

    def __init__(self):
        # request_uri by reference is never fetched (PAR's are handled below).
        super().__init__(support_request=True, support_request_uri=False)

    def parse_authorization_request(self, authorization_server, request):
        data = request.payload.data
        config = current_app.config
        request_uri = data.get("request_uri")
        if config["OAUTH2_PAR"] and isinstance(request_uri, str) and request_uri.startswith(PAR_URI_PREFIX):
            return self.load_pushed_request(request)
        if "request" not in data or not config["OAUTH2_REQUEST_OBJECTS"]:
            return None  # nothing to read; what is left is refused by the grants' hook
        query = dict(data)
        g.request_object_kid = _header_kid(data["request"] or "")
        with warnings.catch_warnings():
            # joserfc warns that "none" is deprecated: it is accepted only from a client that
            # registered it (get_request_object_signing_algorithms).
            warnings.simplefilter("ignore", SecurityWarning)
            try:
                super().parse_authorization_request(authorization_server, request)
            except InvalidClientError as error:
                # Authlib answers a missing or unknown client_id with 404; the authorization
                # endpoint's other client errors are 400 (a page, never a redirect).
                error.status_code = 400
                raise
        claims = request.payload.data
        client_id = query.get("client_id")
        if "iss" in claims and claims["iss"] != client_id:
            raise InvalidRequestObjectError("The request object's 'iss' must be the client_id.",
                                            state=query.get("state"))
        aud = claims.get("aud")
        audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else [None]
        if aud is not None and get_issuer() not in audiences:
            raise InvalidRequestObjectError("The request object's 'aud' must be this server's issuer.",
                                            state=query.get("state"))
        request.payload = ParametersPayload(merged_parameters(query, claims))
        request.request_object = True
        return None

    def load_pushed_request(self, request) -> None:
        """Replace the request's parameters with those the client pushed (RFC 9126 §4)."""
        data = request.payload.data
        if "request" in data:
            raise InvalidRequestError("Send either 'request' or 'request_uri', not both.")
        item = query_pushed_request(data["request_uri"], data.get("client_id") or "")
        if item is None:
            raise InvalidRequestUriError("The request_uri is unknown, expired, already used or another "
                                         "client's: push the request again.", state=data.get("state"))
        request.payload = ParametersPayload(pushed_parameters(item))
        request.pushed_request_id = item.id

    def get_request_object_signing_algorithms(self, client) -> list[str]:
        registered = client.client_metadata.get("request_object_signing_alg")
        return [registered] if registered else list(SIGNING_ALGS)

    def resolve_client_public_key(self, client):
        if client.client_metadata.get("request_object_signing_alg") == "none":
            return None  # unsigned: the client registered that it sends them so
        try:
            return client_key_set(client, kid=g.get("request_object_kid"))
        except ClientKeysError as error:
            raise InvalidRequestObjectError(
                f"The request object cannot be verified: {error}; register the client's public keys "
                "(jwks or jwks_uri).") from error

    def get_server_metadata(self) -> dict:
        return {}

    def get_client_require_signed_request_object(self, client) -> bool:
        return False


request_objects = RequestObjects()
