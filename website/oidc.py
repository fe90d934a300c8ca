"""OpenID Connect on top of the OAuth 2.0 server: id_tokens and their claims, the OIDC
grants and the UserInfo endpoint, signing keys and the JWKS, the issuer, the authorization
request parameters (prompt, max_age, login_hint, screen_hint), and the discovery documents
built from what the server registered.
"""

import json
import threading
import time
from dataclasses import dataclass, field
from datetime import timezone
from urllib.parse import urlencode, urlsplit

from authlib.common.urls import add_params_to_uri
from authlib.consts import default_json_headers
from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import InvalidRequestError, OAuth2Error
from authlib.oauth2.rfc6750.errors import InvalidTokenError
from authlib.oauth2.rfc9207 import IssuerParameter as _IssuerParameter
from authlib.oidc.core import OpenIDCode as _OpenIDCode
from authlib.oidc.core import OpenIDHybridGrant as _OpenIDHybridGrant
from authlib.oidc.core import OpenIDImplicitGrant as _OpenIDImplicitGrant
from authlib.oidc.core import UserInfo
from authlib.oidc.core import UserInfoEndpoint as _UserInfoEndpoint
from authlib.oidc.core.errors import ConsentRequiredError, LoginRequiredError
from authlib.oidc.core.grants.util import validate_request_prompt
from flask import current_app, g, request, url_for
from joserfc.jwk import RSAKey
from sqlalchemy import delete, func, or_, select

from . import audit
from .consent import consent_required
from .models import AuthorizationCode, ResourceServer, SigningKey, User, db, now

#: The one algorithm id_tokens are signed with (OpenID Connect's mandatory default).
ID_TOKEN_ALG = "RS256"
RSA_KEY_SIZE = 2048
#: Extra seconds a retired key stays published, for clock skew and in-flight tokens.
KEY_RETIREMENT_LEEWAY = 300
#: How long clients may cache the JWKS and discovery documents.
JWKS_MAX_AGE = 300
DISCOVERY_MAX_AGE = 3600

#: The claims each scope releases, in the id_token and from UserInfo.
SCOPE_CLAIMS = {
    "openid": ["sub"],
    "profile": ["name", "preferred_username", "updated_at"],
    "email": ["email", "email_verified"],
}
#: Claims of the id_token itself (nonce, at_hash and c_hash when they apply), besides scope claims.
ID_TOKEN_CLAIMS = ["iss", "aud", "exp", "iat", "auth_time", "nonce", "at_hash", "c_hash"]
#: The ``prompt`` values this server acts on (others are ignored, as OIDC Core allows).
PROMPT_VALUES = ["none", "login", "consent"]


def get_issuer() -> str:
    """The issuer: ``OAUTH2_ISSUER`` exactly as configured, else the URL the request came in on."""
    return current_app.config.get("OAUTH2_ISSUER") or request.url_root


# Signing keys ---------------------------------------------------------------------------


def create_signing_key() -> SigningKey:
    """Generate an RSA signing key and add it to the session (the caller commits)."""
    key = RSAKey.generate_key(RSA_KEY_SIZE, auto_kid=True)  # kid: the RFC 7638 thumbprint
    row = SigningKey(
        kid=key.kid,
        alg=ID_TOKEN_ALG,
        public_jwk={**key.as_dict(private=False), "use": "sig", "alg": ID_TOKEN_ALG},
        private_jwk=key.as_dict(private=True),
        created_at=now(),
    )
    db.session.add(row)
    return row


def ensure_signing_key() -> SigningKey | None:
    """Create the first signing key when there is none; return it, or None if one existed."""
    if db.session.scalar(select(SigningKey.id).limit(1)) is not None:
        return None
    row = create_signing_key()
    db.session.commit()
    return row


def rotate_signing_keys() -> tuple[SigningKey, list[SigningKey], int]:
    """Add a new signing key and retire the others.

    A retired key loses its private half at once but stays published until every token it
    may have signed has expired. Returns the new key, the retired keys still published, and
    how many long-expired keys were deleted.
    """
    config = current_app.config
    stamp = now()
    # JWT access tokens for APIs (resources.py) may live longer than the default lifetime.
    longest_api = db.session.scalar(select(func.max(ResourceServer.access_token_lifetime))) or 0
    keep = max(config["OAUTH2_ID_TOKEN_LIFETIME"], config["OAUTH2_ACCESS_TOKEN_LIFETIME"], longest_api)
    deleted = db.session.execute(
        delete(SigningKey).where(SigningKey.publish_until <= stamp)
    ).rowcount
    for old in db.session.scalars(select(SigningKey).where(SigningKey.retired_at.is_(None))):
        old.retired_at = stamp
        old.publish_until = stamp + keep + KEY_RETIREMENT_LEEWAY
        old.private_jwk = None
    new = create_signing_key()
    audit.record("key_rotated", kid=new.kid, retired=deleted)
    db.session.commit()
    key_ring().expire()
    published = db.session.scalars(
        select(SigningKey).where(SigningKey.retired_at.is_not(None), SigningKey.publish_until > stamp)
        .order_by(SigningKey.id)
    ).all()
    return new, list(published), deleted


@dataclass(frozen=True)
class KeySet:
    """One loaded generation of the signing keys."""

    newest_kid: str
    signing_key: RSAKey
    #: (publish_until or None, public JWK) for every key that may still be published.
    public_keys: list[tuple[int | None, dict]]
    jwks_cache: dict = field(default_factory=dict, compare=False)

    def jwks_json(self, at: int) -> str:
        """The JWKS of the keys published at ``at``, serialized once per set of keys."""
        published = tuple(jwk["kid"] for until, jwk in self.public_keys if until is None or until > at)
        cached = self.jwks_cache.get(published)
        if cached is None:
            keys = [jwk for _, jwk in self.public_keys if jwk["kid"] in published]
            cached = self.jwks_cache[published] = json.dumps({"keys": keys})
        return cached


class KeyRing:
    """The signing keys this process loaded, reloaded when another instance rotates them.

    The newest kid is read (one indexed query) at most once per OIDC_KEY_CHECK_INTERVAL
    seconds; keys are parsed only when it changes. A rotation by this process shows at once
    (``expire``); one by another instance within the interval, while the key this instance
    signed with stays published (rotate_signing_keys), so its tokens keep verifying.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._keys: KeySet | None = None
        self._checked_at = float("-inf")

    def expire(self) -> None:
        """Read the keys again on next use (after this process rotated them)."""
        self._checked_at = float("-inf")

    def current(self) -> KeySet:
        """The current key set, creating the first key if the database has none."""
        keys = self._keys
        checked = time.monotonic()
        if keys is not None and checked - self._checked_at < current_app.config["OIDC_KEY_CHECK_INTERVAL"]:
            return keys
        keys = self._check()
        self._checked_at = checked
        return keys

    def _check(self) -> KeySet:
        newest = db.session.scalar(select(SigningKey.kid).order_by(SigningKey.id.desc()).limit(1))
        if newest is None:
            ensure_signing_key()
            newest = db.session.scalar(select(SigningKey.kid).order_by(SigningKey.id.desc()).limit(1))
        keys = self._keys
        if keys is not None and keys.newest_kid == newest:
            return keys
        with self._lock:
            if self._keys is None or self._keys.newest_kid != newest:
                self._keys = self._load()
            return self._keys

    def _load(self) -> KeySet:
        rows = db.session.scalars(
            select(SigningKey)
            .where(or_(SigningKey.publish_until.is_(None), SigningKey.publish_until > now()))
            .order_by(SigningKey.id.desc())
        ).all()
        signer = next((row for row in rows if row.private_jwk), None)
        if signer is None:
            # Two rotations at once retired each other's keys: start a fresh one.
            create_signing_key()
            db.session.commit()
            return self._load()
        return KeySet(
            newest_kid=rows[0].kid,
            signing_key=RSAKey.import_key(signer.private_jwk),
            public_keys=[(row.publish_until, row.public_jwk) for row in rows],
        )


def key_ring() -> KeyRing:
    """This app's key ring (one per app and process)."""
    return current_app.extensions["oidc_key_ring"]


def signing_key() -> RSAKey:
    """The key that signs in this request; fixed for the request so kid and signature agree."""
    if "oidc_signing_key" not in g:
        g.oidc_signing_key = key_ring().current().signing_key
    return g.oidc_signing_key


def jwks_json() -> str:
    """The published public keys as a serialized JWKS."""
    return key_ring().current().jwks_json(now())


# Claims ---------------------------------------------------------------------------------


def generate_user_info(user: User, scope: str) -> UserInfo:
    """The user's claims that the scope releases (``sub`` with ``openid``)."""
    updated_at = user.updated_at or user.created_at
    if updated_at.tzinfo is None:  # SQLite returns naive datetimes, stored as UTC
        updated_at = updated_at.replace(tzinfo=timezone.utc)
    claims = {
        "sub": user.sub,
        "name": user.name or user.username,
        "preferred_username": user.username,
        "updated_at": int(updated_at.timestamp()),
    }
    if user.email:
        claims["email"] = user.email
        claims["email_verified"] = bool(user.email_verified)
    released = {c for s in scope.split() for c in SCOPE_CLAIMS.get(s, [])}
    return UserInfo({k: v for k, v in claims.items() if k in released})


def nonce_was_used(nonce: str, request) -> bool:
    """Tell whether a code was already issued to this client with this nonce (a replay)."""
    return db.session.scalar(
        select(AuthorizationCode.id).where(
            AuthorizationCode.client_id == request.payload.client_id, AuthorizationCode.nonce == nonce
        ).limit(1)
    ) is not None


class IdTokenSigning:
    """How every OIDC grant here signs id_tokens: RS256 with the current key, its kid in
    the header, iss exactly the issuer and aud the client_id."""

    def get_client_algorithm(self, client) -> str:
        return ID_TOKEN_ALG

    def get_encode_header(self, client) -> dict:
        return {"alg": ID_TOKEN_ALG, "typ": "JWT", "kid": signing_key().kid}

    def resolve_client_private_key(self, client):
        return signing_key()

    def get_client_claims(self, client) -> dict:
        return {
            "iss": get_issuer(),
            "aud": client.get_client_id(),
            "exp": int(time.time()) + current_app.config["OAUTH2_ID_TOKEN_LIFETIME"],
        }

    def generate_user_info(self, user, scope):
        return generate_user_info(user, scope)


class OpenIDCode(IdTokenSigning, _OpenIDCode):
    """The code flow's OpenID Connect extension: an id_token with the token response."""

    def exists_nonce(self, nonce, request) -> bool:
        return nonce_was_used(nonce, request)

    def __call__(self, grant):
        super().__call__(grant)
        # prompt=none/login/consent apply to plain OAuth requests too (Auth0 honours them);
        # hooks are a set, so for openid requests this is not run twice.
        grant.register_hook("after_validate_consent_request", validate_request_prompt)


class ImplicitAuthTime:
    """auth_time for id_tokens issued at the authorization endpoint: the session's log-in."""

    def get_compatible_claims(self, request):
        claims = super().get_compatible_claims(request)
        claims["auth_time"] = getattr(request, "auth_time", None) or claims["auth_time"]
        return claims


class OpenIDImplicitGrant(IdTokenSigning, ImplicitAuthTime, _OpenIDImplicitGrant):
    """response_type=id_token and "id_token token" for clients registered for them."""

    def authenticate_token_endpoint_client(self):
        from .oauth2 import ImplicitGrant

        return ImplicitGrant.authenticate_token_endpoint_client(self)

    def exists_nonce(self, nonce, request) -> bool:
        return nonce_was_used(nonce, request)


class OpenIDHybridGrant(IdTokenSigning, ImplicitAuthTime, _OpenIDHybridGrant):
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

    def save_authorization_code(self, code, request):
        from .oauth2 import AuthorizationCodeGrant

        return AuthorizationCodeGrant.save_authorization_code(self, code, request)

    def exists_nonce(self, nonce, request) -> bool:
        return nonce_was_used(nonce, request)


class UserInfoEndpoint(_UserInfoEndpoint):
    """OIDC UserInfo: the claims of the token's scopes, for a bearer token with ``openid``."""

    def __call__(self, request):
        # Always plain JSON: Authlib would sign for a client whose metadata names a
        # userinfo_signed_response_alg, without a kid and failing for algorithms other than
        # RS256; signed UserInfo is not offered (nor listed in discovery).
        token = self.resource_protector.acquire_token("openid")
        return 200, self.generate_user_info(token.get_user(), token.scope), default_json_headers

    def generate_user_info(self, user, scope):
        if user is None:
            raise InvalidTokenError(description="This token was issued to a client, not for a user.")
        return generate_user_info(user, scope)


class IssuerParameter(_IssuerParameter):
    """RFC 9207: ``iss`` in every authorization response, in the fragment when the response
    uses one (Authlib's default always adds it to the query)."""

    def get_issuer(self) -> str:
        return get_issuer()

    def add_issuer_parameter(self, authorization_server, response):
        location = response.location
        if location:
            fragment = bool(urlsplit(location).fragment)
            response.location = add_params_to_uri(location, {"iss": self.get_issuer()}, fragment=fragment)


issuer_parameter = IssuerParameter()


# Authorization request parameters -------------------------------------------------------


def _redirect_target(grant) -> tuple[str, bool]:
    """Where an error for this (validated) request is sent, and whether in the fragment."""
    redirect_uri = grant.redirect_uri or grant.validate_authorization_redirect_uri(
        grant.request, grant.request.client
    )
    return redirect_uri, isinstance(grant, grants.ImplicitGrant)


def authentication_step(grant, end_user, auth_time: int | None) -> str | None:
    """What the person must do before the consent page: "login", "signup" or nothing.

    Acts on prompt (none, login, consent), max_age and screen_hint=signup; raises the
    OAuth2Error to send back for a response_mode other than the response type's, or when
    prompt=none forbids the page that would be needed.
    """
    grant.request.auth_time = auth_time
    data = grant.request.payload.data
    prompts = (data.get("prompt") or "").split()
    redirect_uri, fragment = _redirect_target(grant)
    # Each response type answers in one mode: tokens never go in the query (OAuth 2.0
    # Multiple Response Types §3), and form_post would carry no RFC 9207 iss.
    expected_mode = "fragment" if fragment else "query"
    if data.get("response_mode", expected_mode) != expected_mode:
        raise InvalidRequestError(f"This response_type answers with response_mode={expected_mode} only.",
                                  redirect_uri=redirect_uri, redirect_fragment=fragment)
    max_age = data.get("max_age")
    if max_age is not None:
        # isascii: str.isdigit() also admits digits such as "²" that int() refuses.
        if not (max_age.isascii() and max_age.isdigit()) or len(max_age) > 10:
            raise InvalidRequestError("'max_age' must be a whole number of seconds.",
                                      redirect_uri=redirect_uri, redirect_fragment=fragment)
    login = end_user is None or "login" in prompts or grant.prompt == "login"
    if not login and max_age is not None and now() - (auth_time or 0) > int(max_age):
        login = True
    if login:
        if "none" in prompts:
            raise LoginRequiredError(redirect_uri=redirect_uri, redirect_fragment=fragment)
        return "signup" if data.get("screen_hint") == "signup" else "login"
    if "none" in prompts and consent_required(grant, end_user):
        # prompt=none may go on only when the remembered consent already covers the scopes.
        raise ConsentRequiredError(redirect_uri=redirect_uri, redirect_fragment=fragment)
    return None


def login_redirect(step: str) -> str:
    """The log-in (or sign-up) page, returning to this authorization request afterwards.

    The request comes back without "login" in prompt and without max_age, so the fresh
    log-in satisfies it instead of asking again; the id_token's auth_time tells the client.
    """
    back = []
    for key, value in request.args.items(multi=True):
        if key == "max_age":
            continue
        if key == "prompt":
            value = " ".join(p for p in value.split() if p != "login")
            if not value:
                continue
        back.append((key, value))
    next_url = request.path + ("?" + urlencode(back) if back else "")
    args = {"next": next_url}
    login_hint = request.args.get("login_hint")
    if step == "login" and login_hint:
        args["login_hint"] = login_hint
    return url_for("auth.signup" if step == "signup" else "auth.login", **args)


# Discovery ------------------------------------------------------------------------------

#: Metadata name -> view function, filled by ``advertise`` where the views are defined.
ADVERTISED_ENDPOINTS: dict[str, object] = {}


def advertise(name: str):
    """Decorator: list this view in the discovery documents as ``name`` (e.g. token_endpoint)."""

    def decorate(view):
        ADVERTISED_ENDPOINTS[name] = view
        return view

    return decorate


def _endpoint_url(origin: str, view) -> str:
    endpoint = next(name for name, func in current_app.view_functions.items() if func is view)
    return origin + url_for(endpoint)


def server_metadata(server, issuer: str) -> dict:
    """Every metadata value, read from what the server registered and uses."""
    from .oauth2 import pkce_methods

    parts = urlsplit(issuer)
    origin = f"{parts.scheme}://{parts.netloc}"
    metadata = {"issuer": issuer}
    for name, view in ADVERTISED_ENDPOINTS.items():
        metadata[name] = _endpoint_url(origin, view)
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
    metadata["response_modes_supported"] = ["query", "fragment"]
    metadata["grant_types_supported"] = grant_types
    metadata["token_endpoint_auth_methods_supported"] = auth_methods
    for name, endpoints in server.endpoint_registry.items():
        methods = getattr(endpoints[0], "CLIENT_AUTH_METHODS", None)
        if methods and f"{name}_endpoint" in metadata:
            metadata[f"{name}_endpoint_auth_methods_supported"] = list(methods)
    metadata["code_challenge_methods_supported"] = pkce_methods()
    metadata["authorization_response_iss_parameter_supported"] = True
    metadata["subject_types_supported"] = ["public"]
    metadata["id_token_signing_alg_values_supported"] = [ID_TOKEN_ALG]
    metadata["claims_supported"] = ID_TOKEN_CLAIMS + [c for cs in SCOPE_CLAIMS.values() for c in cs]
    metadata["prompt_values_supported"] = PROMPT_VALUES
    metadata["claims_parameter_supported"] = False
    metadata["request_parameter_supported"] = False
    metadata["request_uri_parameter_supported"] = False
    return metadata


def discovery_json(server) -> str:
    """The discovery document for the current issuer, serialized once per process and issuer."""
    issuer = get_issuer()
    cache = current_app.extensions["oidc_discovery"]
    if issuer not in cache:
        cache[issuer] = json.dumps(server_metadata(server, issuer))
    return cache[issuer]


def register(app, server) -> None:
    """Add OpenID Connect to the app's authorization server."""
    from .oauth2 import CodeChallenge, require_oauth

    server.register_grant(OpenIDImplicitGrant)
    server.register_grant(OpenIDHybridGrant, [CodeChallenge(required=True)])
    server.register_endpoint(UserInfoEndpoint(resource_protector=require_oauth))
    server.register_extension(issuer_parameter)
    app.extensions["oidc_key_ring"] = KeyRing()
    app.extensions["oidc_discovery"] = {}
