"""The person's side of the device flow (RFC 8628 §3.3): finding the request by the user
code they type, throttled against guessing (§5.1), and recording their answer."""

from website.extensions import db
from website.models.pending import DeviceCode
from website.models.users import User
from website.oauth2.device import is_possible_user_code, normalize_user_code
from website.store import audit, throttle
from website.store.device_codes import decide, query_user_code
from website.store.groups import may_use_client


class UserCodeRefused(ValueError):
    """The code typed finds no request this person can answer; the message says why."""


def user_code_subjects(user: User) -> tuple:
    """What wrong user codes count against: the person and the address (across accounts)."""
    return ("user_code", user.id), ("user_code_address", throttle.client_address())


def find_device_request(text: str, user: User) -> DeviceCode:
    """The pending device request with this user code; raise UserCodeRefused otherwise.

    Each try is counted before the lookup, so no number of simultaneous guesses gets more
    lookups than the limit; a code that finds a request is not a failure."""
    attempt = throttle.begin_attempt(*user_code_subjects(user))
    if attempt.wait:
        raise UserCodeRefused(throttle.wait_message(attempt.wait))
    code = normalize_user_code(text)
    item = query_user_code(code) if is_possible_user_code(code) else None
    if item is None or item.is_expired() or item.decision is not None:
        wait = attempt.failed()
        audit.record("device_code_failed", user=user)
        db.session.commit()
        if wait:
            raise UserCodeRefused(throttle.wait_message(wait))
        raise UserCodeRefused("That code is not valid: it may have expired or been used already. "
                              "Check the code on your device, or start again there.")
    attempt.succeeded()
    if not may_use_client(user.id, item.client_id):
        audit.record("client_access_refused", user=user, client_id=item.client_id)
        db.session.commit()
        raise UserCodeRefused("This app is only for members of certain groups, and your account is in none of "
                              "them. Ask an administrator if you need it.")
    return item


def answer_device_request(item: DeviceCode, user: User, allowed: bool, auth_time: int | None) -> bool:
    """Record the person's Allow or Deny (audited); False if the request was answered or
    expired meanwhile."""
    if not decide(item, user.id, allowed, auth_time):
        db.session.rollback()
        return False
    audit.record("device_authorized" if allowed else "device_denied", user=user,
                 client_id=item.client_id, scope=item.scope)
    db.session.commit()
    return True


def format_user_code(code: str) -> str:
    """A user code as the device shows it: XXXX-XXXX."""
    code = normalize_user_code(code)
    return f"{code[:4]}-{code[4:]}" if len(code) == 8 else code
