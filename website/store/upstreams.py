"""Reads and writes of upstream providers, the identities linked to them, and the state of
sign-ins under way (Authlib's client cache, taken once)."""

from sqlalchemy import delete, func, select

from website.extensions import db
from website.models.base import hash_secret, now, utcnow
from website.models.upstreams import Upstream, UpstreamIdentity, UpstreamState
from website.models.users import User
from website.store.sealed import seal, unseal


def all_upstreams() -> list[Upstream]:
    """Every configured upstream, in the order the log-in page shows them."""
    return list(db.session.scalars(select(Upstream).order_by(Upstream.display_name, Upstream.name)))


def find_upstream(name: str | None) -> Upstream | None:
    """The upstream of this name, or None."""
    if not name or len(name) > 40 or "\x00" in name:
        return None
    return db.session.scalar(select(Upstream).where(Upstream.name == name))


def set_client_secret(upstream: Upstream, secret: str) -> None:
    """Keep the client secret sealed under KEY_ENCRYPTION_KEYS."""
    upstream.client_secret_encrypted = seal(secret)


def client_secret(upstream: Upstream) -> str:
    """The client secret, unsealed (UnsealError when no configured key opens it)."""
    return unseal(upstream.client_secret_encrypted, f"Upstream client secret of {upstream.name}").decode("utf-8")


def find_identity(upstream: Upstream, subject: str) -> UpstreamIdentity | None:
    """The identity linked for this upstream's subject, or None."""
    return db.session.scalar(select(UpstreamIdentity).where(
        UpstreamIdentity.upstream_id == upstream.id, UpstreamIdentity.subject == subject))


def identities_of(user: User) -> list[UpstreamIdentity]:
    """The upstream identities linked to the account, oldest first."""
    return list(db.session.scalars(select(UpstreamIdentity).where(UpstreamIdentity.user_id == user.id)
                                   .order_by(UpstreamIdentity.id)))


def count_identities(user: User) -> int:
    """How many upstream identities the account has."""
    return db.session.scalar(select(func.count()).select_from(UpstreamIdentity)
                             .where(UpstreamIdentity.user_id == user.id))


def link_identity(user: User, upstream: Upstream, subject: str, email: str | None,
                  groups: list) -> UpstreamIdentity:
    """Add the identity (upstream, subject) to the account (the caller commits)."""
    identity = UpstreamIdentity(user_id=user.id, upstream_id=upstream.id, subject=subject,
                                email=email, groups=groups, last_used_at=utcnow())
    db.session.add(identity)
    return identity


def users_with_email(email: str) -> list[User]:
    """The accounts whose address is this one (compared without regard to case)."""
    if not email or "\x00" in email:
        return []
    return list(db.session.scalars(select(User).where(func.lower(User.email) == email.strip().lower())))


class StateCache:
    """Authlib's client cache (get/set/delete) for the state of sign-ins sent upstream, in the
    database so every instance sees it; ``get`` deletes what it returns, so a state is used
    once even when a callback is replayed with an old cookie or twice at the same moment."""

    def get(self, key: str) -> str | None:
        key_hash = hash_secret(key)
        row = db.session.get(UpstreamState, key_hash)
        if row is None or row.expires_at <= now():
            return None
        value = row.value
        taken = db.session.execute(delete(UpstreamState).where(UpstreamState.key_hash == key_hash))
        db.session.commit()
        # Another request took it between the read and the delete: it is theirs.
        return value if taken.rowcount == 1 else None

    def set(self, key: str, value: str, expires_in: int) -> None:
        db.session.add(UpstreamState(key_hash=hash_secret(key), value=value, expires_at=now() + expires_in))
        db.session.commit()

    def delete(self, key: str) -> None:
        db.session.execute(delete(UpstreamState).where(UpstreamState.key_hash == hash_secret(key)))
        db.session.commit()


def purge_expired_states() -> int:
    """Delete the state of sign-ins sent upstream that never came back in time; how many."""
    result = db.session.execute(delete(UpstreamState).where(UpstreamState.expires_at <= now()))
    db.session.commit()
    return result.rowcount
