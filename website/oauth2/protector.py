"""The ResourceProtectors that guard /api/me and UserInfo: bearer tokens (RFC 6750) and
DPoP-bound tokens with their proofs (RFC 9449 §7)."""

from authlib.consts import default_json_headers
from authlib.integrations.flask_oauth2 import ResourceProtector as _ResourceProtector
from authlib.integrations.flask_oauth2.errors import raise_http_exception
from authlib.oauth2.rfc6749.errors import (
    InvalidRequestError,
    MissingAuthorizationError,
    OAuth2Error,
    UnsupportedTokenTypeError,
)
from authlib.oauth2.rfc6750 import BearerTokenValidator, InsufficientScopeError, InvalidTokenError
from flask import g, json
from flask import request as flask_request

from website.http.endpoints import FORM
from website.models.grants import Token
from website.oauth2 import dpop
from website.oauth2.dpop import InvalidDPoPProofError, UseDPoPNonceError
from website.store.tokens import MAX_TOKEN_LENGTH, read_token_by_access_token


class BearerValidator(BearerTokenValidator):
    """Checks a bearer token by the hash of its value: unknown, expired and revoked tokens fail."""

    def authenticate_token(self, token_string: str) -> Token | None:
        if not token_string or len(token_string) > MAX_TOKEN_LENGTH:
            return None
        # Read-only: a plain record, so every request sees the row as stored now.
        token = read_token_by_access_token(token_string)
        if token is not None and token.audience:
            # A token issued for an API (RFC 8707 / 9068) is for that API only, not for this
            # server's own resources (/api/me, userinfo): no token mix-up.
            return None
        if token is not None and token.user is not None and token.user.disabled_at is not None:
            return None  # the person's account was disabled: their tokens stop at once
        return token

    def validate_token(self, token, scopes, request):
        if token is not None and token.dpop_jkt:
            # RFC 9449 §7.2: a bound token is worthless without its key, so never as Bearer.
            raise InvalidTokenError("This access token is bound to a DPoP key: send it as "
                                    "'Authorization: DPoP' with a DPoP proof.")
        super().validate_token(token, scopes, request)


class DPoPValidator(BearerValidator):
    """``Authorization: DPoP <token>`` with a ``DPoP`` proof (RFC 9449 §7.1): the proof is
    checked for this request and this token (``ath``), and the token must be bound to the
    proof's key."""

    TOKEN_TYPE = "dpop"

    def validate_request(self, request):
        if not dpop.enabled():
            raise UnsupportedTokenTypeError()
        proof = dpop.proof_header(status_code=401)
        if proof is None:
            raise InvalidDPoPProofError("Send a DPoP proof (the DPoP header) with a DPoP access token.",
                                        status_code=401)
        token_string = flask_request.headers.get("Authorization", "").split(None, 1)[-1]
        g.dpop_proof_jkt = dpop.check_proof(proof, access_token=token_string, status_code=401)

    def validate_token(self, token, scopes, request):
        BearerTokenValidator.validate_token(self, token, scopes, request)
        if not token.dpop_jkt or token.dpop_jkt != g.get("dpop_proof_jkt"):
            raise InvalidTokenError("This access token is not bound to the key of the DPoP proof.")


def _uses_dpop_scheme() -> bool:
    scheme = flask_request.headers.get("Authorization", "").split(None, 1)[:1]
    return scheme != [] and scheme[0].lower() == "dpop"


class ResourceProtector(_ResourceProtector):
    """Answers resource requests per RFC 6750 §3, which Authlib leaves loose: no bearer token
    is a 401 with a bare ``Bearer`` challenge (Authlib sends a lower-case scheme and a made-up
    error code), and a 403 for a missing scope names the error in the challenge too.

    Takes the token from the ``Authorization`` header only (RFC 6750 §2.1)."""

    #: What a request without a token is told.
    MISSING_TOKEN = "Send an access token in an 'Authorization: Bearer' header."

    def error_response(self, error) -> tuple[int, dict, list]:
        """The status, JSON body and headers answering ``error`` (also for UserInfo, whose
        errors Authlib's endpoint machinery would otherwise answer its own way)."""
        # With DPoP on, every 401 of a protector that takes DPoP tokens also names the DPoP
        # scheme and its algorithms (RFC 9449 §7.1); one that takes Bearer only does not.
        takes_dpop = dpop.enabled() and DPoPValidator.TOKEN_TYPE in self._token_validators
        dpop_challenge = [("WWW-Authenticate", dpop.challenge())] if takes_dpop else []
        if isinstance(error, (MissingAuthorizationError, UnsupportedTokenTypeError)):
            # RFC 6750 §3.1: no credentials at all, so no error code in the challenge.
            body = {"error": "invalid_token", "error_description": self.MISSING_TOKEN}
            return 401, body, [*default_json_headers, ("WWW-Authenticate", "Bearer"), *dpop_challenge]
        if isinstance(error, (InvalidDPoPProofError, UseDPoPNonceError)) or (takes_dpop and _uses_dpop_scheme()):
            # A DPoP request is answered in its own scheme; use_dpop_nonce adds DPoP-Nonce.
            headers = [*(h for h in error.get_headers() if h[0] != "WWW-Authenticate"),
                       ("WWW-Authenticate", dpop.challenge(error))]
            return error.status_code, dict(error.get_body()), headers
        if isinstance(error, (InsufficientScopeError, InvalidRequestError)):
            challenge = f'Bearer error="{error.error}", error_description="{error.description}"'
            headers = [*default_json_headers, ("WWW-Authenticate", challenge)]
            return error.status_code, dict(error.get_body()), headers
        extra = dpop_challenge if error.status_code == 401 else []
        return error.status_code, dict(error.get_body()), [*error.get_headers(), *extra]

    def raise_error_response(self, error):
        status, body, headers = self.error_response(error)
        raise_http_exception(status, json.dumps(body), headers)

    def accepted_bearer(self, token_string: str, scopes: list[str]):
        """The token, when a request with ``Authorization: Bearer token_string`` passes this
        protector for ``scopes`` as ``acquire_token`` would check it; else None. For the
        front's answers below Flask (http/front.py): the same validator, so the same rules."""
        validator = self.get_token_validator(BearerValidator.TOKEN_TYPE)
        token = validator.authenticate_token(token_string)
        try:
            validator.validate_token(token, scopes, None)
        except OAuth2Error:
            return None
        return token


class HeaderOrBodyProtector(ResourceProtector):
    """UserInfo's protector: the token in the ``Authorization`` header (RFC 6750 §2.1) or, on
    a form POST, in the ``access_token`` body parameter (§2.2, what pyoidc sends by default).

    A token in the query string (§2.3) is refused rather than ignored: URLs end up in logs
    and browser history, and ignoring it would answer a confusing "no token". A request that
    sends the token two ways is malformed (§3.1 invalid_request)."""

    MISSING_TOKEN = ("Send an access token in an 'Authorization: Bearer' header, "
                     "or as 'access_token' in a form-encoded POST body.")

    def parse_request_authorization(self, request):
        if "access_token" in flask_request.args:
            raise InvalidRequestError("Send the access token in the Authorization header or a POST body, "
                                      "not in the URL.")
        form = flask_request.form if flask_request.method == "POST" and flask_request.mimetype == FORM else {}
        if "access_token" not in form:
            return super().parse_request_authorization(request)
        if request.headers.get("Authorization"):
            raise InvalidRequestError("Send the access token one way: the Authorization header or the body.")
        return self.get_token_validator(BearerValidator.TOKEN_TYPE), form["access_token"]


#: Protects resource endpoints such as /api/me; its validator holds no per-app state.
require_oauth = ResourceProtector()


require_oauth.register_token_validator(BearerValidator())
require_oauth.register_token_validator(DPoPValidator())


#: Protects UserInfo (OpenID Connect Core §5.3.1: GET and POST, header or body).
userinfo_protector = HeaderOrBodyProtector()


userinfo_protector.register_token_validator(BearerValidator())
userinfo_protector.register_token_validator(DPoPValidator())
