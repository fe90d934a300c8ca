"""Authlib endpoints: revocation (RFC 7009), introspection (RFC 7662) and
RP-initiated logout (end session)."""

import hmac
import json

from authlib.oauth2.rfc6749.errors import (
    InvalidRequestError,
)
from authlib.oauth2.rfc7009 import RevocationEndpoint as _RevocationEndpoint
from authlib.oauth2.rfc7662 import IntrospectionEndpoint as _IntrospectionEndpoint
from authlib.oidc.rpinitiated import EndSessionEndpoint as _EndSessionEndpoint
from flask import current_app, g
from sqlalchemy import select

from website.extensions import db
from website.models.apis import ResourceServer
from website.models.base import now
from website.models.grants import Token
from website.oauth2.acr import parse_amr
from website.oauth2.client_auth import throttle_subjects
from website.oauth2.grants import CLIENT_AUTH_METHODS
from website.oauth2.keys import ID_TOKEN_SIGNING_ALGS, get_issuer, get_public_jwks
from website.store import audit, throttle
from website.store.clients import read_client
from website.store.tokens import (
    MAX_TOKEN_LENGTH,
    TokenRecord,
    find_token,
    read_token_and_lock,
    read_token_by_access_token,
    read_token_by_refresh_token,
    revoke_family,
)


class TokenLookup:
    """For the revocation and introspection endpoints: how a presented token is found."""

    def check_params(self, request, client) -> None:
        # An unknown token_type_hint is ignored (RFC 7009 §2.1; RFC 7662 §2.1 extends the
        # search); Authlib refuses it, and introspection even with a 401.
        if "token" not in request.form:
            raise InvalidRequestError("Missing 'token' in request.")

    def query_token(self, token_string: str, token_type_hint: str | None) -> Token | None:
        return find_token(token_string, token_type_hint)


class RevocationEndpoint(TokenLookup, _RevocationEndpoint):
    """RFC 7009: a client revokes its own tokens; a refresh token takes its family with it."""

    CLIENT_AUTH_METHODS = CLIENT_AUTH_METHODS

    def revoke_token(self, token: Token, request) -> None:
        if token.matched_refresh_token:
            revoke_family(token.family_id, reason="refresh token revoked by client")
        else:
            token.access_token_revoked_at = token.access_token_revoked_at or now()
        audit.record("token_revoked", user=token.user, client_id=token.client_id,
                     token_type="refresh_token" if token.matched_refresh_token else "access_token")
        db.session.commit()


#: Introspection needs a secret: public clients cannot prove who is asking.
INTROSPECTION_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt"]


class IntrospectionEndpoint(TokenLookup, _IntrospectionEndpoint):
    """RFC 7662 over the hashed tokens of the Token table (opaque and JWT access tokens alike)."""

    CLIENT_AUTH_METHODS = INTROSPECTION_AUTH_METHODS

    def query_token(self, token_string: str, token_type_hint: str | None) -> TokenRecord | None:
        # Read-only: plain records (revocation, which writes, uses ORM rows).
        return find_token(token_string, token_type_hint, read_token_by_access_token, read_token_by_refresh_token)

    def check_permission(self, token: TokenRecord, client, request) -> bool:
        if token.check_client(client):
            return True
        return bool(token.audience) and db.session.scalar(select(ResourceServer.id).where(
            ResourceServer.identifier == token.audience,
            ResourceServer.introspection_client_id == client.client_id,
        )) is not None

    def create_introspection_payload(self, token: TokenRecord | None) -> dict:
        if token is None or (token.user is not None and token.user.disabled_at is not None):
            return {"active": False}
        if token.matched_refresh_token:
            if not token.is_refresh_token_active():
                return {"active": False}
        elif token.is_expired() or token.is_revoked():
            return {"active": False}
        return self.introspect_token(token)

    def introspect_token(self, token: TokenRecord) -> dict:
        payload = {
            "active": True,
            "scope": token.scope,
            "client_id": token.client_id,
            "token_type": token.token_type,
            "exp": token.refresh_token_expires_at if token.matched_refresh_token else token.expires_at,
            "iat": token.issued_at,
            "iss": get_issuer(),
        }
        if token.user is not None:
            payload["sub"] = token.user.sub
            payload["username"] = token.user.username
        else:
            # No resource owner (client credentials): the client is the subject, as in RFC 9068.
            payload["sub"] = token.client_id
        if token.audience:
            payload["aud"] = token.audience
        # How the person signed in, for tokens that came from a sign-in.
        if token.user is not None:
            payload["auth_time"] = token.auth_time
            payload["acr"] = token.acr
            payload["amr"] = parse_amr(token.amr)
        if token.dpop_jkt and not token.matched_refresh_token:
            payload["cnf"] = {"jkt": token.dpop_jkt}  # RFC 9449 §6.2
        if token.act:
            payload["act"] = json.loads(token.act)  # RFC 8693 §4.1
        return {k: v for k, v in payload.items() if v is not None}


#: The parameters an introspection request has (RFC 7662 §2.1).
_INTROSPECTION_PARAMETERS = frozenset({"token", "token_type_hint"})

_INTROSPECTION = IntrospectionEndpoint()


def introspection_below_flask(client_id: str, client_secret: str, params: dict[str, str],
                              address: str | None) -> bytes | None:
    """Introspection's answer to a client authenticating with HTTP Basic, given by the front
    below Flask (http/front.py) as the endpoint writes it. Only a request the endpoint would
    answer 200 is answered here: a client that exists, may use Basic here, sent its secret
    and is not locked out. For everything else, None: the endpoint answers (and counts a
    failed authentication)."""
    if "token" not in params or not params.keys() <= _INTROSPECTION_PARAMETERS:
        return None
    client = read_client(client_id)
    if (client is None
            or not client.check_endpoint_auth_method("client_secret_basic", _INTROSPECTION.ENDPOINT_NAME)
            or not client.check_client_secret(client_secret)):
        return None
    token, wait = _token_and_lock(params["token"], params.get("token_type_hint"),
                                  throttle_subjects(client_id, address))
    if wait:
        return None
    if token is not None and not _INTROSPECTION.check_permission(token, client, None):
        token = None
    # As Authlib's Flask integration writes it (flask.json.dumps: the app's JSON provider).
    return current_app.json.dumps(_INTROSPECTION.create_introspection_payload(token)).encode()


def _token_and_lock(token_string: str, hint: str | None, subjects) -> tuple[TokenRecord | None, int]:
    """The token as the endpoint's query_token finds it, and the seconds the client is locked
    out for: the usual access token and the lock in one statement."""
    if hint == "refresh_token" or not 0 < len(token_string) <= MAX_TOKEN_LENGTH:
        return _INTROSPECTION.query_token(token_string, hint), throttle.locked_for(*subjects)
    token, wait = read_token_and_lock(token_string, subjects)
    if token is None and (token := read_token_by_refresh_token(token_string)) is not None:
        token.matched_refresh_token = True  # then the refresh tokens, as find_token looks
    return token, wait


def registered_logout_uris(client) -> list[str]:
    """The URLs the client registered for the browser to return to after logging out."""
    return list(client.client_metadata.get("post_logout_redirect_uris") or []) if client else []


def hint_ties_session(claims: dict | None, client) -> bool:
    """Whether a (verified) id_token_hint names the signed-in person and was issued to the
    client: only then is it a valid hint for this session (RP-Initiated Logout §2, §6).
    An expired hint still counts, as the spec allows."""
    if claims is None or client is None or g.get("user") is None:
        return False
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    return client.client_id in audiences and hmac.compare_digest(str(claims.get("sub", "")), g.user.sub)


class EndSessionEndpoint(_EndSessionEndpoint):
    """The id_token_hint is verified with the server's published keys and must come from
    this issuer; a hint that does not name the signed-in person and the client counts as no
    hint, and without a valid hint the person confirms on a page first."""

    def get_server_jwks(self):
        return get_public_jwks()

    def get_algorithms(self) -> list[str]:
        return list(ID_TOKEN_SIGNING_ALGS)

    def validate_request(self, request):
        if len(request.payload.data.get("id_token_hint") or "") > 8192:
            raise InvalidRequestError("The id_token_hint is too long.")
        end_session_request = super().validate_request(request)
        claims = end_session_request.id_token_claims
        if claims is not None and claims.get("iss") != get_issuer():
            raise InvalidRequestError("The id_token_hint was not issued by this server.")
        client_id = request.payload.data.get("client_id")
        if client_id and end_session_request.client is None:
            raise InvalidRequestError("The client does not exist on this server.")
        if claims is not None and not hint_ties_session(claims, end_session_request.client):
            # Another person's (or client's) id_token: not a valid hint for this session.
            end_session_request.id_token_claims = None
            if not g.get("logout_confirmed"):
                end_session_request.redirect_uri = None
        return end_session_request

    def is_post_logout_redirect_uri_legitimate(self, request, post_logout_redirect_uri, client, logout_hint):
        # Without a valid id_token_hint the person confirmed on our page, which named the
        # destination, and the URI is registered for the client: that is legitimate enough.
        return bool(g.get("logout_confirmed"))

    def end_session(self, end_session_request) -> None:
        # The view ends this browser's session right after (services.sessions.log_out): the
        # protocol layer knows no browser sessions.
        pass
