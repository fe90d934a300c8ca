"""OpenID Connect on top of the grants: id_tokens and their claims, the OIDC grants
and the UserInfo endpoint."""

import time
from datetime import timezone

from authlib.consts import default_json_headers
from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import OAuth2Error
from authlib.oauth2.rfc6750.errors import InvalidTokenError
from authlib.oidc.core import OpenIDCode as _OpenIDCode
from authlib.oidc.core import OpenIDHybridGrant as _OpenIDHybridGrant
from authlib.oidc.core import OpenIDImplicitGrant as _OpenIDImplicitGrant
from authlib.oidc.core import OpenIDToken, UserInfo
from authlib.oidc.core import UserInfoEndpoint as _UserInfoEndpoint
from authlib.oidc.core.errors import (
    RequestNotSupportedError,
    RequestURINotSupportedError,
)
from authlib.oidc.core.grants.util import validate_request_prompt
from joserfc import jwt
from sqlalchemy import select

from website.extensions import db
from website.http.cors import check_client_origin, request_origin
from website.models.grants import AuthorizationCode
from website.models.users import User
from website.oauth2.acr import parse_amr
from website.oauth2.claims import SCOPE_CLAIMS, load_claims, requested_claims
from website.oauth2.client_metadata import token_lifetime
from website.oauth2.grants import ClientByIdOnly, SavesCodes
from website.oauth2.keys import client_signing_alg, get_issuer, id_token_alg, signing_key
from website.oauth2.protector import userinfo_protector
from website.oauth2.response_modes import RedirectResponse
from website.store.groups import group_names, role_names

#: Claims of the id_token itself (nonce, at_hash and c_hash when they apply), besides scope claims.
ID_TOKEN_CLAIMS = ["iss", "aud", "exp", "iat", "auth_time", "nonce", "at_hash", "c_hash", "acr", "amr", "sid"]


#: The ``prompt`` values this server acts on (others are ignored, as OIDC Core allows).
PROMPT_VALUES = ["none", "login", "consent"]


def generate_user_info(user: User, scope: str, claims: list[str] = (), client_id: str | None = None) -> UserInfo:
    """The user's claims that the scope releases (``sub`` with ``openid``), and the
    individual ``claims`` the request asked for (the claims parameter); for a client that
    defines roles, the person's ``roles`` in it."""
    updated_at = user.updated_at or user.created_at
    if updated_at.tzinfo is None:  # SQLite returns naive datetimes, stored as UTC
        updated_at = updated_at.replace(tzinfo=timezone.utc)
    values = {
        "sub": user.sub,
        "name": user.name or user.username,
        "preferred_username": user.username,
        "updated_at": int(updated_at.timestamp()),
    }
    if user.email:
        values["email"] = user.email
        values["email_verified"] = bool(user.email_verified)
    released = {c for s in scope.split() for c in SCOPE_CLAIMS.get(s, [])} | set(claims)
    if "groups" in released:
        values["groups"] = group_names(user.id)
    if client_id is not None and (roles := role_names(user.id, client_id)) is not None:
        values["roles"] = roles
        released.add("roles")
    return UserInfo({k: v for k, v in values.items() if k in released})


def nonce_was_used(nonce: str, request) -> bool:
    """Tell whether a code was already issued to this client with this nonce (a replay)."""
    return db.session.scalar(
        select(AuthorizationCode.id).where(
            AuthorizationCode.client_id == request.payload.client_id, AuthorizationCode.nonce == nonce
        ).limit(1)
    ) is not None


class IdTokenSigning:
    """How every OIDC grant here signs id_tokens: with the current key of the client's
    algorithm (id_token_alg), its kid in the header, iss exactly the issuer and aud the
    client_id. Authlib hashes at_hash and c_hash to match the algorithm."""

    def get_client_algorithm(self, client) -> str:
        return id_token_alg(client)

    def get_encode_header(self, client) -> dict:
        alg = id_token_alg(client)
        return {"alg": alg, "typ": "JWT", "kid": signing_key(alg).kid}

    def resolve_client_private_key(self, client):
        return signing_key(id_token_alg(client))

    def get_client_claims(self, client) -> dict:
        return {
            "iss": get_issuer(),
            "aud": client.get_client_id(),
            "exp": int(time.time()) + token_lifetime(client, "id_token"),
        }

    def generate_user_info(self, user, scope):
        return generate_user_info(user, scope)

    def get_compatible_claims(self, request):
        claims = super().get_compatible_claims(request)
        # The client's roles the person holds, in every id_token of a client that defines roles.
        if request.user is not None and (roles := role_names(request.user.id, request.client.client_id)) is not None:
            claims["roles"] = roles
        return claims


class OpenIDCode(IdTokenSigning, _OpenIDCode):
    """The code flow's OpenID Connect extension: an id_token with the token response."""

    def exists_nonce(self, nonce, request) -> bool:
        return nonce_was_used(nonce, request)

    def get_authorization_code_claims(self, authorization_code) -> dict:
        claims = super().get_authorization_code_claims(authorization_code)
        # The id_token claims the claims parameter asked for, stored with the code; the
        # scope's claims are added after these.
        if requested := load_claims(authorization_code.claims, "id_token"):
            claims.update(generate_user_info(authorization_code.user, "", requested))
        if authorization_code.sid:
            claims["sid"] = authorization_code.sid  # the browser session (Back-Channel Logout §2.4)
        return claims

    def __call__(self, grant):
        super().__call__(grant)
        # prompt=none/login/consent apply to plain OAuth requests too (Auth0 honours them);
        # hooks are a set, so for openid requests this is not run twice.
        grant.register_hook("after_validate_consent_request", validate_request_prompt)


class ImplicitAuthTime:
    """auth_time, amr, acr and sid for id_tokens issued at the authorization endpoint: the
    session's log-in (set by services/login_policy.authentication_step)."""

    def get_compatible_claims(self, request):
        claims = super().get_compatible_claims(request)
        claims["auth_time"] = getattr(request, "auth_time", None) or claims["auth_time"]
        if amr := getattr(request, "amr", None):
            claims["amr"] = list(amr)
        if acr := getattr(request, "acr", None):
            claims["acr"] = acr
        if sid := getattr(request, "sid", None):
            claims["sid"] = sid
        return claims


class ImplicitIdTokenClaims:
    """id_tokens issued at the authorization endpoint: also the id_token claims the claims
    parameter asked for."""

    def generate_user_info(self, user, scope):
        return generate_user_info(user, scope, (requested_claims(self.request) or {}).get("id_token", []))


class OpenIDImplicitGrant(ClientByIdOnly, RedirectResponse, ImplicitIdTokenClaims, IdTokenSigning,
                          ImplicitAuthTime, _OpenIDImplicitGrant):
    """response_type=id_token and "id_token token" for clients registered for them."""

    def exists_nonce(self, nonce, request) -> bool:
        return nonce_was_used(nonce, request)


class OpenIDHybridGrant(SavesCodes, RedirectResponse, ImplicitIdTokenClaims, IdTokenSigning, ImplicitAuthTime,
                        _OpenIDHybridGrant):
    """The hybrid flow ("code id_token", "code token", "code id_token token"); its code is
    stored and redeemed like the code flow's."""

    def validate_authorization_request(self):
        # Authlib validates like the code flow and would send errors in the query; the
        # hybrid flow answers in the fragment (OAuth 2.0 Multiple Response Types §5).
        try:
            return super().validate_authorization_request()
        except OAuth2Error as error:
            error.redirect_fragment = True
            raise

    def exists_nonce(self, nonce, request) -> bool:
        return nonce_was_used(nonce, request)


class OpenIDRefresh(IdTokenSigning, OpenIDToken):
    """The refresh grant's OpenID Connect extension (OIDC Core §12.2): a refresh whose new
    token has the openid scope also returns a new id_token, signed like the others, for the
    same ``sub``, with the original sign-in's ``auth_time`` (stored with the token family)
    and no ``nonce`` (there is no authorization request to echo). Authlib's
    ``process_token`` hook leaves tokens without openid alone."""

    def get_compatible_claims(self, request):
        claims = super().get_compatible_claims(request)
        auth_time = request.refresh_token.auth_time
        if auth_time:
            claims["auth_time"] = auth_time
        else:
            # A token from before auth_time was stored: better none than a made-up one.
            del claims["auth_time"]
        # The original sign-in's amr, acr and sid, as auth_time (none for rows from before).
        if amr := parse_amr(request.refresh_token.amr):
            claims["amr"] = amr
        if acr := request.refresh_token.acr:
            claims["acr"] = acr
        if request.refresh_token.sid:
            claims["sid"] = request.refresh_token.sid
        return claims


#: Headers of a signed UserInfo response: a JWT, never cached (it holds personal data).
JWT_HEADERS = [("Content-Type", "application/jwt"), ("Cache-Control", "no-store"), ("Pragma", "no-cache")]


class UserInfoEndpoint(_UserInfoEndpoint):
    """OIDC UserInfo: the claims of the token's scopes, for a bearer token with ``openid``;
    a JWT signed with the current key (its kid in the header) when the client registered
    ``userinfo_signed_response_alg`` (OIDC Core §5.3.2), else JSON.

    Authlib's own ``__call__`` signs without a kid and for any algorithm a client names;
    errors go through the resource protector, so they answer as RFC 6750 §3 says."""

    def __call__(self, request):
        try:
            token = self.resource_protector.acquire_token(USERINFO_SCOPE)
            user_info = userinfo_claims(token)
        except OAuth2Error as error:
            return self.resource_protector.error_response(error)
        client = token.get_client()
        if request_origin() is not None:
            # CORS for the token's client; nothing is spent here, so a refused origin simply
            # gets no Access-Control-Allow-Origin and the browser hides the answer.
            check_client_origin(client.allowed_origins if client is not None else ())
        alg = client_signing_alg(client, "userinfo_signed_response_alg")
        if alg is None:
            return 200, user_info, default_json_headers
        key = signing_key(alg)
        claims = {**user_info, "iss": get_issuer(), "aud": client.get_client_id()}
        return 200, jwt.encode({"alg": alg, "kid": key.kid}, claims, key, [alg]), JWT_HEADERS



#: The scope a UserInfo token needs.
USERINFO_SCOPE = "openid"


def userinfo_claims(token) -> UserInfo:
    """The token's UserInfo claims: the scope's, and those the claims parameter asked for."""
    if token.get_user() is None:
        raise InvalidTokenError(description="This token was issued to a client, not for a user.")
    return generate_user_info(token.get_user(), token.scope, load_claims(token.claims, "userinfo"),
                              token.client_id)


def plain_userinfo(token_string: str) -> UserInfo | None:
    """UserInfo's plain JSON claims for a bearer GET (the front's answer below Flask,
    http/front.py): None for a token the endpoint refuses, one without a person, or a
    client that gets its UserInfo signed; the endpoint answers those."""
    token = userinfo_protector.accepted_bearer(token_string, [USERINFO_SCOPE])
    if token is None or token.get_user() is None:
        return None
    if client_signing_alg(token.get_client(), "userinfo_signed_response_alg") is not None:
        return None
    return userinfo_claims(token)


def refuse_request_objects(grant) -> None:
    """A grant extension: refuse ``request`` and ``request_uri`` (OIDC Core §6), which this
    server does not support (discovery says so), instead of ignoring them."""
    grant.register_hook("after_validate_consent_request", _check_no_request_object)


def _check_no_request_object(grant, redirect_uri) -> None:
    # Runs once client and redirect_uri are validated, so the error goes back to the client
    # (OIDC Core §3.1.2.6); before that, Authlib's own errors show the error page.
    # Ignoring the parameters would answer a request other than the one the client signed.
    data = grant.request.payload.data
    fragment = isinstance(grant, grants.ImplicitGrant)
    if "request" in data:
        raise RequestNotSupportedError("Request objects (the 'request' parameter) are not supported.",
                                       redirect_uri=redirect_uri, redirect_fragment=fragment)
    if "request_uri" in data:
        raise RequestURINotSupportedError("The 'request_uri' parameter is not supported.",
                                          redirect_uri=redirect_uri, redirect_fragment=fragment)
