"""Several server processes on one database behave as one server: whatever one instance
issues, revokes or signs in, the other honours, and a one-time value (a DPoP proof's jti)
spent on one is spent on both. (Runs on a shared SQLite file too.)"""

from urllib.parse import urlencode

import requests
from support.dpop import DPoPKey
from support.factories import PASSWORD
from support.flows import pkce_pair
from support.pages import csrf_token, query_params

def log_in(browser: requests.Session, base_url: str, username="alice") -> None:
    """Sign in through the log-in form of the instance at ``base_url``."""
    page = browser.get(base_url + "/login")
    response = browser.post(base_url + "/login", allow_redirects=False,
                            data={"username": username, "password": PASSWORD,
                                  "csrf_token": csrf_token(page.text)})
    assert response.status_code == 302, response.text


def authorize(browser: requests.Session, base_url: str, client, challenge: str) -> str:
    """Allow the client on the consent page of ``base_url``; return the authorization code."""
    url = base_url + "/oauth/authorize?" + urlencode({
        "response_type": "code", "client_id": client.client_id, "redirect_uri": client.redirect_uris[0],
        "scope": "profile", "state": "st", "code_challenge": challenge, "code_challenge_method": "S256",
    })
    consent = browser.get(url)
    assert consent.status_code == 200, consent.text
    response = browser.post(url, data={"csrf_token": csrf_token(consent.text), "allow": "Allow"},
                            allow_redirects=False)
    assert response.status_code == 302, response.text
    return query_params(response.headers["Location"])["code"]


def redeem(base_url: str, client, secret: str, code: str, verifier: str) -> requests.Response:
    return requests.post(base_url + "/oauth/token", auth=(client.client_id, secret), data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": client.redirect_uris[0],
        "code_verifier": verifier,
    })


def tokens_from(a, client, secret) -> dict:
    """Sign in on instance ``a``, authorize there and redeem the code there; return the tokens."""
    browser = requests.Session()
    log_in(browser, a.url)
    verifier, challenge = pkce_pair()
    response = redeem(a.url, client, secret, authorize(browser, a.url, client, challenge), verifier)
    assert response.status_code == 200, response.text
    return response.json()


def test_a_code_issued_by_one_instance_is_redeemed_on_the_other(two_instances, user, make_client):
    a, b = two_instances
    client, secret = make_client()
    browser = requests.Session()
    log_in(browser, a.url)
    verifier, challenge = pkce_pair()
    code = authorize(browser, a.url, client, challenge)

    token = redeem(b.url, client, secret, code, verifier)
    assert token.status_code == 200, token.text
    me = requests.get(b.url + "/api/me", headers={"Authorization": f"Bearer {token.json()['access_token']}"})
    assert me.json()["username"] == "alice"
    # Single use holds across instances: the first instance refuses the redeemed code.
    again = redeem(a.url, client, secret, code, verifier)
    assert (again.status_code, again.json()["error"]) == (400, "invalid_grant")


def test_a_token_revoked_on_one_instance_is_refused_by_the_other(two_instances, user, make_client):
    a, b = two_instances
    client, secret = make_client()
    tokens = tokens_from(a, client, secret)
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert requests.get(b.url + "/api/me", headers=bearer).status_code == 200

    revoked = requests.post(a.url + "/oauth/revoke", auth=(client.client_id, secret),
                            data={"token": tokens["refresh_token"], "token_type_hint": "refresh_token"})
    assert revoked.status_code == 200, revoked.text

    assert requests.get(b.url + "/api/me", headers=bearer).status_code == 401
    refreshed = requests.post(b.url + "/oauth/token", auth=(client.client_id, secret),
                              data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
    assert (refreshed.status_code, refreshed.json()["error"]) == (400, "invalid_grant")


def test_a_session_made_on_one_instance_is_valid_on_the_other(two_instances, user, make_client):
    a, b = two_instances
    client, _ = make_client()
    on_a = requests.Session()
    log_in(on_a, a.url)
    # A browser sent to the other instance by the load balancer carries the same cookie.
    on_b = requests.Session()
    on_b.cookies.update(on_a.cookies)
    home = on_b.get(b.url + "/")
    assert "Signed in as <strong>alice</strong>" in home.text
    # ... and can consent there without signing in again.
    _, challenge = pkce_pair()
    assert authorize(on_b, b.url, client, challenge)


def test_each_instance_logs_one_line_per_request_with_the_request_id(app, two_instances):
    a, _ = two_instances
    response = requests.get(a.url + "/healthz?code=not-for-logs", headers={"X-Request-ID": "lb-trace-7"})
    assert response.headers["X-Request-ID"] == "lb-trace-7"
    lines = [line for line in a.log().splitlines() if "request_id=lb-trace-7" in line]
    assert len(lines) == 1, a.log()
    assert "method=GET path=/healthz status=200 duration_ms=" in lines[0]
    assert "remote_addr=127.0.0.1" in lines[0]
    assert "not-for-logs" not in a.log()


def test_keys_rotated_on_one_instance_are_published_and_used_by_the_other(two_instances, runner, user,
                                                                          make_client):
    import time

    import jwt

    a, b = two_instances
    before = {key["kid"] for key in requests.get(b.url + "/.well-known/jwks.json").json()["keys"]}
    # An operator rotates with the CLI on the machine of instance a (same database).
    assert runner.invoke(args=["rotate-keys"]).exit_code == 0
    time.sleep(1.5)  # instances check the newest key id at most once a second
    for instance in (a, b):
        published = {key["kid"] for key in requests.get(instance.url + "/.well-known/jwks.json").json()["keys"]}
        assert before < published, instance.url  # the new key joins; the old one stays published
    client, secret = make_client(scope="openid profile")
    browser = requests.Session()
    log_in(browser, b.url)
    verifier, challenge = pkce_pair()
    url = b.url + "/oauth/authorize?" + urlencode({
        "response_type": "code", "client_id": client.client_id, "redirect_uri": client.redirect_uris[0],
        "scope": "openid profile", "code_challenge": challenge, "code_challenge_method": "S256"})
    response = browser.get(url, allow_redirects=False)
    if response.status_code == 200:  # consent for the new scope
        response = browser.post(url, data={"csrf_token": csrf_token(response.text), "allow": "Allow"},
                                allow_redirects=False)
    code = query_params(response.headers["Location"])["code"]
    tokens = redeem(b.url, client, secret, code, verifier).json()
    kid = jwt.get_unverified_header(tokens["id_token"])["kid"]
    assert kid in published and kid not in before


def test_failed_log_ins_on_one_instance_lock_the_account_on_the_other(two_instances, user):
    a, b = two_instances
    attacker = requests.Session()
    for _ in range(5):  # THROTTLE_ACCOUNT_LIMIT
        page = attacker.get(a.url + "/login")
        attacker.post(a.url + "/login", data={"username": "alice", "password": "wrong guess",
                                              "csrf_token": csrf_token(page.text)})
    # The counters live in the database: instance b knows the account is locked.
    owner = requests.Session()
    page = owner.get(b.url + "/login")
    response = owner.post(b.url + "/login", allow_redirects=False,
                          data={"username": "alice", "password": PASSWORD, "csrf_token": csrf_token(page.text)})
    assert response.status_code == 429
    assert "Retry-After" in response.headers


def test_a_dpop_proof_used_on_one_instance_is_refused_by_the_other(two_instances, make_client):
    a, b = two_instances
    client, secret = make_client(grant_types=["client_credentials"], redirect_uris=[], scope="profile")
    # Named by the issuer's URL (both instances' OAUTH2_ISSUER), as behind a load balancer.
    proof = DPoPKey().proof("POST", "http://127.0.0.1/oauth/token")
    data = {"grant_type": "client_credentials"}
    first = requests.post(a.url + "/oauth/token", data=data, auth=(client.client_id, secret), headers={"DPoP": proof})
    assert first.status_code == 200, first.text
    assert first.json()["token_type"] == "DPoP"
    replay = requests.post(b.url + "/oauth/token", data=data, auth=(client.client_id, secret), headers={"DPoP": proof})
    assert (replay.status_code, replay.json()["error"]) == (400, "invalid_dpop_proof")
