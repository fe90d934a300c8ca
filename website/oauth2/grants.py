"""The OAuth 2.0 grants and the hooks Authlib leaves to the application."""

import secrets

from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import (
    InvalidClientError,
    InvalidGrantError,
    InvalidRequestError,
)
from authlib.oauth2.rfc7636 import CodeChallenge as _CodeChallenge
from flask import current_app

from website.extensions import db
from website.models.base import hash_secret, now
from website.models.grants import AuthorizationCode
from website.models.users import User
from website.oauth2.acr import dump_amr, second_factor_required, sign_in_of
from website.oauth2.audiences import requested_resource
from website.oauth2.claims import dump_claims, requested_claims
from website.oauth2.client_auth import CLIENT_AUTH_METHODS
from website.oauth2.client_metadata import token_lifetime
from website.oauth2.dpop import requested_jkt
from website.store import audit, throttle
from website.store.clients import query_client
from website.store.groups import may_use_client
from website.store.codes import (
    claim_code,
    query_code,
    revoke_code_tokens,
    save_code,
)
from website.store.tokens import (
    MAX_REFRESH_TOKEN_LENGTH,
    TokenRecord,
    claim_refresh_token,
    read_token_by_refresh_token,
    revoke_family,
    store_token,
)
from website.store.users import authenticate_user


def save_token(token: dict, request) -> None:
    """Store a newly issued token as hashes, in one transaction with the code or refresh
    token it was exchanged for, so a crash leaves nothing half-issued."""
    issued_at = now()
    parent = getattr(request, "refresh_token", None)
    code = getattr(request, "authorization_code", None)
    refresh_token = token.get("refresh_token")
    amr, acr, _ = sign_in_of(request)
    values = dict(
        client_id=request.client.client_id,
        user_id=request.user.get_user_id() if request.user else None,
        token_type=token.get("token_type", "Bearer"),
        access_token_hash=hash_secret(token["access_token"]),
        refresh_token_hash=hash_secret(refresh_token) if refresh_token else None,
        scope=token.get("scope", ""),
        issued_at=issued_at,
        expires_in=token["expires_in"],
        expires_at=issued_at + token["expires_in"],
        refresh_token_expires_at=(
            issued_at + token_lifetime(request.client, "refresh_token") if refresh_token else None
        ),
        authorization_code_id=code.id if isinstance(code, AuthorizationCode) else None,
        # An exchanged token joins its subject token's family: revoking that grant revokes it too.
        family_id=(parent.family_id if parent is not None
                   else getattr(request, "token_family_id", None) or secrets.token_hex(16)),
        audience=getattr(request, "audience", None),
        auth_time=_auth_time(request, parent, code, issued_at),
        # The browser session of the sign-in: refreshed id_tokens keep its sid.
        sid=(parent.sid if parent is not None else code.sid if isinstance(code, AuthorizationCode)
             else getattr(request, "sid", None)),
        # What the claims parameter asked for: with the code, kept through refreshes, or
        # asked in this (implicit) request.
        claims=(code.claims if isinstance(code, AuthorizationCode)
                else parent.claims if parent is not None else dump_claims(requested_claims(request))),
        # How the person signed in, kept with the code and through refreshes.
        amr=dump_amr(amr),
        acr=acr,
        # The DPoP key of this request's proof (dpop.DPoPBinding), and who acts for the
        # subject of an exchanged token (token_exchange.py).
        dpop_jkt=getattr(request, "dpop_jkt", None),
        act=getattr(request, "token_act", None),
    )
    store_token(values, audit.row("token_issued", user=request.user, client_id=request.client.client_id,
                                  grant_type=request.payload.grant_type or "implicit", scope=values["scope"],
                                  family_id=values["family_id"], token_type=values["token_type"]))


def _auth_time(request, parent, code, issued_at: int) -> int | None:
    """When the person signed in for this token: the code's sign-in, carried through every
    refresh (a refreshed id_token keeps it, OIDC Core §12.2), or the device code's answer; a
    password grant signs in now."""
    if parent is not None:
        return parent.auth_time
    if isinstance(code, AuthorizationCode):
        return code.auth_time
    if (credential := getattr(request, "credential", None)) is not None:
        return credential.get_auth_time()  # the device grant: when the person answered
    if request.user is not None and request.payload.grant_type == "password":
        return issued_at
    return None


def pkce_methods() -> list[str]:
    """The PKCE code_challenge_methods this server accepts: S256, and plain if configured."""
    return ["S256", "plain"] if current_app.config["OAUTH2_PKCE_ALLOW_PLAIN"] else ["S256"]


def refuse_unless_allowed(user: User, client) -> None:
    """invalid_grant when the client is limited to groups the person is in none of."""
    if not may_use_client(user.id, client.client_id):
        raise InvalidGrantError(f"This account may not use {client.client_name or 'this app'}: it is limited"
                                " to members of certain groups.")


class LockedOutGrantError(InvalidGrantError):
    """The resource owner's account (or the client's address) is locked after failed attempts."""

    def __init__(self, wait: int):
        super().__init__(throttle.wait_message(wait))
        self.wait = wait

    def get_headers(self):
        return super().get_headers() + [("Retry-After", str(self.wait))]


class CodeChallenge(_CodeChallenge):
    """PKCE (RFC 7636): S256 only unless ``plain`` is configured; required for public clients."""

    def validate_code_challenge(self, grant, redirect_uri):
        request = grant.request
        data = request.payload.data
        challenge = data.get("code_challenge")
        method = data.get("code_challenge_method")
        if challenge and not method:
            method = "plain"
        if request.client.is_public and not challenge:
            raise InvalidRequestError(
                "Public clients must use PKCE: send 'code_challenge' with 'code_challenge_method=S256'."
            )
        if method and method not in pkce_methods():
            raise InvalidRequestError("Unsupported 'code_challenge_method': use S256.")
        super().validate_code_challenge(grant, redirect_uri)


class SavesCodes:
    """How the code and hybrid flows store a code with what the request asked for."""

    def save_authorization_code(self, code: str, request) -> AuthorizationCode:
        data = request.payload.data
        item = save_code(
            code,
            resource=requested_resource(request.payload.datalist),
            client_id=request.client.client_id,
            user_id=request.user.id,
            redirect_uri=request.payload.redirect_uri or "",
            response_type=request.payload.response_type,
            scope=request.scope or "",
            nonce=data.get("nonce"),
            claims=dump_claims(requested_claims(request)),
            code_challenge=data.get("code_challenge"),
            code_challenge_method=data.get("code_challenge_method") or (
                "plain" if data.get("code_challenge") else None
            ),
            auth_time=getattr(request, "auth_time", None) or now(),
            amr=dump_amr(getattr(request, "amr", None)),
            acr=getattr(request, "acr", None),
            sid=getattr(request, "sid", None),
            expires_at=now() + current_app.config["OAUTH2_CODE_LIFETIME"],
            dpop_jkt=requested_jkt(request),
        )
        # A hybrid response issues a token right after the code: link it to the code, so a
        # second redemption of the code revokes it too.
        request.authorization_code = item
        return item


class AuthorizationCodeGrant(SavesCodes, grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = CLIENT_AUTH_METHODS

    def query_authorization_code(self, code: str, client) -> AuthorizationCode | None:
        """Find an unused, unexpired code of this client (and its user, in the same query).

        The code is claimed later, in ``save_token``, in the transaction that stores the
        token: a write transaction (on SQLite, the database's write lock) then lasts only
        for the claim, the insert and the commit, not for the whole grant.
        """
        item = query_code(code)
        if item is None or item.client_id != client.client_id:
            return None
        if item.used_at is not None:
            revoke_code_tokens(item)
            return None
        if item.is_expired():
            return None
        return item

    def save_token(self, token: dict) -> None:
        """Claim the code, then store the token in the same transaction: only one redemption
        of a code can ever succeed (see ``claim_code``)."""
        item = self.request.authorization_code
        if not claim_code(item):
            db.session.rollback()
            revoke_code_tokens(item)
            raise InvalidGrantError("Invalid 'code' in request.")
        super().save_token(token)

    def delete_authorization_code(self, authorization_code) -> None:
        # The code was marked used when claimed; the row stays to detect reuse.
        pass

    def authenticate_user(self, authorization_code) -> User | None:
        return authorization_code.user


class ClientByIdOnly:
    """Grants answered at the authorization endpoint (implicit, and OpenID Connect's implicit):
    the client is named by its client_id, with no authentication."""

    def authenticate_token_endpoint_client(self):
        # At the authorization endpoint there is no client authentication, only the
        # client_id; Authlib's default would admit public clients only.
        client = query_client(self.request.payload.client_id)
        if client is None:
            raise InvalidClientError(description="The client does not exist on this server.")
        return client


class ImplicitGrant(ClientByIdOnly, grants.ImplicitGrant):
    """The implicit grant (legacy): any client registered for response_type=token."""


class PasswordGrant(grants.ResourceOwnerPasswordCredentialsGrant):
    """The resource owner password grant (legacy), for confidential clients."""

    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt"]

    def authenticate_user(self, username: str, password: str) -> User | None:
        # The same throttle as the log-in form: it guards the same passwords.
        # Counted before the password is checked, so simultaneous guesses get no extra checks.
        attempt = throttle.begin_attempt(*throttle.login_subjects(username))
        if wait := attempt.wait:
            raise LockedOutGrantError(wait)
        user = authenticate_user(username, password)
        if user is None:
            wait = attempt.failed()
            audit.record("login_failed", client_id=self.request.claimed_client.client_id,
                         attempted_username=username[:40], grant_type="password")
            db.session.commit()
            if wait:
                raise LockedOutGrantError(wait)
            # RFC 6749 §5.2: wrong resource owner credentials are an invalid grant;
            # Authlib would answer invalid_request.
            raise InvalidGrantError("Wrong username or password.")
        attempt.succeeded()
        # Authlib sets request.client only after this returns; the client is authenticated.
        refuse_unless_allowed(user, self.request.claimed_client)
        client = self.request.claimed_client
        if second_factor_required(user, client):
            # The password alone is not enough for this account (or app): a grant that only
            # sees a password cannot ask for the second factor.
            audit.record("login_refused", user=user, client_id=client.client_id, grant_type="password",
                         reason="second factor required")
            db.session.commit()
            whose = "This app requires" if client.require_mfa else "This account signs in with"
            raise InvalidGrantError(f"{whose} a second factor, which the password grant cannot ask for:"
                                    " use the authorization code flow.")
        return user


class ClientCredentialsGrant(grants.ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt"]


class RefreshTokenGrant(grants.RefreshTokenGrant):
    """Refresh tokens rotate for public clients always, for confidential clients when
    configured; presenting a rotated refresh token again revokes the whole family."""

    TOKEN_ENDPOINT_AUTH_METHODS = CLIENT_AUTH_METHODS

    def _rotates(self, client) -> bool:
        return client.is_public or current_app.config["OAUTH2_ROTATE_CONFIDENTIAL_REFRESH_TOKENS"]

    def authenticate_refresh_token(self, refresh_token: str) -> TokenRecord | None:
        if not refresh_token or len(refresh_token) > MAX_REFRESH_TOKEN_LENGTH:
            return None
        # A plain record is enough: the old row is changed by UPDATEs (save_token,
        # revoke_family), never through the object.
        token = read_token_by_refresh_token(refresh_token)
        if token is None or token.client_id != self.request.client.client_id:
            return None
        if token.refresh_token_revoked_at:
            if token.rotated_at:
                # A rotated refresh token came back: it was stolen or replayed.
                revoke_family(token.family_id, reason="rotated refresh token reused")
                db.session.commit()
            return None
        if not token.is_refresh_token_active():
            return None
        return token

    def issue_token(self, user, refresh_token):
        self.INCLUDE_NEW_REFRESH_TOKEN = self._rotates(self.request.client)
        return super().issue_token(user, refresh_token)

    def authenticate_user(self, refresh_token) -> User | None:
        user = refresh_token.user
        if user is not None and user.disabled_at is not None:
            raise InvalidGrantError("This account is disabled.")
        if user is not None:
            # Taken out of the groups the client is limited to: no new tokens from old ones.
            refuse_unless_allowed(user, self.request.client)
        return user

    def save_token(self, token: dict) -> None:
        """Spend the old refresh token and store the new token in one short transaction
        (see ``claim_refresh_token``)."""
        if not claim_refresh_token(self.request.refresh_token.id, self._rotates(self.request.client)):
            db.session.rollback()
            raise InvalidGrantError()
        super().save_token(token)

    def revoke_old_credential(self, refresh_token) -> None:
        # Done by save_token, in the transaction that stored the new token.
        pass
