"""What a load run is asked to do (``LoadSpec``, validated) and what it saw (``LoadResult``)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from chaosmesh_py.errors import InvalidInput

MAX_REQUESTS = 1_000_000
MAX_DURATION_S = 3600.0
MAX_TIMEOUT_S = 300.0
MAX_CONCURRENCY = 1000
MAX_RATE_PER_S = 100_000.0
ERROR = "error"  # the status recorded for connection errors and timeouts

_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")
# RFC 9110 token characters: what a header name may be made of.
_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


@dataclass(frozen=True)
class LoadSpec:
    """What to send, how hard and for how long. Invalid values raise ``InvalidInput``.

    Stops after ``requests`` or ``duration_s``, whichever comes first (at least one is needed).
    ``rate_per_s`` sends at a fixed rate (open loop); without it ``concurrency`` connections
    send back to back (closed loop). ``timeout_s`` bounds each request, connecting included.
    """

    url: str
    method: str = "GET"
    headers: Mapping[str, str] = field(default_factory=dict)
    requests: int | None = None
    duration_s: float | None = None
    rate_per_s: float | None = None
    concurrency: int = 10
    timeout_s: float = 10.0
    error_if_status_at_least: int = 500

    def __post_init__(self) -> None:
        parse_url(self.url)
        if not isinstance(self.method, str) or self.method.upper() not in _METHODS:
            raise InvalidInput(
                "method", f"{self.method!r} is not supported", "use one of " + ", ".join(_METHODS)
            )
        _check_headers(self.headers)
        # A private copy: the spec is frozen, the caller's mapping is not.
        object.__setattr__(self, "headers", dict(self.headers))
        object.__setattr__(self, "method", self.method.upper())
        if self.requests is None and self.duration_s is None:
            raise InvalidInput(
                "requests", "neither requests nor duration_s is given", "give either or both"
            )
        if self.requests is not None:
            _check_number("requests", self.requests, 1, MAX_REQUESTS, integer=True)
        if self.duration_s is not None:
            _check_number("duration_s", self.duration_s, 0, MAX_DURATION_S, exclusive_low=True)
        if self.rate_per_s is not None:
            _check_number("rate_per_s", self.rate_per_s, 0, MAX_RATE_PER_S, exclusive_low=True)
        _check_number("concurrency", self.concurrency, 1, MAX_CONCURRENCY, integer=True)
        _check_number("timeout_s", self.timeout_s, 0, MAX_TIMEOUT_S, exclusive_low=True)
        _check_number(
            "error_if_status_at_least", self.error_if_status_at_least, 100, 600, integer=True
        )


def _check_number(
    name: str,
    value: object,
    low: float,
    high: float,
    *,
    integer: bool = False,
    exclusive_low: bool = False,
) -> None:
    kinds = (int,) if integer else (int, float)
    # bool is an int to Python, never a count or a duration to a user.
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise InvalidInput(name, f"{value!r} is not {'an integer' if integer else 'a number'}")
    if not math.isfinite(value) or value > high or value < low or (exclusive_low and value == low):
        bracket = "(" if exclusive_low else "["
        raise InvalidInput(name, f"{value} is outside {bracket}{low:g}, {high:g}]")


def _check_headers(headers: object) -> None:
    if not isinstance(headers, Mapping):
        raise InvalidInput("headers", f"{headers!r} is not a mapping", 'e.g. {"end-user": "jason"}')
    for name, value in headers.items():
        if not isinstance(name, str) or not name or not set(name) <= _TOKEN:
            raise InvalidInput("headers", f"{name!r} is not a header name")
        if name.lower() in ("content-length", "transfer-encoding", "connection"):
            raise InvalidInput("headers", f"{name} is set by the load probe itself")
        # CR or LF in a value would let it write headers (or a request) of its own.
        if not isinstance(value, str) or "\r" in value or "\n" in value:
            raise InvalidInput("headers", f"the value of {name} must be a string on one line")


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    tls: bool
    host_header: str
    path: str


def parse_url(url: object) -> Target:
    if not isinstance(url, str):
        raise InvalidInput("url", f"{url!r} is not a string")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise InvalidInput("url", f"{url!r} is not a URL: {error}") from error
    if parts.scheme not in ("http", "https"):
        raise InvalidInput(
            "url", f"{url!r} is not an http or https URL", "e.g. http://host:8000/get"
        )
    if not parts.hostname:
        raise InvalidInput("url", f"{url!r} has no host")
    if parts.username is not None:
        raise InvalidInput("url", "credentials in the URL", "send an Authorization header")
    if any(ord(c) <= 32 or ord(c) == 127 for c in url):
        raise InvalidInput("url", f"{url!r} contains spaces or control characters")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    tls = parts.scheme == "https"
    return Target(
        parts.hostname, port or (443 if tls else 80), tls, parts.netloc.rpartition("@")[2], path
    )


@dataclass(frozen=True)
class LoadResult:
    """What a load run saw. ``statuses`` counts answers by status code, and ``"error"``."""

    requests: int
    errors: int
    error_ratio: float
    statuses: dict[str, int]
    latency_ms: dict[str, float]
    duration_s: float
    throughput_per_s: float

    def to_json(self) -> dict[str, Any]:
        """The probe's return value: plain JSON, flat enough for a ``range`` tolerance."""
        return {
            "requests": self.requests,
            "errors": self.errors,
            "error_ratio": self.error_ratio,
            "statuses": dict(self.statuses),
            "latency_ms": dict(self.latency_ms),
            "duration_s": self.duration_s,
            "throughput_per_s": self.throughput_per_s,
        }


def slo_met(
    result: LoadResult,
    max_error_ratio: float | None = None,
    max_p50_ms: float | None = None,
    max_p90_ms: float | None = None,
    max_p99_ms: float | None = None,
) -> bool:
    """True when every threshold given holds (limits are inclusive) and a request was made."""
    if result.requests == 0:
        return False
    checks = (
        (max_error_ratio, result.error_ratio),
        (max_p50_ms, result.latency_ms["p50"]),
        (max_p90_ms, result.latency_ms["p90"]),
        (max_p99_ms, result.latency_ms["p99"]),
    )
    return all(limit is None or value <= limit for limit, value in checks)
