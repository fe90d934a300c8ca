"""Token exchange (RFC 8693): a confidential client swaps a token this server issued about a
person (an access token, or an id_token) for an access token to one registered API.

Authlib 1.8/1.9 has only an empty ``authlib.oauth2.rfc8693`` package, so the grant is here,
on Authlib's BaseGrant. The policy, every rule checked before a token is made:

- The subject token is this server's, active, about a person, and presented by the client it
  was issued to, or by the client the API it was issued for introspects with (that API
  received it and calls onwards).
- The target API is named (``resource`` / ``audience``) and an administrator allowed the
  client tokens for it (``flask grant-api``, the same ``ApiClientGrant`` as other grants).
- With an ``actor_token`` (one issued to the client itself) it is delegation: the token says
  who acts in ``act`` (§4.1), nested when the subject token was delegated already. Without one
  it is impersonation, only where the administrator allowed it (``grant-api --impersonation``).
- The scopes are never wider than the subject token's (for an id_token: what the person
  allowed the client), the client's registered scopes, and the server's and the API's scopes.
- Every exchange and every refusal by policy is in the audit log.
"""

import json
import time

from authlib.oauth2.rfc6749 import grants, list_to_scope, scope_to_list
from authlib.oauth2.rfc6749.errors import InvalidRequestError, InvalidScopeError, UnauthorizedClientError
from authlib.oauth2.rfc6749.hooks import hooked
from flask import current_app, g
from joserfc import jwt
from joserfc.errors import JoseError
from sqlalchemy import select

from website.extensions import db
from website.models.apis import ResourceServer
from website.oauth2.audiences import InvalidTargetError, requested_resource, resolve_api, use_api
from website.oauth2.client_metadata import TOKEN_EXCHANGE
from website.oauth2.grants import refuse_unless_allowed
from website.oauth2.keys import ID_TOKEN_SIGNING_ALGS, get_issuer, get_public_jwks
from website.store import audit
from website.store.apis import api_grant
from website.store.tokens import MAX_TOKEN_LENGTH, read_token_by_access_token
from website.store.users import consented_scope, find_user_by_sub

#: RFC 8693 §3 token type identifiers.
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"
JWT_TYPE = "urn:ietf:params:oauth:token-type:jwt"

#: What a subject or actor token may be, and what this server issues (an API's tokens are JWTs).
PRESENTED_TOKEN_TYPES = (ACCESS_TOKEN_TYPE, ID_TOKEN_TYPE)
ISSUED_TOKEN_TYPES = (ACCESS_TOKEN_TYPE, JWT_TYPE)


class PresentedToken:
    """A subject or actor token, checked: whom it is about and what it allows."""

    def __init__(self, user, client_id: str, scope: str | None, subject: str, family_id: str | None = None,
                 act: dict | None = None, audience: str | None = None):
        self.user = user
        self.client_id = client_id
        self.scope = scope
        self.subject = subject
        self.family_id = family_id
        self.act = act
        self.audience = audience


def _refuse(role: str, why: str):
    # RFC 8693 §2.2.2: an invalid or unacceptable subject or actor token is invalid_request.
    raise InvalidRequestError(f"The {role} is not acceptable: {why}.")


def read_access_token(value: str, role: str) -> PresentedToken:
    """An active access token this server issued (opaque or JWT: both are stored by hash)."""
    token = read_token_by_access_token(value) if len(value) <= MAX_TOKEN_LENGTH else None
    if token is None or token.is_expired() or token.is_revoked():
        _refuse(role, "it is not an active access token issued by this server")
    subject = token.user.sub if token.user is not None else token.client_id
    return PresentedToken(token.user, token.client_id, token.scope, subject, token.family_id,
                          json.loads(token.act) if token.act else None, token.audience)


def read_id_token(value: str, role: str) -> PresentedToken:
    """An unexpired id_token this server signed; the person it names; the client it was for."""
    try:
        claims = jwt.decode(value, get_public_jwks(), algorithms=ID_TOKEN_SIGNING_ALGS).claims
    except (JoseError, ValueError, TypeError):
        _refuse(role, "it is not an id_token signed by this server")
    exp = claims.get("exp")
    if claims.get("iss") != get_issuer() or not isinstance(exp, int) or exp <= time.time():
        _refuse(role, "it is expired or was not issued by this server")
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    user = find_user_by_sub(claims.get("sub"))
    if user is None or len(audiences) != 1 or not isinstance(audiences[0], str):
        _refuse(role, "it names no person of this server, or more than one client")
    return PresentedToken(user, audiences[0], None, user.sub)


def read_presented_token(data, role: str) -> PresentedToken:
    """The ``subject_token`` or ``actor_token`` of the request, read by its declared type."""
    value, token_type = data.get(f"{role}_token"), data.get(f"{role}_token_type")
    if not value:
        raise InvalidRequestError(f"Missing '{role}_token' in request.")
    if token_type not in PRESENTED_TOKEN_TYPES:
        raise InvalidRequestError(f"'{role}_token_type' must be one of: {', '.join(PRESENTED_TOKEN_TYPES)}.")
    reader = read_id_token if token_type == ID_TOKEN_TYPE else read_access_token
    return reader(value, f"{role}_token")


def may_present(client, token: PresentedToken) -> bool:
    """The client the token was issued to may exchange it; so may the client the token's API
    introspects with (the API received the token and calls onwards for the person)."""
    if token.client_id == client.client_id:
        return True
    return bool(token.audience) and db.session.scalar(select(ResourceServer.id).where(
        ResourceServer.identifier == token.audience,
        ResourceServer.introspection_client_id == client.client_id)) is not None


class TokenExchangeGrant(grants.BaseGrant, grants.TokenEndpointMixin):
    """``grant_type=urn:ietf:params:oauth:grant-type:token-exchange`` (RFC 8693 §2)."""

    GRANT_TYPE = TOKEN_EXCHANGE
    #: Only confidential clients: a public client could not be held to the policy.
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt"]

    def validate_token_request(self) -> None:
        client = self.authenticate_token_endpoint_client()
        if not client.check_grant_type(self.GRANT_TYPE):
            raise UnauthorizedClientError(f"The client is not registered for 'grant_type={self.GRANT_TYPE}'.")
        request = self.request
        request.client = client
        data = request.payload.data
        issued_type = data.get("requested_token_type") or ACCESS_TOKEN_TYPE
        if issued_type not in ISSUED_TOKEN_TYPES:
            raise InvalidRequestError(f"'requested_token_type' must be one of: {', '.join(ISSUED_TOKEN_TYPES)}.")
        subject = read_presented_token(data, "subject")
        if subject.user is None:
            _refuse("subject_token", "it was issued to a client, not for a person")
        if subject.user.disabled_at is not None:
            _refuse("subject_token", "the person's account is disabled")
        # A client limited to some groups gets no tokens for anyone else, exchanged or not.
        refuse_unless_allowed(subject.user, client)
        if not may_present(client, subject):
            self._policy_refusal(subject, "subject token of another client")
            _refuse("subject_token", "it was issued to another client")
        actor = None
        if data.get("actor_token") or data.get("actor_token_type"):
            actor = read_presented_token(data, "actor")
            if actor.client_id != client.client_id:
                self._policy_refusal(subject, "actor token of another client")
                _refuse("actor_token", "it must be a token issued to the client making this request")
        api = self._target_api(subject)
        grant = api_grant(api, client.client_id)
        if actor is None and not grant.allow_impersonation:
            self._policy_refusal(subject, "impersonation not allowed", api)
            raise InvalidRequestError("This client may not impersonate people at that API: send an 'actor_token' "
                                      "(delegation), or ask an administrator (grant-api --impersonation).")
        request.user = subject.user
        request.token_scope = self._scope(subject, api)
        request.issued_token_type = issued_type
        request.token_family_id = subject.family_id
        request.act_claim = self._act(actor, subject) if actor is not None else None
        request.token_act = json.dumps(request.act_claim) if request.act_claim else None
        request.exchange_api = api

    def _target_api(self, subject: PresentedToken) -> ResourceServer:
        identifier = requested_resource(self.request.payload.datalist)
        if identifier is None:
            raise InvalidTargetError("Name the API the new token is for, with 'audience' or 'resource'.")
        api = resolve_api(identifier)
        if api_grant(api, self.request.client.client_id) is None:
            self._policy_refusal(subject, "API not allowed", api)
            raise InvalidTargetError("This client is not allowed to get tokens for that API.")
        return api

    def _scope(self, subject: PresentedToken, api: ResourceServer) -> str:
        """The requested scopes (by default, all the subject token has), if the subject token,
        the client's registration and the API all allow every one of them."""
        client = self.request.client
        held = subject.scope if subject.scope is not None else consented_scope(subject.user.id, subject.client_id)
        held = set(scope_to_list(held) or [])
        allowed = (held & set(scope_to_list(client.scope) or [])
                   & (set(current_app.config["OAUTH2_SCOPES"]) | set(api.scopes or [])))
        requested = scope_to_list(self.request.payload.scope)
        if requested is None:
            return list_to_scope(sorted(allowed))
        beyond = [s for s in requested if s not in allowed]
        if beyond:
            self._policy_refusal(subject, "scope beyond policy", api, scope=" ".join(beyond))
            raise InvalidScopeError(f"Beyond what the subject token, the client and the API allow: {' '.join(beyond)}.")
        return list_to_scope(requested)

    def _act(self, actor: PresentedToken, subject: PresentedToken) -> dict:
        """RFC 8693 §4.1: who acts, with the earlier actors of a delegated subject token nested."""
        act = {"sub": actor.subject, "client_id": actor.client_id}
        if subject.act:
            act["act"] = subject.act
        return act

    def _policy_refusal(self, subject: PresentedToken, reason: str, api: ResourceServer | None = None, **detail):
        audit.record("token_exchange_refused", user=subject.user, client_id=self.request.client.client_id,
                     reason=reason, audience=api.identifier if api else None, **detail)
        db.session.commit()

    @hooked
    def create_token_response(self):
        request = self.request
        use_api(self, request.exchange_api)
        # The JWT access token carries act (audiences.binding_claims).
        g.oauth2_token_act = request.act_claim
        token = self.generate_token(user=request.user, scope=request.token_scope, include_refresh_token=False)
        token["issued_token_type"] = request.issued_token_type
        audit.record("token_exchanged", user=request.user, client_id=request.client.client_id,
                     audience=request.audience, scope=request.token_scope,
                     delegation=request.act_claim is not None,
                     actor=request.act_claim["sub"] if request.act_claim else None,
                     subject_token_type=request.payload.data.get("subject_token_type"))
        self.save_token(token)
        return 200, token, self.TOKEN_RESPONSE_HEADER
