"""Signing keys: kept in the database, published in the JWKS with thumbprint kids, created by
`flask initdb`, rotated by `flask rotate-keys` (old tokens keep verifying), and picked up by
every instance."""

import time

import jwt
import requests
from joserfc.jwk import RSAKey
from sqlalchemy import delete, select, update
from support.oidc import CALLBACK, Browser, code_flow_tokens

from website import create_app
from website.models import SigningKey, db, now


def verify_with_jwks(idp, id_token, client):
    """Verify with a fresh PyJWKClient, as a relying party that just started would."""
    key = jwt.PyJWKClient(idp + "/.well-known/jwks.json").get_signing_key_from_jwt(id_token)
    return jwt.decode(id_token, key, algorithms=["RS256"], audience=client.client_id, issuer=idp + "/")


def test_initdb_creates_the_first_key_only_once(app, runner):
    with app.app_context():  # the session's database was made by initdb too
        db.session.execute(delete(SigningKey))
        db.session.commit()
    first = runner.invoke(args=["initdb"])
    assert first.exit_code == 0, first.output
    assert "Created the first signing key" in first.output
    second = runner.invoke(args=["initdb"])
    assert second.exit_code == 0
    assert "signing key" not in second.output
    with app.app_context():
        assert len(db.session.scalars(select(SigningKey)).all()) == 1


def test_jwks_publishes_public_keys_with_thumbprint_kids(runner, test_client):
    runner.invoke(args=["initdb"])
    response = test_client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "public, max-age=300"
    (key,) = response.json["keys"]
    assert not {"d", "p", "q", "dp", "dq", "qi"} & key.keys()
    assert key["kid"] == RSAKey.import_key(key).thumbprint()
    assert (key["kty"], key["use"], key["alg"]) == ("RSA", "sig", "RS256")


def test_rotation_by_another_instance_keeps_old_tokens_valid(app_config, app, idp, user, make_client):
    client, secret = make_client(redirect_uris=[CALLBACK])
    browser = Browser(idp)
    old = code_flow_tokens(idp, client, secret, browser=browser)["id_token"]
    old_kid = jwt.get_unverified_header(old)["kid"]

    # Another instance (its own app, same database) rotates the keys.
    other = create_app(app_config)
    result = other.test_cli_runner().invoke(args=["rotate-keys"])
    assert result.exit_code == 0, result.output
    assert f"Retired key {old_kid} stays published until" in result.output
    with other.app_context():
        new_kid = db.session.scalar(select(SigningKey.kid).order_by(SigningKey.id.desc()).limit(1))
        retired = db.session.scalar(select(SigningKey).where(SigningKey.kid == old_kid))
        assert retired.private_key_encrypted is None  # nothing signs with it any more
        assert retired.publish_until >= now() + app.config["OAUTH2_ID_TOKEN_LIFETIME"]
        db.session.remove()
        db.engine.dispose()
    assert f"New signing key: kid {new_kid}." in result.output

    # The live instance notices within its check interval: new tokens carry the new kid ...
    time.sleep(app.config["OIDC_KEY_CHECK_INTERVAL"])
    new = code_flow_tokens(idp, client, secret, browser=browser)["id_token"]
    assert jwt.get_unverified_header(new)["kid"] == new_kid != old_kid
    kids = [k["kid"] for k in requests.get(idp + "/.well-known/jwks.json").json()["keys"]]
    assert kids == [new_kid, old_kid]
    # ... and both the old and the new id_token verify against the JWKS.
    assert verify_with_jwks(idp, old, client)["sub"] == verify_with_jwks(idp, new, client)["sub"]


def test_retired_keys_leave_the_jwks_once_their_tokens_expired(app, runner, test_client):
    runner.invoke(args=["initdb"])
    runner.invoke(args=["rotate-keys"])
    with app.app_context():
        db.session.execute(update(SigningKey).where(SigningKey.retired_at.is_not(None))
                           .values(publish_until=now() - 1))
        db.session.commit()
    assert len(test_client.get("/.well-known/jwks.json").json["keys"]) == 1
    result = runner.invoke(args=["rotate-keys"])
    assert "Deleted 1 retired keys" in result.output
    with app.app_context():
        assert len(db.session.scalars(select(SigningKey)).all()) == 2


def test_keys_are_parsed_once_per_process_not_per_request(monkeypatch, idp, user, make_client):
    client, secret = make_client(redirect_uris=[CALLBACK])
    parsed = []
    import_key = RSAKey.import_key

    def counting_import_key(*args, **kwargs):
        parsed.append(1)
        return import_key(*args, **kwargs)

    monkeypatch.setattr(RSAKey, "import_key", counting_import_key)
    browser = Browser(idp)
    for _ in range(3):
        code_flow_tokens(idp, client, secret, browser=browser)
        assert requests.get(idp + "/.well-known/jwks.json").status_code == 200
    assert len(parsed) == 1


def test_jwks_and_discovery_answer_304_to_their_etag_until_the_keys_rotate(runner, test_client):
    runner.invoke(args=["initdb"])
    for path in ("/.well-known/jwks.json", "/.well-known/openid-configuration"):
        first = test_client.get(path)
        etag = first.headers["ETag"]
        assert etag.startswith('"') and not etag.startswith('W/')  # strong
        # A public document reads no session: no cookie, and no Vary: Cookie, even when one is sent.
        test_client.set_cookie("session", "not-a-session")
        again = test_client.get(path, headers={"If-None-Match": f'"other", {etag}'})
        test_client.delete_cookie("session")
        assert again.status_code == 304 and again.data == b""
        assert again.headers["ETag"] == etag and again.headers["Cache-Control"].startswith("public, max-age=")
        assert "Cookie" not in again.headers.get("Vary", "") and "Set-Cookie" not in again.headers
        assert again.headers["X-Content-Type-Options"] == "nosniff" and again.headers["X-Request-ID"]
        assert test_client.get(path, headers={"If-None-Match": '"stale"'}).status_code == 200
        assert test_client.get(path, headers={"If-None-Match": "*"}).status_code == 304
    old = test_client.get("/.well-known/jwks.json").headers["ETag"]
    assert runner.invoke(args=["rotate-keys"]).exit_code == 0  # this process's ring reloads at once
    rotated = test_client.get("/.well-known/jwks.json", headers={"If-None-Match": old})
    assert rotated.status_code == 200 and rotated.headers["ETag"] != old
    assert len(rotated.json["keys"]) == 2
