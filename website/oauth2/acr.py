"""Authentication context: the ``acr`` values this server issues, what a request asks for
(``acr_values``, an essential ``acr`` claim, a client registered with ``require_mfa``), and
whether a person must use a second factor (the MFA policy, MFA_REQUIRED_FOR).

The acr of a sign-in follows from its ``amr`` (RFC 8176 values, ``session["amr"]``):

- ``urn:idp:acr:pwd``: one factor (a password);
- ``urn:idp:acr:mfa``: two factors (``mfa`` in amr: a password and a TOTP code, a recovery
  code or a passkey);
- ``http://schemas.openid.net/pape/policies/2007/06/multi-factor`` (what Auth0 uses) is
  accepted as another name for ``urn:idp:acr:mfa`` and echoed to a client that asked for it.

Lives in oauth2/ (not services/) because the password grant refuses accounts that need a
second factor, and grants may not import services.
"""

from authlib.oauth2.rfc6749.errors import AccessDeniedError
from flask import current_app

from website.models.base import now
from website.models.grants import AuthorizationCode
from website.store.mfa import has_second_factor

ACR_PWD = "urn:idp:acr:pwd"
ACR_MFA = "urn:idp:acr:mfa"
ACR_PAPE_MFA = "http://schemas.openid.net/pape/policies/2007/06/multi-factor"

#: Every acr value, weakest first (discovery's acr_values_supported).
ACR_VALUES = [ACR_PWD, ACR_MFA, ACR_PAPE_MFA]

#: The acr values only a sign-in with two factors satisfies.
MFA_ACRS = (ACR_MFA, ACR_PAPE_MFA)

#: The values of MFA_REQUIRED_FOR.
MFA_POLICIES = ("none", "admins", "everyone")


def acr_for(amr, asked=()) -> str:
    """The acr of a sign-in with these amr values: of two factors, the name of it the client
    asked for (if it asked for one), else ``urn:idp:acr:mfa``; of one, ``urn:idp:acr:pwd``."""
    if "mfa" in (amr or ()):
        return next((value for value in asked if value in MFA_ACRS), ACR_MFA)
    return ACR_PWD


def parse_amr(stored: str | None) -> list[str] | None:
    """amr values as stored with a code or token (space-separated); None when not stored."""
    return stored.split() if stored else None


def dump_amr(amr) -> str | None:
    return " ".join(amr) if amr else None


def sign_in_of(request) -> tuple[list[str] | None, str | None, int | None]:
    """The amr, acr and auth_time of the sign-in a token is issued for: kept with the refresh
    token's family, or with the code, or the session's (set by the authorization endpoint's
    ``authentication_step``); a password grant is a sign-in with a password, now. None for
    tokens without a person (client credentials) and for rows from before they were kept."""
    parent = getattr(request, "refresh_token", None)
    if parent is not None:
        return parse_amr(parent.amr), parent.acr, parent.auth_time
    code = getattr(request, "authorization_code", None)
    if isinstance(code, AuthorizationCode):
        return parse_amr(code.amr), code.acr, code.auth_time
    if getattr(request, "amr", None):
        return list(request.amr), getattr(request, "acr", None), getattr(request, "auth_time", None)
    if getattr(request, "user", None) is not None and request.payload.grant_type == "password":
        return ["pwd"], ACR_PWD, now()
    return None, None, None


class AcrRequest:
    """What an authorization request asks about the sign-in: the acr values (``acr_values``,
    or those of an ``acr`` claim in the claims parameter) and whether they are essential."""

    def __init__(self, values: list[str], essential: bool):
        self.values = values
        self.essential = essential

    def wants_mfa(self) -> bool:
        """Tell whether only a sign-in with two factors satisfies the request: every
        known value asked for is an MFA one (unknown values are ignored, OIDC Core §3.1.2.1)."""
        known = [value for value in self.values if value in ACR_VALUES]
        return bool(known) and all(value in MFA_ACRS for value in known)

    def check(self, **error_args) -> None:
        """An essential acr the server can never satisfy is a failed authentication
        (OIDC Core §5.5.1.1): refuse it at once rather than after the person signed in."""
        if self.essential and self.values and not any(value in ACR_VALUES for value in self.values):
            raise AccessDeniedError(
                f"The essential acr {' '.join(self.values)[:200]} is not one this server supports"
                f" ({', '.join(ACR_VALUES)}).", **error_args)


def requested_acr(data: dict, acr_claim: dict | None) -> AcrRequest:
    """The acr the authorization request asks for: the ``acr`` claim of the claims parameter
    (``{"essential": true, "values": [...]}``) wins over ``acr_values``."""
    if acr_claim is not None:
        values = acr_claim.get("values") or ([acr_claim["value"]] if acr_claim.get("value") else [])
        return AcrRequest(list(values), bool(acr_claim.get("essential")))
    return AcrRequest((data.get("acr_values") or "").split(), False)


def policy_applies(user) -> bool:
    """Tell whether MFA_REQUIRED_FOR asks this person for a second factor."""
    policy = current_app.config["MFA_REQUIRED_FOR"]
    return policy == "everyone" or (policy == "admins" and bool(getattr(user, "is_admin", False)))


def grace_ends_at(user) -> int | None:
    """When the person's grace period for enrolling ends (None: it has not started)."""
    if user.mfa_grace_started_at is None:
        return None
    return user.mfa_grace_started_at + current_app.config["MFA_ENROLMENT_GRACE_DAYS"] * 86400


def in_grace_period(user) -> bool:
    """Tell whether the person may still sign in without a second factor the policy asks for:
    the grace period started (at their first sign-in under the policy) and has not ended. A
    grace of 0 days means none."""
    ends = grace_ends_at(user)
    return ends is not None and now() < ends


def start_grace_period(user) -> bool:
    """Start the person's grace period if the policy now asks them for a second factor they
    do not have (their first sign-in under it); True if it started. The caller commits."""
    if user.mfa_grace_started_at is None and policy_applies(user) and not has_second_factor(user):
        user.mfa_grace_started_at = now()
        return True
    return False


def client_requires_mfa(client) -> bool:
    """Tell whether the client was registered with ``require_mfa`` ("this app needs MFA")."""
    return bool(client is not None and client.require_mfa)


def second_factor_required(user, client=None) -> bool:
    """Tell whether a sign-in of this person (for this client) must use two factors now: they
    have a second factor, or the client requires one, or the policy does and their grace
    period is over (or was never started)."""
    if has_second_factor(user) or client_requires_mfa(client):
        return True
    return policy_applies(user) and not in_grace_period(user)
