"""Database models: SQLAlchemy 2.0 typed models, one module per family of tables."""

from website.extensions import db
from website.models.apis import ApiClientGrant
from website.models.apis import ResourceServer
from website.models.audit import AuditEvent
from website.models.base import hash_secret, now, utcnow
from website.models.clients import InitialAccessToken, OAuth2Client, RegistrationAccessToken
from website.models.grants import AuthorizationCode, Consent, Token
from website.models.keys import SigningKey
from website.models.redirect_uris import (
    DANGEROUS_SCHEMES,
    redirect_uri_matches,
    validate_redirect_uri,
    validate_web_uri,
)
from website.models.throttle import ThrottleCounter
from website.models.users import User
from website.models.users import new_session_secret
from website.models.users import new_subject

__all__ = ['ApiClientGrant', 'AuditEvent', 'AuthorizationCode', 'Consent', 'DANGEROUS_SCHEMES', 'InitialAccessToken', 'OAuth2Client', 'RegistrationAccessToken', 'ResourceServer', 'SigningKey', 'ThrottleCounter', 'Token', 'User', 'db', 'hash_secret', 'new_session_secret', 'new_subject', 'now', 'redirect_uri_matches', 'utcnow', 'validate_redirect_uri', 'validate_web_uri']
