"""Passkeys (WebAuthn, through py_webauthn): registering one, signing in with one and no
password, one as the second factor after a password, and one as the proof of an account an
upstream identity is being linked to.

Every ceremony starts with a challenge from ``store.passkeys.issue_challenge`` (single-use,
short-lived, in the database) and ends by spending it before anything else is believed. The
relying party is the host of OAUTH2_ISSUER and its origin, unless WEBAUTHN_RP_ID and
WEBAUTHN_ORIGINS say otherwise. Each change and each use is audited and mailed to the person.

py_webauthn is imported by the ceremonies themselves, not with this module: with pyOpenSSL and
cbor2 it is 5 MiB resident in every worker, most of which never sees a passkey.
"""

import binascii
import ipaddress
import json
import logging
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import current_app, request
from sqlalchemy.exc import IntegrityError
from website.extensions import db
from website.models.passkeys import Passkey
from website.models.users import User
from website.oauth2.keys import get_issuer
from website.services.mail import MailError, send_mail
from website.store import audit
from website.store import passkeys as store
from website.store.branding import branding

logger = logging.getLogger("website.passkeys")

REGISTER, SIGN_IN, SECOND_FACTOR, LINK = "register", "sign_in", "second_factor", "link"

#: The ceremonies that stand for signing in to the account, so need user verification.
VERIFIED_PURPOSES = (SIGN_IN, LINK)

NAME_MAX_LENGTH = 64


class PasskeyError(Exception):
    """A ceremony that failed; the message is fit to show the person."""


@dataclass(frozen=True)
class RelyingParty:
    id: str
    name: str
    origins: tuple[str, ...]


def relying_party() -> RelyingParty:
    """The RP id (WEBAUTHN_RP_ID, else the issuer's host) and the origins a response may come
    from (WEBAUTHN_ORIGINS, space- or comma-separated, else the issuer's origin)."""
    config = current_app.config
    issuer = urlsplit(get_issuer())
    rp_id = config.get("WEBAUTHN_RP_ID") or (issuer.hostname or "")
    origins = config.get("WEBAUTHN_ORIGINS")
    if isinstance(origins, str):
        origins = origins.replace(",", " ").split()
    if not origins:
        origins = [f"{issuer.scheme}://{issuer.netloc}".lower()]
    return RelyingParty(rp_id, branding().name, tuple(o.rstrip("/") for o in origins))


def unavailable_reason() -> str | None:
    """Why passkeys cannot work on this site as configured (None when they can): WebAuthn
    refuses an IP address as the relying-party id (§5.1.3), so the site needs a host name."""
    rp_id = relying_party().id
    try:
        ipaddress.ip_address(rp_id.strip("[]"))
    except ValueError:
        return None if rp_id else "Passkeys need the site to have a host name (set OAUTH2_ISSUER)."
    return ("Passkeys cannot be used while the site is opened at an IP address; open it by its name"
            " (such as localhost or login.example.com).")


def _require_available() -> None:
    if reason := unavailable_reason():
        raise PasskeyError(reason)


def _timeout_ms() -> int:
    return current_app.config["WEBAUTHN_CHALLENGE_LIFETIME"] * 1000


def _descriptors(passkeys: list[Passkey]) -> list:
    from webauthn.helpers import base64url_to_bytes
    from webauthn.helpers.structs import AuthenticatorTransport, PublicKeyCredentialDescriptor

    known = {t.value for t in AuthenticatorTransport}
    return [PublicKeyCredentialDescriptor(
        id=base64url_to_bytes(p.credential_id),
        transports=[AuthenticatorTransport(t) for t in p.transports.split() if t in known] or None)
        for p in passkeys]


def _user_handle(user: User) -> bytes:
    """The WebAuthn user handle: the opaque ``sub`` (never the username or the email)."""
    return user.sub.encode()


def registration_options(user: User) -> str:
    """Options (JSON) for ``navigator.credentials.create``: a discoverable credential with user
    verification, none of the person's existing passkeys again."""
    from webauthn import generate_registration_options, options_to_json
    from webauthn.helpers.structs import (
        AuthenticatorSelectionCriteria,
        ResidentKeyRequirement,
        UserVerificationRequirement,
    )

    _require_available()
    rp = relying_party()
    challenge = store.issue_challenge(REGISTER, user, current_app.config["WEBAUTHN_CHALLENGE_LIFETIME"])
    options = generate_registration_options(
        rp_id=rp.id, rp_name=rp.name, user_id=_user_handle(user), user_name=user.username,
        user_display_name=user.name or user.username, challenge=challenge, timeout=_timeout_ms(),
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.REQUIRED,
            user_verification=UserVerificationRequirement.REQUIRED),
        exclude_credentials=_descriptors(store.list_passkeys(user)))
    return options_to_json(options)


def authentication_options(user: User | None = None, purpose: str | None = None) -> str:
    """Options (JSON) for ``navigator.credentials.get``: with no user, any discoverable passkey
    (passwordless sign-in, user verification required); with the user who just gave their
    password, one of their passkeys as the second factor; with ``purpose=LINK``, one of the
    user's passkeys, user verified, as the proof of the account an upstream identity links to."""
    from webauthn import generate_authentication_options, options_to_json
    from webauthn.helpers.structs import UserVerificationRequirement

    _require_available()
    purpose = purpose or (SIGN_IN if user is None else SECOND_FACTOR)
    challenge = store.issue_challenge(purpose, user, current_app.config["WEBAUTHN_CHALLENGE_LIFETIME"])
    options = generate_authentication_options(
        rp_id=relying_party().id, challenge=challenge, timeout=_timeout_ms(),
        allow_credentials=_descriptors(store.list_passkeys(user)) if user is not None else [],
        user_verification=(UserVerificationRequirement.REQUIRED if purpose in VERIFIED_PURPOSES
                           else UserVerificationRequirement.PREFERRED))
    return options_to_json(options)


def clean_name(name) -> str:
    """The name a person gave a passkey, or a PasskeyError saying what is wrong with it."""
    if not isinstance(name, str) or not name.strip():
        raise PasskeyError("Give the passkey a name, such as “Work laptop”.")
    name = " ".join(name.split())
    if len(name) > NAME_MAX_LENGTH:
        raise PasskeyError(f"Use at most {NAME_MAX_LENGTH} characters for the name.")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise PasskeyError("The name may not contain control characters.")
    return name


def _spend_challenge(credential, purpose: str, user: User | None) -> bytes:
    """Read the challenge the browser signed from clientDataJSON and spend it (committed at
    once: a failed ceremony still used its challenge up). PasskeyError when there is none."""
    from webauthn.helpers import base64url_to_bytes

    try:
        encoded = credential["response"]["clientDataJSON"]
        challenge = base64url_to_bytes(json.loads(base64url_to_bytes(encoded))["challenge"])
    except (KeyError, TypeError, ValueError, binascii.Error, UnicodeDecodeError):
        raise PasskeyError("The browser's answer was not a WebAuthn response. Please try again.")
    if not store.consume_challenge(challenge, purpose, user):
        db.session.rollback()
        raise PasskeyError("This passkey request expired or was already used. Please try again.")
    db.session.commit()
    return challenge


def register(user: User, credential, name) -> Passkey:
    """Verify the browser's answer to ``registration_options`` and add the passkey; the person
    gets a mail first (MailError: nothing was added). PasskeyError when it does not verify."""
    from webauthn import verify_registration_response
    from webauthn.helpers import bytes_to_base64url
    from webauthn.helpers.structs import CredentialDeviceType

    name = clean_name(name)
    if not isinstance(credential, dict):
        raise PasskeyError("The browser's answer was not a WebAuthn response. Please try again.")
    challenge = _spend_challenge(credential, REGISTER, user)
    rp = relying_party()
    try:
        verified = verify_registration_response(
            credential=credential, expected_challenge=challenge, expected_rp_id=rp.id,
            expected_origin=list(rp.origins), require_user_verification=True)
    except Exception as error:  # noqa: BLE001 - the library parses client bytes and raises many kinds
        _refused(user, REGISTER, error)
        raise PasskeyError("The passkey could not be verified, so it was not added. Please try again.")
    credential_id = bytes_to_base64url(verified.credential_id)
    if store.find_passkey(credential_id) is not None:
        raise PasskeyError("That passkey is already registered.")
    transports = credential.get("response", {}).get("transports") or []
    passkey = store.add_passkey(
        user, credential_id, verified.credential_public_key, verified.sign_count,
        [t for t in transports if isinstance(t, str)], name,
        backed_up=verified.credential_device_type == CredentialDeviceType.MULTI_DEVICE)
    _mail(user, "passkey_added", "a passkey was added", name=name)
    audit.record("passkey_added", user=user, passkey=name)
    try:
        db.session.commit()
    except IntegrityError:
        # The same credential was stored by a simultaneous request a moment ago.
        db.session.rollback()
        raise PasskeyError("That passkey is already registered.")
    return passkey


def sign_in(credential) -> tuple[User, tuple[str, ...]]:
    """Verify a passwordless sign-in: the user whose discoverable passkey signed the challenge,
    with user verification, and the amr values for ``log_in``. PasskeyError otherwise."""
    passkey, verified = _verify_assertion(credential, SIGN_IN, None)
    user = db.session.get(User, passkey.user_id)
    audit.record("passkey_used", user=user, passkey=passkey.name, step="sign-in")
    audit.record("login_succeeded", user=user, method="passkey")
    db.session.commit()
    _mail_use(user, passkey)
    # A passkey checked with user verification is two factors by itself: the device, and
    # the PIN or biometric that unlocked it (RFC 8176 §2: hwk / swk, user, mfa).
    return user, (_key_amr(passkey), "user", "mfa")


def second_factor(user: User, credential) -> str:
    """Verify one of the person's passkeys as the second factor after their password; the amr
    value it adds (``hwk``, or ``swk`` for a synced passkey). PasskeyError otherwise. The mail
    goes out with the finished sign-in (``services.mfa.complete_second_factor``)."""
    passkey, verified = _verify_assertion(credential, SECOND_FACTOR, user)
    audit.record("passkey_used", user=user, passkey=passkey.name, step="second factor")
    db.session.commit()
    return _key_amr(passkey)


def prove_account(user: User, credential) -> tuple[str, ...]:
    """Verify one of ``user``'s passkeys, user verified, as the proof of the account an upstream
    identity is being linked to (instead of its password); the amr values it adds. PasskeyError
    otherwise, also for a passkey of another account."""
    passkey, verified = _verify_assertion(credential, LINK, user)
    audit.record("passkey_used", user=user, passkey=passkey.name, step="link")
    db.session.commit()
    _mail_use(user, passkey)
    return _key_amr(passkey), "user", "mfa"


def _key_amr(passkey: Passkey) -> str:
    """``swk`` for a passkey that syncs between devices, ``hwk`` for one bound to its device."""
    return "swk" if passkey.backed_up else "hwk"


def _verify_assertion(credential, purpose: str, user: User | None):
    from webauthn import verify_authentication_response
    from webauthn.helpers import bytes_to_base64url
    from webauthn.helpers.structs import CredentialDeviceType

    if not isinstance(credential, dict):
        raise PasskeyError("The browser's answer was not a WebAuthn response. Please try again.")
    challenge = _spend_challenge(credential, purpose, user)
    credential_id = credential.get("id")
    passkey = store.find_passkey(credential_id) if isinstance(credential_id, str) else None
    if passkey is not None and purpose == LINK and passkey.user_id != user.id:
        _refused(user, purpose, "passkey of another account", passkey=passkey.name)
        raise PasskeyError(f"That passkey belongs to another account, not to {user.username}. Use a passkey"
                           f" of {user.username}, or its password.")
    if passkey is None or (user is not None and passkey.user_id != user.id):
        _refused(user, purpose, "unknown credential")
        raise PasskeyError("This passkey is not registered here (it may have been removed)."
                           " Sign in with your password.")
    owner = user or db.session.get(User, passkey.user_id)
    if owner.disabled_at is not None:
        _refused(owner, purpose, "account disabled", passkey=passkey.name)
        raise PasskeyError("This passkey cannot sign you in. Sign in with your password, or ask an administrator.")
    handle = credential.get("response", {}).get("userHandle")
    if purpose in VERIFIED_PURPOSES and handle and handle != bytes_to_base64url(_user_handle(owner)):
        _refused(owner, purpose, "user handle does not match the credential")
        raise PasskeyError("This passkey does not belong to the account it was registered for.")
    rp = relying_party()
    try:
        verified = verify_authentication_response(
            credential=credential, expected_challenge=challenge, expected_rp_id=rp.id,
            expected_origin=list(rp.origins), credential_public_key=passkey.public_key,
            credential_current_sign_count=passkey.sign_count,
            require_user_verification=purpose in VERIFIED_PURPOSES)
    except Exception as error:  # noqa: BLE001 - the library parses client bytes and raises many kinds
        _refused(owner, purpose, error, passkey=passkey.name)
        raise PasskeyError("The passkey could not be verified. Please try again, or sign in with your password.")
    backed_up = verified.credential_device_type == CredentialDeviceType.MULTI_DEVICE
    if not store.record_use(passkey, verified.new_sign_count, backed_up):
        db.session.rollback()
        _refused(owner, purpose, "signature counter raced another use", passkey=passkey.name)
        raise PasskeyError("The passkey could not be verified. Please try again, or sign in with your password.")
    return passkey, verified


def _refused(user: User | None, purpose: str, reason, **detail) -> None:
    """Audit a ceremony that failed, with the library's reason (origin, counter, signature...)."""
    audit.record("passkey_refused", user=user, step=purpose.replace("_", " "), reason=str(reason), **detail)
    db.session.commit()


def remove(user: User, passkey: Passkey) -> None:
    """Delete one of the person's passkeys; they get a mail first (MailError: it stays)."""
    _mail(user, "passkey_removed", "a passkey was removed", name=passkey.name)
    audit.record("passkey_removed", user=user, passkey=passkey.name)
    store.remove_passkey(passkey)
    db.session.commit()


def _mail(user: User, template: str, subject: str, **context) -> None:
    """Tell the person about a change to their passkeys (MailError when the server refuses)."""
    if user.email:
        try:
            send_mail(user.email, template, subject, user=user, address=request.remote_addr, **context)
        except MailError:
            db.session.rollback()
            raise


def _mail_use(user: User, passkey: Passkey) -> None:
    """Tell the person their passkey was used. The sign-in has happened: a mail server that is
    down must not lock them out, so a failure is logged and audited instead of raised."""
    try:
        _mail(user, "passkey_used", "your passkey was used to sign in", name=passkey.name)
    except MailError as error:
        logger.warning("The passkey-used mail to user %s was not sent: %s", user.id, error)
        audit.record("mail_failed", user=user, mail="passkey_used")
        db.session.commit()
