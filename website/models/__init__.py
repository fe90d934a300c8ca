"""Database models: SQLAlchemy 2.0 typed models, one module per family of tables.

Everything is re-exported here, so ``from website.models import Token`` works for Alembic,
the tests and the layers above.
"""

from website.extensions import db
from website.models.apis import ApiClientGrant, ResourceServer
from website.models.audit import AuditEvent
from website.models.base import hash_secret, now, utcnow
from website.models.cache_versions import CacheVersion
from website.models.clients import (
    ClientAssertionJti,
    InitialAccessToken,
    OAuth2Client,
    RegistrationAccessToken,
    SecretView,
)
from website.models.grants import AuthorizationCode, Consent, SpentJti, Token, TokenState
from website.models.groups import ClientAllowedGroup, ClientRole, Group, GroupMember, RoleAssignment
from website.models.keys import SigningKey
from website.models.links import AccountLink
from website.models.mail import QueuedMail
from website.models.mfa import RecoveryCode, TotpFactor
from website.models.passkeys import Passkey, WebAuthnChallenge
from website.models.pending import DeviceCode, PushedAuthorizationRequest
from website.models.sessions import LogoutDelivery, UserSession, new_session_id
from website.models.settings import SiteSetting
from website.models.throttle import ThrottleCounter
from website.models.upstreams import Upstream, UpstreamIdentity, UpstreamState
from website.models.users import Subject, User

__all__ = [
    "AccountLink", "ApiClientGrant", "AuditEvent", "AuthorizationCode", "CacheVersion", "ClientAllowedGroup", "ClientAssertionJti",
    "ClientRole", "Consent", "DeviceCode", "Group", "GroupMember", "RoleAssignment", "InitialAccessToken",
    "LogoutDelivery", "OAuth2Client", "Passkey", "PushedAuthorizationRequest", "QueuedMail", "RecoveryCode",
    "RegistrationAccessToken", "ResourceServer", "SecretView", "SigningKey", "SiteSetting", "SpentJti", "Subject",
    "ThrottleCounter", "Token", "TokenState", "TotpFactor", "Upstream", "UpstreamIdentity", "UpstreamState", "User",
    "UserSession", "WebAuthnChallenge", "db", "hash_secret", "new_session_id", "now", "utcnow",
]
