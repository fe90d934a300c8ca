"""Upstream providers as admins set them up (CLI and admin page), and as people use them
from their account: link one while signed in, unlink one (never the last way to sign in),
idp_hint, plain OAuth 2.0 with a claim mapping, and logging out of the upstream too."""

from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from support.mfa import enrol_totp
from support.oidc import CALLBACK, Browser, authorization_url
from support.pages import csrf_token
from support.upstream import Person, drive, make_person_at, register_client_at

from website.models import AuditEvent, User, db
from website.models.upstreams import Upstream, UpstreamIdentity
from website.store.upstreams import client_secret

NEVER = "http://never.invalid/"


def added(runner, *args):
    return runner.invoke(args=["add-upstream", *args])


@pytest.mark.parametrize("args, message", [
    (["--name", "Bad Name", "--issuer", "https://id.example", "--client-id", "a", "--client-secret", "b"],
     "lower-case letters"),
    (["--name", "corp", "--issuer", "http://id.example", "--client-id", "a", "--client-secret", "b"],
     "must use https"),
    (["--name", "corp", "--client-id", "a", "--client-secret", "b"], "Give the upstream's issuer URL"),
    (["--name", "ms", "--preset", "microsoft", "--client-id", "a", "--client-secret", "b"], "tenant"),
    (["--name", "corp", "--issuer", "https://id.example", "--client-id", "a", "--client-secret", "b",
      "--scope", "email"], "needs the openid scope"),
    (["--name", "corp", "--issuer", "https://id.example", "--client-id", "a", "--client-secret", "b",
      "--claim", "shoe_size=size"], "Unknown local claim"),
    (["--name", "corp", "--issuer", "https://id.example", "--client-id", "a", "--client-secret", "b",
      "--overwrite", "is_admin"], "can be overwritten"),
    (["--name", "corp", "--kind", "oauth2", "--client-id", "a", "--client-secret", "b"],
     "authorization URL must be"),
])
def test_add_upstream_refuses_what_cannot_work(app, runner, args, message):
    result = added(runner, *args)
    assert result.exit_code == 1 and message in result.output, result.output
    assert "Traceback" not in result.output
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count()).select_from(Upstream)) == 0


def test_presets_list_and_remove(app, runner):
    assert added(runner, "--name", "google", "--preset", "google", "--client-id", "g-id",
                 "--client-secret", "g-secret").exit_code == 0
    result = added(runner, "--name", "entra", "--preset", "microsoft", "--tenant", "contoso.onmicrosoft.com",
                   "--client-id", "m-id", "--client-secret", "m-secret")
    assert "Register this redirect URI there: http://127.0.0.1/login/with/entra/callback" in result.output
    assert added(runner, "--name", "github", "--preset", "github", "--client-id", "gh-id",
                 "--client-secret", "gh-secret").exit_code == 0
    listing = runner.invoke(args=["list-upstreams"]).output
    assert "google\toidc\thttps://accounts.google.com\tg-id\tGoogle" in listing
    assert "entra\toidc\thttps://login.microsoftonline.com/contoso.onmicrosoft.com/v2.0\tm-id" in listing
    assert "github\toauth2\thttps://github.com/login/oauth/authorize\tgh-id\tGitHub" in listing
    with app.app_context():
        github = db.session.scalar(db.select(Upstream).where(Upstream.name == "github"))
        assert github.userinfo_url == "https://api.github.com/user"
        assert github.emails_url == "https://api.github.com/user/emails"
        assert github.claim_map["sub"] == "id" and github.claim_map["preferred_username"] == "login"
        # The secret is sealed at rest, and read back for the upstream.
        assert "gh-secret" not in github.client_secret_encrypted and client_secret(github) == "gh-secret"
    assert added(runner, "--name", "google", "--preset", "google", "--client-id", "x",
                 "--client-secret", "y").exit_code == 1
    assert runner.invoke(args=["remove-upstream", "google"]).output == "Removed upstream google.\n"
    missing = runner.invoke(args=["remove-upstream", "google"])
    assert missing.exit_code == 1 and "No upstream named 'google'" in missing.output
    with app.app_context():
        assert [e.event for e in db.session.scalars(db.select(AuditEvent))].count("upstream_added") == 3


def test_update_upstream_changes_settings_and_keeps_the_links(app, runner, make_user):
    added(runner, "--name", "google", "--preset", "google", "--client-id", "g", "--client-secret", "old")
    alice = make_user("alice")
    with app.app_context():
        upstream = db.session.scalar(db.select(Upstream))
        db.session.add(UpstreamIdentity(upstream_id=upstream.id, subject="1234", user_id=alice.id, groups=[]))
        db.session.commit()
    result = runner.invoke(args=["update-upstream", "google", "--client-secret", "new", "--overwrite", "name,groups",
                                 "--end-upstream-session"])
    assert result.output == "Updated upstream google.\n"
    with app.app_context():
        upstream = db.session.scalar(db.select(Upstream))
        assert client_secret(upstream) == "new" and upstream.client_id == "g"
        assert upstream.overwrite_claims == ["groups", "name"] and upstream.end_upstream_session
        assert upstream.issuer == "https://accounts.google.com" and upstream.preset == "google"
        assert db.session.scalar(db.select(db.func.count()).select_from(UpstreamIdentity)) == 1
    bad = runner.invoke(args=["update-upstream", "google", "--issuer", "http://accounts.example"])
    assert bad.exit_code == 1 and "must use https" in bad.output
    assert runner.invoke(args=["update-upstream", "nobody"]).exit_code == 1


def test_rotating_the_key_encryption_key_reseals_upstream_secrets(app, runner):
    added(runner, "--name", "google", "--preset", "google", "--client-id", "g", "--client-secret", "s3cret")
    with app.app_context():
        before = db.session.scalar(db.select(Upstream)).client_secret_encrypted
    assert runner.invoke(args=["rotate-key-encryption-key"]).exit_code == 0
    with app.app_context():
        row = db.session.scalar(db.select(Upstream))
        assert row.client_secret_encrypted != before and client_secret(row) == "s3cret"


def test_an_admin_adds_an_upstream_and_the_log_in_page_offers_it(app, test_client, make_user, auth):
    make_user("root", is_admin=True)
    auth.login("root")
    page = test_client.get("/admin/upstreams")
    assert page.status_code == 200 and "No upstream providers yet" in page.text
    bad = test_client.post("/admin/upstreams", data={
        "csrf_token": csrf_token(page.text), "name": "corp", "issuer": "http://corp.example",
        "client_id": "a", "client_secret": "b", "kind": "oidc"})
    assert bad.status_code == 400 and "must use https" in bad.text
    done = test_client.post("/admin/upstreams", data={
        "csrf_token": csrf_token(page.text), "preset": "gitlab", "name": "gitlab", "client_id": "a",
        "client_secret": "b", "kind": "oidc", "overwrite_name": "y"}, follow_redirects=True)
    assert "Register the redirect URI http://127.0.0.1/login/with/gitlab/callback there" in done.text
    assert "https://gitlab.com" in done.text
    test_client.post("/logout", data={"csrf_token": csrf_token(done.text)})
    login = test_client.get("/login?next=/account/")
    assert 'href="/login/with/gitlab?next=/account/"' in login.text and "Continue with GitLab" in login.text
    assert "Continue with GitLab" in test_client.get("/signup").text


def test_only_admins_manage_upstreams(test_client, user, auth):
    auth.login()
    assert test_client.get("/admin/upstreams").status_code == 403


def sign_in_with_peer(idp, proxy, session=None, next_url="/account/"):
    session = session or requests.Session()
    page = drive(session, f"{idp}/login/with/peer?next={next_url}", Person("ann", login_origin=proxy.url), NEVER)
    return session, page


def test_link_from_the_account_page_then_sign_in_with_it_and_unlink(app, idp, peer_upstream, make_user):
    other, proxy, _ = peer_upstream
    alice = make_user("alice", email="alice@example.com")  # another address than ann's there
    browser = Browser(idp)
    browser.login("alice")
    account = browser.session.get(f"{idp}/account/")
    assert "Link Identity Provider" in account.text
    response = browser.session.post(f"{idp}/account/sign-in/peer/link", data={"csrf_token": csrf_token(account.text)},
                                    allow_redirects=False)
    back = drive(browser.session, response.headers["Location"], Person("ann", login_origin=proxy.url), NEVER)
    assert urlsplit(back.url).path == "/account/" and "is linked" in back.text and "Unlink" in back.text
    # A new browser: the upstream alone signs in to alice.
    session, page = sign_in_with_peer(idp, proxy)
    assert page.url == f"{idp}/account/" and "Signed in as <strong>alice</strong>" in page.text
    with app.app_context():
        identity = db.session.scalar(db.select(UpstreamIdentity))
        assert identity.user_id == alice.id and identity.email == "ann@example.com"
    unlink = session.post(f"{idp}/account/sign-in/{identity.id}/unlink", data={"csrf_token": csrf_token(page.text)})
    assert "Identity Provider is unlinked" in unlink.text
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count()).select_from(UpstreamIdentity)) == 0
        assert [e.detail["proof"] for e in db.session.scalars(
            db.select(AuditEvent).where(AuditEvent.event == "upstream_linked"))] == ["signed in"]


def test_the_last_way_to_sign_in_cannot_be_unlinked(app, idp, peer_upstream):
    session, page = sign_in_with_peer(idp, peer_upstream[1])  # a new account, without a password
    with app.app_context():
        identity = db.session.scalar(db.select(UpstreamIdentity))
    refused = session.post(f"{idp}/account/sign-in/{identity.id}/unlink", data={"csrf_token": csrf_token(page.text)})
    assert "your only way to sign in, so it stays linked" in refused.text
    with app.app_context():
        assert db.session.get(UpstreamIdentity, identity.id) is not None
        assert not db.session.scalar(db.select(User)).check_password("")


def test_someone_elses_identity_cannot_be_unlinked(app, idp, peer_upstream, make_user):
    sign_in_with_peer(idp, peer_upstream[1])
    make_user("mallory")
    with app.app_context():
        identity = db.session.scalar(db.select(UpstreamIdentity))
    browser = Browser(idp)
    browser.login("mallory")
    page = browser.session.get(f"{idp}/account/")
    assert browser.session.post(f"{idp}/account/sign-in/{identity.id}/unlink",
                                data={"csrf_token": csrf_token(page.text)}).status_code == 404


def test_an_identity_linked_to_another_account_is_not_linked_again(app, idp, peer_upstream, make_user):
    proxy = peer_upstream[1]
    sign_in_with_peer(idp, proxy)  # ann's upstream identity now has an account of its own
    make_user("alice", email="alice@example.com")
    browser = Browser(idp)
    browser.login("alice")
    account = browser.session.get(f"{idp}/account/")
    response = browser.session.post(f"{idp}/account/sign-in/peer/link", data={"csrf_token": csrf_token(account.text)},
                                    allow_redirects=False)
    page = drive(browser.session, response.headers["Location"], Person("ann", login_origin=proxy.url), NEVER)
    assert page.status_code == 403 and "already linked to another account" in page.text


def test_idp_hint_goes_straight_to_the_upstream(app, idp, peer_upstream, make_client):
    oauth_client, _ = make_client(redirect_uris=["http://127.0.0.1:5000/callback"])
    session = requests.Session()
    first = session.get(f"{idp}/authorize", params={
        "response_type": "code", "client_id": oauth_client.client_id, "redirect_uri": "http://127.0.0.1:5000/callback",
        "scope": "openid", "kc_idp_hint": "peer", "login_hint": "ann@example.com"}, allow_redirects=False)
    assert urlsplit(first.headers["Location"]).path == "/login/with/peer"
    to_upstream = session.get(f"{idp}{first.headers['Location']}", allow_redirects=False).headers["Location"]
    assert to_upstream.startswith(peer_upstream[1].url + "/oauth/authorize?")
    query = parse_qs(urlsplit(to_upstream).query)
    assert query["login_hint"] == ["ann@example.com"] and query["code_challenge_method"] == ["S256"]
    assert query["nonce"] and query["state"] and query["redirect_uri"] == [f"{idp}/login/with/peer/callback"]


def test_logging_out_here_also_ends_the_upstream_session_when_set(app, idp, peer_upstream):
    other, proxy, _ = peer_upstream
    with app.app_context():
        db.session.scalar(db.select(Upstream)).end_upstream_session = True
        db.session.commit()
    session, page = sign_in_with_peer(idp, proxy)
    upstream_account = session.get(f"{proxy.url}/account/", allow_redirects=False)
    assert upstream_account.status_code == 200  # signed in there too
    out = session.post(f"{idp}/logout", data={"csrf_token": csrf_token(page.text)}, allow_redirects=False)
    location = out.headers["Location"]
    assert location.startswith(f"{proxy.url}/oauth/logout?")
    query = parse_qs(urlsplit(location).query)
    assert query["post_logout_redirect_uri"] == [f"{idp}/logout/upstream"] and query["id_token_hint"]
    home = drive(session, location, Person("ann", login_origin=proxy.url), NEVER)
    assert home.url == f"{idp}/" and "You are signed out." in home.text
    assert session.get(f"{idp}/account/", allow_redirects=False).status_code == 302
    assert session.get(f"{proxy.url}/account/", allow_redirects=False).status_code == 302


def test_logging_out_leaves_the_upstream_session_by_default(app, idp, peer_upstream):
    session, page = sign_in_with_peer(idp, peer_upstream[1])
    out = session.post(f"{idp}/logout", data={"csrf_token": csrf_token(page.text)}, allow_redirects=False)
    assert out.headers["Location"] == "/"
    assert session.get(f"{peer_upstream[1].url}/account/", allow_redirects=False).status_code == 200


def test_a_plain_oauth2_upstream_with_a_claim_mapping(app, idp, runner, upstream_instance):
    other, url = upstream_instance
    sub = make_person_at(other, "bob", "bob@example.com")
    client_id, secret = register_client_at(other, [f"{idp}/login/with/plain/callback"], scope="profile email")
    result = added(runner, "--name", "plain", "--kind", "oauth2", "--display-name", "Plain OAuth",
                   "--authorize-url", f"{url}/oauth/authorize", "--token-url", f"{url}/oauth/token",
                   "--userinfo-url", f"{url}/api/me", "--scope", "profile email", "--client-id", client_id,
                   "--client-secret", secret, "--claim", "sub=sub", "--claim", "preferred_username=username")
    assert result.exit_code == 0, result.output
    session = requests.Session()
    page = drive(session, f"{idp}/login/with/plain?next=/account/", Person("bob", login_origin=url), NEVER)
    assert page.url == f"{idp}/account/" and "Signed in as <strong>bob</strong>" in page.text
    with app.app_context():
        identity = db.session.scalar(db.select(UpstreamIdentity))
        # /api/me says nothing of verification: the address is kept, unverified.
        assert identity.subject == sub and not identity.user.email_verified
        assert identity.user.email == "bob@example.com"


APP_LOGOUT = "http://127.0.0.1:5000/signed-out"


def app_signs_in_with_peer(idp, proxy, make_client):
    """An app here whose person signs in with the peer upstream (set to end its session too):
    (browser session, client, the app's id_token)."""
    from support.oidc import CALLBACK, authorization_url
    from support.pages import query_params
    oauth_client, secret = make_client(redirect_uris=[CALLBACK], post_logout_redirect_uris=[APP_LOGOUT])
    session = requests.Session()
    callback = drive(session, authorization_url(idp, oauth_client, idp_hint="peer"),
                     Person("ann", login_origin=proxy.url), CALLBACK)
    assert isinstance(callback, str), callback
    tokens = requests.post(f"{idp}/oauth/token", auth=(oauth_client.client_id, secret), data={
        "grant_type": "authorization_code", "code": query_params(callback)["code"], "redirect_uri": CALLBACK}).json()
    return session, oauth_client, tokens["id_token"]


def end_upstream_sessions(app):
    with app.app_context():
        db.session.scalar(db.select(Upstream)).end_upstream_session = True
        db.session.commit()


def test_rp_initiated_logout_with_a_hint_ends_the_upstream_session_and_returns_to_the_app(
        app, idp, peer_upstream, make_client):
    other, proxy, _ = peer_upstream
    end_upstream_sessions(app)
    session, oauth_client, id_token = app_signs_in_with_peer(idp, proxy, make_client)
    with app.app_context():
        from website.models.sessions import UserSession
        row = db.session.scalar(db.select(UserSession))
        # The upstream's id_token is kept with the session, sealed.
        assert row.upstream_id_token_sealed and "eyJ" not in row.upstream_id_token_sealed
    out = session.get(f"{idp}/oauth/logout", params={"id_token_hint": id_token, "post_logout_redirect_uri": APP_LOGOUT,
                                                     "state": "app-state"}, allow_redirects=False)
    location = out.headers["Location"]
    assert location.startswith(f"{proxy.url}/oauth/logout?")
    query = parse_qs(urlsplit(location).query)
    assert query["post_logout_redirect_uri"] == [f"{idp}/logout/upstream"] and query["id_token_hint"]
    back = drive(session, location, Person("ann", login_origin=proxy.url), APP_LOGOUT)
    assert back == f"{APP_LOGOUT}?state=app-state"
    assert session.get(f"{idp}/account/", allow_redirects=False).status_code == 302
    assert session.get(f"{proxy.url}/account/", allow_redirects=False).status_code == 302
    # The state is used once: coming back again continues nowhere.
    returned = session.get(f"{idp}/logout/upstream", params={"state": parse_qs(urlsplit(location).query)["state"][0]},
                           allow_redirects=False)
    assert returned.status_code == 200 and "You are signed out" in returned.text
    assert [e.event for e in db_events(app)].count("upstream_logout_started") == 1


def test_v2_logout_from_the_app_ends_the_upstream_session_and_goes_to_return_to(app, idp, peer_upstream, make_client):
    other, proxy, _ = peer_upstream
    end_upstream_sessions(app)
    session, oauth_client, _ = app_signs_in_with_peer(idp, proxy, make_client)
    out = session.get(f"{idp}/v2/logout", params={"client_id": oauth_client.client_id, "returnTo": APP_LOGOUT},
                      allow_redirects=False)
    assert out.headers["Location"].startswith(f"{proxy.url}/oauth/logout?")
    assert drive(session, out.headers["Location"], Person("ann", login_origin=proxy.url), APP_LOGOUT) == APP_LOGOUT
    assert session.get(f"{proxy.url}/account/", allow_redirects=False).status_code == 302


def test_a_step_up_keeps_the_session_one_through_the_upstream(app, idp, peer_upstream, make_client):
    other, proxy, _ = peer_upstream
    end_upstream_sessions(app)
    session, _ = sign_in_with_peer(idp, proxy)
    # ann sets up an authenticator: the next app's sign-in asks this older session for it.
    authenticator, _, _ = enrol_totp(session, idp)
    oauth_client, _ = make_client(redirect_uris=[CALLBACK])
    ann = Person("ann", login_origin=proxy.url)
    challenge = drive(session, authorization_url(idp, oauth_client), ann, CALLBACK)
    assert urlsplit(challenge.url).path == "/login/second-factor", challenge.url
    answer = {"csrf_token": csrf_token(challenge.text), "code": authenticator.code()}
    done = session.post(challenge.url, data=answer, allow_redirects=False)
    assert isinstance(drive(session, f"{idp}{done.headers['Location']}", ann, CALLBACK), str)
    # Still a sign-in through the upstream: logging out here ends the session there too, with
    # the upstream's id_token as the hint.
    page = session.get(f"{idp}/account/")
    out = session.post(f"{idp}/logout", data={"csrf_token": csrf_token(page.text)}, allow_redirects=False)
    assert out.headers["Location"].startswith(f"{proxy.url}/oauth/logout?")
    assert parse_qs(urlsplit(out.headers["Location"]).query)["id_token_hint"]


@pytest.mark.parametrize("logout", ["cross-site v2", "unconfirmed"])
def test_a_logout_the_session_does_not_vouch_for_leaves_the_upstream_session(app, idp, peer_upstream, make_client,
                                                                             logout):
    other, proxy, _ = peer_upstream
    end_upstream_sessions(app)
    session, oauth_client, _ = app_signs_in_with_peer(idp, proxy, make_client)
    if logout == "cross-site v2":
        # Another site sends the browser to /v2/logout (no client this session signed in to).
        out = session.get(f"{idp}/v2/logout", params={"returnTo": APP_LOGOUT}, allow_redirects=False)
        assert out.status_code == 200 and "You are signed out" in out.text
        assert session.get(f"{idp}/account/", allow_redirects=False).status_code == 302
    else:
        # No id_token_hint: the person is asked first; until then nothing ends, here or there.
        out = session.get(f"{idp}/oauth/logout", params={"client_id": oauth_client.client_id,
                                                         "post_logout_redirect_uri": APP_LOGOUT},
                          allow_redirects=False)
        assert out.status_code == 200 and 'name="confirm"' in out.text
        # Another person's hint (here: not a token of this server) is refused outright.
        forged = session.get(f"{idp}/oauth/logout", params={"id_token_hint": "e30.e30.e30"}, allow_redirects=False)
        assert forged.status_code in (200, 400) and "Location" not in forged.headers
    assert session.get(f"{proxy.url}/account/", allow_redirects=False).status_code == 200
    assert "upstream_logout_started" not in [e.event for e in db_events(app)]


def test_confirmed_rp_initiated_logout_without_a_hint_ends_the_upstream_session(app, idp, peer_upstream, make_client):
    other, proxy, _ = peer_upstream
    end_upstream_sessions(app)
    session, oauth_client, _ = app_signs_in_with_peer(idp, proxy, make_client)
    page = session.get(f"{idp}/oauth/logout", params={"client_id": oauth_client.client_id,
                                                      "post_logout_redirect_uri": APP_LOGOUT})
    out = session.post(f"{idp}/oauth/logout", data={
        "csrf_token": csrf_token(page.text), "client_id": oauth_client.client_id,
        "post_logout_redirect_uri": APP_LOGOUT, "confirm": "yes"}, allow_redirects=False)
    assert out.headers["Location"].startswith(f"{proxy.url}/oauth/logout?"), out.text[:300]
    assert drive(session, out.headers["Location"], Person("ann", login_origin=proxy.url), APP_LOGOUT) == APP_LOGOUT


def db_events(app):
    with app.app_context():
        return list(db.session.scalars(db.select(AuditEvent)))


def test_discovery_and_jwks_are_cached_and_the_jwks_read_again_for_a_new_key(app, idp, peer_upstream):
    other, proxy, _ = peer_upstream
    for _ in range(2):
        session, page = sign_in_with_peer(idp, proxy)
        assert "Signed in as" in page.text
    assert proxy.paths.count("/.well-known/openid-configuration") == 1
    jwks_path = next(p for p in proxy.paths if "jwks" in p)
    assert proxy.paths.count(jwks_path) == 1
    # The upstream rotates its signing key: the next id_token names a key not in the cached
    # JWKS, which is read again once.
    assert other.test_cli_runner().invoke(args=["rotate-keys"]).exit_code == 0
    session, page = sign_in_with_peer(idp, proxy)
    assert "Signed in as" in page.text
    assert proxy.paths.count("/.well-known/openid-configuration") == 1 and proxy.paths.count(jwks_path) == 2


def test_without_the_cache_every_sign_in_reads_discovery(app, idp, peer_upstream):
    app.config["UPSTREAM_METADATA_CACHE"] = 0
    proxy = peer_upstream[1]
    for _ in range(2):
        sign_in_with_peer(idp, proxy)
    # Read at the start and again at the callback of each sign-in.
    assert proxy.paths.count("/.well-known/openid-configuration") == 4


@pytest.mark.parametrize("change, message", [
    ({"scope": "email profile"}, "needs the openid scope"),
    ({"claim_map": "shoe_size=size"}, "Unknown local claim"),
    ({"claim_map": "no equals sign"}, "Write each claim mapping as local=upstream"),
    ({"scope": ""}, "This field is required"),
])
def test_the_admin_edit_page_refuses_bad_settings_with_a_message(app, runner, test_client, make_user, auth,
                                                                 change, message):
    added(runner, "--name", "corp", "--issuer", "https://id.example", "--client-id", "c", "--client-secret", "old")
    make_user("root", is_admin=True)
    auth.login("root")
    page = test_client.get("/admin/upstreams/corp")
    assert page.status_code == 200 and 'value="openid email profile"' in page.text
    bad = test_client.post("/admin/upstreams/corp", data={"csrf_token": csrf_token(page.text),
                                                          "scope": "openid email", **change})
    assert bad.status_code == 400 and message in bad.text.replace("&#39;", "'"), bad.text[:3000]
    with app.app_context():
        row = db.session.scalar(db.select(Upstream))
        assert row.scope == "openid email profile" and client_secret(row) == "old"


def test_an_admin_edits_an_upstream_and_rotates_its_secret(app, runner, test_client, make_user, auth):
    added(runner, "--name", "corp", "--issuer", "https://id.example", "--client-id", "c", "--client-secret", "old")
    make_user("root", is_admin=True)
    auth.login("root")
    listing = test_client.get("/admin/upstreams")
    assert 'href="/admin/upstreams/corp"' in listing.text
    page = test_client.get("/admin/upstreams/corp")
    # Without the CSRF token nothing changes.
    assert test_client.post("/admin/upstreams/corp", data={"scope": "openid"}).status_code == 400
    done = test_client.post("/admin/upstreams/corp", data={
        "csrf_token": csrf_token(page.text), "scope": "openid email profile groups", "client_secret": "new",
        "claim_map": "groups=realm_access.roles", "overwrite_email": "y", "overwrite_groups": "y",
        "end_upstream_session": "y"}, follow_redirects=True)
    assert done.status_code == 200 and "The new client secret is in use" in done.text
    with app.app_context():
        row = db.session.scalar(db.select(Upstream))
        assert client_secret(row) == "new" and row.scope == "openid email profile groups"
        assert row.claim_map["groups"] == "realm_access.roles" and row.overwrite_claims == ["email", "groups"]
        assert row.end_upstream_session and row.issuer == "https://id.example"
        event = db.session.scalar(db.select(AuditEvent).where(AuditEvent.event == "upstream_updated"))
        assert event.detail["new_secret"] is True and event.detail["upstream"] == "corp"
        assert "new" not in str(event.detail.values())
    # Saving without a secret keeps it.
    again = test_client.get("/admin/upstreams/corp")
    assert "groups=realm_access.roles" in again.text
    test_client.post("/admin/upstreams/corp", data={"csrf_token": csrf_token(again.text), "scope": "openid"})
    with app.app_context():
        row = db.session.scalar(db.select(Upstream))
        assert client_secret(row) == "new" and row.scope == "openid" and not row.end_upstream_session
    assert test_client.get("/admin/upstreams/nobody").status_code == 404


def test_only_admins_edit_upstreams(runner, test_client, user, auth):
    added(runner, "--name", "corp", "--issuer", "https://id.example", "--client-id", "c", "--client-secret", "old")
    auth.login()
    assert test_client.get("/admin/upstreams/corp").status_code == 403
    assert test_client.post("/admin/upstreams/corp", data={"scope": "openid"}).status_code in (400, 403)
