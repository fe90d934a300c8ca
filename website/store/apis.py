"""APIs: lookups of the registered resource servers and their scopes."""

from sqlalchemy import select

from website.extensions import db
from website.models.apis import ApiClientGrant, ResourceServer


def find_api(identifier: str | None) -> ResourceServer | None:
    """The registered API with this identifier."""
    # PostgreSQL refuses even to compare text holding a NUL byte.
    if not identifier or len(identifier) > 2000 or "\x00" in identifier:
        return None
    return db.session.scalar(select(ResourceServer).where(ResourceServer.identifier == identifier))


def api_scopes() -> set[str]:
    """Every scope some registered API defines."""
    return {scope for scopes in db.session.scalars(select(ResourceServer.scopes)) for scope in scopes or []}


def api_names() -> dict[str, str]:
    """Each registered API's name for people, by its identifier."""
    return dict(db.session.execute(select(ResourceServer.identifier, ResourceServer.name)).all())


def api_allows(api: ResourceServer, client_id: str) -> bool:
    """Tell whether an administrator allowed the client tokens for the API (``grant-api``)."""
    return db.session.scalar(select(ApiClientGrant.id).where(
        ApiClientGrant.api_id == api.id, ApiClientGrant.client_id == client_id)) is not None


def api_grant(api: ResourceServer, client_id: str) -> ApiClientGrant | None:
    """The administrator's grant of the API to the client (``grant-api``), or None."""
    return db.session.scalar(select(ApiClientGrant).where(
        ApiClientGrant.api_id == api.id, ApiClientGrant.client_id == client_id))
