"""The local istiod's JWKS fetching (``pilot/pkg/model/jwks_resolver.go``, fetch mode ``istiod``).

A RequestAuthentication's ``jwksUri`` is fetched by the control plane, not by the proxies, and
the keys are inlined into each proxy's ``jwt_authn`` filter. As istiod: a short timeout, the
result cached by URI and fetched again periodically (``refresh``, which says whether any key
set changed so the mesh translates again), a body that is not a JWKS (a JSON object with a
``keys`` list) counted as a failure, and a failed fetch leaves the URI without keys, which
``request_authentication`` turns into the key nobody holds: every token refused (fail closed).

Unlike istiod, a failed URI is tried again on the next translation after
``RETRY_FAILED_AFTER_S`` (istiod: its refresh job, every minute on failure), so a test or an
experiment that makes a JWKS reachable again sees it in seconds.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass

log = logging.getLogger(__name__)

FETCH_TIMEOUT_S = 2.0
REFRESH_INTERVAL_S = 30.0
RETRY_FAILED_AFTER_S = 2.0
MAX_JWKS_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Fetched:
    jwks: str | None  # None: the fetch failed
    at_s: float  # time.monotonic() of the fetch


class JwksResolver:
    """Fetch and cache JWKS by URI; thread-safe (the control loop and the refresher use it)."""

    def __init__(self, timeout_s: float = FETCH_TIMEOUT_S) -> None:
        self.timeout_s = timeout_s
        self._cache: dict[str, Fetched] = {}
        self._lock = threading.Lock()

    def resolve(self, uris: Iterable[str]) -> dict[str, str | None]:
        """Each URI's JWKS (None: unreachable or not a JWKS), fetching the ones not cached and
        the failed ones again after ``RETRY_FAILED_AFTER_S``."""
        now = time.monotonic()
        result: dict[str, str | None] = {}
        for uri in uris:
            with self._lock:
                cached = self._cache.get(uri)
            if cached is None or (cached.jwks is None and now - cached.at_s > RETRY_FAILED_AFTER_S):
                cached = self._fetch(uri)
            result[uri] = cached.jwks
        return result

    def refresh(self) -> bool:
        """Fetch every cached URI again; True when a key set changed (translate again)."""
        with self._lock:
            known = dict(self._cache)
        changed = False
        for uri, before in known.items():
            changed |= self._fetch(uri).jwks != before.jwks
        return changed

    def _fetch(self, uri: str) -> Fetched:
        jwks = fetch_jwks(uri, self.timeout_s)
        fetched = Fetched(jwks, time.monotonic())
        with self._lock:
            self._cache[uri] = fetched
        return fetched


def fetch_jwks(uri: str, timeout_s: float) -> str | None:
    """The JWKS at ``uri`` as served, or None (unreachable, an error status, not a JWKS)."""
    try:
        with urllib.request.urlopen(uri, timeout=timeout_s) as response:
            body: str = response.read(MAX_JWKS_BYTES).decode()
    except (OSError, ValueError, urllib.error.URLError) as error:
        log.warning(f"JWKS fetch failed for {uri}: {error}; every token for it is refused")
        return None
    if not is_jwks(body):
        log.warning(f"{uri} did not serve a JWKS; every token for it is refused")
        return None
    return body


def is_jwks(text: str) -> bool:
    """istiod's ``validateJWKSFormat``: a JSON object with a ``keys`` list."""
    try:
        document = json.loads(text)
    except ValueError:
        return False
    return isinstance(document, dict) and isinstance(document.get("keys"), list)
