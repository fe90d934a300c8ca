"""The blueprints, one module each."""

import secrets
import sqlite3
from pathlib import Path
from urllib.parse import urlsplit

from flask import Flask, current_app, render_template, request
from flask_migrate import Migrate
from flask_wtf.csrf import CSRFError, CSRFProtect
from sqlalchemy import event
from sqlalchemy.engine import Engine
from werkzeug.exceptions import InternalServerError

from website import config as default_config
from website.extensions import db


def url_host(uri: str) -> str:
    """The host (and port) of a URI, to tell people where they are being sent."""
    try:
        return urlsplit(uri).netloc or uri
    except ValueError:
        return uri
