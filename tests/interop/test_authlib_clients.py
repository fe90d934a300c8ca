"""Authlib's own client integrations, Flask (authlib.integrations.flask_client) and Starlette
(authlib.integrations.starlette_client), against the live server in their default
configuration: discovery, the code flow with nonce, the id_token checked, UserInfo.

Each client app runs on 127.0.0.1 beside the provider, on another port, and keeps its state in
its framework's session cookie under the DEFAULT name, ``session``. Cookies ignore ports, so
one browser holds the provider's cookie and the app's side by side: were the provider's cookie
also called ``session``, signing in would overwrite the app's and Authlib would fail with
``mismatching_state``. The person's browser is one requests session for both sites."""

import secrets
import warnings
from urllib.parse import urljoin

import pytest
from authlib.deprecate import AuthlibDeprecationWarning
from authlib.integrations.flask_client import OAuth as FlaskOAuth

with warnings.catch_warnings():
    # Authlib 1.9 prefers the httpx2 fork and warns when it falls back to httpx; httpx (which
    # Datasette needs too) is what Authlib 1.8, our lowest allowed version, knows.
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.integrations.starlette_client import OAuth as StarletteOAuth
from flask import Flask, jsonify, redirect, session, url_for
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.responses import JSONResponse, RedirectResponse
from starlette.routing import Route
from support.loopback import ASGIServer, WSGIServer
from support.oidc import Browser

SCOPE = "openid profile email"


def flask_app(issuer: str, client_id: str, client_secret: str) -> Flask:
    """A web app as Authlib's Flask client documentation writes it."""
    app = Flask("authlib_flask_app")
    app.secret_key = secrets.token_hex(16)
    oauth = FlaskOAuth(app)
    oauth.register("idp", client_id=client_id, client_secret=client_secret,
                   server_metadata_url=issuer + ".well-known/openid-configuration",
                   client_kwargs={"scope": SCOPE})

    @app.route("/login")
    def login():
        return oauth.idp.authorize_redirect(url_for("callback", _external=True))

    @app.route("/callback")
    def callback():
        token = oauth.idp.authorize_access_token()
        session["id_token_claims"] = dict(token["userinfo"])
        session["userinfo"] = dict(oauth.idp.userinfo(token=token))
        return redirect("/me")

    @app.route("/me")
    def me():
        return jsonify(id_token=session.get("id_token_claims"), userinfo=session.get("userinfo"))

    return app


def starlette_app(issuer: str, client_id: str, client_secret: str) -> Starlette:
    """A web app as Authlib's Starlette client documentation writes it."""
    oauth = StarletteOAuth()
    oauth.register("idp", client_id=client_id, client_secret=client_secret,
                   server_metadata_url=issuer + ".well-known/openid-configuration",
                   client_kwargs={"scope": SCOPE})

    async def login(request):
        return await oauth.idp.authorize_redirect(request, str(request.url_for("callback")))

    async def callback(request):
        token = await oauth.idp.authorize_access_token(request)
        request.session["id_token_claims"] = dict(token["userinfo"])
        request.session["userinfo"] = dict(await oauth.idp.userinfo(token=token))
        return RedirectResponse("/me")

    async def me(request):
        return JSONResponse({"id_token": request.session.get("id_token_claims"),
                             "userinfo": request.session.get("userinfo")})

    return Starlette(routes=[Route("/login", login), Route("/callback", callback, name="callback"),
                             Route("/me", me)],
                     middleware=[Middleware(SessionMiddleware, secret_key=secrets.token_hex(16))])


def sign_in(browser: Browser, app_url: str) -> dict:
    """Press the app's sign-in link, log in and allow at the provider, follow the way back;
    return what the app's /me page says."""
    start = browser.session.get(app_url + "/login", allow_redirects=False, timeout=10)
    assert start.status_code == 302, start.text[:300]
    assert "session" in browser.session.cookies.get_dict(), "the app keeps its state in `session`"
    callback = browser.authorize(urljoin(app_url, start.headers["Location"]))
    assert callback.startswith(app_url + "/callback?"), callback
    page = browser.session.get(callback, timeout=10)
    assert page.status_code == 200, page.text[:1000]
    return page.json()


@pytest.mark.parametrize("framework", ["flask", "starlette"])
def test_authlib_client_signs_in_beside_the_provider_with_default_cookie_names(idp, user, make_client,
                                                                              framework):
    browser = Browser(idp)
    browser.login()  # the provider's own session cookie is in the jar before the app's
    assert len(browser.session.cookies) == 1
    server = WSGIServer() if framework == "flask" else ASGIServer()
    try:
        app_url = server.url
        web_app, secret = make_client(redirect_uris=[app_url + "/callback"], scope=SCOPE,
                                      token_endpoint_auth_method="client_secret_basic")
        make = flask_app if framework == "flask" else starlette_app
        server.app = (make(idp + "/", web_app.client_id, secret))
        shown = sign_in(browser, app_url)
    finally:
        server.close()
    assert shown["id_token"]["iss"] == idp + "/" and shown["id_token"]["aud"] == web_app.client_id
    assert shown["userinfo"]["sub"] == shown["id_token"]["sub"]
    assert shown["userinfo"]["preferred_username"] == "alice"
