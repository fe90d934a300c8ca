"""The ``claims`` request parameter (OpenID Connect Core §5.5): individual claims a client
asks for in the id_token and from UserInfo, besides those its scopes release.

Only claims this server knows (SCOPE_CLAIMS) are released, and only when the person allowed
them on the consent page. ``essential`` changes nothing here: every requested claim the
person has is released, and a missing one (no email address) is left out, as §5.5.1 allows.
"""

import json

from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import InvalidRequestError

#: The claims each scope releases, in the id_token and from UserInfo.
SCOPE_CLAIMS = {
    "openid": ["sub"],
    "profile": ["name", "preferred_username", "updated_at"],
    "email": ["email", "email_verified"],
    "groups": ["groups"],
}

KNOWN_CLAIMS = {claim for claims in SCOPE_CLAIMS.values() for claim in claims}

#: The members of the claims object this server acts on (§5.5); others are ignored.
TARGETS = ("userinfo", "id_token")


def parse_claims(value: str | None) -> dict[str, list[str]] | None:
    """The known claims the ``claims`` parameter asks for, by target; None without one.

    Raises InvalidRequestError for a value that is not the JSON object §5.5 describes.
    """
    if value is None or value == "":
        return None
    try:
        document = json.loads(value)
    except ValueError:
        raise InvalidRequestError("'claims' must be a JSON object (OpenID Connect Core 5.5).")
    if not isinstance(document, dict):
        raise InvalidRequestError("'claims' must be a JSON object (OpenID Connect Core 5.5).")
    requested = {}
    for target in TARGETS:
        members = document.get(target)
        if members is None:
            continue
        if not isinstance(members, dict):
            raise InvalidRequestError(f"'claims.{target}' must be a JSON object.")
        for name, spec in members.items():
            if spec is not None and not isinstance(spec, dict):
                raise InvalidRequestError(f"'claims.{target}.{name[:40]}' must be null or a JSON object.")
            if isinstance(spec, dict) and not isinstance(spec.get("essential", False), bool):
                raise InvalidRequestError(
                    f"'essential' of 'claims.{target}.{name[:40]}' must be true or false.")
        requested[target] = sorted(KNOWN_CLAIMS & set(members))
    return requested


def dump_claims(requested: dict[str, list[str]] | None) -> str | None:
    """The requested claims as stored with a code or token."""
    return json.dumps(requested, sort_keys=True) if requested else None


def load_claims(stored: str | None, target: str) -> list[str]:
    """The claims stored with a code or token for one target ("userinfo" or "id_token")."""
    return json.loads(stored).get(target, []) if stored else []


def requested_claims(request) -> dict[str, list[str]] | None:
    """What the authorization request asked for (set by ``ClaimsParameter``)."""
    return getattr(request, "requested_claims", None)


def claims_beyond_scope(request, scope: str) -> list[str]:
    """The individual claims the request asks for (in either target) that ``scope`` would not
    release: the person consents to these by name."""
    requested = {claim for claims in (requested_claims(request) or {}).values() for claim in claims}
    released = {claim for s in scope.split() for claim in SCOPE_CLAIMS.get(s, [])}
    return sorted(requested - released)


class ClaimsParameter:
    """A grant extension: read and check ``claims`` when the consent request is validated."""

    def __call__(self, grant):
        grant.register_hook("after_validate_consent_request", self.validate)

    def validate(self, grant, redirect_uri):
        try:
            grant.request.requested_claims = parse_claims(grant.request.payload.data.get("claims"))
        except InvalidRequestError as error:
            error.redirect_uri = redirect_uri
            error.redirect_fragment = isinstance(grant, grants.ImplicitGrant)
            raise


#: Each claim in words, for the consent page.
CLAIM_DESCRIPTIONS = {
    "sub": "Your account's identifier.",
    "name": "Your name.",
    "preferred_username": "Your username.",
    "updated_at": "When your profile last changed.",
    "email": "Your email address.",
    "email_verified": "Whether your email address is verified.",
    "groups": "The groups you belong to.",
}
