"""OIDC Core §16.x / RFC 6819 §4.4.1.4 spirit: whatever a client registers is data, never markup."""

import pytest

from support.flows import authorize_url
from support.pages import form_token

EVIL_NAME = "<script>alert(1)</script>"
# Quotes and angle brackets are not URI characters (RFC 3986): registration refuses them (see
# test_uris_with_markup_characters_are_refused); an apostrophe is allowed and must be escaped.
EVIL_URI = "https://app.example.com/cb?a='onfocus='alert(1)"
EVIL_LOGO = "https://cdn.example.com/logo.png?'onload='alert(1)"


@pytest.fixture
def evil_client(make_client, user):
    return make_client(owner=user, client_name=EVIL_NAME, redirect_uris=[EVIL_URI],
                       client_uri="https://app.example.com/'onmouseover='alert(1)", logo_uri=EVIL_LOGO)


def assert_escaped(html: str) -> None:
    assert "<script>alert(1)" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "'onmouseover='" not in html
    assert "'onload='" not in html
    assert "'onfocus='" not in html


@pytest.mark.parametrize("field", ["redirect_uris", "client_uri", "logo_uri"])
@pytest.mark.parametrize("uri", ['https://app.example.com/cb?a="><img/src=x/onerror=alert(1)>',
                                 'https://app.example.com/"onmouseover="alert(1)',
                                 "https://app.example.com/<script>"])
def test_uris_with_markup_characters_are_refused(app, field, uri):
    from website.oauth2.client_metadata import ClientMetadataError, validate_client_metadata

    value = [uri] if field == "redirect_uris" else uri
    data = {"client_name": "X", "redirect_uris": ["https://app.example.com/cb"], field: value}
    with app.app_context(), pytest.raises(ClientMetadataError) as error:
        validate_client_metadata(data)
    assert error.value.field == field


def test_consent_page_escapes_client_metadata(test_client, auth, evil_client):
    client, _ = evil_client
    auth.login()
    response = test_client.get(authorize_url(client, code_challenge="a" * 43, code_challenge_method="S256"))
    assert response.status_code == 200
    assert_escaped(response.get_data(as_text=True))


@pytest.mark.parametrize("page", ["/clients/", "/clients/{id}", "/clients/{id}/edit", "/clients/{id}/delete"])
def test_client_pages_escape_client_metadata(test_client, auth, evil_client, page):
    client, _ = evil_client
    auth.login()
    response = test_client.get(page.format(id=client.client_id))
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "<script>alert(1)" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "'onmouseover='" not in html


@pytest.mark.parametrize("field", ["redirect_uris", "client_uri", "logo_uri"])
@pytest.mark.parametrize("uri", ['https://app.example.com/cb?a="x', "https://app.example.com/<b>", "https://app.example.com/`x`"])
def test_uris_with_characters_rfc_3986_forbids_are_refused(app, field, uri):
    from website.oauth2.client_metadata import ClientMetadataError, validate_client_metadata
    data = {"client_name": "x", "redirect_uris": ["https://app.example.com/cb"]}
    data[field] = [uri] if field == "redirect_uris" else uri
    with app.app_context(), pytest.raises(ClientMetadataError) as raised:
        validate_client_metadata(data)
    assert raised.value.field == field


def test_client_created_through_the_form_is_escaped_on_its_page(test_client, auth, user):
    auth.login()
    token = form_token(test_client, "/clients/new")
    response = test_client.post("/clients/new", data={
        "csrf_token": token, "client_name": EVIL_NAME, "redirect_uris": EVIL_URI,
        "grant_types": ["authorization_code"], "token_endpoint_auth_method": "client_secret_basic",
    }, follow_redirects=True)
    assert response.status_code == 200  # the one-time secret page, after a 303
    html = response.get_data(as_text=True)
    assert "<script>alert(1)" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_error_page_escapes_request_parameters(test_client):
    response = test_client.get('/oauth/authorize?response_type=code&client_id=<script>alert(1)</script>'
                               '&redirect_uri="><script>alert(2)</script>')
    assert response.status_code in (400, 401)
    html = response.get_data(as_text=True)
    assert "<script>alert(" not in html
