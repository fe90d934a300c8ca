"""The breached-password check (PWNED_PASSWORDS_CHECK, off by default): the k-anonymity range
API of Have I Been Pwned. Only the first five hex digits of the password's SHA-1 are sent;
the answer lists every known suffix under that prefix, and the match is made here."""

import hashlib
import hmac
import logging
import urllib.error
import urllib.request

from flask import current_app

logger = logging.getLogger("website.pwned")


def times_breached(password: str) -> int | None:
    """How often the password appears in the breached-password list (0: never); None when the
    check is off or the list could not be asked in PWNED_PASSWORDS_TIMEOUT seconds (the
    password is then accepted: an outage must not stop people from choosing one)."""
    config = current_app.config
    if not config["PWNED_PASSWORDS_CHECK"]:
        return None
    digest = hashlib.sha1(password.encode("utf-8", "surrogatepass")).hexdigest().upper()
    prefix, suffix = digest[:5], digest[5:]
    url = f"{config['PWNED_PASSWORDS_URL'].rstrip('/')}/range/{prefix}"
    # Add-Padding: the answer's size does not tell an eavesdropper the prefix.
    request = urllib.request.Request(url, headers={"Add-Padding": "true", "User-Agent": config["SITE_NAME"][:60]})
    try:
        with urllib.request.urlopen(request, timeout=config["PWNED_PASSWORDS_TIMEOUT"]) as response:
            body = response.read(4 * 1024 * 1024).decode("ascii", "replace")
    except (urllib.error.URLError, OSError, ValueError) as error:
        logger.warning("The breached-password list at %s did not answer: %s", url, error)
        return None
    for line in body.splitlines():
        candidate, _, count = line.strip().partition(":")
        if hmac.compare_digest(candidate.upper().encode(), suffix.encode()):
            # Padding lines carry a count of 0.
            return int(count) if count.strip().isdigit() else 1
    return 0
