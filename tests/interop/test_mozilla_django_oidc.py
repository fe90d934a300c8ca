"""mozilla-django-oidc in a minimal Django project (django_site.py) against the live server:
sign-in through its default views (/oidc/authenticate/ and /oidc/callback/), its default token
request (client_secret_post), id_token check (RS256 from the JWKS, nonce) and its default
UserInfo call (GET with the token in the Authorization header), which makes the Django user."""

import django_site
import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.db import connections
from django.test import override_settings
from support.loopback import WSGIServer
from support.oidc import Browser


@pytest.fixture(scope="module")
def django_app(tmp_path_factory):
    django_site.setup(str(tmp_path_factory.mktemp("django") / "site.sqlite3"))
    yield WSGIHandler()
    connections.close_all()


def test_mozilla_django_oidc_signs_in(idp, user, make_client, django_app):
    server = WSGIServer(django_app)
    try:
        client, secret = make_client(redirect_uris=[server.url + "/oidc/callback/"], scope="openid email",
                                     token_endpoint_auth_method="client_secret_post")
        with override_settings(**django_site.provider_settings(idp + "/", client.client_id, secret)):
            browser = Browser(idp)
            start = browser.session.get(server.url + "/oidc/authenticate/", allow_redirects=False, timeout=10)
            assert start.status_code == 302 and start.headers["Location"].startswith(idp + "/authorize?")
            callback = browser.authorize(start.headers["Location"])
            assert callback.startswith(server.url + "/oidc/callback/?"), callback
            profile = browser.session.get(callback, timeout=10)
    finally:
        server.close()
        connections.close_all()
    assert profile.status_code == 200 and profile.url == server.url + "/accounts/profile/", profile.text[:500]
    # The backend found no user with the e-mail UserInfo gave, so it made one from those claims.
    assert profile.json() == {"signed_in": True, "username": profile.json()["username"],
                              "email": "alice@example.com"}
