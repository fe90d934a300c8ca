"""Refreshing a token that has the openid scope returns a new id_token (OIDC Core §12.2):
signed like the others, for the same ``sub``, with the original sign-in's ``auth_time`` and
no ``nonce``. Without openid there is no id_token."""

import jwt
import requests
from support.oidc import CALLBACK, Browser, authorization_url, half_hash
from support.pages import query_params

from website.models import AuthorizationCode, Token, db

#: How long before the refresh the person signed in, so auth_time cannot pass for "now".
SIGNED_IN_AGO = 5000


def verify(idp, client, id_token: str) -> dict:
    key = jwt.PyJWKClient(idp + "/.well-known/jwks.json").get_signing_key_from_jwt(id_token)
    return jwt.decode(id_token, key.key, algorithms=["RS256"], audience=client.client_id, issuer=idp + "/")


def signed_in_long_ago(app, idp, client, secret, **params) -> dict:
    """The code flow, with the sign-in moved SIGNED_IN_AGO seconds back before the code is
    exchanged; returns the token response."""
    callback = Browser(idp).authorize(authorization_url(idp, client, **params))
    code = query_params(callback)["code"]
    with app.app_context():
        row = db.session.scalar(db.select(AuthorizationCode).order_by(AuthorizationCode.id.desc()))
        row.auth_time -= SIGNED_IN_AGO
        db.session.commit()
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK}
    response = requests.post(idp + "/oauth/token", auth=(client.client_id, secret), data=data)
    assert response.status_code == 200, response.text
    return response.json()


def refresh(idp, client, secret, refresh_token: str, **extra) -> dict:
    response = requests.post(idp + "/oauth/token", auth=(client.client_id, secret),
                             data={"grant_type": "refresh_token", "refresh_token": refresh_token, **extra})
    assert response.status_code == 200, response.text
    return response.json()


def test_refresh_with_openid_returns_an_id_token_with_the_original_auth_time(app, idp, user, make_client):
    client, secret = make_client(redirect_uris=[CALLBACK])
    first = signed_in_long_ago(app, idp, client, secret, scope="openid email", nonce="n-0S6_WzA2Mj")
    original = verify(idp, client, first["id_token"])
    assert original["nonce"] == "n-0S6_WzA2Mj"
    refreshed = refresh(idp, client, secret, first["refresh_token"])
    claims = verify(idp, client, refreshed["id_token"])
    assert claims["sub"] == original["sub"] == user.sub
    assert claims["auth_time"] == original["auth_time"]
    assert claims["iat"] - claims["auth_time"] >= SIGNED_IN_AGO
    assert "nonce" not in claims
    assert claims["at_hash"] == half_hash(refreshed["access_token"])
    assert claims["email"] == "alice@example.com"
    assert jwt.get_unverified_header(refreshed["id_token"])["kid"]
    # ... and on through the next refresh of the same family.
    again = refresh(idp, client, secret, refreshed.get("refresh_token", first["refresh_token"]))
    assert verify(idp, client, again["id_token"])["auth_time"] == original["auth_time"]


def test_refresh_without_openid_returns_no_id_token(idp, user, make_client):
    client, secret = make_client(redirect_uris=[CALLBACK])
    callback = Browser(idp).authorize(authorization_url(idp, client, scope="profile"))
    tokens = requests.post(idp + "/oauth/token", auth=(client.client_id, secret), data={
        "grant_type": "authorization_code", "code": query_params(callback)["code"],
        "redirect_uri": CALLBACK}).json()
    assert "id_token" not in tokens
    assert "id_token" not in refresh(idp, client, secret, tokens["refresh_token"])


def test_refresh_narrowed_to_a_scope_without_openid_returns_no_id_token(app, idp, user, make_client):
    client, secret = make_client(redirect_uris=[CALLBACK])
    tokens = signed_in_long_ago(app, idp, client, secret, scope="openid profile")
    refreshed = refresh(idp, client, secret, tokens["refresh_token"], scope="profile")
    assert refreshed["scope"] == "profile"
    assert "id_token" not in refreshed


def test_token_from_before_auth_time_was_kept_gets_an_id_token_without_it(app, idp, user, make_client):
    client, secret = make_client(redirect_uris=[CALLBACK])
    tokens = signed_in_long_ago(app, idp, client, secret, scope="openid")
    with app.app_context():  # as a row written before the migration
        db.session.execute(db.update(Token).values(auth_time=None))
        db.session.commit()
    claims = verify(idp, client, refresh(idp, client, secret, tokens["refresh_token"])["id_token"])
    assert claims["sub"] == user.sub
    assert "auth_time" not in claims
