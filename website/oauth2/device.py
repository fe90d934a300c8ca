"""The device authorization grant (RFC 8628): Authlib's endpoint (where a device asks for a
device code and a user code) and grant (where it polls for tokens), with the codes stored as
hashes (store/device_codes.py) and the person's answer given at /device (views/device.py).

User codes use Authlib's alphabet of 20 consonants (RFC 8628 §6.1: no vowels, so no words,
and none of 0/O or 1/I to confuse), 8 characters shown as XXXX-XXXX: about 34 bits, guessed
against a lifetime of minutes and a throttle of a few wrong tries per person and address.
"""

import secrets
from urllib.parse import urlsplit

from authlib.oauth2.rfc6749 import scope_to_list
from authlib.oauth2.rfc6749.errors import (
    AccessDeniedError,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    UnauthorizedClientError,
)
from authlib.oauth2.rfc8628 import (
    DEVICE_CODE_GRANT_TYPE,
    DeviceCredentialDict,
    ExpiredTokenError,
)
from authlib.oauth2.rfc8628 import DeviceAuthorizationEndpoint as _DeviceAuthorizationEndpoint
from authlib.oauth2.rfc8628 import DeviceCodeGrant as _DeviceCodeGrant
from authlib.oauth2.rfc8628.endpoint import create_string_user_code
from authlib.oidc.core import OpenIDToken
from flask import current_app, url_for
from sqlalchemy.exc import IntegrityError

from website.extensions import db
from website.models.base import now
from website.oauth2.client_auth import CLIENT_AUTH_METHODS
from website.oauth2.grants import refuse_unless_allowed
from website.oauth2.keys import get_issuer
from website.oauth2.oidc import IdTokenSigning
from website.store.device_codes import (
    claim_device_code,
    query_device_code,
    record_poll,
    save_device_code,
)

#: The user code's alphabet (Authlib's, RFC 8628 §6.1's example).
USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
USER_CODE_LENGTH = 8


def normalize_user_code(text: str) -> str:
    """The user code as stored: upper case, without the dashes and spaces people type."""
    return "".join(c for c in (text or "").upper() if c not in "- \t")


def is_possible_user_code(code: str) -> bool:
    """Tell whether a normalised value could be a user code (so it is worth a lookup)."""
    return len(code) == USER_CODE_LENGTH and all(c in USER_CODE_ALPHABET for c in code)


def verification_uri() -> str:
    """The /device page under the issuer (not the request's Host header, which a caller chooses)."""
    parts = urlsplit(get_issuer())
    return f"{parts.scheme}://{parts.netloc}" + url_for("device.verify")


class DeviceAuthorizationEndpoint(_DeviceAuthorizationEndpoint):
    """Where a device asks for codes (RFC 8628 §3.1): any client authentication the token
    endpoint takes, for clients registered for the device grant."""

    CLIENT_AUTH_METHODS = CLIENT_AUTH_METHODS

    @property
    def EXPIRES_IN(self) -> int:  # noqa: N802 - Authlib's name
        return current_app.config["OAUTH2_DEVICE_CODE_LIFETIME"]

    @property
    def INTERVAL(self) -> int:  # noqa: N802 - Authlib's name
        return current_app.config["OAUTH2_DEVICE_INTERVAL"]

    def authenticate_client(self, request):
        client = super().authenticate_client(request)
        # Authlib's endpoint issues codes to any client; only one registered for the grant may
        # have them (RFC 8628 §3.2 refers to RFC 6749 §5.2's unauthorized_client).
        if not client.check_grant_type(DEVICE_CODE_GRANT_TYPE):
            raise UnauthorizedClientError(f"This client is not registered for the {DEVICE_CODE_GRANT_TYPE} grant.")
        scope = request.payload.scope
        if scope:
            self.server.validate_requested_scope(scope)
            if set(scope_to_list(scope)) - set(scope_to_list(client.scope)):
                raise InvalidScopeError("The client may not ask for some of these scopes.")
        return client

    def create_endpoint_response(self, request):
        if "resource" in request.payload.data or "audience" in request.payload.data:
            # Tokens for an API (RFC 8707) come from the code flow; better refused than ignored.
            raise InvalidRequestError("The device flow issues tokens for this server only: drop 'resource'.")
        return super().create_endpoint_response(request)

    def generate_device_code(self) -> str:
        return secrets.token_urlsafe(32)  # 256 bits

    def generate_user_code(self) -> str:
        return create_string_user_code()

    def get_verification_uri(self) -> str:
        return verification_uri()

    def save_device_credential(self, client_id: str, scope: str, data: dict) -> None:
        client = self.server.query_client(client_id)
        for _ in range(3):
            try:
                save_device_code(
                    data["device_code"], normalize_user_code(data["user_code"]), client_id=client_id,
                    scope=scope or client.scope, expires_at=now() + data["expires_in"], interval=data["interval"])
                return
            except IntegrityError:
                # Two live user codes collided (one in 10^10): draw another.
                db.session.rollback()
                data["user_code"] = self.generate_user_code()
                data["verification_uri_complete"] = f"{data['verification_uri']}?user_code={data['user_code']}"
        raise InvalidRequestError("Could not make a unique user code; try again.")


class DeviceCodeGrant(_DeviceCodeGrant):
    """Polling with the device code (RFC 8628 §3.4, §3.5): authorization_pending until the
    person answers, slow_down (and 5 seconds more between polls) when polled too often,
    access_denied, expired_token; the device code is exchanged once only."""

    TOKEN_ENDPOINT_AUTH_METHODS = CLIENT_AUTH_METHODS

    def validate_token_request(self):
        device_code = self.request.payload.data.get("device_code")
        if not device_code:
            raise InvalidRequestError("Missing 'device_code' in request.")
        client = self.authenticate_token_endpoint_client()
        if not client.check_grant_type(self.GRANT_TYPE):
            raise UnauthorizedClientError(f"This client is not registered for the {self.GRANT_TYPE} grant.")
        row = query_device_code(device_code)
        # RFC 6749 §5.2: a device code that is unknown, another client's or spent is an invalid grant.
        if row is None or row.client_id != client.client_id:
            raise InvalidGrantError("Invalid 'device_code' in request.")
        if row.used_at is not None:
            raise InvalidGrantError("This device code was already exchanged for tokens.")
        self.device_code = row
        credential = DeviceCredentialDict(
            client_id=row.client_id, scope=row.scope, user_code=row.user_code_hash,
            expires_at=row.expires_at, auth_time=row.auth_time)
        self.request.client = client
        self.request.user = self.validate_device_credential(credential)
        self.request.credential = credential

    def validate_device_credential(self, credential):
        if credential.is_expired():
            raise ExpiredTokenError("The device code has expired: start again.")
        return super().validate_device_credential(credential)

    def query_user_grant(self, user_code):
        row = self.device_code
        if row.decision is None:
            return None
        if row.decision != "allowed":
            raise AccessDeniedError("The person denied the request.")
        # Checked again at the exchange: the account may have been disabled, or taken out of
        # the client's groups, since the person allowed it.
        if row.user.disabled_at is not None:
            raise AccessDeniedError("This account is disabled.")
        refuse_unless_allowed(row.user, self.request.client)
        return row.user, True

    def should_slow_down(self, credential) -> bool:
        return not record_poll(self.device_code)

    def save_token(self, token: dict) -> None:
        """Spend the device code and store the token in one transaction."""
        if not claim_device_code(self.device_code):
            db.session.rollback()
            raise InvalidGrantError("This device code was already exchanged for tokens.")
        super().save_token(token)


class OpenIDDeviceToken(IdTokenSigning, OpenIDToken):
    """An id_token with the device grant's tokens when the scope has openid (as the code
    flow's), with the auth_time of the person's sign-in when they answered."""

    def get_compatible_claims(self, request):
        claims = super().get_compatible_claims(request)
        if auth_time := request.credential.get_auth_time():
            claims["auth_time"] = auth_time
        else:
            del claims["auth_time"]
        return claims
