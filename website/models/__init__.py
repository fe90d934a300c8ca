"""Database models: SQLAlchemy 2.0 typed models, one module per family of tables.

Everything is re-exported here, so ``from website.models import Token`` works for Alembic,
the tests and the layers above.
"""

from website.extensions import db
from website.models.apis import ApiClientGrant, ResourceServer
from website.models.audit import AuditEvent
from website.models.base import hash_secret, now, utcnow
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
from website.models.settings import SiteSetting
from website.models.throttle import ThrottleCounter
from website.models.upstreams import Upstream, UpstreamIdentity, UpstreamState
from website.models.users import Subject, User

__all__ = [
    "ApiClientGrant", "AuditEvent", "AuthorizationCode", "ClientAllowedGroup", "ClientAssertionJti", "ClientRole",
    "Consent", "Group", "GroupMember", "RoleAssignment", "InitialAccessToken", "OAuth2Client",
    "RegistrationAccessToken", "ResourceServer", "SecretView", "SigningKey", "SiteSetting", "SpentJti", "Subject",
    "ThrottleCounter",
    "Token", "TokenState", "Upstream", "UpstreamIdentity", "UpstreamState", "User", "db", "hash_secret", "now", "utcnow",
]
