"""Workarounds of Authlib behaviours, each tagged with the Authlib version it was
written against; delete one when Authlib no longer needs it."""

from collections import defaultdict
from urllib.parse import urlsplit

from authlib.common.urls import add_params_to_uri
from authlib.integrations.flask_oauth2.requests import FlaskOAuth2Request
from authlib.oauth2.rfc6749 import OAuth2Payload
from authlib.oauth2.rfc6749.authenticate_client import (
    authenticate_client_secret_basic as _authenticate_client_secret_basic,
)
from authlib.oauth2.rfc9207 import IssuerParameter as _IssuerParameter
from flask import request as flask_request
from werkzeug.datastructures import MultiDict

from website.oauth2.keys import get_issuer


def authenticate_client_secret_basic(query_client, request):
    """HTTP Basic client authentication; a malformed header fails like a wrong secret."""
    try:
        return _authenticate_client_secret_basic(query_client, request)
    except ValueError:
        # Authlib's parser raises on "Basic " with nothing after it or non-UTF-8 credentials.
        return None


def json_body_parameters(request) -> MultiDict | None:
    """A JSON request body as parameters: an object of string values, else None."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not all(isinstance(v, str) for v in body.values()):
        return None
    return MultiDict(body)


def has_json_body() -> bool:
    return flask_request.method == "POST" and flask_request.is_json


class JsonBodyPayload(OAuth2Payload):
    def __init__(self, data: MultiDict):
        self._data = data

    @property
    def data(self):
        return self._data

    @property
    def datalist(self):
        return defaultdict(list, {key: self._data.getlist(key) for key in self._data})


class JsonBodyRequest(FlaskOAuth2Request):
    """A request whose parameters come in a JSON body instead of a form."""

    def __init__(self, request, data: MultiDict):
        super().__init__(request)
        self.payload = JsonBodyPayload(data)

    @property
    def form(self):
        return self.payload.data


class IssuerParameter(_IssuerParameter):
    """RFC 9207: ``iss`` in every authorization response, in the fragment when the response
    uses one (Authlib's default always adds it to the query)."""

    def get_issuer(self) -> str:
        return get_issuer()

    def add_issuer_parameter(self, authorization_server, response):
        location = response.location
        if location:
            fragment = bool(urlsplit(location).fragment)
            response.location = add_params_to_uri(location, {"iss": self.get_issuer()}, fragment=fragment)


issuer_parameter = IssuerParameter()
