"""The fault catalog: typed Istio faults, validated the way Istio's webhook validates them.

A fault is built from the plain JSON an experiment gives (``parse_*``), checked strictly (a
string ``"50"`` is not a percentage, ``"5"`` is not a duration), and turned into the
VirtualService ``HTTPFaultInjection`` fragment Istio expects (``to_istio``).

Istio facts encoded here (see the project's notes on Istio):
- a fault without ``percentage`` is never injected, so percentage is required;
- ``percentage.value`` is a double in [0.0001, 100] (0 is legal to Istio but injects nothing, so
  we refuse it as input);
- ``httpStatus`` 200-600 is Istio's bound, but Envoy refuses 600 (its range is [200, 600)) and
  rejects the whole route configuration: what we write is 200-599; ``grpcStatus`` one of the
  gRPC code names;
- ``fixedDelay`` at least 1 ms, whole milliseconds.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chaosmesh_py.errors import InvalidInput, shown

MIN_PERCENTAGE = 0.0001
MAX_PERCENTAGE = 100.0
MIN_HTTP_STATUS = 200
# Istio's webhook bound (a resource others wrote may hold it)...
MAX_HTTP_STATUS = 600
# ...and what we write: Envoy's FaultAbort.http_status is below 600.
MAX_WRITTEN_HTTP_STATUS = 599

GRPC_CODES = (
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
)

# Go's time.ParseDuration units, which Kubernetes CEL duration() and Istio both accept.
_UNIT_NS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "ms": 1_000_000,
    "s": 10**9,
    "m": 60 * 10**9,
    "h": 3600 * 10**9,
}
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
# Go's time.Duration is an int64 of nanoseconds: Istio cannot hold anything longer.
_MAX_DURATION_NS = 2**63 - 1


def parse_duration_ms(value: object, field: str) -> int:
    """Parse a Go-style duration ("7s", "200ms", "1m30s") into whole milliseconds (at least 1)."""
    example = 'write a number and a unit (ms, s, m, h) without spaces, e.g. "7s" or "200ms"'
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(field, f"must be a duration string, got {shown(value)}", example)
    text = value.strip()
    if text.startswith("-"):
        raise InvalidInput(field, f"{shown(value)} is negative", "a delay is at least 1ms")
    total_ns = 0.0
    position = 0
    for match in _DURATION.finditer(text):
        if match.start() != position:
            break
        total_ns += float(match.group(1)) * _UNIT_NS[match.group(2)]
        position = match.end()
    if position != len(text) or position == 0:
        raise InvalidInput(field, f"{shown(value)} is not a duration", example)
    if total_ns < 1_000_000:
        raise InvalidInput(field, f"{shown(value)} is shorter than 1ms", "Istio's minimum is 1ms")
    if total_ns > _MAX_DURATION_NS:
        raise InvalidInput(
            field,
            f"{shown(value)} is longer than Istio can hold (about 292 years)",
            'write e.g. "7s" or "2m"',
        )
    if total_ns % 1_000_000:
        raise InvalidInput(
            field,
            f"{shown(value)} is not a whole number of milliseconds",
            "Istio's precision is 1ms",
        )
    return int(total_ns // 1_000_000)


def format_duration_ms(milliseconds: int) -> str:
    """The shortest exact Go-style spelling: 7000 → "7s", 250 → "250ms"."""
    if milliseconds % 1000 == 0:
        return f"{milliseconds // 1000}s"
    return f"{milliseconds}ms"


def parse_percentage(value: object, field: str = "percentage") -> float:
    """A traffic percentage: a JSON number in [0.0001, 100]."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(
            field,
            f"must be a number, got {type(value).__name__} {shown(value)}",
            "write e.g. 50 or 0.5 (a percentage of requests, without quotes)",
        )
    if isinstance(value, float) and math.isnan(value):
        raise InvalidInput(field, "NaN is not a number", "write e.g. 50 or 0.5")
    if not MIN_PERCENTAGE <= value <= MAX_PERCENTAGE:
        raise InvalidInput(
            field,
            f"{shown(value)} is outside [{MIN_PERCENTAGE}, {MAX_PERCENTAGE:g}]",
            "Istio injects nothing at 0% and cannot exceed 100%",
        )
    return float(value)


def parse_http_status(value: object, field: str = "http_status") -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        fix = "e.g. 503"
        if isinstance(value, str) and value.strip().isdigit():
            fix = f"write it without quotes: {value.strip()}"
        raise InvalidInput(field, f"must be an integer HTTP status, got {shown(value)}", fix)
    if not MIN_HTTP_STATUS <= value <= MAX_WRITTEN_HTTP_STATUS:
        raise InvalidInput(
            field,
            f"{shown(value)} is outside {MIN_HTTP_STATUS}-{MAX_WRITTEN_HTTP_STATUS}, the range "
            "Envoy injects (Istio lets 600 through, and Envoy then rejects the route)",
            "use an error status such as 500 or 503",
        )
    return value


def parse_grpc_status(value: object, field: str = "grpc_status") -> str:
    if isinstance(value, str) and value in GRPC_CODES:
        return value
    fix = f"use one of {', '.join(GRPC_CODES)}"
    if isinstance(value, str) and value.strip().upper() in GRPC_CODES:
        fix = f"write it in capitals: {value.strip().upper()!r}"
    elif isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(GRPC_CODES):
        fix = f"use the code's name, {GRPC_CODES[value]!r} for {value}"
    raise InvalidInput(field, f"{shown(value)} is not a gRPC status code name", fix)


@dataclass(frozen=True)
class Delay:
    """Istio ``fault.delay``: hold matching requests for ``fixed_delay_ms`` before forwarding."""

    fixed_delay_ms: int
    percentage: float

    kind = "delay"

    def to_istio(self) -> dict[str, Any]:
        return {
            "delay": {
                "fixedDelay": format_duration_ms(self.fixed_delay_ms),
                "percentage": {"value": self.percentage},
            }
        }

    def describe(self) -> str:
        return f"delay {format_duration_ms(self.fixed_delay_ms)} at {self.percentage:g}%"


@dataclass(frozen=True)
class Abort:
    """Istio ``fault.abort``: answer matching requests with an HTTP or gRPC error at once."""

    percentage: float
    http_status: int | None = None
    grpc_status: str | None = None

    kind = "abort"

    def to_istio(self) -> dict[str, Any]:
        abort: dict[str, Any] = {"percentage": {"value": self.percentage}}
        if self.http_status is not None:
            abort["httpStatus"] = self.http_status
        else:
            abort["grpcStatus"] = self.grpc_status
        return {"abort": abort}

    def describe(self) -> str:
        status = self.http_status if self.http_status is not None else self.grpc_status
        return f"abort {status} at {self.percentage:g}%"


Fault = Delay | Abort


def parse_delay(fixed_delay: object, percentage: object) -> Delay:
    return Delay(
        fixed_delay_ms=parse_duration_ms(fixed_delay, "fixed_delay"),
        percentage=parse_percentage(percentage),
    )


def parse_abort(
    percentage: object, http_status: object = None, grpc_status: object = None
) -> Abort:
    if (http_status is None) == (grpc_status is None):
        raise InvalidInput(
            "http_status/grpc_status",
            "exactly one of them must be given",
            "e.g. http_status: 503, or grpc_status: UNAVAILABLE",
        )
    if http_status is not None:
        return Abort(
            percentage=parse_percentage(percentage), http_status=parse_http_status(http_status)
        )
    return Abort(
        percentage=parse_percentage(percentage), grpc_status=parse_grpc_status(grpc_status)
    )


def from_istio(fragment: Mapping[str, Any]) -> Fault | None:
    """The fault an Istio ``HTTPFaultInjection`` fragment injects (the abort when it has both,
    since an aborted request is never delayed); None when it injects nothing we model."""
    abort = fragment.get("abort") or {}
    delay = fragment.get("delay") or {}
    percentage = float((abort or delay).get("percentage", {}).get("value", 0))
    if abort:
        return Abort(percentage, abort.get("httpStatus"), abort.get("grpcStatus"))
    if delay.get("fixedDelay"):
        return Delay(parse_duration_ms(delay["fixedDelay"], "fixedDelay"), percentage)
    return None
