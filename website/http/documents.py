"""Public documents (discovery, JWKS): the same bytes for every caller, built once (the
callers cache the serialized text: per issuer, per set of published keys), answered with a
strong ETag, ``304 Not Modified`` on a matching ``If-None-Match`` and ``Cache-Control: public``.
A key rotation (here or on another instance, seen by the key ring) changes the text and so
the ETag."""

import hashlib

from flask import Response, request
from werkzeug.http import parse_etags

#: Serialized text -> (its bytes, its ETag's opaque tag, unquoted). Keyed by the text the caller keeps (a dict hit on
#: the same string object costs a pointer comparison); bounded, as issuers and key sets are few.
_ENTITIES: dict[str, tuple[bytes, str]] = {}
_MOST_ENTITIES = 64


def _entity(text: str) -> tuple[bytes, str]:
    entity = _ENTITIES.get(text)
    if entity is None:
        body = text.encode()
        entity = (body, hashlib.sha256(body).hexdigest()[:32])
        if len(_ENTITIES) >= _MOST_ENTITIES:
            _ENTITIES.clear()
        _ENTITIES[text] = entity
    return entity


def document_response(text: str, max_age: int) -> Response:
    """The JSON document ``text``: 200 with its bytes, or 304 when the client has them."""
    body, etag = _entity(text)
    headers = {"ETag": f'"{etag}"', "Cache-Control": f"public, max-age={max_age}"}
    if_none_match = request.headers.get("If-None-Match")
    # RFC 9110 §13.1.2: If-None-Match uses the weak comparison; only GET and HEAD get a 304.
    if if_none_match and request.method in ("GET", "HEAD") and parse_etags(if_none_match).contains_weak(etag):
        return Response(status=304, headers=headers)
    return Response(body, mimetype="application/json", headers=headers)
