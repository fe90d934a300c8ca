"""APIs: lookups of the registered resource servers and their scopes; the token
endpoint's from the in-process cache (store/cache.py), read-only."""

from sqlalchemy import select

from website.extensions import db
from website.models.apis import ApiClientGrant, ApiSnapshot, ResourceServer
from website.store.cache import APIS, versioned_cache


def _valid_identifier(identifier: str | None) -> bool:
    # PostgreSQL refuses even to compare text holding a NUL byte.
    return bool(identifier) and len(identifier) <= 2000 and "\x00" not in identifier


def find_api(identifier: str | None) -> ResourceServer | None:
    """The registered API with this identifier (its row, to change it)."""
    if not _valid_identifier(identifier):
        return None
    return db.session.scalar(select(ResourceServer).where(ResourceServer.identifier == identifier))


def _all_apis() -> dict[str, ApiSnapshot]:
    """Every registered API, read-only, by identifier: from the cache, or one query."""
    entries = versioned_cache().fresh(APIS)
    apis = entries.get("apis") if entries is not None else None
    if apis is None:
        apis = {row.identifier: ApiSnapshot(row) for row in db.session.scalars(select(ResourceServer))}
        if entries is not None:
            entries["apis"] = apis
    return apis


def cached_api(identifier: str | None) -> ApiSnapshot | None:
    """The registered API with this identifier, read-only (for issuing and showing tokens)."""
    if not _valid_identifier(identifier):
        return None
    return _all_apis().get(identifier)


def api_scopes() -> set[str]:
    """Every scope some registered API defines."""
    return {scope for api in _all_apis().values() for scope in api.scopes}


def api_names() -> dict[str, str]:
    """Each registered API's name for people, by its identifier."""
    return {identifier: api.name for identifier, api in _all_apis().items()}


def api_allows(api, client_id: str) -> bool:
    """Tell whether an administrator allowed the client tokens for the API (``grant-api``)."""
    entries = versioned_cache().fresh(APIS)
    key = ("grant", api.id, client_id)
    allowed = entries.get(key) if entries is not None else None
    if allowed is None:
        allowed = db.session.scalar(select(ApiClientGrant.id).where(
            ApiClientGrant.api_id == api.id, ApiClientGrant.client_id == client_id)) is not None
        if entries is not None:
            entries[key] = allowed
    return allowed


def api_grant(api, client_id: str) -> ApiClientGrant | None:
    """The administrator's grant of the API to the client (``grant-api``), or None: the row."""
    return db.session.scalar(select(ApiClientGrant).where(
        ApiClientGrant.api_id == api.id, ApiClientGrant.client_id == client_id))
