"""Blueprint: the branding every page uses (name, logo, colour, support address), its
stylesheet, and templates a deployer overrides from the instance folder."""

import hashlib
from pathlib import Path

from flask import Blueprint, make_response, request
from jinja2 import ChoiceLoader, FileSystemLoader

from website.services.branding import branding_css
from website.store.branding import branding

bp = Blueprint("branding", __name__)


@bp.route("/branding.css")
def stylesheet():
    """The primary colour as CSS custom properties (a file: the CSP allows no inline style)."""
    css = branding_css(branding())
    etag = hashlib.sha256(css.encode()).hexdigest()[:16]
    if request.if_none_match.contains(etag):
        response = make_response("", 304)
    else:
        response = make_response(css)
        response.content_type = "text/css; charset=utf-8"
    response.set_etag(etag)
    # Short: a colour changed in the admin UI shows within a minute everywhere.
    response.headers["Cache-Control"] = "public, max-age=60"
    return response


def init_app(app) -> None:
    """Templates from TEMPLATE_OVERRIDES_DIR (default: the instance folder's templates/) win
    over the built-in ones; every template sees ``brand``."""
    overrides = app.config.get("TEMPLATE_OVERRIDES_DIR") or str(Path(app.instance_path) / "templates")
    app.jinja_loader = ChoiceLoader([FileSystemLoader(overrides), app.jinja_loader])
    app.context_processor(lambda: {"brand": branding()})
