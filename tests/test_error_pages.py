"""Errors shown to people: the OAuth error page, 403/404/500 pages, all in the site's layout."""

import logging
from urllib.parse import urlencode

import pytest

from website.models import db


def test_not_found_page_uses_the_layout(test_client):
    response = test_client.get("/no/such/page")
    assert response.status_code == 404
    html = response.get_data(as_text=True)
    assert "<h1>Page not found</h1>" in html
    assert 'class="site-header"' in html and "/static/style.css" in html


@pytest.fixture
def failing_app(app_config):
    """An app with a page that crashes, whose errors are handled as in production."""
    from website import create_app

    app = create_app({**app_config, "PROPAGATE_EXCEPTIONS": False})

    @app.route("/boom")
    def boom():
        raise RuntimeError("the flux capacitor broke")

    yield app
    with app.app_context():
        db.engine.dispose()


def test_internal_error_is_logged_and_shown_as_a_page(failing_app, caplog):
    with caplog.at_level(logging.ERROR):
        response = failing_app.test_client().get("/boom")
    assert response.status_code == 500
    html = response.get_data(as_text=True)
    assert "Something went wrong on our side" in html
    assert "flux capacitor" not in html  # no internals shown to people
    reference = html.split("Error reference: <code>", 1)[1].split("<", 1)[0]
    logged = [r for r in caplog.records if reference in r.getMessage()]
    assert logged and "RuntimeError('the flux capacitor broke')" in logged[0].getMessage()
    assert "/boom" in logged[0].getMessage()


def test_unknown_client_gets_an_explained_error_page(test_client):
    response = test_client.get("/oauth/authorize?" + urlencode(
        {"response_type": "code", "client_id": "nobody", "redirect_uri": "https://evil.test/cb"}))
    assert response.status_code in (400, 401)
    assert "Location" not in response.headers  # never redirected to an unverified address
    html = response.get_data(as_text=True)
    assert "This sign-in request cannot continue" in html
    assert "not registered on this server" in html
    assert "What you can do" in html
    assert "invalid_client" in html


def test_unregistered_redirect_uri_gets_an_explained_error_page(test_client, make_client):
    client, _ = make_client()
    response = test_client.get("/oauth/authorize?" + urlencode({
        "response_type": "code", "client_id": client.client_id, "redirect_uri": "https://evil.test/cb"}))
    assert response.status_code == 400
    assert "Location" not in response.headers
    html = response.get_data(as_text=True)
    assert "has not registered" in html
    assert "redirect_uri" in html


def test_expired_form_explains_what_to_do(test_client, user):
    response = test_client.post("/login", data={"username": "alice", "password": "x"})
    assert response.status_code == 400
    assert "This form has expired" in response.get_data(as_text=True)
