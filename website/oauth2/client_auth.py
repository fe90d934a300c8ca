"""Client authentication at the token, revocation and introspection endpoints: which
methods each accepts, the client read once with its throttle lock, and lockouts after
failed attempts (per client and per address)."""

from authlib.oauth2.rfc6749 import authenticate_client as methods
from authlib.oauth2.rfc6749.errors import InvalidClientError, InvalidRequestError
from authlib.oauth2.rfc6749.util import extract_basic_authorization

from website.http.cors import check_client_origin
from website.store import throttle
from website.store.clients import query_client, query_client_and_lock

#: The client authentication methods every token-endpoint grant accepts.
CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]


class LockedOutClientError(InvalidClientError):
    """The client (or its address) is locked after failed client authentications."""

    def __init__(self, wait: int):
        super().__init__(status_code=401, description=throttle.wait_message(wait))
        self.wait = wait

    def get_headers(self):
        return super().get_headers() + [("Retry-After", str(self.wait))]


def authenticating_client_id(request) -> str:
    """The client_id a request authenticates as, found before any secret is checked, so the
    throttle counts the client actually being authenticated.

    RFC 6749 §2.3: a client MUST NOT use more than one authentication method in a request.
    HTTP Basic, a ``client_secret`` in the body and a ``client_assertion`` are methods; a body
    ``client_id`` next to HTTP Basic is allowed only when it names the same client. Anything
    else is 400 ``invalid_request``: Authlib would try each method in turn, so Basic
    credentials of one client and the body secret of another authenticated the second while
    the first was counted.
    """
    data = request.payload.data
    authorization = (request.headers.get("Authorization") or "").split(None, 1)
    basic = bool(authorization) and authorization[0].lower() == "basic"
    methods = [basic, bool(data.get("client_secret")),
               bool(data.get("client_assertion") or data.get("client_assertion_type"))]
    if sum(methods) > 1:
        raise InvalidRequestError("Use only one client authentication method in a request.")
    body_client_id = data.get("client_id") or ""
    if basic:
        try:
            basic_client_id = extract_basic_authorization(request.headers)[0] or ""
        except ValueError:  # malformed Basic credentials: Authlib's parser raises
            basic_client_id = ""
        if body_client_id and body_client_id != basic_client_id:
            raise InvalidRequestError("The 'client_id' in the body is not the client of the Authorization header.")
        return basic_client_id
    return body_client_id


def read_client_with_lock(request) -> int:
    """Read the claimed client and its lockout in one query; keep the client on the request
    for the authentication methods below. Returns the seconds to wait (0: go ahead)."""
    client_id = authenticating_client_id(request)  # one method only, or invalid_request
    request.throttle_subjects = (("client", client_id[:200]), ("client_address", throttle.client_address()))
    request.claimed_client, wait = query_client_and_lock(client_id, request.throttle_subjects)
    return wait


def check_origin(request) -> None:
    """Refuse a browser request from an origin the claimed client does not allow, before the
    client is authenticated and so before the grant runs: the browser would not show the
    answer to the script, so the request must not spend the code (or revoke the token).

    An unknown client is left to fail client authentication; a request without an Origin
    (a server-side client) is not affected.
    """
    client = getattr(request, "claimed_client", None)
    if client is not None and not check_client_origin(client.allowed_origins):
        raise InvalidRequestError("The request's Origin is not an allowed web origin of this client: "
                                  "register it with the client (allowed_origins).")


def record_failure(request) -> int:
    """Count a failed client authentication; return the lockout it caused, in seconds."""
    return throttle.record_failure(*request.throttle_subjects)


def _reading_claimed_client(request):
    """A query_client for Authlib's methods that answers from the client read with its lock."""
    claimed = getattr(request, "claimed_client", None)

    def lookup(client_id):
        if claimed is not None and claimed.client_id == client_id:
            return claimed
        return query_client(client_id)

    return lookup


def authenticate_client_secret_basic(_query_client, request):
    """HTTP Basic (RFC 6749 §2.3.1); a malformed header fails like a wrong secret."""
    try:
        return methods.authenticate_client_secret_basic(_reading_claimed_client(request), request)
    except ValueError:
        # Authlib 1.6-1.9: its parser raises on "Basic " with nothing after it or non-UTF-8 credentials.
        return None


def authenticate_client_secret_post(_query_client, request):
    """client_id and client_secret in the body (RFC 6749 §2.3.1)."""
    return methods.authenticate_client_secret_post(_reading_claimed_client(request), request)


def authenticate_none(_query_client, request):
    """A public client: its client_id and no secret."""
    return methods.authenticate_none(_reading_claimed_client(request), request)


def register(server) -> None:
    """Use these methods at every client-authenticating endpoint of the server."""
    server.register_client_auth_method("client_secret_basic", authenticate_client_secret_basic)
    server.register_client_auth_method("client_secret_post", authenticate_client_secret_post)
    server.register_client_auth_method("none", authenticate_none)
