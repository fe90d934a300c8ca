"""Signing in through an upstream provider: panva's oidc-provider (npm, in memory, started by
the test) and a second instance of this server as the upstreams; the person continues with
the upstream, allows the app here, and the app gets an id_token for the local account."""

import re
from html import unescape
from urllib.parse import urljoin, urlsplit

import pytest
import requests
from joserfc import jwt
from joserfc.jwk import KeySet
from support.factories import PASSWORD, count_rows, update_rows
from support.mfa import enrol_totp
from support.oidc import CALLBACK, Browser, authorization_url
from support.pages import csrf_token, query_params
from support.upstream import UPSTREAM_SECRET, Person, drive

from website.models import AuditEvent, User, db
from website.models.upstreams import Upstream, UpstreamIdentity
from website.store.groups import group_names

ANN = {"ann": {"email": "ann@example.com", "email_verified": True, "name": "Ann Upstream",
               "groups": ["staff", "ops"]}}


def add_upstream(runner, issuer, name="node", *extra):
    result = runner.invoke(args=["add-upstream", "--name", name, "--issuer", issuer, "--client-id", "idp-test",
                                 "--client-secret", UPSTREAM_SECRET, *extra])
    assert result.exit_code == 0, result.output
    return result.output


def continue_link(html: str, name: str = "node") -> str:
    match = re.search(rf'href="(/login/with/{name}\?[^"]*)"', html)
    assert match, html[:2000]
    return unescape(match.group(1))


def app_tokens(idp, oauth_client, secret, callback: str) -> dict:
    response = requests.post(f"{idp}/oauth/token", auth=(oauth_client.client_id, secret), data={
        "grant_type": "authorization_code", "code": query_params(callback)["code"], "redirect_uri": CALLBACK})
    assert response.status_code == 200, response.text
    return response.json()


def id_token_claims(idp, token: str) -> dict:
    keys = KeySet.import_key_set(requests.get(f"{idp}/.well-known/jwks.json", timeout=5).json())
    return jwt.decode(token, keys).claims


def sign_in(idp, oauth_client, person, session=None, **params):
    """From the app's authorization request: the log-in page, "Continue with", the upstream,
    consent here; returns (session, the redirect to the app or the page that stopped it)."""
    session = session or requests.Session()
    page = session.get(authorization_url(idp, oauth_client, **params))
    assert page.status_code == 200 and "Continue with" in page.text, page.text[:500]
    return session, drive(session, urljoin(page.url, continue_link(page.text)), person, CALLBACK)


def events(app, name):
    with app.app_context():
        return [e.detail for e in db.session.scalars(db.select(AuditEvent).where(AuditEvent.event == name))]


def test_first_sign_in_through_oidc_provider_creates_an_account_with_a_stable_sub(
        app, idp, runner, oidc_upstream, make_client):
    issuer = oidc_upstream(ANN)
    output = add_upstream(runner, issuer, "node", "--scope", "openid email profile groups")
    assert f"{idp}/login/with/node/callback" in output
    oauth_client, secret = make_client(redirect_uris=[CALLBACK])
    person = Person("ann")
    _, callback = sign_in(idp, oauth_client, person)
    assert isinstance(callback, str) and callback.startswith(CALLBACK), callback
    assert person.pages[:2] == ["upstream login", "upstream consent"] and person.pages[-1].startswith("consent")
    claims = id_token_claims(idp, app_tokens(idp, oauth_client, secret, callback)["id_token"])
    with app.app_context():
        user = db.session.scalar(db.select(User).where(User.email == "ann@example.com"))
        identity = db.session.scalar(db.select(UpstreamIdentity))
        assert claims["sub"] == user.sub and claims["email"] == "ann@example.com"
        assert user.name == "Ann Upstream" and user.email_verified and user.username == "ann"
        assert identity.subject == "ann" and identity.user_id == user.id and identity.groups == ["staff", "ops"]
    # Again, in a new browser: the same account, the same sub; no second account.
    _, again = sign_in(idp, oauth_client, Person("ann"))
    assert id_token_claims(idp, app_tokens(idp, oauth_client, secret, again)["id_token"])["sub"] == claims["sub"]
    assert count_rows(app, User) == 1
    assert [e["upstream"] for e in events(app, "login_succeeded")] == ["node", "node"]


def test_first_sign_in_is_refused_when_the_sign_up_policy_is_closed(app, idp, runner, oidc_upstream, make_client):
    app.config["SIGNUP_POLICY"] = "closed"
    add_upstream(runner, oidc_upstream(ANN))
    oauth_client, _ = make_client(redirect_uris=[CALLBACK])
    _, page = sign_in(idp, oauth_client, Person("ann"))
    assert page.status_code == 403 and "created by an administrator" in page.text
    assert "Back to log in" in page.text
    assert count_rows(app, User) == 0 and count_rows(app, UpstreamIdentity) == 0
    assert events(app, "upstream_login_refused")[0]["reason"] == "sign-up policy"


def test_linking_by_verified_email_needs_the_local_password(app, idp, runner, oidc_upstream, make_client,
                                                            make_user):
    alice = make_user("alice", email="Ann@example.com")
    update_rows(app, User, {"email_verified": True}, User.id == alice.id)
    add_upstream(runner, oidc_upstream(ANN))
    oauth_client, secret = make_client(redirect_uris=[CALLBACK])
    session, page = sign_in(idp, oauth_client, Person("ann"))
    assert page.status_code == 200 and urlsplit(page.url).path == "/login/link"
    assert "alice" in page.text and "ann@example.com" in page.text
    wrong = session.post(page.url, data={"csrf_token": csrf_token(page.text), "password": "not the password"},
                         allow_redirects=False)
    assert wrong.status_code == 400 and "not the account&#39;s password" in wrong.text
    assert count_rows(app, UpstreamIdentity) == 0
    # Not signed in either: the app still cannot get a code.
    assert session.get(authorization_url(idp, oauth_client), allow_redirects=False).headers["Location"].startswith("/login")
    right = session.post(page.url, data={"csrf_token": csrf_token(wrong.text), "password": PASSWORD},
                         allow_redirects=False)
    assert right.status_code == 302
    callback = drive(session, urljoin(page.url, right.headers["Location"]), Person("ann"), CALLBACK)
    claims = id_token_claims(idp, app_tokens(idp, oauth_client, secret, callback)["id_token"])
    assert claims["sub"] == alice.sub
    assert count_rows(app, User) == 1 and count_rows(app, UpstreamIdentity) == 1
    assert [e["proof"] for e in events(app, "upstream_linked")] == ["password"]
    assert events(app, "upstream_link_failed")[0]["reason"] == "wrong password"
    # Next time the upstream alone signs in to alice.
    _, again = sign_in(idp, oauth_client, Person("ann"))
    assert id_token_claims(idp, app_tokens(idp, oauth_client, secret, again)["id_token"])["sub"] == alice.sub


def held_for_the_second_factor(app, idp, runner, oidc_upstream, make_client, make_user):
    """alice (with an authenticator) gives her password on the link page for ann's upstream
    identity: (browser session, her authenticator, the app and its secret, alice)."""
    alice = make_user("alice", email="ann@example.com")
    update_rows(app, User, {"email_verified": True}, User.id == alice.id)
    browser = Browser(idp)
    browser.login("alice")
    authenticator, _, _ = enrol_totp(browser.session, idp)
    add_upstream(runner, oidc_upstream(ANN))
    oauth_client, secret = make_client(redirect_uris=[CALLBACK])
    session, page = sign_in(idp, oauth_client, Person("ann"))
    assert urlsplit(page.url).path == "/login/link"
    right = session.post(page.url, data={"csrf_token": csrf_token(page.text), "password": PASSWORD},
                         allow_redirects=False)
    assert right.status_code == 302 and right.headers["Location"] == "/login/second-factor"
    return session, authenticator, oauth_client, secret, alice


def answer_second_factor(idp, session, authenticator):
    challenge = session.get(f"{idp}/login/second-factor")
    answer = {"csrf_token": csrf_token(challenge.text), "code": authenticator.code()}
    done = session.post(challenge.url, data=answer, allow_redirects=False)
    assert done.status_code == 302, done.text[:500]
    return urljoin(idp, done.headers["Location"])


def test_linking_with_the_password_also_needs_the_accounts_second_factor(app, idp, runner, oidc_upstream,
                                                                        make_client, make_user):
    session, authenticator, oauth_client, secret, alice = held_for_the_second_factor(
        app, idp, runner, oidc_upstream, make_client, make_user)
    # The password alone, as at the log-in page, only gets as far as the second factor: no
    # link yet, and no session (someone with the password alone would otherwise link their
    # own upstream account and sign in with it from then on).
    assert count_rows(app, UpstreamIdentity) == 0
    assert session.get(f"{idp}/account/", allow_redirects=False).status_code == 302
    callback = drive(session, answer_second_factor(idp, session, authenticator), Person("ann"), CALLBACK)
    claims = id_token_claims(idp, app_tokens(idp, oauth_client, secret, callback)["id_token"])
    assert claims["sub"] == alice.sub and {"fed", "pwd", "otp", "mfa"} <= set(claims["amr"])
    assert count_rows(app, UpstreamIdentity) == 1
    assert [e["proof"] for e in events(app, "upstream_linked")] == ["password"]


def test_an_identity_linked_elsewhere_during_the_second_factor_is_not_linked_again(
        app, idp, runner, oidc_upstream, make_client, make_user):
    session, authenticator, _, _, alice = held_for_the_second_factor(
        app, idp, runner, oidc_upstream, make_client, make_user)
    bob = make_user("bob")
    with app.app_context():  # meanwhile, ann's upstream identity was linked to bob
        upstream = db.session.scalar(db.select(Upstream))
        db.session.add(UpstreamIdentity(user_id=bob.id, upstream_id=upstream.id, subject="ann"))
        db.session.commit()
    # alice proved both factors: she is signed in (the app's consent page), without the link,
    # and told so.
    landing = session.get(answer_second_factor(idp, session, authenticator))
    assert landing.status_code == 200 and "was not linked" in unescape(landing.text), landing.text[:2000]
    assert session.get(f"{idp}/account/", allow_redirects=False).status_code == 200
    with app.app_context():
        identities = db.session.scalars(db.select(UpstreamIdentity)).all()
        assert [(i.user_id, i.subject) for i in identities] == [(bob.id, "ann")]
    assert events(app, "upstream_linked") == []


@pytest.mark.parametrize("local_verified, upstream_verified", [(True, False), (False, True)])
def test_an_address_that_is_not_verified_on_both_sides_never_links(app, idp, runner, oidc_upstream, make_client,
                                                                   make_user, local_verified, upstream_verified):
    alice = make_user("alice", email="ann@example.com")
    update_rows(app, User, {"email_verified": local_verified}, User.id == alice.id)
    add_upstream(runner, oidc_upstream({"ann": {**ANN["ann"], "email_verified": upstream_verified}}))
    oauth_client, _ = make_client(redirect_uris=[CALLBACK])
    _, page = sign_in(idp, oauth_client, Person("ann"))
    assert page.status_code == 403 and "cannot be linked" in page.text and "Log in with your password" in page.text
    assert count_rows(app, User) == 1 and count_rows(app, UpstreamIdentity) == 0
    assert events(app, "upstream_login_refused")[0]["upstream_email_verified"] is upstream_verified


@pytest.mark.parametrize("overwrite, name_after", [("name", "Ann Upstream"), ("none", "Ann Here")])
def test_each_sign_in_overwrites_only_the_claims_the_upstream_may(app, idp, runner, oidc_upstream, make_client,
                                                                  overwrite, name_after):
    add_upstream(runner, oidc_upstream(ANN), "node", "--overwrite", overwrite)
    oauth_client, _ = make_client(redirect_uris=[CALLBACK])
    sign_in(idp, oauth_client, Person("ann"))
    update_rows(app, User, {"name": "Ann Here"})
    sign_in(idp, oauth_client, Person("ann"))
    with app.app_context():
        assert db.session.scalar(db.select(User)).name == name_after


def test_upstream_groups_set_membership_of_existing_groups_only_when_allowed(app, idp, runner, oidc_upstream,
                                                                            make_client):
    for name in ("staff", "admins"):
        assert runner.invoke(args=["create-group", name]).exit_code == 0
    issuer = oidc_upstream(ANN)  # ann is in staff and ops upstream; no group "ops" here
    add_upstream(runner, issuer, "node", "--scope", "openid email profile groups", "--overwrite", "name,groups")
    oauth_client, secret = make_client(redirect_uris=[CALLBACK], scope="openid profile email groups")
    _, callback = sign_in(idp, oauth_client, Person("ann"), scope="openid groups")
    with app.app_context():
        user = db.session.scalar(db.select(User))
        assert group_names(user.id) == ["staff"]
    assert events(app, "upstream_groups_synced")[0]["added"] == ["staff"]
    tokens = app_tokens(idp, oauth_client, secret, callback)
    me = requests.get(f"{idp}/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}).json()
    assert me["groups"] == ["staff"]
    # An upstream without the groups permission changes no membership.
    assert runner.invoke(args=["create-group", "ops"]).exit_code == 0
    with app.app_context():
        db.session.scalar(db.select(Upstream)).overwrite_claims = ["name"]
        db.session.commit()
    sign_in(idp, oauth_client, Person("ann"))
    with app.app_context():
        assert group_names(db.session.scalar(db.select(User)).id) == ["staff"]


@pytest.mark.parametrize("ask", ["acr_values", "claims"])
def test_the_app_gets_amr_fed_and_the_upstreams_acr_when_it_asks(app, idp, runner, oidc_upstream, make_client, ask):
    add_upstream(runner, oidc_upstream(ANN))
    oauth_client, secret = make_client(redirect_uris=[CALLBACK])
    asked = {"acr_values": "urn:example:loa:2"} if ask == "acr_values" else {
        "claims": '{"id_token": {"acr": {"values": ["urn:example:loa:2"]}}}'}
    session, callback = sign_in(idp, oauth_client, Person("ann"), **asked)
    claims = id_token_claims(idp, app_tokens(idp, oauth_client, secret, callback)["id_token"])
    assert claims["amr"] == ["fed"]
    assert claims["acr"] == "urn:example:loa:2"
    # Not asked: this server's own acr, still with amr fed.
    again = drive(session, authorization_url(idp, oauth_client), Person("ann"), CALLBACK)
    plain = id_token_claims(idp, app_tokens(idp, oauth_client, secret, again)["id_token"])
    assert plain["amr"] == ["fed"] and plain["acr"] == "urn:idp:acr:pwd"
