"""All Authlib wiring: the AuthorizationServer, its grants and hooks, revocation and the
ResourceProtector. Everything here implements hooks Authlib leaves to the application."""

from authlib.oauth2.rfc6749.errors import InvalidRequestError
from authlib.oauth2.rfc6749.util import extract_basic_authorization


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
