"""RFC 6819 §5.1.x (audit) : security events are recorded and administrators can read them."""

import json
from datetime import datetime, timezone

import pytest
from sqlalchemy import select

from support.flows import get_code, redeem, refresh
from support.pages import AuthActions, form_token
from website.store import audit
from website.models import AuditEvent, User, db


def events(app, **filters):
    with app.app_context():
        query = select(AuditEvent).filter_by(**filters).order_by(AuditEvent.id)
        return [(e.event, e.username, e.client_id, dict(e.detail)) for e in db.session.scalars(query)]


def names(app):
    return [event[0] for event in events(app)]


def test_log_in_success_failure_and_log_out_are_recorded(app, test_client, auth, user):
    auth.login(password="wrong password")
    auth.login()
    auth.logout()
    recorded = events(app)
    assert [e[0] for e in recorded] == ["login_failed", "login_succeeded", "logout"]
    assert recorded[0][3]["attempted_username"] == "alice"
    assert recorded[1][1] == "alice"


def test_consent_and_tokens_are_recorded(app, test_client, auth, user, make_client):
    client, secret = make_client()
    auth.login()
    code, verifier = get_code(test_client, client)
    tokens = redeem(test_client, client, code, verifier, secret).json
    refresh(test_client, client, tokens["refresh_token"], secret)
    revoke = test_client.post("/oauth/revoke", data={"token": tokens["access_token"]},
                              auth=(client.client_id, secret))
    assert revoke.status_code == 200
    redeem(test_client, client, code, verifier, secret)  # reuse: the family is revoked
    recorded = [e for e in events(app) if e[0] != "login_succeeded"]
    assert [e[0] for e in recorded] == ["consent_granted", "token_issued", "token_issued", "token_revoked",
                                        "token_family_revoked"]
    assert all(e[2] == client.client_id for e in recorded[:4])
    assert recorded[1][3]["grant_type"] == "authorization_code"
    assert recorded[2][3]["grant_type"] == "refresh_token"
    assert recorded[4][3]["reason"] == "authorization code reused"


def test_denied_consent_is_recorded(app, test_client, auth, user, make_client):
    client, _ = make_client()
    auth.login()
    from support.flows import authorize_url
    url = authorize_url(client, code_challenge="a" * 43, code_challenge_method="S256")
    response = test_client.post(url, data={"csrf_token": form_token(test_client, url), "deny": "Deny"})
    assert "error=access_denied" in response.headers["Location"]
    assert "consent_denied" in names(app)


def test_client_lifecycle_is_recorded(app, test_client, auth, user):
    auth.login()
    created = test_client.post("/clients/new", data={
        "csrf_token": form_token(test_client, "/clients/new"), "client_name": "Audited",
        "redirect_uris": "https://a.example/cb", "grant_types": ["authorization_code"],
        "token_endpoint_auth_method": "client_secret_basic"}, follow_redirects=True)
    assert created.status_code == 200  # the one-time secret page, after a 303
    client_id = created.get_data(as_text=True).split('id="client-id">', 1)[1].split("<", 1)[0]
    edit = f"/clients/{client_id}/edit"
    test_client.post(edit, data={"csrf_token": form_token(test_client, edit), "client_name": "Renamed",
                                 "redirect_uris": "https://a.example/cb", "grant_types": ["authorization_code"],
                                 "token_endpoint_auth_method": "client_secret_basic"})
    show = f"/clients/{client_id}"
    test_client.post(f"{show}/rotate-secret", data={"csrf_token": form_token(test_client, show), "confirm": "yes"})
    delete = f"/clients/{client_id}/delete"
    test_client.post(delete, data={"csrf_token": form_token(test_client, delete)})
    recorded = [e for e in events(app) if e[0].startswith("client_")]
    assert [e[0] for e in recorded] == ["client_created", "client_updated", "client_secret_rotated",
                                        "client_deleted"]
    assert all(e[2] == client_id and e[1] == "alice" for e in recorded)


def test_record_is_callable_for_events_other_features_raise(app, user):
    with app.app_context():
        audit.record("key_rotated", kid="abc123")
        audit.record("consent_revoked", user=user, client_id="some-client", scope="profile")
        db.session.commit()
    assert names(app) == ["key_rotated", "consent_revoked"]


def test_an_event_rolls_back_with_its_transaction(app, user):
    with app.app_context():
        audit.record("token_issued", user=user)
        db.session.rollback()
    assert names(app) == []


@pytest.fixture
def admin_browser(app, make_user):
    make_user("root", is_admin=True)
    browser = app.test_client()
    AuthActions(browser).login("root")
    return browser


def test_only_admins_can_read_the_audit_log(app, test_client, auth, user, admin_browser):
    assert app.test_client().get("/admin/audit").status_code == 302  # signed out: log in first
    auth.login()
    assert test_client.get("/admin/audit").status_code == 403
    page = admin_browser.get("/admin/audit")
    assert page.status_code == 200
    assert "login_succeeded" in page.get_data(as_text=True)


def test_audit_page_pages_and_searches(app, admin_browser):
    with app.app_context():
        for i in range(120):
            audit.record("token_issued", client_id=f"client-{i:03d}")
        audit.record("key_rotated", kid="k1")
        db.session.commit()
    first = admin_browser.get("/admin/audit").get_data(as_text=True)
    assert "key_rotated" in first and "client-119" in first and "client-050" not in first
    assert "Page 1 of 5" in first
    last = admin_browser.get("/admin/audit?page=5").get_data(as_text=True)
    assert "client-000" in last and "client-119" not in last
    found = admin_browser.get("/admin/audit?q=CLIENT-07").get_data(as_text=True)
    assert "client-070" in found and "client-079" in found and "client-080" not in found
    assert "10 events" in found
    # LIKE wildcards are matched literally.
    assert "0 events" in admin_browser.get("/admin/audit?q=%25").get_data(as_text=True)
    assert admin_browser.get("/admin/audit?page=-1").status_code == 200
    assert admin_browser.get("/admin/audit?page=99999999999").status_code == 200
    assert admin_browser.get("/admin/audit?page=%C2%B2").status_code == 200  # "²" is a digit to isdigit()


def test_audit_page_escapes_what_it_shows(app, admin_browser):
    with app.app_context():
        audit.record("login_failed", attempted_username="<script>alert(1)</script>")
        db.session.commit()
    html = admin_browser.get("/admin/audit").get_data(as_text=True)
    assert "<script>alert(1)" not in html
    assert "&lt;script&gt;" in html


def test_events_read_as_sentences_with_the_apps_name(app, admin_browser, make_user, make_client):
    alice = make_user("alice")
    client, _ = make_client(client_name="Team Wiki")
    with app.app_context():
        audit.record("token_issued", user=db.session.get(type(alice), alice.id), client_id=client.client_id,
                     grant_type="authorization_code")
        audit.record("login_failed", attempted_username="mallory")
        audit.record("made_up_event", client_id=client.client_id)
        db.session.commit()
    page = admin_browser.get("/admin/audit").get_data(as_text=True)
    assert "alice signed in to Team Wiki" in page
    assert "A sign-in as mallory failed" in page
    assert "Someone: made up event (Team Wiki)" in page
    assert "grant_type=" not in page  # raw values live on the detail page


def test_filters_by_person_app_kind_and_time(app, admin_browser, make_user, make_client):
    make_user("alice")
    client, _ = make_client(client_name="Team Wiki")
    with app.app_context():
        audit.record("consent_granted", user=db.session.scalar(db.select(User).filter_by(username="alice")),
                     client_id=client.client_id, scope="openid")
        audit.record("login_failed", attempted_username="bob")
        db.session.commit()
    by_person = admin_browser.get("/admin/audit?person=ALI").get_data(as_text=True)
    assert "alice allowed Team Wiki (openid)" in by_person and "bob" not in by_person
    by_app = admin_browser.get("/admin/audit?client=team wiki").get_data(as_text=True)
    assert "1 event matching" in by_app
    assert "1 event matching" in admin_browser.get("/admin/audit?kind=login_failed").get_data(as_text=True)
    today = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    assert "0 events" in admin_browser.get("/admin/audit?until=2000-01-01").get_data(as_text=True)
    assert "events matching" in admin_browser.get(f"/admin/audit?since={today}&until={today}").get_data(as_text=True)
    bad = admin_browser.get("/admin/audit?since=yesterday")
    assert bad.status_code == 400
    assert "must be a date such as 2026-12-01" in bad.get_data(as_text=True)


def test_the_detail_page_shows_every_raw_value(app, admin_browser):
    with app.app_context():
        event = audit.record("token_family_revoked", family_id="f-123", reason="rotated refresh token reused")
        db.session.commit()
        event_id = event.id
    page = admin_browser.get(f"/admin/audit/{event_id}").get_data(as_text=True)
    assert "The tokens of one sign-in were revoked (rotated refresh token reused)" in page
    assert "<code>family_id</code>" in page and "f-123" in page
    assert admin_browser.get("/admin/audit/999999").status_code == 404


def test_export_as_json_lines_with_the_filters(app, admin_browser):
    with app.app_context():
        for i in range(3):
            audit.record("login_failed", attempted_username=f"user{i}")
        audit.record("key_rotated", kid="k1")
        db.session.commit()
    response = admin_browser.get("/admin/audit.jsonl?kind=login_failed")
    assert response.status_code == 200
    assert response.mimetype == "application/x-ndjson"
    assert response.headers["Content-Disposition"].startswith('attachment; filename="audit-')
    lines = [json.loads(line) for line in response.get_data(as_text=True).splitlines()]
    assert [line["detail"]["attempted_username"] for line in lines] == ["user2", "user1", "user0"]
    assert {line["event"] for line in lines} == {"login_failed"}
