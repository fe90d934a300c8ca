"""Authlib's Flask OAuth 2.0 client for an upstream, and this process's cache of upstream
discovery documents.

``services.upstreams`` imports this module when a sign-in goes upstream, not with itself:
Authlib's client imports requests (5 MiB resident), which a serving worker that never sends
anyone upstream need not carry.
"""

import copy
import time

from authlib.integrations.flask_client import FlaskIntegration, FlaskOAuth2App
from flask import current_app

from website.models.upstreams import OIDC, Upstream
from website.store.upstreams import StateCache

#: The most discovery documents one process keeps (a new one beyond it empties the cache).
_METADATA_KEPT = 100


def _metadata_cache() -> dict:
    """This app's cache of upstream discovery documents (each with the JWKS once read):
    discovery URL -> (when it was read, time.monotonic(); the document)."""
    return current_app.extensions.setdefault("upstream_metadata", {})


def forget_document(url: str) -> None:
    """Drop the discovery document (and its JWKS) read from ``url``."""
    _metadata_cache().pop(url, None)


class _CachingClient(FlaskOAuth2App):
    """Authlib's client, reading the discovery document and the JWKS from the process's cache
    while they are younger than UPSTREAM_METADATA_CACHE seconds, so a sign-in does not fetch
    them again. Authlib reads the JWKS again once when an id_token names a key it does not
    have (the upstream rotated its keys); the new set replaces the cached one."""

    def load_server_metadata(self):
        url = self._server_metadata_url
        if not url or "_loaded_at" in self.server_metadata:
            return self.server_metadata
        lifetime = current_app.config["UPSTREAM_METADATA_CACHE"]
        cached = _metadata_cache().get(url)
        if cached is not None and time.monotonic() - cached[0] < lifetime:
            self.server_metadata.update(copy.deepcopy(cached[1]))
            return self.server_metadata
        metadata = super().load_server_metadata()
        self._keep(time.monotonic())
        return metadata

    def fetch_jwk_set(self, force=False):
        before = self.server_metadata.get("jwks")
        jwk_set = super().fetch_jwk_set(force=force)
        if jwk_set is not before:
            cached = _metadata_cache().get(self._server_metadata_url)
            self._keep(cached[0] if cached else time.monotonic())
        return jwk_set

    def _keep(self, read_at: float) -> None:
        if not self._server_metadata_url or current_app.config["UPSTREAM_METADATA_CACHE"] <= 0:
            return
        cache = _metadata_cache()
        if len(cache) >= _METADATA_KEPT and self._server_metadata_url not in cache:
            cache.clear()
        cache[self._server_metadata_url] = (read_at, copy.deepcopy(dict(self.server_metadata)))


def client_for(upstream: Upstream, secret: str | None, timeout: float, state_lifetime: int) -> FlaskOAuth2App:
    """The client for this upstream's row and decrypted secret: its state is kept in the
    database through ``StateCache`` for ``state_lifetime`` seconds, bound to this browser's
    session; each call upstream waits at most ``timeout`` seconds."""
    client_kwargs = {"scope": upstream.scope, "code_challenge_method": "S256", "default_timeout": timeout}
    name = f"upstream-{upstream.id}"
    framework = FlaskIntegration(name, StateCache())
    framework.expires_in = state_lifetime
    if upstream.kind == OIDC:
        return _CachingClient(framework, name, client_id=upstream.client_id, client_secret=secret,
                              server_metadata_url=upstream.issuer.rstrip("/") + "/.well-known/openid-configuration",
                              client_kwargs=client_kwargs)
    return FlaskOAuth2App(framework, name, client_id=upstream.client_id, client_secret=secret,
                          authorize_url=upstream.authorize_url, access_token_url=upstream.token_url,
                          client_kwargs=client_kwargs)
