"""The test config, the test password, and direct reads and writes of the database (the
``make_user`` and ``make_client`` fixtures in conftest.py build on these)."""

import secrets
import uuid
from contextlib import contextmanager

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet

from website.models import db
from website.store import throttle

#: Fast password hashing for tests; production uses scrypt.
TEST_PASSWORD_METHOD = "pbkdf2:sha256:1000"
PASSWORD = "correct horse battery"
#: The key that encrypts the private signing keys, one for the whole run: the session's database
#: is made by one app and used by many.
TEST_KEY_ENCRYPTION_KEY = Fernet.generate_key().decode()


def config_for(url: str, **overrides) -> dict:
    """The config of a test app on the database at ``url``."""
    return {
        "TESTING": True,
        "SECRET_KEY": "test-" + secrets.token_hex(8),
        "KEY_ENCRYPTION_KEYS": TEST_KEY_ENCRYPTION_KEY,
        "DATABASE_URL": url,
        "PASSWORD_HASH_METHOD": TEST_PASSWORD_METHOD,
        "OAUTH2_ISSUER": "http://127.0.0.1",
        # Tests send logout tokens with `flask deliver-logouts` or deliver_due() themselves.
        "LOGOUT_DELIVERY_WORKER": False,
        # and queued mail with `flask send-queued-mail`, unless a test starts the worker.
        "MAIL_QUEUE_WORKER": False,
        **overrides,
    }


@contextmanager
def redis_config(config: dict):
    """``config`` with REDIS_URL set to the local Redis, under a key prefix of its own that is
    emptied afterwards (the test is skipped without the redis package)."""
    redis = pytest.importorskip("redis")
    prefix = f"test:{uuid.uuid4().hex}:"
    connection = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    connection.ping()
    try:
        yield {**config, "REDIS_URL": "redis://127.0.0.1:6379/0", "THROTTLE_REDIS_PREFIX": prefix}
    finally:
        for name in connection.scan_iter(f"{prefix}*"):
            connection.delete(name)
        connection.close()


class OnRedis:
    """A test class's app with REDIS_URL set (``redis_config``): inherit it."""

    @pytest.fixture
    def app_config(self, app_config):
        with redis_config(app_config) as config:
            yield config

    @pytest.fixture
    def app(self, app):
        yield app
        throttle.close(app)


def detached(obj):
    """Load every column of a committed row and detach it, for use outside the app context."""
    db.session.refresh(obj)
    db.session.expunge(obj)
    return obj


def detached_rows(app, model, *conditions) -> list:
    """The rows of a model (matching the conditions) in id order, loaded and detached."""
    with app.app_context():
        rows = list(db.session.scalars(sa.select(model).where(*conditions).order_by(model.id)))
        for row in rows:
            db.session.expunge(row)
        return rows


def count_rows(app, model, *conditions) -> int:
    """How many rows of a model (matching the conditions) the database holds."""
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(model).where(*conditions))


def update_rows(app, model, values: dict, *conditions) -> None:
    """Change rows directly in the database, e.g. to make a token expire."""
    with app.app_context():
        db.session.execute(sa.update(model).where(*conditions).values(**values))
        db.session.commit()
