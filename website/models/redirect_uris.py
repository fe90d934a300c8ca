"""Redirect URI rules: what may be registered, and how a request's URI is matched.

Matching is exact string comparison, except that for a loopback redirect URI of a native
app the port may differ (RFC 8252 §7.3), since the app picks a free port at run time.
"""

import ipaddress
import re
from urllib.parse import urlsplit

#: The characters RFC 3986 allows in a URI (anything else must be percent-encoded). A quote or
#: angle bracket in a registered URI could never be used (and is how markup injection starts).
_URI_CHARACTERS = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]*")


#: Schemes that run code or carry data in the browser: never a redirect target or link.
DANGEROUS_SCHEMES = {"javascript", "data", "vbscript", "file", "blob", "about"}


def _is_loopback_ip_literal(host: str | None) -> bool:
    if not host:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def redirect_uri_matches(registered: str, requested: str) -> bool:
    """Tell whether a requested redirect URI matches a registered one."""
    if registered == requested:
        return True
    try:
        reg, req = urlsplit(registered), urlsplit(requested)
        req.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        return False
    if reg.scheme != "http" or not _is_loopback_ip_literal(reg.hostname):
        return False
    return (
        req.scheme == "http"
        and req.hostname == reg.hostname
        and req.path == reg.path
        and req.query == reg.query
        and not req.fragment
        and req.username is None
    )


def _bad_characters(uri: str) -> str | None:
    if not _URI_CHARACTERS.fullmatch(uri):
        return "A URI may not contain spaces, quotes, <, > or other characters that must be percent-encoded."
    return None


def validate_redirect_uri(uri: str, allow_http: bool = False) -> str | None:
    """Return why a redirect URI cannot be registered, or None when it can."""
    uri = uri.strip()
    if not uri:
        return "A redirect URI cannot be empty."
    if len(uri) > 2000:
        return "A redirect URI must be at most 2000 characters."
    if problem := _bad_characters(uri):
        return problem
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return f"{uri} is not a valid URI."
    scheme = parts.scheme.lower()
    if not scheme:
        return f"{uri} must be an absolute URI with a scheme, such as https://."
    if scheme in DANGEROUS_SCHEMES:
        return f"The {scheme}: scheme is not allowed in a redirect URI."
    if parts.fragment or "#" in uri:
        return "A redirect URI must not contain a fragment (#)."
    if scheme in ("http", "https"):
        if not parts.hostname:
            return f"{uri} has no host."
        if parts.username or parts.password:
            return "A redirect URI must not contain a user name or password."
        loopback = parts.hostname == "localhost" or _is_loopback_ip_literal(parts.hostname)
        if scheme == "http" and not allow_http and not loopback:
            return "Plain http redirect URIs are allowed only for loopback hosts (127.0.0.1, [::1], localhost); use https."
        return None
    # RFC 8252 §7.1: native apps use a private-use scheme in reverse domain form.
    if "." not in scheme:
        return (
            f"The {scheme}: scheme is not allowed; use https, http on a loopback host, "
            "or a private-use scheme in reverse domain form (com.example.app:/callback)."
        )
    return None


def validate_web_uri(uri: str) -> str | None:
    """Return why a client_uri or logo_uri is unacceptable, or None when it is fine."""
    uri = uri.strip()
    if len(uri) > 2000:
        return "A URI must be at most 2000 characters."
    try:
        parts = urlsplit(uri)
    except ValueError:
        return f"{uri} is not a valid URI."
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return "Only http and https URIs are allowed here."
    if problem := _bad_characters(uri):
        return problem
    return None
