"""The input guard: malformed protocol requests get a spec-shaped 400 before Authlib
reads them."""

import base64
import binascii
from urllib.parse import unquote_to_bytes

from flask import abort, current_app, render_template, request
from flask.json.provider import DefaultJSONProvider
from werkzeug.routing import IntegerConverter

from website.http.endpoints import FORM, JSON, ProtocolEndpoint, is_enabled, spec_for
from website.http.errors import ProtocolInputError, json_error, printable

#: Parameters whose syntax is ASCII VSCHAR (%x20-7E) per RFC 6749 Appendix A, RFC 7636 §4 and
#: RFC 7009 §2.1. Refusing anything else up front also keeps Authlib from building an error
#: description it must reject (it raises ValueError on characters RFC 6749 §5.2 forbids).
VSCHAR_PARAMETERS = {
    "client_id", "client_secret", "response_type", "scope", "state", "redirect_uri", "grant_type",
    "code", "refresh_token", "code_verifier", "code_challenge", "code_challenge_method", "token",
    "token_type_hint", "response_mode",
}


class DatabaseIntegerConverter(IntegerConverter):
    """``<int:...>`` in a URL, limited to what an INTEGER column holds: a larger id is a 404
    (no such row) instead of an out-of-range error from PostgreSQL (a 500)."""

    def __init__(self, map, fixed_digits=0, min=None, max=2**31 - 1, signed=False):
        super().__init__(map, fixed_digits=fixed_digits, min=min, max=max, signed=signed)


def _is_vschar(value: str) -> bool:
    return all(0x20 <= ord(c) <= 0x7E for c in value)


def _check_utf8(raw: bytes, where: str) -> None:
    # Plain ASCII without escapes is valid as it stands (nearly every client's request).
    if raw.isascii() and b"%" not in raw:
        return
    # One decode of the whole string answers for every name and value: "&" and "=" are ASCII,
    # which never occurs inside a valid multi-byte sequence, so the whole is valid UTF-8
    # exactly when each part between them is.
    try:
        unquote_to_bytes(raw.replace(b"+", b" ")).decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolInputError(f"The {where} is not valid UTF-8.")


def _check_basic_auth() -> None:
    header = request.headers.get("Authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() != "basic":
        return
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        decoded = None
    if decoded is None or ":" not in decoded:
        raise ProtocolInputError(
            "Malformed HTTP Basic credentials: send base64 of 'client_id:client_secret' in UTF-8.",
            error="invalid_client", status_code=401,
        )


def check_protocol_request(spec: ProtocolEndpoint) -> None:
    """Refuse malformed input before Authlib reads it; raise ProtocolInputError."""
    limit = current_app.config["OAUTH2_MAX_PARAMETER_LENGTH"]
    _check_utf8(request.query_string, "query string")
    has_body = request.method in ("POST", "PUT", "PATCH") and (request.content_length or request.mimetype)
    if has_body:
        if request.mimetype not in spec.content_types:
            accepted = " or ".join(spec.content_types) or "no body"
            raise ProtocolInputError(f"The request body must be {accepted}, not {printable(request.mimetype) or 'untyped'}.",
                                     error=spec.body_error)
        if request.mimetype == FORM:
            _check_utf8(request.get_data(cache=True), "request body")
        elif request.mimetype == JSON:
            body = request.get_json(silent=True)
            if not isinstance(body, dict):
                raise ProtocolInputError("The request body must be a JSON object.", error=spec.body_error)
    if spec.client_auth:
        _check_basic_auth()
    seen = set()
    for source in (request.args, request.form if has_body and request.mimetype == FORM else {}):
        for key in source:
            values = source.getlist(key)
            if key in seen or len(values) > 1:
                raise ProtocolInputError(f"The parameter '{printable(key[:40])}' was sent more than once.")
            seen.add(key)
            if len(key) > limit or any(len(value) > limit for value in values):
                raise ProtocolInputError(f"The parameter '{printable(key[:40])}' is too long (limit {limit} characters).")
            if key in VSCHAR_PARAMETERS and any(not _is_vschar(value) for value in values):
                raise ProtocolInputError(
                    f"The parameter '{key}' may contain only printable ASCII characters (RFC 6749 Appendix A).")


class JSONProvider(DefaultJSONProvider):
    """Flask's JSON, with a body nested deeper than the decoder goes refused as malformed
    (a ValueError, so ``get_json`` answers 400 or, silent, None) instead of a RecursionError
    that would be a 500 on every route (``refuse_nul`` reads every JSON body)."""

    def loads(self, s, **kwargs):
        try:
            return super().loads(s, **kwargs)
        except RecursionError:
            raise ValueError("The JSON is nested too deeply.") from None


def _holds_nul(value, depth: int = 0) -> bool:
    """Tell whether a parsed JSON value has a NUL in any string, key or value."""
    if isinstance(value, str):
        return "\x00" in value
    if depth > 20:  # deeper than any request we take: stop looking, the endpoint refuses it
        return False
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v, depth + 1) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds_nul(v, depth + 1) for v in value)
    return False


def _nul_in_request() -> str | None:
    """Where the request holds a NUL character (path, query or body), or None."""
    if "\x00" in request.path:
        return "path"
    # A NUL in any query name or value is "%00" or a raw NUL byte in the raw query string,
    # and either always decodes to one: one scan of the bytes answers for every parameter.
    query = request.query_string
    if b"%00" in query or b"\x00" in query:
        return "query string"
    mimetype = request.mimetype
    if mimetype in (FORM, "multipart/form-data"):
        if mimetype == FORM:
            # Keep the raw bytes for check_protocol_request's UTF-8 check: parsed from the cache.
            request.get_data(cache=True)
        if any("\x00" in key or any("\x00" in value for value in values)
               for key, values in request.form.lists()):
            return "request body"
    elif mimetype == JSON and _holds_nul(request.get_json(silent=True)):
        return "request body"
    return None


def refuse_nul():
    """Answer 400 to a request with a NUL character, on every route, before any view runs."""
    where = _nul_in_request()
    if where is None:
        return None
    error = ProtocolInputError(f"The {where} contains a NUL character, which is never valid.")
    spec = spec_for(request.endpoint)
    if spec is not None and spec.json:
        # In the body, the endpoint's own code (RFC 7591 §3.2.2 has invalid_client_metadata).
        code = spec.body_error if where == "request body" else error.error
        return json_error(code, error.description, 400)
    if spec is not None:
        return render_template("oauth/error.html", error=error), 400
    return render_template("error.html", title="Bad Request", message=error.description), 400


def guard_protocol_request():
    """Before every request: refuse malformed input to a protocol endpoint (see ``check_protocol_request``)."""
    spec = spec_for(request.endpoint)
    if spec is None:
        return None
    if not is_enabled(spec):
        abort(404)  # a feature turned off is not there at all
    try:
        check_protocol_request(spec)
    except ProtocolInputError as error:
        if spec.json:
            headers = {"WWW-Authenticate": 'Basic realm="token"'} if error.status_code == 401 else None
            return json_error(error.error, error.description, error.status_code, headers)
        return render_template("oauth/error.html", error=error), error.status_code
    return None
