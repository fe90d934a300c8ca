"""pyoidc (the `oic` package) against the live server in its default configuration: discovery,
the code flow with client_secret_basic (its default), and its default UserInfo call, which POSTs
the access token in the form body (RFC 6750 §2.2) rather than in an Authorization header."""

from urllib.parse import urlsplit

from oic import rndstr
from oic.oic import Client
from oic.oic.message import AuthorizationResponse, OpenIDSchema, RegistrationResponse
from oic.utils.authn.client import CLIENT_AUTHN_METHOD
from support.oidc import Browser

REDIRECT_URI = "http://127.0.0.1:8765/callback"


def test_pyoidc_code_flow_and_default_userinfo_request(idp, user, make_client, monkeypatch):
    web_app, secret = make_client(redirect_uris=[REDIRECT_URI], scope="openid profile email")
    client = Client(client_authn_method=CLIENT_AUTHN_METHOD)
    client.provider_config(idp + "/")
    client.store_registration_info(RegistrationResponse(
        client_id=web_app.client_id, client_secret=secret, redirect_uris=[REDIRECT_URI]))

    state, nonce = rndstr(), rndstr()
    request = client.construct_AuthorizationRequest(request_args={
        "client_id": web_app.client_id, "response_type": "code", "scope": ["openid", "profile", "email"],
        "nonce": nonce, "redirect_uri": REDIRECT_URI, "state": state})
    callback = Browser(idp).authorize(request.request(client.authorization_endpoint))
    response = client.parse_response(AuthorizationResponse, info=urlsplit(callback).query,
                                     sformat="urlencoded")
    assert response["state"] == state

    token = client.do_access_token_request(state=state, request_args={"code": response["code"]})
    assert token["id_token"]["nonce"] == nonce and token["id_token"]["aud"] == [web_app.client_id]

    # Record what pyoidc sends, to show which UserInfo request its default is.
    sent = []
    original = client.http_request

    def recording(url, method="GET", **kwargs):
        sent.append((url, method, kwargs.get("data"), dict(kwargs.get("headers") or {})))
        return original(url, method, **kwargs)

    monkeypatch.setattr(client, "http_request", recording)
    info = client.do_user_info_request(state=state)

    assert isinstance(info, OpenIDSchema)
    assert info["sub"] == token["id_token"]["sub"]
    assert info["preferred_username"] == "alice" and info["email"] == "alice@example.com"
    url, method, body, headers = sent[-1]
    assert url == client.provider_info["userinfo_endpoint"] and method == "POST"
    assert "access_token=" in body and "Authorization" not in headers
