"""Validation of client metadata (RFC 7591), shared by the client UI, the CLI and
dynamic registration, so every way of registering a client obeys the same rules."""

import re
from urllib.parse import urlsplit

from flask import current_app

from website.http.cors import origin_of
from website.models.redirect_uris import validate_redirect_uri, validate_web_uri
from website.oauth2.client_keys import SIGNING_ALGS, jwks_problem, jwks_uri_problem
from website.oauth2.keys import ID_TOKEN_SIGNING_ALGS, USERINFO_SIGNING_ALGS
from website.oauth2.scopes import supported_scopes

#: The device authorization grant (RFC 8628 §3.4), for devices without a browser.
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"

#: RFC 8693 token exchange.
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"


GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials", "implicit", "password", TOKEN_EXCHANGE,
               DEVICE_GRANT)


#: Kept for existing clients only: off by default in the form, labelled as discouraged.
LEGACY_GRANT_TYPES = ("implicit", "password")


#: client_secret_jwt is not offered: it needs the plain secret to check an HMAC, and secrets
#: are stored only as hashes (SECURITY.md).
AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt", "none")


#: Which grants a response type needs (OpenID Connect Registration §2); multi-valued
#: response types are written with their words sorted, as Authlib compares them.
RESPONSE_TYPE_GRANTS = {
    "code": {"authorization_code"},
    "token": {"implicit"},
    "id_token": {"implicit"},
    "id_token token": {"implicit"},
    "code id_token": {"authorization_code", "implicit"},
    "code token": {"authorization_code", "implicit"},
    "code id_token token": {"authorization_code", "implicit"},
}


#: Given when a client names no response types: one per grant, as before OpenID Connect.
DEFAULT_RESPONSE_TYPES = ("code", "token")


#: Grants that send the user's browser to a redirect URI.
REDIRECT_GRANTS = {"authorization_code", "implicit"}


#: Grants a public client (no secret) cannot use.
CONFIDENTIAL_ONLY_GRANTS = {"client_credentials", "password", TOKEN_EXCHANGE}


#: What an origin may be written with: scheme, host (or [IPv6]), port, a trailing slash.
_ORIGIN_CHARACTERS = re.compile(r"[A-Za-z0-9\-._~:/\[\]]+")


#: The most explicit web origins one client may list.
MAX_ALLOWED_ORIGINS = 100


#: No spaces or control characters (PostgreSQL text cannot even hold NUL).
_EMAIL = re.compile(r"^[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+\.[^@\s\x00-\x1f\x7f]+$")


class ClientMetadataError(ValueError):
    """Invalid metadata: ``field`` names the input, ``error`` is the RFC 7591 error code."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message
        self.error = "invalid_redirect_uri" if field == "redirect_uris" else "invalid_client_metadata"


def _string_list(data: dict, field: str) -> list[str]:
    value = data.get(field, [])
    if isinstance(value, str):
        value = value.split()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ClientMetadataError(field, f"{field} must be a list of strings.")
    # Keep the order given, drop duplicates and blanks.
    return list(dict.fromkeys(v.strip() for v in value if v.strip()))


def _optional_string(data: dict, field: str, max_length: int) -> str | None:
    value = data.get(field)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ClientMetadataError(field, f"{field} must be a string.")
    value = value.strip()
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ClientMetadataError(field, f"{field} must not contain control characters.")
    if len(value) > max_length:
        raise ClientMetadataError(field, f"{field} must be at most {max_length} characters.")
    return value or None


def validate_client_metadata(data: dict, allow_api_scopes: bool = False) -> dict:
    """Check and normalise RFC 7591 metadata; raise ClientMetadataError on the first problem.

    ``allow_api_scopes``: the caller may give the client scopes of registered APIs (the CLI
    and administrators may; self-service and dynamic registration may not).
    """
    metadata = dict(data)
    metadata["client_name"] = _client_name(data)
    for field in ("client_uri", "logo_uri"):
        metadata[field] = _web_uri(data, field)
    metadata["token_endpoint_auth_method"] = method = _auth_method(data)
    metadata["grant_types"] = grant_types = _grant_types(data, method)
    metadata["response_types"] = _response_types(data, grant_types)
    metadata["redirect_uris"] = _redirect_uris(data, grant_types)
    metadata["post_logout_redirect_uris"] = _logout_uris(data)
    # Kept in extra_metadata only when there are some, so other clients' metadata is unchanged.
    metadata.pop("allowed_origins", None)
    if origins := _allowed_origins(data):
        metadata["allowed_origins"] = origins
    metadata["scope"] = _scope(data, allow_api_scopes)
    metadata["contacts"] = _contacts(data)
    for field, allowed in SIGNED_RESPONSE_FIELDS.items():
        # Kept only when set, as for allowed_origins.
        metadata.pop(field, None)
        if alg := _signed_response_alg(data, field, allowed):
            metadata[field] = alg
    metadata["jwks"], metadata["jwks_uri"] = _client_keys(data, method)
    metadata["strict_auth_method"] = _flag(data, "strict_auth_method")
    metadata["require_mfa"] = _flag(data, "require_mfa")
    metadata.update(_logout_notification_metadata(data, metadata["redirect_uris"]))
    metadata["require_pushed_authorization_requests"] = _flag(data, "require_pushed_authorization_requests")
    metadata["request_object_signing_alg"] = _request_object_alg(data, metadata)
    metadata["dpop_bound_access_tokens"] = _dpop_bound(data)
    metadata["require_verified_email"] = _flag(data, "require_verified_email")
    for kind in TOKEN_KINDS:
        metadata[f"{kind}_lifetime"] = _lifetime(data, kind)
    return metadata


def _client_name(data: dict) -> str:
    name = _optional_string(data, "client_name", 100)
    if not name:
        raise ClientMetadataError("client_name", "Give the client a name.")
    return name


def _web_uri(data: dict, field: str) -> str | None:
    uri = _optional_string(data, field, 2000)
    if uri and (problem := validate_web_uri(uri)):
        raise ClientMetadataError(field, f"{field}: {problem}")
    return uri


def _auth_method(data: dict) -> str:
    method = data.get("token_endpoint_auth_method") or "client_secret_basic"
    if method not in AUTH_METHODS:
        raise ClientMetadataError(
            "token_endpoint_auth_method",
            f"token_endpoint_auth_method must be one of: {', '.join(AUTH_METHODS)}.",
        )
    return method


def _client_keys(data: dict, method: str) -> tuple[dict | None, str | None]:
    """RFC 7591 §2: a private_key_jwt client registers its public keys by value or by
    reference, not both (OpenID Connect Registration §2)."""
    jwks = data.get("jwks") or None
    jwks_uri = _optional_string(data, "jwks_uri", 2000)
    if jwks is not None and jwks_uri:
        raise ClientMetadataError("jwks", "Register jwks or jwks_uri, not both.")
    if jwks is not None and (problem := jwks_problem(jwks)):
        raise ClientMetadataError("jwks", problem)
    if jwks_uri and (problem := jwks_uri_problem(jwks_uri)):
        raise ClientMetadataError("jwks_uri", problem)
    if method == "private_key_jwt" and jwks is None and not jwks_uri:
        raise ClientMetadataError("jwks", "A private_key_jwt client must register its public keys: jwks or jwks_uri.")
    return jwks, jwks_uri


#: The tokens whose lifetime a client may choose (within OAUTH2_MAX_<KIND>_LIFETIME).
TOKEN_KINDS = ("access_token", "refresh_token", "id_token")
MIN_TOKEN_LIFETIME = 60


def _lifetime(data: dict, kind: str) -> int | None:
    """A client's own lifetime for one kind of token, in seconds (None: the site's)."""
    field = f"{kind}_lifetime"
    value = data.get(field)
    if value is None or value == "":
        return None
    if isinstance(value, str) and value.strip().isdigit() and len(value.strip()) < 12:
        value = int(value.strip())
    longest = current_app.config[f"OAUTH2_MAX_{kind.upper()}_LIFETIME"]
    if isinstance(value, bool) or not isinstance(value, int) or not MIN_TOKEN_LIFETIME <= value <= longest:
        raise ClientMetadataError(field, f"{field} must be a whole number of seconds from {MIN_TOKEN_LIFETIME}"
                                         f" to {longest} (this server's limit).")
    return value


def token_lifetime(client, kind: str) -> int:
    """How long the client's tokens of this kind live: its own choice, else the site's."""
    return (client.extra_metadata or {}).get(f"{kind}_lifetime") or current_app.config[f"OAUTH2_{kind.upper()}_LIFETIME"]


def _flag(data: dict, field: str) -> bool | None:
    """A true-or-false setting kept only when true (absent means false, RFC 9126 §6), so an
    edit merged over the old metadata turns it off: strict_auth_method (only the secret method
    registered, Basic or body), require_verified_email (codes only for verified addresses),
    require_mfa (people sign in to the app with a second factor), require_pushed_authorization_requests."""
    value = data.get(field)
    if value is None or value is False:
        return None
    if value is not True:
        raise ClientMetadataError(field, f"{field} must be true or false.")
    return True


#: What a client may register as request_object_signing_alg (OpenID Connect Registration §2).
REQUEST_OBJECT_ALGS = (*SIGNING_ALGS, "none")


def _request_object_alg(data: dict, metadata: dict) -> str | None:
    """The one algorithm the client signs request objects with; ``none`` registers that it
    sends them unsigned. Absent: any of SIGNING_ALGS, never ``none``."""
    alg = data.get("request_object_signing_alg")
    if alg is None or alg == "":
        return None
    if alg not in REQUEST_OBJECT_ALGS:
        raise ClientMetadataError("request_object_signing_alg",
                                  f"request_object_signing_alg must be one of: {', '.join(REQUEST_OBJECT_ALGS)}.")
    if alg != "none" and not metadata.get("jwks") and not metadata.get("jwks_uri"):
        raise ClientMetadataError("request_object_signing_alg",
                                  "Signed request objects are checked with the client's public keys: "
                                  "register jwks or jwks_uri.")
    return alg


def _dpop_bound(data: dict) -> bool | None:
    """RFC 9449 §5.2 ``dpop_bound_access_tokens``: the client always sends DPoP proofs, and a
    token request without one is refused. Kept only when true."""
    value = data.get("dpop_bound_access_tokens")
    if value is None or value is False:
        return None
    if value is not True:
        raise ClientMetadataError("dpop_bound_access_tokens", "dpop_bound_access_tokens must be true or false.")
    if not current_app.config["OAUTH2_DPOP"]:
        raise ClientMetadataError("dpop_bound_access_tokens", "This server does not offer DPoP (OAUTH2_DPOP is off).")
    return True


def _grant_types(data: dict, method: str) -> list[str]:
    grant_types = _string_list(data, "grant_types") if "grant_types" in data else ["authorization_code"]
    for grant in grant_types:
        if grant not in GRANT_TYPES or (grant == TOKEN_EXCHANGE and not current_app.config["OAUTH2_TOKEN_EXCHANGE"]):
            raise ClientMetadataError("grant_types", f"Unsupported grant type: {grant}.")
    if not grant_types:
        raise ClientMetadataError("grant_types", "Choose at least one grant type.")
    if DEVICE_GRANT in grant_types and not current_app.config["OAUTH2_DEVICE_FLOW"]:
        raise ClientMetadataError("grant_types", "The device flow is turned off on this server (OAUTH2_DEVICE_FLOW).")
    if method == "none":
        for grant in grant_types:
            if grant in CONFIDENTIAL_ONLY_GRANTS:
                raise ClientMetadataError(
                    "grant_types", f"A public client (no secret) cannot use the {grant} grant."
                )
    return grant_types


def _response_types(data: dict, grant_types: list[str]) -> list[str]:
    if "response_types" in data:
        # "token id_token" and "id_token token" are the same response type.
        requested = _string_list(data, "response_types")
        response_types = list(dict.fromkeys(" ".join(sorted(r.split())) for r in requested))
    else:
        response_types = [r for r in DEFAULT_RESPONSE_TYPES if RESPONSE_TYPE_GRANTS[r] & set(grant_types)]
    for response_type in response_types:
        needs = RESPONSE_TYPE_GRANTS.get(response_type)
        if needs is None:
            raise ClientMetadataError("response_types", f"Unsupported response type: {response_type}.")
        if not needs <= set(grant_types):
            raise ClientMetadataError(
                "response_types",
                f"The response type {response_type} needs the grant types: {', '.join(sorted(needs))}.",
            )
    return response_types


def _redirect_uris(data: dict, grant_types: list[str]) -> list[str]:
    allow_http = current_app.config["OAUTH2_ALLOW_HTTP_REDIRECT_URIS"]
    redirect_uris = _string_list(data, "redirect_uris")
    for uri in redirect_uris:
        if problem := validate_redirect_uri(uri, allow_http=allow_http):
            raise ClientMetadataError("redirect_uris", problem)
    if REDIRECT_GRANTS & set(grant_types) and not redirect_uris:
        raise ClientMetadataError("redirect_uris", "Register at least one redirect URI.")
    return redirect_uris


def _logout_uris(data: dict) -> list[str]:
    """OpenID Connect RP-Initiated Logout §3.1 (Auth0's "Allowed Logout URLs"): where the
    logout endpoints may send the browser back to; the same rules as redirect URIs."""
    allow_http = current_app.config["OAUTH2_ALLOW_HTTP_REDIRECT_URIS"]
    logout_uris = _string_list(data, "post_logout_redirect_uris")
    for uri in logout_uris:
        if problem := validate_redirect_uri(uri, allow_http=allow_http):
            raise ClientMetadataError("post_logout_redirect_uris", f"Logout URL: {problem}")
    return logout_uris


def _allowed_origins(data: dict) -> list[str]:
    """Auth0's "Allowed Web Origins": sites whose scripts may call the token, revocation,
    introspection and userinfo endpoints (CORS) besides the redirect URIs' own origins.
    Each is exactly ``scheme://host[:port]``, stored as browsers send it in ``Origin``."""
    allow_http = current_app.config["OAUTH2_ALLOW_HTTP_REDIRECT_URIS"]
    origins = []
    for value in _string_list(data, "allowed_origins"):
        if "*" in value:
            raise ClientMetadataError("allowed_origins",
                                      "An allowed origin names one site; wildcards (*) are not allowed.")
        origin = origin_of(value) if len(value) <= 2000 and _ORIGIN_CHARACTERS.fullmatch(value) else None
        if origin is None or urlsplit(value).path not in ("", "/"):
            raise ClientMetadataError(
                "allowed_origins",
                f"{value[:200]} is not an origin: write scheme://host[:port] only, "
                "like https://app.example.com.")
        host = urlsplit(origin).hostname
        if origin.startswith("http:") and not allow_http and host not in ("localhost", "127.0.0.1", "::1"):
            raise ClientMetadataError(
                "allowed_origins",
                "Plain http origins are allowed only for loopback hosts (127.0.0.1, [::1], localhost); "
                "use https.")
        origins.append(origin)
    origins = list(dict.fromkeys(origins))
    if len(origins) > MAX_ALLOWED_ORIGINS:
        raise ClientMetadataError("allowed_origins", f"List at most {MAX_ALLOWED_ORIGINS} allowed origins.")
    return origins


def _scope(data: dict, allow_api_scopes: bool) -> str:
    scope = data.get("scope")
    if scope is None or scope == "":
        # The server's own scopes; an API's scopes are given only on purpose (below).
        scopes = current_app.config["OAUTH2_SCOPES"]
    elif isinstance(scope, str):
        scopes = list(dict.fromkeys(scope.split()))
    else:
        raise ClientMetadataError("scope", "scope must be a space-separated string.")
    unknown = [s for s in scopes if s not in supported_scopes()]
    if unknown:
        raise ClientMetadataError("scope", f"Unsupported scope: {' '.join(unknown)}.")
    api_only = [s for s in scopes if s not in current_app.config["OAUTH2_SCOPES"]]
    if api_only and not allow_api_scopes:
        # An API's scopes let a client get tokens for that API: an administrator grants them.
        raise ClientMetadataError(
            "scope", f"Only an administrator can give a client an API's scopes: {' '.join(api_only)}.")
    return " ".join(scopes)


def _contacts(data: dict) -> list[str]:
    contacts = _string_list(data, "contacts")
    for contact in contacts:
        if not _EMAIL.match(contact) or len(contact) > 254:
            raise ClientMetadataError("contacts", f"{contact} is not an email address.")
    return contacts


#: OpenID Connect Registration §2: what the server signs for the client, and with which
#: algorithms it may (only what the server's keys sign with: no ``none``, no HMAC). Absent:
#: id_tokens signed with RS256, UserInfo as plain JSON.
SIGNED_RESPONSE_FIELDS = {"id_token_signed_response_alg": ID_TOKEN_SIGNING_ALGS,
                          "userinfo_signed_response_alg": USERINFO_SIGNING_ALGS}


def _signed_response_alg(data: dict, field: str, allowed: tuple[str, ...]) -> str | None:
    alg = data.get(field)
    if alg is None or alg == "":
        return None
    if alg not in allowed:
        raise ClientMetadataError(field, f"{field} must be one of: {', '.join(allowed)}.")
    return alg


#: OpenID Connect Back-Channel Logout 1.0 §2.2 and Front-Channel Logout 1.0 §2: where the
#: server tells the client that a session ended, and whether it wants the ``sid`` with it.
LOGOUT_NOTIFICATION_FIELDS = ("backchannel_logout_uri", "backchannel_logout_session_required",
                              "frontchannel_logout_uri", "frontchannel_logout_session_required")


def _logout_notification_metadata(data: dict, redirect_uris: list[str]) -> dict:
    """The four logout-notification fields (absent when unset, so other clients are unchanged)."""
    values = {}
    for channel in ("backchannel", "frontchannel"):
        field = f"{channel}_logout_uri"
        uri = _optional_string(data, field, 2000)
        if uri and not current_app.config[f"{channel.upper()}_LOGOUT"]:
            raise ClientMetadataError(field, f"{channel.capitalize()} logout is switched off on this server.")
        if uri and (problem := _notification_uri_problem(uri)):
            raise ClientMetadataError(field, f"{field}: {problem}")
        if uri and channel == "frontchannel" and origin_of(uri) not in {origin_of(r) for r in redirect_uris}:
            # Front-Channel Logout §2: the same scheme, host and port as a redirect URI.
            raise ClientMetadataError(field, "frontchannel_logout_uri must have the scheme, host and port "
                                             "of one of the redirect URIs.")
        values[field] = uri
        flag = f"{channel}_logout_session_required"
        required = data.get(flag)
        if required not in (None, False, True):
            raise ClientMetadataError(flag, f"{flag} must be true or false.")
        if required and not uri:
            raise ClientMetadataError(flag, f"{flag} needs a {field}.")
        values[flag] = True if required else None
    return values


def _notification_uri_problem(uri: str) -> str | None:
    """An absolute https URL (http only for loopback, or when OAUTH2_ALLOW_HTTP_REDIRECT_URIS),
    with no fragment (Back-Channel Logout §2.2, Front-Channel Logout §2)."""
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        return "not a valid URL."
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return "must be an absolute https URL."
    if parts.fragment or "#" in uri:
        return "must not contain a fragment (#...)."
    loopback = parts.hostname in ("localhost", "127.0.0.1", "::1")
    if parts.scheme == "http" and not loopback and not current_app.config["OAUTH2_ALLOW_HTTP_REDIRECT_URIS"]:
        return "plain http is allowed only for loopback hosts (127.0.0.1, [::1], localhost); use https."
    if any(c.isspace() for c in uri):
        return "must not contain spaces."
    return None
