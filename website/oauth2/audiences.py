"""APIs (resource servers) and the access tokens issued for them (RFC 8707, RFC 9068)."""

import re
from urllib.parse import urlsplit

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import InvalidScopeError, scope_to_list
from authlib.oauth2.rfc9068 import JWTBearerTokenGenerator
from flask import current_app, g

from website.models.apis import ResourceServer
from website.oauth2.acr import sign_in_of
from website.oauth2.keys import get_issuer, get_signing_keyset
from website.store.apis import api_allows, cached_api
from website.store.groups import group_names, role_names

#: The parameters naming the API a token is for: RFC 8707's, then Auth0's.
RESOURCE_PARAMETERS = ("resource", "audience")


#: RFC 6749 §3.3 scope-token characters.
_SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5B\x5D-\x7E]+$")


class InvalidTargetError(OAuth2Error):
    """RFC 8707 §2: the requested resource is unknown, invalid or not allowed."""

    error = "invalid_target"
    description = "The requested resource (audience) is not an API registered on this server."


def requested_resource(data) -> str | None:
    """The API an authorization or token request names with ``resource`` or ``audience``."""
    values = []
    for name in RESOURCE_PARAMETERS:
        raw = data.getlist(name) if hasattr(data, "getlist") else data.get(name)
        values += [v for v in ([raw] if isinstance(raw, str) else raw or []) if v]
    if len(set(values)) > 1:
        raise InvalidTargetError("Ask for one API at a time: a single 'resource' or 'audience'.")
    return values[0] if values else None


def resolve_api(identifier: str | None, **error_args) -> ResourceServer | None:
    """The API a request names (None when it names none); ``invalid_target`` when unknown."""
    if identifier is None:
        return None
    api = cached_api(identifier)
    if api is None:
        raise InvalidTargetError(**error_args)
    return api


def check_api_access(client, api: ResourceServer | None, **error_args) -> None:
    """A client gets tokens for an API only if the API allows it: an explicit grant by an
    administrator, whether or not the API defines scopes (registering an API's scope is not
    enough, and an API without scopes is not open to every client)."""
    if api is None:
        return
    if not api_allows(api, client.client_id):
        raise InvalidTargetError("This client is not allowed to get tokens for that API.", **error_args)


def check_api_scopes(scope: str | None, api: ResourceServer | None, **error_args) -> None:
    """An API's own scopes may be asked for only in a token for that API."""
    server_scopes = set(current_app.config["OAUTH2_SCOPES"])
    allowed = server_scopes | set(api.scopes if api else [])
    foreign = [s for s in scope_to_list(scope) or [] if s not in allowed]
    if foreign:
        raise InvalidScopeError(
            f"The scope {' '.join(foreign)} belongs to an API: ask for it with that API's "
            "'audience' (or 'resource').", **error_args)


def use_api(grant, api: ResourceServer | None) -> None:
    """Make the grant issue its token for ``api`` (a JWT), or an opaque token for None."""
    # The token generator has no access to the request (Authlib passes only client, user,
    # scope), so the chosen API travels in flask.g for this request; save_token reads it
    # from the request to store the token's audience.
    g.oauth2_resource_server = api
    grant.request.audience = api.identifier if api else None
    # The sign-in the token is for travels the same way, for the JWT's auth_time, acr and amr.
    # (At the token endpoint this runs before Authlib sets request.user for a code.)
    g.oauth2_sign_in = sign_in_of(grant.request)


class ResourceIndicators:
    """A grant extension: validates ``resource`` / ``audience`` and picks the API whose token
    the grant issues, at the authorization endpoint and at the token endpoint."""

    def __call__(self, grant) -> None:
        grant.register_hook("after_validate_consent_request", self.check_authorization_request)
        grant.register_hook("before_create_authorization_response", self.before_authorization_response)
        grant.register_hook("before_create_token_response", self.before_token_response)

    @staticmethod
    def _error_args(grant, redirect_uri) -> dict:
        return {"redirect_uri": redirect_uri, "redirect_fragment": grant.request.payload.response_type != "code",
                "state": grant.request.payload.state}

    def check_authorization_request(self, grant, redirect_uri) -> None:
        error_args = self._error_args(grant, redirect_uri)
        data = grant.request.payload.datalist
        api = resolve_api(requested_resource(data), **error_args)
        check_api_access(grant.request.client, api, **error_args)
        check_api_scopes(grant.request.payload.scope, api, **error_args)
        # The consent page names the API, and remembered consent covers only the APIs it named.
        grant.request.audience = api.identifier if api else None

    def before_authorization_response(self, grant, redirect_uri, grant_user) -> None:
        # Implicit and hybrid responses carry an access token made right here.
        use_api(grant, resolve_api(requested_resource(grant.request.payload.datalist),
                                    **self._error_args(grant, redirect_uri)))

    def before_token_response(self, grant) -> None:
        request = grant.request
        asked = requested_resource(request.payload.datalist)
        code = getattr(request, "authorization_code", None)
        parent = getattr(request, "refresh_token", None)
        granted = getattr(code, "resource", None) or getattr(parent, "audience", None)
        if granted and asked and asked != granted:
            raise InvalidTargetError("The grant was for another API; a token can only be for that one.")
        if asked and not granted and (code is not None or parent is not None):
            # The user approved this grant without that API: it cannot be added afterwards.
            raise InvalidTargetError("Name the API ('audience' or 'resource') in the authorization request.")
        api = resolve_api(granted or asked)
        check_api_access(request.client, api)
        if code is None and parent is None:
            # Client credentials and password grants name their scopes here.
            check_api_scopes(request.payload.scope, api)
        use_api(grant, api)


class JWTAccessTokenGenerator(JWTBearerTokenGenerator):
    """RFC 9068 access tokens for one API, signed with the server's current key for
    ACCESS_TOKEN_SIGNING_ALG (RS256, or ES256)."""

    def __init__(self, api: ResourceServer, refresh_token_generator):
        lifetime = api.access_token_lifetime
        super().__init__(issuer=get_issuer(), alg=current_app.config["ACCESS_TOKEN_SIGNING_ALG"], refresh_token_generator=refresh_token_generator,
                         expires_generator=lambda client, grant_type: lifetime)
        self.api = api

    def get_jwks(self):
        return get_signing_keyset(self.alg)

    def get_audiences(self, client, user, scope) -> str:
        return self.api.identifier

    def get_extra_claims(self, client, grant_type, user, scope) -> dict:
        # Authlib sets sub to str(user.get_user_id()), the row id; the subject is user.sub.
        if user is None:
            return binding_claims()
        claims = {"sub": user.sub}
        if "groups" in (scope or "").split():
            claims["groups"] = group_names(user.id)
        if (roles := role_names(user.id, client.client_id)) is not None:
            claims["roles"] = roles
        # RFC 9068 §2.2.1: how the person signed in, when the token came from a sign-in.
        amr, acr, auth_time = g.get("oauth2_sign_in") or (None, None, None)
        sign_in = {"auth_time": auth_time, "acr": acr, "amr": amr}
        claims.update({k: v for k, v in sign_in.items() if v is not None})
        return {**claims, **binding_claims()}


def binding_claims() -> dict:
    """What this request's token carries besides its subject: the DPoP key it is bound to
    (RFC 9449 §6.1 ``cnf.jkt``) and who acts for the subject (RFC 8693 §4.1 ``act``); set in
    flask.g by the grant extensions, which see the request the generator does not."""
    claims = {}
    if jkt := g.get("oauth2_dpop_jkt"):
        claims["cnf"] = {"jkt": jkt}
    if act := g.get("oauth2_token_act"):
        claims["act"] = act
    return claims


class ResourceTokenGenerator:
    """The server's default token generator: a JWT for the API the request named, else the
    opaque bearer token."""

    def __init__(self, opaque_generator):
        self.opaque_generator = opaque_generator

    def __call__(self, grant_type, client, user=None, scope=None, expires_in=None, include_refresh_token=True):
        api = g.get("oauth2_resource_server")
        if api is None:
            token = self.opaque_generator(grant_type, client, user, scope, expires_in, include_refresh_token)
        else:
            generator = JWTAccessTokenGenerator(api, self.opaque_generator.refresh_token_generator)
            # The API's lifetime wins over the grant's default.
            token = generator(grant_type, client, user, scope, None, include_refresh_token)
        if g.get("oauth2_dpop_jkt"):
            token["token_type"] = "DPoP"  # RFC 9449 §5.1
        return token


def validate_identifier(identifier: str) -> str | None:
    """Return why an API identifier is unacceptable, or None.

    RFC 8707 wants an absolute URI without a fragment, and that is what to use; Auth0 also
    allows plain names (e.g. ``my-api``), so those are accepted for apps moving from Auth0.
    """
    if not identifier or len(identifier) > 2000:
        return "The identifier must be 1 to 2000 characters."
    if any(c.isspace() or ord(c) < 32 for c in identifier):
        return "The identifier cannot contain spaces or control characters."
    if "#" in identifier:
        return "The identifier must not contain a fragment (#); use e.g. https://api.example.com/."
    try:
        urlsplit(identifier)
    except ValueError:
        return f"{identifier} is not a valid URI."
    return None
