"""Security headers on every response, and the session cookie's rules."""


from flask import current_app, g, has_request_context, request
from flask.sessions import SecureCookieSessionInterface

from website.http.endpoints import current_endpoint, is_json_endpoint, reads_no_session

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' https:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


class SessionInterface(SecureCookieSessionInterface):
    """The signed-cookie session, with the Secure flag whenever the site is served over https.

    Flask builds a new serializer for every request;
    this one is built once per secret key (and fallbacks), and an empty session that nothing
    changed costs no cookie work at all, as clients of protocol endpoints send no cookie; a
    request without a Cookie header opens its empty session without any.
    """

    def __init__(self):
        self._serializer = (None, None)

    def get_signing_serializer(self, app):
        keys = (app.secret_key, tuple(app.config["SECRET_KEY_FALLBACKS"] or ()))
        cached_keys, serializer = self._serializer
        if cached_keys != keys:
            serializer = super().get_signing_serializer(app)
            self._serializer = (keys, serializer)
        return serializer

    def open_session(self, app, request):
        # No cookie at all (every protocol client): the empty session, without building the
        # serializer or parsing cookies.
        if "HTTP_COOKIE" not in request.environ and app.secret_key:
            return self.session_class()
        return super().open_session(app, request)

    def save_session(self, app, session, response) -> None:
        if not session.modified and reads_no_session():
            # A JSON protocol endpoint never reads the cookie: no refreshed cookie, no Vary.
            return
        if not session and not session.modified:
            # What Flask's save_session does for it, without computing the cookie settings.
            if session.accessed:
                response.vary.add("Cookie")
            return
        super().save_session(app, session, response)

    def get_cookie_secure(self, app) -> bool:
        # An explicit SESSION_COOKIE_SECURE (True or False) wins; None means automatic.
        if app.config["SESSION_COOKIE_SECURE"] is not None:
            return bool(app.config["SESSION_COOKIE_SECURE"])
        issuer = app.config.get("OAUTH2_ISSUER") or ""
        return issuer.startswith("https://") or (has_request_context() and request.is_secure)


def allow_frames(origins) -> None:
    """Let the page this request renders frame exactly these origins (CSP ``frame-src``; the
    default policy frames nothing from other sites): the signed-out page's front-channel
    logout iframes."""
    g.csp_frame_origins = list(origins)


def _content_security_policy() -> str:
    policy = current_app.config["CONTENT_SECURITY_POLICY"]
    if origins := g.get("csp_frame_origins"):
        policy += "; frame-src " + " ".join(origins)
    return policy


def set_security_headers(response):
    """After every request: the security headers, and no-store on protocol responses and pages."""
    headers = response.headers
    # One pass over the response's headers instead of one per setdefault (each lower-cases
    # every header name); this hook runs on every response.
    present = {name.lower() for name in headers.keys()}  # noqa: SIM118 - iterating Headers gives pairs
    req = request._get_current_object()
    # No URL of ours ever reaches another site as a referrer (authorization requests carry
    # state and PKCE challenges; redirects carry codes). Pages say "same-origin" rather than
    # "no-referrer" because their forms need a same-origin Referer: Flask-WTF's CSRF check
    # over https requires one, and browsers send "Origin: null" under no-referrer.
    is_page = response.mimetype == "text/html" and response.status_code < 300
    defaults = [
        ("Content-Security-Policy", _content_security_policy()),
        ("X-Frame-Options", "DENY"),
        ("Referrer-Policy", "same-origin" if is_page else "no-referrer"),
        ("X-Content-Type-Options", "nosniff"),
        ("Cross-Origin-Opener-Policy", "same-origin"),
    ]
    if req.is_secure:
        defaults.append(("Strict-Transport-Security", "max-age=31536000"))
    for name, value in defaults:
        if name.lower() not in present:
            headers.add(name, value)
    if is_json_endpoint(current_endpoint()):
        if "cache-control" in present:
            headers["Cache-Control"] = headers.get("Cache-Control") or "no-store"
        else:
            headers.add("Cache-Control", "no-store")
        if "no-store" in headers["Cache-Control"] and "pragma" not in present:
            headers.add("Pragma", "no-cache")
    elif req.endpoint != "static" and response.mimetype == "text/html" and "cache-control" not in present:
        # Pages can show secrets (a new client secret) and personal data.
        headers.add("Cache-Control", "no-store")
    return response
