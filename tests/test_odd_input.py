"""Odd and hostile input gets a clear 4xx answer, never a 500, on SQLite and PostgreSQL alike.

NUL bytes matter in particular: PostgreSQL refuses them even in a comparison.
"""

import base64

import pytest
from support.factories import PASSWORD
from support.pages import csrf_token, form_token

CHALLENGE = "a" * 50

#: (name, method, path template, request keyword arguments); {cid} is a registered client's id.
CASES = [
    ("token: NUL client_id", "post", "/oauth/token",
     {"data": {"grant_type": "client_credentials", "client_id": "a\x00b", "client_secret": "x"}}),
    ("token: NUL in Basic client_id", "post", "/oauth/token",
     {"data": {"grant_type": "client_credentials"}, "auth": ("a\x00b", "x")}),
    ("token: empty Basic header", "post", "/oauth/token",
     {"data": {"grant_type": "client_credentials"}, "headers": {"Authorization": "Basic "}}),
    ("token: non-UTF-8 Basic credentials", "post", "/oauth/token",
     {"data": {"grant_type": "client_credentials"},
      "headers": {"Authorization": "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode()}}),
    ("token: NUL username", "post", "/oauth/token",
     {"data": {"grant_type": "password", "username": "a\x00b", "password": "x"}, "secret": True}),
    ("token: NUL code", "post", "/oauth/token",
     {"data": {"grant_type": "authorization_code", "code": "a\x00b", "code_verifier": "v\x00"}, "secret": True}),
    ("token: NUL refresh token", "post", "/oauth/token",
     {"data": {"grant_type": "refresh_token", "refresh_token": "a\x00b"}, "secret": True}),
    ("token: NUL grant type", "post", "/oauth/token", {"data": {"grant_type": "a\x00b"}, "secret": True}),
    ("token: NUL scope", "post", "/oauth/token",
     {"data": {"grant_type": "client_credentials", "scope": "\x00\"'<>"}, "secret": True}),
    ("token: not form data", "post", "/oauth/token",
     {"data": b"\xff\xfe{", "content_type": "application/x-www-form-urlencoded", "secret": True}),
    ("revoke: NUL token", "post", "/oauth/revoke", {"data": {"token": "a\x00b"}, "secret": True}),
    ("revoke: NUL Basic client_id", "post", "/oauth/revoke", {"data": {"token": "x"}, "auth": ("a\x00b", "x")}),
    ("me: NUL token", "get", "/api/me", {"headers": {"Authorization": "Bearer a\x00b"}}),
    ("me: non-ASCII token", "get", "/api/me", {"headers": {"Authorization": "Bearer é"}}),
    ("authorize: NUL client_id", "get", "/oauth/authorize?response_type=code&client_id=a%00b", {}),
    ("authorize: NUL redirect_uri", "get",
     "/oauth/authorize?response_type=code&client_id={cid}&redirect_uri=https://app.example.com/callback%00", {}),
    ("authorize: quote in redirect_uri", "get",
     "/oauth/authorize?response_type=code&client_id={cid}&redirect_uri=https://app.example.com/%22", {}),
    ("authorize: non-ASCII redirect_uri", "get",
     "/oauth/authorize?response_type=code&client_id={cid}&redirect_uri=https://%C3%A9.example.com/", {}),
    ("authorize: bad port", "get",
     "/oauth/authorize?response_type=code&client_id={cid}&redirect_uri=http://127.0.0.1:99999/callback", {}),
    ("authorize: NUL response_type", "get", "/oauth/authorize?response_type=co%00de&client_id={cid}", {}),
    ("authorize: non-ASCII response_type", "get", "/oauth/authorize?response_type=%C3%A9&client_id={cid}", {}),
    ("authorize: NUL nonce on Allow", "post",
     ("/oauth/authorize?response_type=code&client_id={cid}&scope=openid&nonce=a%00b"
      f"&code_challenge={CHALLENGE}&code_challenge_method=S256"), {"form": {"allow": "Allow"}}),
    ("authorize: NUL state on Allow", "post",
     ("/oauth/authorize?response_type=code&client_id={cid}&scope=openid&state=a%00b"
      f"&code_challenge={CHALLENGE}&code_challenge_method=S256"), {"form": {"allow": "Allow"}}),
    ("login: NUL username", "post", "/login", {"form": {"username": "a\x00b", "password": PASSWORD}}),
    ("signup: NUL email", "post", "/signup", {"form": {"username": "zed", "email": "z\x00@example.com",
                                                      "password": PASSWORD, "confirm": PASSWORD}}),
    ("clients: NUL name", "post", "/clients/new",
     {"form": {"client_name": "a\x00b", "redirect_uris": "https://x.example.com/cb",
               "grant_types": "authorization_code", "token_endpoint_auth_method": "client_secret_basic"}}),
    ("clients: NUL contact", "post", "/clients/new",
     {"form": {"client_name": "ab", "redirect_uris": "https://x.example.com/cb", "contacts": "a\x00@b.co",
               "grant_types": "authorization_code", "token_endpoint_auth_method": "client_secret_basic"}}),
    ("clients: NUL client id in the URL", "get", "/clients/a%00b", {}),
    ("clients: long client id in the URL", "get", "/clients/" + "x" * 3000, {}),
    ("session: forged cookie", "get", "/", {"headers": {"Cookie": "idp_session=forged"}}),
]


@pytest.mark.parametrize("name, method, path, kwargs", CASES, ids=[c[0] for c in CASES])
def test_odd_input_is_refused_cleanly(app, test_client, auth, user, make_client, name, method, path, kwargs):
    client, secret = make_client()
    auth.login()
    kwargs = dict(kwargs)
    if kwargs.pop("secret", False):
        kwargs["auth"] = (client.client_id, secret)
    if "form" in kwargs:
        token = form_token(test_client, "/login")
        kwargs["data"] = {**kwargs.pop("form"), "csrf_token": token}
    response = getattr(test_client, method)(path.replace("{cid}", client.client_id), **kwargs)
    assert response.status_code < 500
    if path.startswith(("/oauth/token", "/oauth/revoke", "/api/")) and response.status_code >= 400:
        assert response.is_json and response.json["error"]
    if path.startswith("/oauth/authorize"):
        # Nothing reaches the client's redirect URI unless it was validated.
        assert response.status_code in (400, 401)
        assert "Location" not in response.headers


#: The NUL bytes the outside test found reaching SQL (PostgreSQL refuses them: a 500).
NUL_URLS = [
    ("get", "/oauth/register/%00", {"headers": {"Authorization": "Bearer anything"}}, False),
    ("get", "/admin/users?q=%00", {}, True),
    ("get", "/admin/clients?q=%00", {}, True),
    ("get", "/admin/audit?q=%00", {}, True),
    ("post", "/account/apps/%00/revoke", {}, True),
]


@pytest.mark.parametrize("method, url, kwargs, as_admin", NUL_URLS, ids=[u[1] for u in NUL_URLS])
def test_nul_in_a_path_segment_or_query_value_is_a_400(app, test_client, auth, make_user, method, url, kwargs,
                                                       as_admin):
    make_user(is_admin=as_admin)
    auth.login()
    kwargs = dict(kwargs)
    if method == "post":
        token = csrf_token(test_client.get("/account/").get_data(as_text=True))
        kwargs["data"] = {"csrf_token": token}
    response = getattr(test_client, method)(url, **kwargs)
    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    if url.startswith("/oauth/"):
        assert response.json["error"] == "invalid_request"
    else:
        assert response.mimetype == "text/html"


def test_nul_in_a_form_value_or_name_is_a_400_before_any_view(app, test_client, auth, user):
    auth.login()
    token = csrf_token(test_client.get("/account/").get_data(as_text=True))
    for data in ({"csrf_token": token, "q": "a\x00"}, {"csrf_token": token, "a\x00": "b"}):
        response = test_client.post("/logout", data=data)
        assert response.status_code == 400
        assert test_client.get("/account/").status_code == 200  # still signed in: no view ran
    response = test_client.post("/oauth/token", data={"grant_type": "client_credentials", "x": "\x00"})
    assert response.status_code == 400 and response.json["error"] == "invalid_request"


@pytest.mark.parametrize("url", ["/admin/users/2147483648/delete", "/admin/users/99999999999999999999/delete",
                                 "/admin/users?page=99999999999999999999", "/admin/clients?page=9999999999999"])
def test_a_number_too_large_for_the_database_is_a_404(app, test_client, auth, make_user, url):
    make_user(is_admin=True)
    auth.login()
    assert test_client.get(url).status_code == 404
