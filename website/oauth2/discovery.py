"""The discovery documents (OpenID Connect Discovery, RFC 8414), built from what the
server registered."""

import json
from urllib.parse import urlsplit

from authlib.oauth2.rfc6749 import grants
from flask import current_app, url_for

from website.http.endpoints import advertised_endpoints
from website.oauth2.acr import ACR_VALUES
from website.oauth2.client_keys import SIGNING_ALGS
from website.oauth2.dpop import DPOP_SIGNING_ALGS
from website.oauth2.dpop import enabled as dpop_enabled
from website.oauth2.grants import pkce_methods
from website.oauth2.keys import ID_TOKEN_SIGNING_ALGS, USERINFO_SIGNING_ALGS, get_issuer
from website.oauth2.oidc import ID_TOKEN_CLAIMS, PROMPT_VALUES, SCOPE_CLAIMS
from website.oauth2.request_objects import REQUEST_OBJECT_ALGS
from website.oauth2.response_modes import RESPONSE_MODES

DISCOVERY_MAX_AGE = 3600


def server_metadata(server, issuer: str) -> dict:
    """Every metadata value, read from what the server registered and uses."""
    parts = urlsplit(issuer)
    origin = f"{parts.scheme}://{parts.netloc}"
    metadata = {"issuer": issuer}
    for name, endpoint in advertised_endpoints().items():
        metadata[name] = origin + url_for(endpoint)
    metadata["scopes_supported"] = list(server.scopes_supported)
    response_types, grant_types, auth_methods = [], [], []
    for grant_cls in server.authorization_grant_classes:
        response_types += sorted(grant_cls.RESPONSE_TYPES)
        if issubclass(grant_cls, grants.ImplicitGrant) and "implicit" not in grant_types:
            grant_types.append("implicit")
    for grant_cls in server.token_grant_classes:
        grant_types.append(grant_cls.GRANT_TYPE)
        auth_methods += [m for m in grant_cls.TOKEN_ENDPOINT_AUTH_METHODS if m not in auth_methods]
    metadata["response_types_supported"] = response_types
    metadata["response_modes_supported"] = list(RESPONSE_MODES)
    metadata["grant_types_supported"] = grant_types
    metadata["token_endpoint_auth_methods_supported"] = auth_methods
    if "private_key_jwt" in auth_methods:
        metadata["token_endpoint_auth_signing_alg_values_supported"] = SIGNING_ALGS
    for name, endpoints in server.endpoint_registry.items():
        methods = getattr(endpoints[0], "CLIENT_AUTH_METHODS", None)
        if methods and f"{name}_endpoint" in metadata:
            metadata[f"{name}_endpoint_auth_methods_supported"] = list(methods)
            if "private_key_jwt" in methods:
                metadata[f"{name}_endpoint_auth_signing_alg_values_supported"] = SIGNING_ALGS
    metadata["code_challenge_methods_supported"] = pkce_methods()
    metadata["authorization_response_iss_parameter_supported"] = True
    metadata["subject_types_supported"] = ["public"]
    metadata["id_token_signing_alg_values_supported"] = list(ID_TOKEN_SIGNING_ALGS)
    metadata["userinfo_signing_alg_values_supported"] = list(USERINFO_SIGNING_ALGS)
    metadata["claims_supported"] = ID_TOKEN_CLAIMS + [c for cs in SCOPE_CLAIMS.values() for c in cs] + ["roles"]
    metadata["acr_values_supported"] = list(ACR_VALUES)
    metadata["prompt_values_supported"] = PROMPT_VALUES
    metadata["claims_parameter_supported"] = True
    config = current_app.config
    metadata["request_parameter_supported"] = bool(config["OAUTH2_REQUEST_OBJECTS"])
    if config["OAUTH2_REQUEST_OBJECTS"]:
        metadata["request_object_signing_alg_values_supported"] = REQUEST_OBJECT_ALGS
    # A request_uri on another server is never fetched (a PAR request_uri is not that: RFC 9126).
    metadata["request_uri_parameter_supported"] = False
    # Logout tokens carry sid, and front-channel URLs get iss and sid when a client asks.
    if current_app.config["BACKCHANNEL_LOGOUT"]:
        metadata["backchannel_logout_supported"] = True
        metadata["backchannel_logout_session_supported"] = True
    if current_app.config["FRONTCHANNEL_LOGOUT"]:
        metadata["frontchannel_logout_supported"] = True
        metadata["frontchannel_logout_session_supported"] = True
    if config["OAUTH2_PAR"]:
        metadata["require_pushed_authorization_requests"] = bool(config["OAUTH2_REQUIRE_PAR"])
    if dpop_enabled():
        metadata["dpop_signing_alg_values_supported"] = list(DPOP_SIGNING_ALGS)
    return metadata


def discovery_json(server) -> str:
    """The discovery document for the current issuer, serialized once per process and issuer."""
    issuer = get_issuer()
    cache = current_app.extensions["oidc_discovery"]
    if issuer not in cache:
        cache[issuer] = json.dumps(server_metadata(server, issuer))
    return cache[issuer]
