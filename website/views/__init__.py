"""The blueprints, one module each: pages for people and the protocol endpoints."""

from datetime import datetime, timezone
from urllib.parse import urlsplit

from website.views import (  # noqa: F401 (admin_console: routes on admin.bp)
    account,
    admin,
    admin_api,
    admin_console,
    api,
    auth,
    branding,
    clients,
    device,
    links,
    logout,
    mfa,
    passkeys,
    protocol,
    upstream,
)

BLUEPRINTS = (auth.bp, clients.bp, admin.bp, protocol.bp, api.bp, account.bp, logout.bp, branding.bp, admin_api.bp,
              mfa.bp, passkeys.bp, device.bp, links.bp, upstream.bp)


def url_host(uri: str) -> str:
    """The host (and port) of a URI, to tell people where they are being sent."""
    try:
        return urlsplit(uri).netloc or uri
    except ValueError:
        return uri


def timestamp(seconds: int | None) -> str:
    """Seconds since the epoch as a date and time people read (UTC)."""
    if seconds is None:
        return ""
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%d %B %Y, %H:%M UTC")


def init_app(app) -> None:
    """Register every blueprint and the template filters."""
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
    app.add_template_filter(url_host, "urlhost")
    app.add_template_filter(timestamp, "timestamp")
    branding.init_app(app)
