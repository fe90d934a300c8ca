"""A minimal Django project for the mozilla-django-oidc test, settings in code: the library's
own URLs (/oidc/authenticate/, /oidc/callback/) and backend, and (urls.py) a profile page at
Django's default LOGIN_REDIRECT_URL that shows who is signed in.

Only what mozilla-django-oidc requires is set for the provider: the client, the endpoints, and
RS256 with the JWKS URL (its default, HS256 with the client secret as key, cannot work with a
provider that keeps secrets hashed and signs with its own keys)."""

import django
from django.conf import settings
from django.core.management import call_command


def setup(database: str) -> None:
    """Configure Django (once per process) on a SQLite file and create its tables."""
    settings.configure(
        DEBUG=False,
        SECRET_KEY="interop-test-only",
        ALLOWED_HOSTS=["127.0.0.1"],
        ROOT_URLCONF=__name__ + ".urls",
        INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes", "django.contrib.sessions",
                        "mozilla_django_oidc"],
        MIDDLEWARE=["django.contrib.sessions.middleware.SessionMiddleware",
                    "django.contrib.auth.middleware.AuthenticationMiddleware"],
        AUTHENTICATION_BACKENDS=["mozilla_django_oidc.auth.OIDCAuthenticationBackend"],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": database}},
        USE_TZ=True,
        OIDC_RP_SIGN_ALGO="RS256",
    )
    django.setup()
    call_command("migrate", verbosity=0, interactive=False)


def provider_settings(issuer: str, client_id: str, client_secret: str) -> dict:
    """mozilla-django-oidc's settings for the provider at ``issuer`` (with its trailing slash)."""
    base = issuer.rstrip("/")
    return {
        "OIDC_RP_CLIENT_ID": client_id,
        "OIDC_RP_CLIENT_SECRET": client_secret,
        "OIDC_OP_AUTHORIZATION_ENDPOINT": base + "/authorize",
        "OIDC_OP_TOKEN_ENDPOINT": base + "/oauth/token",
        "OIDC_OP_USER_ENDPOINT": base + "/userinfo",
        "OIDC_OP_JWKS_ENDPOINT": base + "/.well-known/jwks.json",
    }
