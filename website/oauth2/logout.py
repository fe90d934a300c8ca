"""Telling clients that a session ended: OpenID Connect Back-Channel Logout 1.0 (a signed
``logout_token`` POSTed to each client's ``backchannel_logout_uri``, from the queue in
``logout_deliveries``) and Front-Channel Logout 1.0 (the URLs the signed-out page frames).

Deliveries leave the person's request at once: the session's end queues them in its own
transaction (store/sessions.py), and a worker sends them, in a daemon thread in every
instance (LOGOUT_DELIVERY_WORKER) and in ``flask deliver-logouts``. Each try waits at most
LOGOUT_DELIVERY_TIMEOUT seconds; a failure is retried after LOGOUT_DELIVERY_BACKOFF seconds,
doubling, until LOGOUT_DELIVERY_MAX_ATTEMPTS tries; every outcome goes to the audit log.
"""

import urllib.error
import urllib.request
from urllib.parse import urlencode

from authlib.common.urls import add_params_to_uri
from flask import current_app
from joserfc import jwt

from website.extensions import db
from website.http.cors import origin_of
from website.models.base import now
from website.oauth2.client_keys import no_redirects_opener
from website.oauth2.keys import get_issuer, id_token_alg, signing_key
from website.store import audit
from website.store import logout_deliveries, queue
from website.store.clients import query_client

#: Back-Channel Logout §2.4: the event that makes a JWT a logout token.
BACKCHANNEL_LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"

#: Deliveries one pass takes at most (the rest wait for the next pass).
BATCH = 50

#: Seconds a claimed delivery stays taken past its timeout, should its worker die mid-try.
LEASE_MARGIN = 30


def logout_token(item, client, issuer: str) -> str:
    """The signed logout token (Back-Channel Logout §2.4): iss, aud, iat, exp, jti, events,
    sub and sid; never a nonce. ``typ`` is ``logout+jwt`` (§2.4, RFC 8725 §3.11)."""
    issued = now()
    claims = {
        "iss": issuer,
        "aud": client.client_id,
        "iat": issued,
        "exp": issued + current_app.config["LOGOUT_TOKEN_LIFETIME"],
        "jti": item.jti,
        "events": {BACKCHANNEL_LOGOUT_EVENT: {}},
        "sub": item.sub,
        "sid": item.sid,
    }
    alg = id_token_alg(client)  # Back-Channel Logout §2.4: as the client's id_tokens are signed
    key = signing_key(alg)
    return jwt.encode({"alg": alg, "typ": "logout+jwt", "kid": key.kid}, claims, key, [alg])


def _post(uri: str, token: str) -> str | None:
    """POST the token; None on success (any 2xx, §2.8), else what went wrong."""
    body = urlencode({"logout_token": token}).encode()
    request = urllib.request.Request(uri, data=body, method="POST", headers={
        "Content-Type": "application/x-www-form-urlencoded", "Cache-Control": "no-cache"})
    try:
        with no_redirects_opener.open(request, timeout=current_app.config["LOGOUT_DELIVERY_TIMEOUT"]) as response:
            return None if 200 <= response.status < 300 else f"HTTP {response.status}"
    except urllib.error.HTTPError as error:  # 3xx (not followed), 4xx, 5xx
        return f"HTTP {error.code}"
    except (OSError, ValueError) as error:  # refused, timed out, unreachable, bad URL
        reason = getattr(error, "reason", error)
        return f"{type(reason).__name__}: {reason}"[:300]


def deliver_one(delivery_id: int) -> str | None:
    """Try one due delivery if no other worker has it; return its new state (None if taken)."""
    config = current_app.config
    lease = int(config["LOGOUT_DELIVERY_TIMEOUT"]) + LEASE_MARGIN
    item = logout_deliveries.claim(delivery_id, lease)
    if item is None:
        return None
    client = query_client(item.client_id)
    uri = (client.client_metadata.get("backchannel_logout_uri") if client is not None else None)
    # Queued outside a request (the CLI) with no OAUTH2_ISSUER, the issuer is unknown.
    issuer = item.issuer or config.get("OAUTH2_ISSUER")
    if not config["BACKCHANNEL_LOGOUT"]:
        state = _give_up(item, "BACKCHANNEL_LOGOUT is off.")
    elif not uri:
        state = _give_up(item, "The client no longer has a backchannel_logout_uri.")  # deleted or changed since
    elif not issuer:
        state = _give_up(item, "Queued outside a request with no OAUTH2_ISSUER set: the issuer is unknown.", uri)
    else:
        error = _post(uri, logout_token(item, client, issuer))
        if error is None:
            queue.finish(item, "delivered")
            audit.record("backchannel_logout_delivered", client_id=item.client_id, sid=item.sid,
                         attempts=item.attempts, uri=uri)
            state = "delivered"
        elif (delay := queue.retry_later(item, error, config["LOGOUT_DELIVERY_MAX_ATTEMPTS"],
                                         config["LOGOUT_DELIVERY_BACKOFF"])) is None:
            state = _given_up(item, error, uri)
        else:
            audit.record("backchannel_logout_failed", client_id=item.client_id, sid=item.sid,
                         attempts=item.attempts, error=error, retry_in=delay, uri=uri)
            state = "pending"
    db.session.commit()
    return state


def _give_up(item, error: str, uri: str | None = None) -> str:
    queue.finish(item, "given_up", error=error)
    return _given_up(item, error, uri)


def _given_up(item, error: str, uri: str | None) -> str:
    audit.record("backchannel_logout_given_up", client_id=item.client_id, sid=item.sid,
                 attempts=item.attempts, error=error, uri=uri)
    return "given_up"


def deliver_due(limit: int = BATCH) -> dict[str, int]:
    """One pass over the queue: try every due delivery; count the outcomes."""
    return queue.work_through(logout_deliveries.due_ids(limit), deliver_one)


def init_worker(app) -> queue.QueueWorker:
    """Start the delivery thread (``deliver_due`` every LOGOUT_DELIVERY_POLL_INTERVAL seconds
    while LOGOUT_DELIVERY_WORKER is on) lazily, on each process's first request."""
    return queue.start_worker(app, "logout_delivery_worker", "logout-delivery", "LOGOUT_DELIVERY_WORKER",
                              "LOGOUT_DELIVERY_POLL_INTERVAL", deliver_due)


def frontchannel_logout_urls(client_ids, sid: str | None) -> list[str]:
    """The URLs the signed-out page frames (Front-Channel Logout §3): each client this session
    signed in to with a frontchannel_logout_uri, with iss and sid when it asked for them."""
    if not current_app.config["FRONTCHANNEL_LOGOUT"]:
        return []
    urls = []
    for client_id in dict.fromkeys(client_ids):
        client = query_client(client_id)
        metadata = client.client_metadata if client is not None else {}
        if not (uri := metadata.get("frontchannel_logout_uri")):
            continue
        if metadata.get("frontchannel_logout_session_required") and sid:
            uri = add_params_to_uri(uri, {"iss": get_issuer(), "sid": sid})
        urls.append(uri)
    return urls


def frame_origins(urls: list[str]) -> list[str]:
    """The origins of the framed URLs, for the page's CSP frame-src."""
    return list(dict.fromkeys(o for o in map(origin_of, urls) if o))
