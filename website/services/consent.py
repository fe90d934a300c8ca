"""Remembered consent: what each user allowed each client, and taking it back.

Once a user allowed a client a set of scopes (and the APIs, ``audience`` / ``resource``, it may
get tokens for), later authorization requests for a subset skip the consent page (unless the
client asks again with ``prompt=consent``); a request for an API the consent did not name shows
the page again. Revoking an app
deletes the consent and stops every token and unused code the app holds for that user.
"""

from authlib.oauth2.rfc6749 import scope_to_list
from sqlalchemy import delete, select, update

from website.extensions import db
from website.models.base import now
from website.models.clients import OAuth2Client
from website.models.grants import AuthorizationCode, Consent, Token
from website.models.users import User
from website.oauth2.claims import claims_beyond_scope
from website.store import audit


def find_consent(user: User, client: OAuth2Client) -> Consent | None:
    """The user's remembered consent for this client, if any."""
    return db.session.scalar(
        select(Consent).where(Consent.user_id == user.id, Consent.client_id == client.client_id)
    )


def effective_scope(grant) -> str:
    """The scopes the tokens will carry: a request without ``scope`` gets the client's
    registered scopes, so that is what the person consents to."""
    return grant.client.get_allowed_scope(grant.request.payload.scope or "")


def requested_audience(grant) -> str | None:
    """The identifier of the API the request asks tokens for, once validated (oauth2/audiences.py
    sets it after the consent request is validated); None for none."""
    return getattr(grant.request, "audience", None)


def consent_required(grant, user: User) -> bool:
    """Tell whether the authorize view must ask the user before granting ``grant``."""
    prompts = (grant.request.payload.data.get("prompt") or "").split()
    if "consent" in prompts:
        return True
    consent = find_consent(user, grant.client)
    if consent is None or not consent.covers(effective_scope(grant), requested_audience(grant)):
        return True
    # Remembered consent names scopes: individual claims (the claims parameter) beyond what
    # they release are asked for each time.
    return bool(claims_beyond_scope(grant.request, consent.scope))


def requested_claims(grant) -> list[str]:
    """The individual claims the consent page names: those the claims parameter asks for
    beyond what the effective scope releases."""
    return claims_beyond_scope(grant.request, effective_scope(grant))


def remember_consent(user: User, client: OAuth2Client, scope: str | None, audience: str | None = None) -> Consent:
    """Record that the user allowed these scopes (see ``effective_scope``) and the API
    ``audience`` (if any), adding to what was allowed before."""
    consent = find_consent(user, client)
    if consent is None:
        consent = Consent(user_id=user.id, client_id=client.client_id, scope="", audiences="")
        db.session.add(consent)
    allowed = scope_to_list(consent.scope) or []
    consent.scope = " ".join(dict.fromkeys(allowed + (scope_to_list(scope) or [])))
    if audience:
        consent.audiences = " ".join(dict.fromkeys(consent.audience_list() + [audience]))
    db.session.commit()
    return consent


def list_consents(user: User) -> list[Consent]:
    """The apps the user approved, most recent first."""
    return list(db.session.scalars(
        select(Consent).where(Consent.user_id == user.id).order_by(Consent.updated_at.desc(), Consent.id.desc())
    ))


def revoke_consent(user: User, client_id: str) -> bool:
    """Forget the consent and stop the app's tokens and unused codes for the user at once.

    Returns False when the user had not approved that app.
    """
    consent = db.session.scalar(
        select(Consent).where(Consent.user_id == user.id, Consent.client_id == client_id)
    )
    if consent is None:
        return False
    stamp = now()
    owned = (Token.user_id == user.id, Token.client_id == client_id)
    db.session.execute(update(Token).where(*owned, Token.access_token_revoked_at == 0)
                       .values(access_token_revoked_at=stamp))
    db.session.execute(update(Token).where(*owned, Token.refresh_token_revoked_at == 0)
                       .values(refresh_token_revoked_at=stamp))
    db.session.execute(delete(AuthorizationCode).where(
        AuthorizationCode.user_id == user.id, AuthorizationCode.client_id == client_id,
        AuthorizationCode.used_at.is_(None),
    ))
    db.session.delete(consent)
    audit.record("consent_revoked", user=user, client_id=client_id, scope=consent.scope,
                 audiences=consent.audience_list())
    db.session.commit()
    return True
