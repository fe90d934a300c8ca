"""Signing in through an upstream OpenID Connect or OAuth 2.0 provider, on Authlib's Flask
client: the providers' settings (presets, checks), the round trip to the upstream (code flow
with PKCE, state and nonce, the id_token verified), and what the answer means here (which
account, a new one, or a link that needs the local password first).

Upstreams are rows an administrator adds at run time, so the Authlib client is made per
request from the row (``oauth_client``) rather than registered once at start-up.
"""

import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from authlib.common.errors import AuthlibBaseError
from authlib.common.security import generate_token
from flask import current_app, has_request_context, request, session
from joserfc.errors import JoseError

from website.extensions import db
from website.models.base import now, utcnow
from website.models.upstreams import NO_PASSWORD, OAUTH2, OIDC, Upstream, UpstreamIdentity, has_password
from website.models.usernames import username_problem
from website.models.users import User
from website.services.passkeys import unavailable_reason as passkeys_unavailable
from website.services.signup import signup_refusal
from website.store import audit
from website.store.groups import add_member, find_group, remove_member
from website.store.passkeys import has_passkey
from website.store.sealed import UnsealError
from website.store.upstreams import (
    StateCache,
    client_secret,
    count_identities,
    find_identity,
    find_upstream,
    link_identity,
    set_client_secret,
    users_with_email,
)
from website.store.users import find_user

if TYPE_CHECKING:  # Authlib's client loads with the first sign-in sent upstream
    from authlib.integrations.flask_client import FlaskOAuth2App

#: Presets: what each fills in. Keycloak and another instance of this server have no issuer of
#: their own (the admin gives theirs); Microsoft's names the directory (tenant) ID.
PRESETS = {
    "google": {"display_name": "Google", "kind": OIDC, "issuer": "https://accounts.google.com",
               "scope": "openid email profile"},
    "microsoft": {"display_name": "Microsoft", "kind": OIDC,
                  "issuer": "https://login.microsoftonline.com/{tenant}/v2.0", "scope": "openid email profile"},
    "gitlab": {"display_name": "GitLab", "kind": OIDC, "issuer": "https://gitlab.com",
               "scope": "openid email profile"},
    "keycloak": {"display_name": "Keycloak", "kind": OIDC, "issuer": None, "scope": "openid email profile"},
    "idp": {"display_name": "Identity Provider", "kind": OIDC, "issuer": None, "scope": "openid email profile"},
    "github": {"display_name": "GitHub", "kind": OAUTH2,
               "authorize_url": "https://github.com/login/oauth/authorize",
               "token_url": "https://github.com/login/oauth/access_token",
               "userinfo_url": "https://api.github.com/user",
               "emails_url": "https://api.github.com/user/emails",
               "scope": "read:user user:email",
               "claim_map": {"sub": "id", "name": "name", "preferred_username": "login", "email": "email"}},
}

#: The local claims an upstream's claims are mapped to (local claim -> upstream claim).
LOCAL_CLAIMS = ("sub", "email", "email_verified", "name", "preferred_username", "groups")
#: The local claims an upstream may be allowed to overwrite at each sign-in (groups: the
#: person's membership of the groups that exist here, by name).
OVERWRITABLE = ("name", "email", "groups")
NAME_RULE = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}\Z")
#: How long a sign-in sent upstream may take before its state expires, in seconds.
STATE_LIFETIME = 600
#: How long a pending link (waiting for the local password) lasts, in seconds.
LINK_LIFETIME = 600


class UpstreamSettingsError(ValueError):
    """Settings that cannot make a working upstream; the message says what to fix."""

    def __init__(self, message: str, field_name: str | None = None):
        super().__init__(message)
        self.field_name = field_name


class UpstreamFailure(Exception):
    """A sign-in through an upstream that cannot go on: ``reason`` for the audit log,
    ``message`` for the person, ``status`` for the page."""

    def __init__(self, reason: str, message: str, status: int = 502):
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.status = status
        self.next_url: str | None = None


# --- Settings -------------------------------------------------------------------------------

def _check_url(value: str | None, what: str, field_name: str) -> str:
    value = (value or "").strip()
    try:
        parts = urlsplit(value)
    except ValueError:
        parts = None
    if not parts or not parts.netloc or parts.scheme not in ("https", "http") or len(value) > 500 \
            or any(c.isspace() or ord(c) < 32 for c in value) or parts.fragment:
        raise UpstreamSettingsError(f"{what} must be an absolute https URL.", field_name)
    if parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise UpstreamSettingsError(f"{what} must use https (plain http only on this machine's loopback).",
                                    field_name)
    return value


def upstream_settings(name: str, client_id: str, secret: str | None, preset: str | None = None,
                      display_name: str | None = None, issuer: str | None = None, tenant: str | None = None,
                      scope: str | None = None, kind: str | None = None, authorize_url: str | None = None,
                      token_url: str | None = None, userinfo_url: str | None = None,
                      emails_url: str | None = None, claim_map: dict | None = None,
                      overwrite_claims: list | None = None, end_upstream_session: bool = False,
                      require_secret: bool = True) -> dict:
    """The checked columns of an upstream from what an admin typed (UI or CLI); a preset fills
    in what is not given. Raises UpstreamSettingsError."""
    name = (name or "").strip().lower()
    if not NAME_RULE.match(name):
        raise UpstreamSettingsError("The name must be 1 to 40 lower-case letters, digits or dashes"
                                    " (it is part of the redirect URI).", "name")
    if preset and preset not in PRESETS:
        raise UpstreamSettingsError(f"Unknown preset {preset!r}: choose one of {', '.join(PRESETS)}.", "preset")
    base = dict(PRESETS.get(preset or "", {}))
    kind = kind or base.get("kind") or OIDC
    if kind not in (OIDC, OAUTH2):
        raise UpstreamSettingsError("The kind must be oidc (OpenID Connect) or oauth2.", "kind")
    client_id = (client_id or "").strip()
    if not client_id or len(client_id) > 255:
        raise UpstreamSettingsError("Give the client ID the upstream gave you (at most 255 characters).",
                                    "client_id")
    if secret is not None:
        secret = secret.strip()
    if require_secret and not secret:
        raise UpstreamSettingsError("Give the client secret the upstream gave you.", "client_secret")
    if secret and len(secret) > 2000:
        raise UpstreamSettingsError("The client secret is longer than 2000 characters.", "client_secret")
    scope = " ".join((scope or base.get("scope") or ("openid email profile" if kind == OIDC else "")).split())
    if len(scope) > 500:
        raise UpstreamSettingsError("The scope is longer than 500 characters.", "scope")
    values = {"name": name, "client_id": client_id, "kind": kind, "preset": preset or None,
              "display_name": (display_name or "").strip()[:80] or base.get("display_name") or name,
              "scope": scope, "issuer": None, "authorize_url": None, "token_url": None,
              "userinfo_url": None, "emails_url": None, "end_upstream_session": bool(end_upstream_session)}
    if kind == OIDC:
        if "openid" not in scope.split():
            raise UpstreamSettingsError("An OpenID Connect upstream needs the openid scope.", "scope")
        issuer = (issuer or "").strip() or base.get("issuer") or ""
        if "{tenant}" in issuer:
            if not tenant or not re.fullmatch(r"[A-Za-z0-9.-]{1,100}", tenant.strip()):
                raise UpstreamSettingsError("The microsoft preset needs the directory (tenant) ID of your"
                                            " Entra tenant.", "tenant")
            issuer = issuer.replace("{tenant}", tenant.strip())
        if not issuer:
            raise UpstreamSettingsError("Give the upstream's issuer URL (its discovery document is read from"
                                        " ISSUER/.well-known/openid-configuration).", "issuer")
        values["issuer"] = _check_url(issuer, "The issuer", "issuer")
    else:
        for column, what in (("authorize_url", "The authorization URL"), ("token_url", "The token URL"),
                             ("userinfo_url", "The userinfo URL")):
            values[column] = _check_url(locals()[column] or base.get(column), what, column)
        if emails_url or base.get("emails_url"):
            values["emails_url"] = _check_url(emails_url or base.get("emails_url"), "The emails URL", "emails_url")
    mapping = dict(base.get("claim_map") or {})
    for local, source in (claim_map or {}).items():
        if local not in LOCAL_CLAIMS:
            raise UpstreamSettingsError(f"Unknown local claim {local!r} in the claim mapping: map"
                                        f" {', '.join(LOCAL_CLAIMS)}.", "claim_map")
        source = (source or "").strip()
        if not source or len(source) > 100 or any(c.isspace() for c in source):
            raise UpstreamSettingsError(f"Name the upstream claim that {local} is read from.", "claim_map")
        mapping[local] = source
    values["claim_map"] = {local: mapping.get(local, local) for local in LOCAL_CLAIMS}
    overwrite = [claim for claim in (overwrite_claims if overwrite_claims is not None else ["name"])]
    for claim in overwrite:
        if claim not in OVERWRITABLE:
            raise UpstreamSettingsError(f"Only {', '.join(OVERWRITABLE)} can be overwritten by the upstream,"
                                        f" not {claim!r}.", "overwrite_claims")
    values["overwrite_claims"] = sorted(set(overwrite))
    values["secret"] = secret
    return values


def parse_claim_map(lines) -> dict:
    """``local=upstream`` pairs (one a line, or a list) as a claim mapping; UpstreamSettingsError."""
    if isinstance(lines, str):
        lines = lines.splitlines()
    mapping = {}
    for line in lines:
        line = line.strip()
        if not line:
            continue
        if "=" not in line:
            raise UpstreamSettingsError(f"Write each claim mapping as local=upstream, not {line[:40]!r}.",
                                        "claim_map")
        local, source = (part.strip() for part in line.split("=", 1))
        mapping[local] = source
    return mapping


def save_upstream(values: dict, upstream: Upstream | None = None) -> Upstream:
    """Create (or update) the upstream from ``upstream_settings``'s values; the caller commits."""
    values = dict(values)
    secret = values.pop("secret")
    if upstream is None:
        upstream = Upstream()
        db.session.add(upstream)
    forget_metadata(upstream)
    for column, value in values.items():
        setattr(upstream, column, value)
    forget_metadata(upstream)
    if secret:
        set_client_secret(upstream, secret)
    return upstream


#: Where upstreams send people back (views/upstream.py serves these paths).
CALLBACK_PATH = "/login/with/{name}/callback"
SIGNED_OUT_PATH = "/logout/upstream"


def server_url(path: str) -> str:
    """``path`` on this server: on OAUTH2_ISSUER's host when set (what apps and upstreams see),
    else on the host this request came to; the bare path outside a request (the CLI)."""
    issuer = current_app.config.get("OAUTH2_ISSUER")
    if issuer:
        return issuer.rstrip("/") + path
    if has_request_context():
        return request.url_root.rstrip("/") + path
    return path


def redirect_uri(upstream_name: str) -> str:
    """The redirect URI to register at the upstream."""
    return server_url(CALLBACK_PATH.format(name=upstream_name))


# --- The round trip -------------------------------------------------------------------------

def forget_metadata(upstream: Upstream) -> None:
    """Drop the upstream's cached discovery document and JWKS (its settings changed)."""
    if upstream.issuer:
        from website.services.upstream_client import forget_document

        forget_document(upstream.issuer.rstrip("/") + "/.well-known/openid-configuration")


def oauth_client(upstream: Upstream) -> "FlaskOAuth2App":
    """Authlib's Flask OAuth 2.0 client for this upstream, made from the row (its state kept
    in the database through ``StateCache``, bound to this browser's session)."""
    from website.services.upstream_client import client_for

    try:
        secret = client_secret(upstream)
    except UnsealError:
        raise UpstreamFailure("client_secret_unreadable",
                              f"{upstream.display_name} is not set up correctly here (its client secret cannot be"
                              " decrypted). Tell an administrator.", 503)
    return client_for(upstream, secret, current_app.config["UPSTREAM_TIMEOUT"], STATE_LIFETIME)


class _Failures:
    """Turn what can go wrong talking to an upstream into an UpstreamFailure."""

    def __init__(self, upstream: Upstream):
        self.upstream = upstream

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback):
        if error is None or isinstance(error, UpstreamFailure):
            return False
        import requests  # loaded with Authlib's client by oauth_client, so already here

        name = self.upstream.display_name
        if isinstance(error, requests.Timeout):
            raise UpstreamFailure("timeout", f"{name} did not answer within"
                                  f" {current_app.config['UPSTREAM_TIMEOUT']} seconds. It may be down or slow;"
                                  " try again later.", 504) from error
        if isinstance(error, requests.ConnectionError):
            raise UpstreamFailure("unreachable", f"{name} could not be reached. It may be down; try again later.",
                                  502) from error
        if isinstance(error, JoseError):
            raise UpstreamFailure("bad_id_token", f"{name} sent an ID token that does not check out"
                                  f" ({_jose_reason(error)}), so it was not trusted.", 502) from error
        if isinstance(error, AuthlibBaseError):
            detail = error.error + (f": {error.description}" if error.description else "")
            raise UpstreamFailure("token_refused", f"{name} refused to complete the sign-in ({detail[:200]}).",
                                  502) from error
        if isinstance(error, (requests.RequestException, ValueError, KeyError, TypeError, AttributeError,
                              RuntimeError)):
            raise UpstreamFailure("bad_response", f"{name} answered in a way that cannot be used"
                                  f" ({type(error).__name__}: {str(error)[:120]}).", 502) from error
        return False


def _jose_reason(error: JoseError) -> str:
    claim = getattr(error, "claim", None)
    if claim:
        return f"its {claim} claim is not right"
    return getattr(error, "description", None) or type(error).__name__


def _metadata(client: "FlaskOAuth2App", upstream: Upstream) -> dict:
    """The upstream's discovery document, its issuer checked (OpenID Connect Discovery §4.3)."""
    metadata = client.load_server_metadata()
    if upstream.kind != OIDC:
        return metadata
    if not isinstance(metadata.get("issuer"), str) or \
            metadata["issuer"].rstrip("/") != upstream.issuer.rstrip("/"):
        raise UpstreamFailure("issuer_mismatch", f"{upstream.display_name}'s discovery document names another"
                              " issuer than the one configured here, so it was not trusted.")
    for endpoint in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        if not isinstance(metadata.get(endpoint), str):
            raise UpstreamFailure("bad_response", f"{upstream.display_name}'s discovery document has no {endpoint}.")
    methods = metadata.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
    if "client_secret_basic" not in methods and "client_secret_post" in methods:
        client.client_kwargs["token_endpoint_auth_method"] = "client_secret_post"
    return metadata


def begin(upstream: Upstream, data: dict, login_hint: str | None = None, acr_values: str | None = None) -> str:
    """Start a sign-in at the upstream: the URL to send the browser to. ``data`` (where to go
    afterwards, why) comes back from ``finish``. Raises UpstreamFailure."""
    client = oauth_client(upstream)
    callback = redirect_uri(upstream.name)
    params = {}
    if login_hint:
        params["login_hint"] = login_hint[:254]
    if acr_values and upstream.kind == OIDC:
        params["acr_values"] = acr_values[:500]
    with _Failures(upstream):
        _metadata(client, upstream)
        authorization = client.create_authorization_url(callback, **params)
    kept = {key: authorization[key] for key in ("code_verifier", "nonce") if key in authorization}
    client.save_authorize_data(state=authorization["state"], redirect_uri=callback, **kept, **data)
    return authorization["url"]


@dataclass
class Assertion:
    """Who the upstream says the person is, mapped to local claims."""

    subject: str
    email: str | None = None
    email_verified: bool = False
    name: str | None = None
    preferred_username: str | None = None
    groups: list = field(default_factory=list)
    acr: str | None = None
    id_token: str | None = None
    data: dict = field(default_factory=dict)


def finish(upstream: Upstream, args) -> Assertion:
    """Complete the sign-in from the upstream's callback (``args``: its query): the state taken
    once, the code exchanged with the PKCE verifier, the id_token verified (issuer, audience,
    signature by the upstream's JWKS, nonce, expiry), the claims mapped. Raises UpstreamFailure."""
    client = oauth_client(upstream)
    state = args.get("state")
    data = client.framework.get_state_data(session, state) if state else None
    if state:
        client.framework.clear_state_data(session, state)
    if data is None:
        raise UpstreamFailure("state_mismatch", "This sign-in is not one this browser started, or it was already"
                              " used or took too long. Start again from the log-in page.", 400)
    try:
        return _complete(client, upstream, args, data)
    except UpstreamFailure as failure:
        failure.next_url = data.get("next")  # the way back keeps the app's request
        raise


def _complete(client: "FlaskOAuth2App", upstream: Upstream, args, data: dict) -> Assertion:
    """The rest of ``finish`` once the state is known to be this browser's."""
    if error := args.get("error"):
        description = args.get("error_description") or ""
        raise UpstreamFailure("upstream_error", f"{upstream.display_name} did not sign you in ({error[:80]}"
                              + (f": {description[:200]}" if description else "") + ").", 400)
    code = args.get("code")
    if not code:
        raise UpstreamFailure("bad_response", f"{upstream.display_name} came back without a code.", 400)
    with _Failures(upstream):
        metadata = _metadata(client, upstream)
        token = client.fetch_access_token(redirect_uri=data["redirect_uri"], code=code,
                                          code_verifier=data.get("code_verifier"))
        if upstream.kind == OIDC:
            if "id_token" not in token:
                raise UpstreamFailure("bad_id_token", f"{upstream.display_name} sent no ID token.")
            # Authlib's parse_id_token checks aud only through azp (a token for another client
            # that names us as azp would pass): both iss and aud are required here (OIDC Core
            # §3.1.3.7 steps 2 and 3).
            options = {"iss": {"essential": True, "values": [metadata["issuer"]]},
                       "aud": {"essential": True, "values": [upstream.client_id]}}
            claims = dict(client.parse_id_token(token, nonce=data["nonce"], claims_options=options))
            if metadata.get("userinfo_endpoint") and token.get("access_token"):
                info = client.userinfo(token=token)
                # OpenID Connect Core §5.3.4: UserInfo about another subject is not used.
                if info.get("sub") != claims["sub"]:
                    raise UpstreamFailure("bad_response", f"{upstream.display_name}'s UserInfo names someone else.")
                for key, value in info.items():
                    claims.setdefault(key, value)
        else:
            response = client.get(upstream.userinfo_url, token=token, headers={"Accept": "application/json"})
            response.raise_for_status()
            claims = response.json()
            if not isinstance(claims, dict):
                raise ValueError("the userinfo answer is not a JSON object")
            if upstream.emails_url:
                claims.update(_verified_email(client, upstream, token, claims))
    assertion = map_claims(upstream, claims)
    assertion.id_token = token.get("id_token")
    assertion.data = data
    return assertion


def _verified_email(client: "FlaskOAuth2App", upstream: Upstream, token: dict, claims: dict) -> dict:
    """GitHub's verified-emails API: the primary address, verified or not, as email claims."""
    response = client.get(upstream.emails_url, token=token, headers={"Accept": "application/json"})
    response.raise_for_status()
    emails = [e for e in response.json() if isinstance(e, dict) and isinstance(e.get("email"), str)]
    chosen = next((e for e in emails if e.get("primary")), None) or next(iter(emails), None)
    if chosen is None:
        return {}
    source = upstream.claim_map.get("email", "email")
    verified = upstream.claim_map.get("email_verified", "email_verified")
    return {source: chosen["email"], verified: chosen.get("verified") is True}


def _claim(claims: dict, path: str):
    """A claim by name, or by a dotted path into nested objects (Keycloak's realm_access.roles)."""
    if path in claims:
        return claims[path]
    value = claims
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def map_claims(upstream: Upstream, claims: dict) -> Assertion:
    """The upstream's claims through the upstream's claim mapping."""
    mapping = upstream.claim_map or {}

    def text(local: str, limit: int) -> str | None:
        value = _claim(claims, mapping.get(local, local))
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            return None
        value = str(value).strip()
        return value[:limit] if value and "\x00" not in value else None

    subject = text("sub", 256)
    if not subject or len(subject) > 255:
        raise UpstreamFailure("no_subject", f"{upstream.display_name} did not say who you are (no subject).")
    email = text("email", 255)
    if email and (len(email) > 254 or "@" not in email or any(c.isspace() for c in email)):
        email = None
    verified = _claim(claims, mapping.get("email_verified", "email_verified"))
    groups = _claim(claims, mapping.get("groups", "groups"))
    if isinstance(groups, str):
        groups = [groups]
    groups = [str(g)[:100] for g in groups if isinstance(g, (str, int))][:50] if isinstance(groups, list) else []
    acr = claims.get("acr") if isinstance(claims.get("acr"), str) else None
    return Assertion(subject=subject, email=email, email_verified=bool(email) and verified in (True, "true"),
                     name=text("name", 100), preferred_username=text("preferred_username", 40),
                     groups=groups, acr=acr)


#: The prefix of the state-table key of a log-out at an upstream under way.
_LOGOUT_KEY = "logout:"


def start_upstream_logout(signed_in_with: dict | None, continue_to: str | None = None,
                          client_id: str | None = None) -> str | None:
    """After the local log-out of a session that signed in through an upstream: the URL that
    ends the session at the upstream too (RP-Initiated Logout with the upstream's id_token as
    id_token_hint), when that upstream is set to and advertises an end_session_endpoint; else
    None (also when it cannot be reached now: the local log-out has happened anyway).

    The upstream sends the browser back to SIGNED_OUT_PATH with a one-use ``state`` kept
    here, and ``finish_upstream_logout`` tells where the log-out was going: ``continue_to``
    (an address the caller already checked), else the signed-out page (for ``client_id``)."""
    if not signed_in_with or not isinstance(signed_in_with.get("upstream"), str):
        return None
    upstream = find_upstream(signed_in_with["upstream"])
    if upstream is None or upstream.kind != OIDC or not upstream.end_upstream_session:
        return None
    state = generate_token(32)
    try:
        client = oauth_client(upstream)
        with _Failures(upstream):
            endpoint = _metadata(client, upstream).get("end_session_endpoint")
            if not isinstance(endpoint, str):
                return None
            _check_url(endpoint, "The end_session_endpoint", "issuer")
            url = client.create_logout_url(post_logout_redirect_uri=server_url(SIGNED_OUT_PATH), state=state,
                                           id_token_hint=signed_in_with.get("id_token"),
                                           client_id=upstream.client_id)["url"]
    except (UpstreamFailure, UpstreamSettingsError) as failure:
        audit.record("upstream_logout_failed", upstream=upstream.name,
                     reason=getattr(failure, "reason", "bad_end_session_endpoint"))
        db.session.commit()
        return None
    audit.record("upstream_logout_started", upstream=upstream.name)
    StateCache().set(_LOGOUT_KEY + state, json.dumps({"continue": continue_to, "client_id": client_id}),
                     STATE_LIFETIME)  # commits the audit entry with it
    return url


def finish_upstream_logout(state: str | None) -> dict | None:
    """The upstream sent the browser back after ending its session: where the log-out was
    going (``continue``: a URL or None, ``client_id``), taken once; None for a state that is
    not one of ours, was used, or expired."""
    if not isinstance(state, str) or not state or len(state) > 200:
        return None
    value = StateCache().get(_LOGOUT_KEY + state)
    return json.loads(value) if value else None


# --- What the answer means here -------------------------------------------------------------

@dataclass
class Outcome:
    """What to do after an upstream vouched for someone: ``user`` to sign in, or a ``link``
    waiting for the local password, or a ``refusal`` to show."""

    user: User | None = None
    link: User | None = None
    refusal: str | None = None
    created: bool = False


def resolve(upstream: Upstream, assertion: Assertion, signed_in: User | None) -> Outcome:
    """Which local account the upstream identity is, by (upstream, subject) only.

    A known identity signs in to its account. From the account page (``intent=link``) the
    signed-in person links it to their own account. Otherwise a verified upstream email that
    matches an account with a verified email proposes a link, which the person confirms with
    that account's password or one of its passkeys; any other address match is refused with a page (no second
    account beside it, no link on an unverified address); with no match, an account is made
    when the sign-up policy allows. The caller commits."""
    identity = find_identity(upstream, assertion.subject)
    intent = assertion.data.get("intent")
    if intent == "link":
        if signed_in is None or signed_in.id != assertion.data.get("user_id"):
            return Outcome(refusal="You were signed out while linking; sign in and try again.")
        if identity is not None and identity.user_id != signed_in.id:
            audit.record("upstream_link_refused", user=signed_in, upstream=upstream.name,
                         reason="linked to another account")
            return Outcome(refusal=f"That {upstream.display_name} account is already linked to another account"
                           " here. Unlink it there first.")
        if identity is None:
            link_identity(signed_in, upstream, assertion.subject, assertion.email, assertion.groups)
            sync_groups(signed_in, upstream, [], assertion.groups)
            audit.record("upstream_linked", user=signed_in, upstream=upstream.name, subject=assertion.subject,
                         proof="signed in")
        else:
            refresh_identity(identity, assertion)
        return Outcome(user=signed_in)
    if identity is not None:
        if identity.user.disabled_at is not None:
            audit.record("upstream_login_refused", user=identity.user, upstream=upstream.name,
                         subject=assertion.subject, reason="account disabled")
            return Outcome(refusal="This account is disabled. Ask an administrator if you think it should not be.")
        refresh_identity(identity, assertion)
        return Outcome(user=identity.user)
    matches = users_with_email(assertion.email) if assertion.email else []
    if matches:
        candidates = [u for u in matches if u.email_verified]
        if (assertion.email_verified and len(candidates) == 1 and can_prove(candidates[0])
                and candidates[0].disabled_at is None):
            return Outcome(link=candidates[0])
        audit.record("upstream_login_refused", upstream=upstream.name, subject=assertion.subject,
                     reason="email of an existing account, not linkable",
                     upstream_email_verified=assertion.email_verified)
        return Outcome(refusal=(
            f"An account here already uses the address {assertion.email}, and it cannot be linked to your"
            f" {upstream.display_name} account automatically"
            + ("" if assertion.email_verified else f" ({upstream.display_name} does not say the address is verified)")
            + f". Log in with your password, then link {upstream.display_name} on your account page."))
    refusal = signup_refusal(assertion.email if assertion.email_verified else None)
    if refusal is not None:
        audit.record("upstream_login_refused", upstream=upstream.name, subject=assertion.subject,
                     reason="sign-up policy", policy=current_app.config["SIGNUP_POLICY"])
        return Outcome(refusal=refusal)
    user = User(username=_free_username(assertion), email=assertion.email, name=assertion.name,
                email_verified=assertion.email_verified, password_hash=NO_PASSWORD)
    db.session.add(user)
    db.session.flush()
    link_identity(user, upstream, assertion.subject, assertion.email, assertion.groups)
    sync_groups(user, upstream, [], assertion.groups)
    audit.record("user_created", user=user, via="upstream", upstream=upstream.name)
    audit.record("upstream_linked", user=user, upstream=upstream.name, subject=assertion.subject, proof="new account")
    return Outcome(user=user, created=True)


def can_passkey_prove(user: User) -> bool:
    """Whether one of the account's passkeys can prove it on the link page (it has one, and
    passkeys work on this site)."""
    return has_passkey(user) and passkeys_unavailable() is None


def can_prove(user: User) -> bool:
    """Whether the person can prove the account before an upstream identity links to it."""
    return has_password(user) or can_passkey_prove(user)


def sync_groups(user: User, upstream: Upstream, previous: list, current: list) -> None:
    """With groups among the upstream's overwritable claims: add the person to the groups here
    that the upstream now names, and take them out of those it named before and no longer
    does. Groups are never created from upstream claims, and memberships an administrator
    gave stay unless the upstream itself had named that group."""
    if "groups" not in (upstream.overwrite_claims or []):
        return
    added = [name for name in current if (group := find_group(name)) is not None and add_member(group, user)]
    removed = [name for name in set(previous) - set(current)
               if (group := find_group(name)) is not None and remove_member(group, user)]
    if added or removed:
        audit.record("upstream_groups_synced", user=user, upstream=upstream.name, added=added, removed=sorted(removed))


def refresh_identity(identity: UpstreamIdentity, assertion: Assertion) -> None:
    """Note this sign-in, and overwrite the local claims the upstream is allowed to."""
    sync_groups(identity.user, identity.upstream, identity.groups or [], assertion.groups)
    identity.email = assertion.email
    identity.groups = assertion.groups
    identity.last_used_at = utcnow()
    allowed = identity.upstream.overwrite_claims or []
    user = identity.user
    if "name" in allowed and assertion.name:
        user.name = assertion.name
    # An address is taken over only when the upstream vouches for it.
    if "email" in allowed and assertion.email and assertion.email_verified and assertion.email != user.email:
        user.email = assertion.email
        user.email_verified = True


def confirm_link(pending: dict, upstream: Upstream, user: User, proof: str) -> UpstreamIdentity:
    """Link the pending identity after the person proved the local account (``proof``:
    "password" or "passkey", audited); the caller commits."""
    identity = link_identity(user, upstream, pending["subject"], pending.get("email"), pending.get("groups") or [])
    sync_groups(user, upstream, [], pending.get("groups") or [])
    audit.record("upstream_linked", user=user, upstream=upstream.name, subject=pending["subject"],
                 proof=proof)
    return identity


def link_pending(pending: dict, user: User, proof: str) -> dict | None:
    """Link the identity of ``pending`` (``pending_link``) to ``user``, who proved the account
    the way its sign-in asks (the password and then any second factor, or a passkey): the
    federation to sign in with (``log_in``), or None, and nothing linked, when that identity
    was linked meanwhile or its upstream is gone. The caller commits."""
    upstream = find_upstream(pending.get("upstream"))
    if (pending.get("user_id") != user.id or upstream is None
            or find_identity(upstream, pending["subject"]) is not None):
        return None
    confirm_link(pending, upstream, user, proof)
    return {"upstream": upstream.name, "acr": pending.get("acr"), "id_token": pending.get("id_token")}


def can_unlink(user: User) -> bool:
    """Whether one identity may be unlinked: not when it is the last way to sign in."""
    return has_password(user) or count_identities(user) > 1


def _free_username(assertion: Assertion) -> str:
    """A username for a new account: the upstream's preferred_username, the email's local part
    or the name, made valid and unique."""
    for source in (assertion.preferred_username, (assertion.email or "").split("@")[0], assertion.name, "user"):
        base = re.sub(r"[^A-Za-z0-9._-]+", "", (source or "").replace(" ", "."))[:32].strip("._-")
        if len(base) >= 3 and not username_problem(base):
            break
    else:
        base = "user"
    candidate = base
    for number in range(2, 1000):
        if find_user(candidate) is None:
            return candidate
        candidate = f"{base}{number}"
    return f"{base[:20]}-{assertion.subject[:8]}".lower()


def pending_link(assertion: Assertion, upstream: Upstream, user: User) -> dict:
    """What the link page needs, kept in the session until the account is proved."""
    return {"upstream": upstream.name, "subject": assertion.subject, "email": assertion.email,
            "groups": assertion.groups, "user_id": user.id, "next": assertion.data.get("next"),
            "id_token": assertion.id_token, "acr": assertion.acr, "expires": now() + LINK_LIFETIME}

