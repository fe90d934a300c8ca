"""What an administrator does to a person's account, the same from the admin console, the
admin API and the CLI: disable it (sessions and tokens stop at once) and enable it again."""

from website.extensions import db
from website.models.base import utcnow
from website.models.users import User
from website.services.sessions import end_all_sessions
from website.store import audit
from website.store.tokens import revoke_user_tokens


def disable_account(user: User, by: User | None, via: str) -> bool:
    """Disable the account: no sign-in, every session ended, every token revoked; False if it
    was disabled already. Commits."""
    if user.disabled_at is not None:
        return False
    user.disabled_at = utcnow()
    end_all_sessions(user)
    revoke_user_tokens(user.id, reason="account disabled")
    audit.record("account_disabled", user=user, by=by.username if by else None, via=via)
    db.session.commit()
    return True


def enable_account(user: User, by: User | None, via: str) -> bool:
    """Let the person sign in again (their old sessions and tokens stay ended); False if the
    account was enabled already. Commits."""
    if user.disabled_at is None:
        return False
    user.disabled_at = None
    audit.record("account_enabled", user=user, by=by.username if by else None, via=via)
    db.session.commit()
    return True
