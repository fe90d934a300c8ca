"""Branding: the site's name, logo, colour and support address from the configuration or the
admin UI, on every page and mail; templates overridden from a folder of the deployer's."""

import pytest

from support.factories import config_for, count_rows
from support.mail import html_of, text_of
from support.pages import csrf_token
from website import create_app
from website.models import SiteSetting


def test_the_defaults(test_client):
    page = test_client.get("/login").get_data(as_text=True)
    assert "<title>Log in · Identity Provider</title>" in page
    assert 'href="/branding.css"' in page
    css = test_client.get("/branding.css")
    assert css.content_type == "text/css; charset=utf-8"
    assert "--primary: #4338ca;" in css.get_data(as_text=True)
    assert test_client.get("/branding.css", headers={"If-None-Match": css.headers["ETag"]}).status_code == 304


def test_configured_branding_is_on_every_page(database_url):
    app = create_app(config_for(database_url, SITE_NAME="Acme Sign-in", SITE_PRIMARY_COLOR="#0B5FFF",
                                SITE_SUPPORT_EMAIL="help@acme.example",
                                SITE_LOGO_URL="https://cdn.acme.example/logo.svg"))
    client = app.test_client()
    for path in ("/", "/login", "/signup"):
        page = client.get(path).get_data(as_text=True)
        assert "Acme Sign-in</title>" in page
        assert '<img class="brand-logo" src="https://cdn.acme.example/logo.svg"' in page
        assert '<a href="mailto:help@acme.example">help@acme.example</a>' in page
        assert "Identity Provider" not in page
    css = client.get("/branding.css").get_data(as_text=True)
    assert "--primary: #0b5fff;" in css
    assert "--primary-hover: #094ed1;" in css


@pytest.mark.parametrize("setting, value, message", [
    ("SITE_PRIMARY_COLOR", "#ffff00", "SITE_PRIMARY_COLOR: #ffff00 on white has a contrast of 1.1:1"),
    ("SITE_PRIMARY_COLOR", "blue", "Give the colour as # and six hex digits"),
    ("SITE_LOGO_URL", "http://cdn.example/logo.png", "SITE_LOGO_URL: The logo must be an https:// URL"),
])
def test_unreadable_configured_branding_refuses_to_start(database_url, setting, value, message):
    with pytest.raises(SystemExit, match=message):
        create_app(config_for(database_url, **{setting: value}))


def save(test_client, **fields):
    page = test_client.get("/admin/branding")
    assert page.status_code == 200
    data = {"csrf_token": csrf_token(page.get_data(as_text=True)), "site_name": "Acme Sign-in",
            "logo_url": "", "primary_color": "#0b5fff", "support_email": "", **fields}
    return test_client.post("/admin/branding", data=data)


def test_an_admin_sets_the_branding_for_pages_and_mail(app, test_client, auth, make_user, runner, mailbox):
    make_user("root", is_admin=True)
    auth.login("root")
    response = save(test_client, support_email="help@acme.example")
    assert response.status_code == 302
    page = test_client.get("/account/").get_data(as_text=True)
    assert "Acme Sign-in</title>" in page and "help@acme.example" in page
    assert "--primary: #0b5fff;" in test_client.get("/branding.css").get_data(as_text=True)
    assert runner.invoke(args=["send-test-mail", "ada@example.com"]).exit_code == 0
    [message] = mailbox.wait_for(1)
    assert message["Subject"] == "Acme Sign-in: test mail"
    assert "Acme Sign-in" in text_of(message)
    assert "help@acme.example" in html_of(message) and "#0b5fff" in html_of(message)
    # Other apps on the same database see it too (the setting lives there).
    assert count_rows(app, SiteSetting) == 3
    # Emptying a field brings back the configured value.
    assert save(test_client, support_email="").status_code == 302
    assert "help@acme.example" not in test_client.get("/").get_data(as_text=True)


@pytest.mark.parametrize("fields, message", [
    ({"primary_color": "#eeeeee"}, "contrast of 1.2:1"),
    ({"primary_color": "red"}, "# and six hex digits"),
    ({"logo_url": "javascript:alert(1)"}, "The logo must be an https:// URL"),
    ({"support_email": "not an address"}, "Enter an email address"),
    ({"site_name": ""}, "This field is required."),
    ({"site_name": "x" * 61}, "Field cannot be longer than 60 characters."),
])
def test_bad_branding_is_refused_on_the_form_and_nothing_is_saved(app, test_client, auth, make_user, fields, message):
    make_user("root", is_admin=True)
    auth.login("root")
    response = save(test_client, **fields)
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert count_rows(app, SiteSetting) == 0


def test_only_admins_reach_the_branding_page(test_client, auth, user):
    auth.login()
    assert test_client.get("/admin/branding").status_code == 403
    assert test_client.post("/admin/branding", data={"site_name": "Mine"}).status_code in (400, 403)


def test_a_deployer_overrides_a_template_without_forking(database_url, tmp_path):
    (tmp_path / "index.html").write_text(
        '{% extends "base.html" %}{% block content %}<h1>Welcome to {{ brand.name }}, the Acme way</h1>{% endblock %}')
    app = create_app(config_for(database_url, TEMPLATE_OVERRIDES_DIR=str(tmp_path)))
    client = app.test_client()
    assert "<h1>Welcome to Identity Provider, the Acme way</h1>" in client.get("/").get_data(as_text=True)
    assert "Log in" in client.get("/login").get_data(as_text=True)  # the others are the built-in ones
