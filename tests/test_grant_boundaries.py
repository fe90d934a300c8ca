"""A grant never reaches further than what the person approved, and ends when it should:
scope left out after a consent, a password change, a purge, a hybrid code redeemed twice,
Auth0's cross-site logout, odd parameter values."""

import time

from support.factories import PASSWORD
from support.flows import approve, authorize_url, bearer, get_user_token, pkce_pair, refresh
from support.pages import csrf_token, query_params
from website.models import Token


def test_leaving_out_scope_after_a_narrow_consent_asks_again(test_client, auth, user, make_client):
    client, secret = make_client(scope="openid profile email")
    auth.login()
    get_user_token(test_client, client, secret, scope="openid")  # allowed: openid only
    verifier, challenge = pkce_pair()
    # Without scope the client would get everything it registered: that needs a new consent.
    url = authorize_url(client, scope=None, code_challenge=challenge, code_challenge_method="S256")
    page = test_client.get(url)
    assert page.status_code == 200
    assert "email" in page.get_data(as_text=True)
    silent = test_client.get(url + "&prompt=none")
    assert "consent_required" in silent.headers["Location"]


def test_changing_the_password_ends_other_sessions(app, user, auth, test_client):
    auth.login()
    elsewhere = app.test_client()
    other = type(auth)(elsewhere)
    other.login()
    assert elsewhere.get("/account/").status_code == 200
    page = test_client.get("/account/").get_data(as_text=True)
    response = test_client.post("/account/password", data={
        "csrf_token": csrf_token(page), "password-current_password": PASSWORD,
        "password-new_password": "a brand new secret", "password-confirm": "a brand new secret",
        "password-sign_out_others": "y"})  # the box is ticked unless the person unticks it
    assert response.status_code == 302
    assert test_client.get("/account/").status_code == 200  # this session carries on
    assert elsewhere.get("/account/").status_code == 302  # the other one is signed out


def test_a_rotated_refresh_token_replayed_after_a_purge_still_revokes_the_family(
        app, runner, test_client, auth, user, make_client):
    client, secret = make_client()
    auth.login()
    first = get_user_token(test_client, client, secret)
    second = refresh(test_client, client, first["refresh_token"], secret).json
    with app.app_context():
        from website.models import db
        # Every access token has expired: only refresh tokens keep the rows alive.
        db.session.execute(db.update(Token).values(expires_at=int(time.time()) - 1))
        db.session.commit()
    assert runner.invoke(args=["purge-expired"]).exit_code == 0
    replay = refresh(test_client, client, first["refresh_token"], secret)
    assert replay.status_code == 400
    # The replay was recognised: the token that rotation handed out is revoked too.
    assert refresh(test_client, client, second["refresh_token"], secret).status_code == 400


def test_redeeming_a_hybrid_code_twice_revokes_the_token_from_the_redirect(test_client, auth, user, make_client):
    client, secret = make_client(response_types=["code token"], grant_types=["authorization_code", "implicit"])
    auth.login()
    verifier, challenge = pkce_pair()
    url = authorize_url(client, response_type="code token", scope="openid profile", nonce="n-1",
                        code_challenge=challenge, code_challenge_method="S256")
    params = query_params(approve(test_client, url).headers["Location"])
    front_token = params["access_token"]
    assert test_client.get("/api/me", headers=bearer(front_token)).status_code == 200
    data = {"grant_type": "authorization_code", "code": params["code"],
            "redirect_uri": client.redirect_uris[0], "code_verifier": verifier}
    assert test_client.post("/oauth/token", data=data, auth=(client.client_id, secret)).status_code == 200
    assert test_client.post("/oauth/token", data=data, auth=(client.client_id, secret)).status_code == 400
    assert test_client.get("/api/me", headers=bearer(front_token)).status_code == 401


def test_auth0_logout_by_another_site_ends_only_this_browser_session(app, user, auth, test_client):
    auth.login()
    elsewhere = app.test_client()
    type(auth)(elsewhere).login()
    # /v2/logout is a plain GET any site can send the browser to.
    assert test_client.get("/v2/logout").status_code == 200
    assert test_client.get("/account/").status_code == 302
    assert elsewhere.get("/account/").status_code == 200


def test_max_age_with_a_non_ascii_digit_is_a_clear_error(test_client, auth, user, make_client):
    client, _ = make_client()
    auth.login()
    verifier, challenge = pkce_pair()
    response = test_client.get(authorize_url(client, scope="openid", max_age="²",
                                             code_challenge=challenge, code_challenge_method="S256"))
    assert response.status_code in (302, 400)
    if response.status_code == 302:
        assert "error=invalid_request" in response.headers["Location"]


def test_introspection_ignores_an_unknown_token_type_hint(test_client, auth, user, make_client):
    client, secret = make_client()
    auth.login()
    token = get_user_token(test_client, client, secret)
    response = test_client.post("/oauth/introspect", auth=(client.client_id, secret),
                                data={"token": token["access_token"], "token_type_hint": "foo"})
    assert response.status_code == 200
    assert response.json["active"] is True
