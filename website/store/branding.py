"""The site's branding: the configuration's values, overridden by what an administrator saved
in the admin UI (``site_settings``). Read once per request that renders a page or a mail."""

from dataclasses import dataclass

from flask import current_app, g, has_request_context
from sqlalchemy import delete, select
from sqlalchemy.exc import SQLAlchemyError

from website.extensions import db
from website.models.settings import SiteSetting

#: The settings branding is made of, with the configuration key each overrides.
BRAND_KEYS = ("SITE_NAME", "SITE_LOGO_URL", "SITE_PRIMARY_COLOR", "SITE_SUPPORT_EMAIL")


@dataclass(frozen=True)
class Brand:
    name: str
    logo_url: str | None
    primary_color: str
    support_email: str | None


def branding() -> Brand:
    """The branding in force (kept for the rest of the request)."""
    if has_request_context() and (brand := g.get("brand")) is not None:
        return brand
    values = {key: current_app.config.get(key) for key in BRAND_KEYS}
    try:
        values.update(saved_branding())
    except SQLAlchemyError:
        # The database is unreachable (the page being drawn may be the 503 saying so): the
        # configured branding still makes a page.
        db.session.rollback()
    brand = Brand(name=values["SITE_NAME"], logo_url=values["SITE_LOGO_URL"] or None,
                  primary_color=values["SITE_PRIMARY_COLOR"], support_email=values["SITE_SUPPORT_EMAIL"] or None)
    if has_request_context():
        g.brand = brand
    return brand


def saved_branding() -> dict[str, str]:
    """What the admin UI saved (configuration keys to values)."""
    rows = db.session.execute(select(SiteSetting.name, SiteSetting.value).where(SiteSetting.name.in_(BRAND_KEYS)))
    return {name: value for name, value in rows}


def save_branding(values: dict[str, str | None]) -> None:
    """Store the admin's choices (a value equal to the configuration's, or empty, is removed,
    so the configuration applies again); the caller commits."""
    db.session.execute(delete(SiteSetting).where(SiteSetting.name.in_(list(values))))
    for key, value in values.items():
        if value and value != current_app.config.get(key):
            db.session.add(SiteSetting(name=key, value=value))
    g.pop("brand", None)
