"""RFC 9700 §4.7 / RFC 6819 §4.4.1.8: every form that changes something needs its CSRF token."""

import pytest

from support.factories import PASSWORD
from support.flows import authorize_url


@pytest.fixture
def client_and_login(test_client, auth, user, make_client):
    client, _ = make_client(owner=user)
    auth.login()
    return client


FORMS = [
    ("/clients/new", {"client_name": "x", "redirect_uris": "https://a.example/cb",
                      "grant_types": "authorization_code"}),
    ("/clients/{id}/edit", {"client_name": "renamed", "redirect_uris": "https://a.example/cb",
                            "grant_types": "authorization_code"}),
    ("/clients/{id}/rotate-secret", {}),
    ("/clients/{id}/delete", {}),
    ("/logout", {}),
    ("/account/sign-out-everywhere", {}),
    ("/account/sessions/{sid}/end", {}),
    ("/account/delete", {"password": PASSWORD, "confirmation": "alice"}),
    ("consent", {"allow": "Allow"}),
]


@pytest.mark.parametrize("path, data", FORMS)
@pytest.mark.parametrize("token", [None, "forged-token"])
def test_signed_in_forms_refuse_posts_without_a_valid_csrf_token(test_client, client_and_login, path, data, token):
    client = client_and_login
    if path == "consent":
        path = authorize_url(client, code_challenge="a" * 43, code_challenge_method="S256")
    if token:
        data = {**data, "csrf_token": token}
    with test_client.session_transaction() as current:
        sid = current["sid"]
    response = test_client.post(path.format(id=client.client_id, sid=sid), data=data)
    assert response.status_code == 400
    assert "Location" not in response.headers
    # Nothing happened: the client is still there, the user still signed in.
    assert test_client.get(f"/clients/{client.client_id}").status_code == 200


@pytest.mark.parametrize("path, data", [
    ("/login", {"username": "alice", "password": "correct horse battery"}),
    ("/signup", {"username": "mallory", "email": "m@example.com", "password": "a long password",
                 "confirm": "a long password"}),
])
def test_signed_out_forms_refuse_posts_without_a_csrf_token(test_client, user, path, data):
    response = test_client.post(path, data=data)
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert test_client.get("/clients/").status_code == 302  # still signed out
