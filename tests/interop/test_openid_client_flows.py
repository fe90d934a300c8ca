"""panva's openid-client (Node, v6) against the live server: the device flow (RFC 8628),
pushed authorization requests (RFC 9126) and request objects (RFC 9101), by value and pushed,
each as openid-client does it with nothing but discovery to go on.

The Node script (openid_client_flows.mjs) is the client; this test registers the clients and
plays the person at the consent pages and at /device."""

import time

from authlib.oauth2.rfc8628 import DEVICE_CODE_GRANT_TYPE
from joserfc.jwk import RSAKey
from support.factories import count_rows
from support.node import node_or_skip, run_script
from support.oidc import Browser

from website.models import PushedAuthorizationRequest

REDIRECT_URI = "http://127.0.0.1:8765/callback"


def test_openid_client_device_par_and_request_objects(app, idp, user, make_client):
    node = node_or_skip()
    # Polling every second (the default is 5): the test waits for openid-client's polls.
    app.config["OAUTH2_DEVICE_INTERVAL"] = 1
    web, web_secret = make_client(redirect_uris=[REDIRECT_URI], token_endpoint_auth_method="client_secret_post",
                                  require_pushed_authorization_requests=True)
    key = RSAKey.generate_key(2048, parameters={"kid": "jar-1"})
    jar, jar_secret = make_client(redirect_uris=[REDIRECT_URI], token_endpoint_auth_method="client_secret_post",
                                  jwks={"keys": [key.as_dict(private=False)]}, request_object_signing_alg="RS256")
    tv, _ = make_client(grant_types=[DEVICE_CODE_GRANT_TYPE], redirect_uris=[], token_endpoint_auth_method="none",
                        scope="openid profile")
    config = {
        "issuer": idp + "/",
        "web": {"client_id": web.client_id, "client_secret": web_secret, "redirect_uri": REDIRECT_URI},
        "jar": {"client_id": jar.client_id, "client_secret": jar_secret, "redirect_uri": REDIRECT_URI,
                "private_jwk": key.as_dict(private=True)},
        "device": {"client_id": tv.client_id, "scope": "openid profile"},
    }
    browser = Browser(idp)
    person = {}

    def at_the_device_page(message):
        codes = message["device"]
        assert codes["verification_uri"] == f"{idp}/device"
        time.sleep(1.5)  # openid-client polls (authorization_pending) before the person answers
        person["done"] = browser.answer_device(browser.enter_user_code(codes["verification_uri_complete"]))
        return None

    result = run_script(node, "openid_client_flows.mjs", config, browser, on_message=at_the_device_page)

    # PAR: the browser carried only client_id and request_uri; a client that must push could sign in.
    assert result["par"]["url_params"] == ["client_id", "request_uri"]
    assert result["par"]["sub"] and result["par"]["scope"] == "openid profile"
    # JAR by value (client_id and request in the URL), and pushed.
    assert "request" in result["jar"]["url_params"] and "scope" not in result["jar"]["url_params"]
    assert result["jar"]["sub"] == result["par"]["sub"]
    assert result["jar_par"]["url_params"] == ["client_id", "request_uri"]
    assert count_rows(app, PushedAuthorizationRequest, PushedAuthorizationRequest.used_at.is_not(None)) == 2
    # The device flow: openid-client polled until the person allowed it at /device.
    assert "Your device is connected" in person["done"].text
    assert result["device"]["access_token"] is True and result["device"]["sub"] == result["par"]["sub"]
    assert result["device"]["scope"] == "openid profile"
