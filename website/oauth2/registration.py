"""Dynamic client registration (RFC 7591) and its management endpoint (RFC 7592).

Metadata is checked by ``client_metadata.validate_client_metadata``, so a client registered
here obeys the same rules as one made in the UI or the CLI. Registration is open to anyone
only with ``OAUTH2_OPEN_REGISTRATION``; otherwise the caller presents an initial access token
made by ``flask create-initial-access-token``. Each registered client gets a registration
access token to read, update and delete itself. Both kinds of token are stored as hashes.
"""

import secrets
from urllib.parse import urlsplit

from authlib.oauth2.rfc6750 import InvalidTokenError
from authlib.oauth2.rfc7591 import ClientRegistrationEndpoint as _ClientRegistrationEndpoint
from authlib.oauth2.rfc7591 import InvalidClientMetadataError, InvalidRedirectURIError
from authlib.oauth2.rfc7592 import ClientConfigurationEndpoint as _ClientConfigurationEndpoint
from flask import current_app, url_for
from flask import request as flask_request
from sqlalchemy import select

from website.extensions import db
from website.models.base import hash_secret
from website.models.clients import SECRET_METHODS, InitialAccessToken, OAuth2Client, RegistrationAccessToken, new_client_id
from website.oauth2.client_metadata import LOGOUT_NOTIFICATION_FIELDS, ClientMetadataError, validate_client_metadata
from website.oauth2.keys import get_issuer
from website.store.clients import delete_clients, query_client

#: The metadata a client may register; anything else in a request is ignored (RFC 7591 §2).
REGISTRABLE_FIELDS = (*OAuth2Client.METADATA_FIELDS, "post_logout_redirect_uris", "jwks", "jwks_uri",
                      "token_endpoint_auth_signing_alg", "strict_auth_method", "require_mfa",
                      "require_verified_email", "id_token_signed_response_alg",
                      "userinfo_signed_response_alg", "allowed_origins",
                      "require_pushed_authorization_requests", "request_object_signing_alg",
                      "dpop_bound_access_tokens", *LOGOUT_NOTIFICATION_FIELDS)


def _error_description(message: str) -> str:
    # RFC 6749 §5.2 allows only printable ASCII without '"' and '\\' in error_description,
    # and the messages quote what the client sent.
    return "".join(c if 0x20 <= ord(c) <= 0x7E and c not in '"\\' else "?" for c in message)


def validate_registration_metadata(data) -> dict:
    """Validate a registration request's metadata with the rules every client obeys."""
    if not isinstance(data, dict):
        raise InvalidClientMetadataError("The request body must be a JSON object of client metadata.")
    try:
        metadata = validate_client_metadata({k: v for k, v in data.items() if k in REGISTRABLE_FIELDS})
    except ClientMetadataError as error:
        if error.error == "invalid_redirect_uri":
            raise InvalidRedirectURIError(_error_description(error.message)) from error
        raise InvalidClientMetadataError(_error_description(error.message)) from error
    # Fields left unset are simply absent from the registration (RFC 7591 §3.2.1).
    return {k: v for k, v in metadata.items() if v is not None}


def _bearer_token(request) -> str | None:
    auth = request.headers.get("Authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() != "bearer" or not value.strip() or len(value) > 512:
        return None
    return value.strip()


def _registration_client_uri(client: OAuth2Client) -> str:
    # Under the issuer, like the endpoints in discovery: url_for(_external=True) would take the
    # request's Host header, so a forged Host could send the client's registration access
    # token to another server when the client manages its registration.
    parts = urlsplit(get_issuer())
    return f"{parts.scheme}://{parts.netloc}" + url_for("oauth.manage_client", client_id=client.client_id)


def _registration_info(client: OAuth2Client, access_token: str) -> dict:
    return {
        "registration_client_uri": _registration_client_uri(client),
        "registration_access_token": access_token,
    }


def _client_info(client: OAuth2Client) -> dict:
    return {
        "client_id": client.client_id,
        "client_id_issued_at": client.client_id_issued_at,
        "client_secret_expires_at": client.client_secret_expires_at,
    }


def issue_registration_access_token(client: OAuth2Client) -> str:
    """Make the token the client manages its registration with; return it (shown once)."""
    value = secrets.token_urlsafe(48)
    db.session.add(RegistrationAccessToken(token_hash=hash_secret(value), client_id=client.client_id))
    return value


class ClientRegistrationEndpoint(_ClientRegistrationEndpoint):
    """POST /oauth/register: register a client from RFC 7591 metadata."""

    def authenticate_token(self, request):
        if current_app.config["OAUTH2_OPEN_REGISTRATION"]:
            return "open registration"
        value = _bearer_token(request)
        if value is None:
            raise InvalidTokenError("Registration needs an initial access token (Authorization: Bearer ...).")
        token = db.session.scalar(select(InitialAccessToken).where(InitialAccessToken.token_hash == hash_secret(value)))
        if token is None or not token.is_active():
            raise InvalidTokenError("The initial access token is unknown or has expired.")
        return token

    def extract_client_metadata(self, request):
        request.registered_metadata = validate_registration_metadata(request.payload.data)
        return request.registered_metadata

    def generate_client_id(self, request):
        return new_client_id()

    def generate_client_secret(self, request):
        return secrets.token_urlsafe(48)

    def generate_client_info(self, request):
        info = super().generate_client_info(request)
        if request.registered_metadata["token_endpoint_auth_method"] not in SECRET_METHODS:
            info.pop("client_secret")  # a public client has no secret, a private_key_jwt one its key
        return info

    def save_client(self, client_info, client_metadata, request):
        client = OAuth2Client(client_id=client_info["client_id"],
                              client_id_issued_at=client_info["client_id_issued_at"],
                              client_secret_expires_at=client_info["client_secret_expires_at"])
        client.set_client_metadata(client_metadata)
        secret = client_info.get("client_secret")
        client.client_secret_hash = hash_secret(secret) if secret else None
        db.session.add(client)
        return client

    def generate_client_registration_info(self, client, request):
        access_token = issue_registration_access_token(client)
        db.session.commit()
        return _registration_info(client, access_token)


class ClientConfigurationEndpoint(_ClientConfigurationEndpoint):
    """GET, PUT and DELETE /oauth/register/<client_id> with the registration access token."""

    def authenticate_token(self, request):
        value = _bearer_token(request)
        client_id = (flask_request.view_args or {}).get("client_id")
        token = value and db.session.scalar(select(RegistrationAccessToken).where(
            RegistrationAccessToken.token_hash == hash_secret(value),
            RegistrationAccessToken.client_id == client_id,
        ))
        if not token:
            # Unknown token, or one made for another client: both are simply invalid here.
            raise InvalidTokenError("The registration access token is not valid for this client.")
        request.registration_access_token = value
        return token

    def authenticate_client(self, request):
        return query_client((flask_request.view_args or {}).get("client_id"))

    def revoke_access_token(self, request, token):
        db.session.delete(token)
        db.session.commit()

    def check_permission(self, client, request):
        # A valid registration access token is the permission to manage its own client.
        return True

    def extract_client_metadata(self, request):
        return validate_registration_metadata(request.payload.data)

    def introspect_client(self, client):
        return {**_client_info(client), **client.client_metadata}

    def generate_client_registration_info(self, client, request):
        info = _registration_info(client, request.registration_access_token)
        if getattr(request, "new_client_secret", None):
            info["client_secret"] = request.new_client_secret
        return info

    def update_client(self, client, client_metadata, request):
        # RFC 7592 §2.2: the request replaces the registration; omitted fields are removed.
        had_secret = client.has_secret
        # Optional fields left out are cleared, not kept from the old registration.
        client.set_client_metadata({"client_uri": None, "logo_uri": None, **client_metadata})
        if had_secret != client.has_secret:
            request.new_client_secret = client.rotate_secret()
        db.session.commit()
        return client

    def delete_client(self, client, request):
        delete_clients(OAuth2Client.id == client.id)
        db.session.commit()
