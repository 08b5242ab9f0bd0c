"""Istio's validating webhook rules, for the kinds and fields this project writes.

A real cluster runs these checks in istiod's ``validation.istio.io`` webhook (HTTP 400 on failure),
after the CRD schema and CEL rules. The project uses them twice, from this one place:
- before any write, on the object it is about to send, so a bad fault never leaves the runner;
- in the local Kubernetes API double, as its admission webhook.

Only rules for fields the project reads or writes are here (faults, routes, destinations,
retries, timeouts, DestinationRule traffic policy); the CRD schemas in an Istio release cover the
rest of the shape.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

from chaosmesh_py.errors import InvalidInput
from chaosmesh_py.istio.fault import (
    GRPC_CODES,
    MAX_HTTP_STATUS,
    MAX_PERCENTAGE,
    MIN_HTTP_STATUS,
    MIN_PERCENTAGE,
    parse_duration_ms,
)

WEBHOOK_NAME = "validation.istio.io"

RETRY_ON_POLICIES = frozenset(
    {
        "5xx",
        "gateway-error",
        "reset",
        "reset-before-request",
        "connect-failure",
        "retriable-4xx",
        "refused-stream",
        "retriable-status-codes",
        "retriable-headers",
        "envoy-ratelimited",
        "http3-post-connect-failure",
        "cancelled",
        "deadline-exceeded",
        "internal",
        "resource-exhausted",
        "unavailable",
    }
)

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def admission_errors(kind: str, obj: dict[str, Any]) -> list[str]:
    """Every reason Istio's webhook would deny ``obj``; an empty list admits it."""
    validator = _VALIDATORS.get(kind)
    if validator is None:
        return []
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return ["spec: must be an object"]
    return list(validator(spec))


def denial_message(errors: list[str]) -> str:
    """The message a cluster's API server relays when the webhook denies a request."""
    return (
        f'admission webhook "{WEBHOOK_NAME}" denied the request: '
        f"configuration is invalid: {'; '.join(errors)}"
    )


def _virtual_service(spec: dict[str, Any]) -> Iterator[str]:
    hosts = spec.get("hosts")
    if not hosts:
        yield "hosts: a virtual service must have at least one host"
    routes = spec.get("http") or []
    if not isinstance(routes, list):
        yield "http: must be a list of routes"
        return
    for index, route in enumerate(routes):
        if isinstance(route, dict):
            yield from _http_route(route, f"http[{index}]")
        else:
            yield f"http[{index}]: must be an object"


def _http_route(route: dict[str, Any], path: str) -> Iterator[str]:
    has_route = bool(route.get("route"))
    has_redirect = "redirect" in route
    has_direct = "directResponse" in route
    if not (has_route or has_redirect or has_direct or "delegate" in route):
        yield f"{path}: needs route, redirect or directResponse"
    if "fault" in route:
        if has_redirect or has_direct:
            yield f"{path}.fault: cannot be combined with redirect or directResponse"
        yield from _fault(route["fault"], f"{path}.fault")
    if "timeout" in route:
        yield from _duration(route["timeout"], f"{path}.timeout")
    if "retries" in route:
        yield from _retries(route["retries"], f"{path}.retries")
    destinations = route.get("route") or []
    for index, destination in enumerate(destinations):
        yield from _destination(destination, f"{path}.route[{index}]")
    weights = [d.get("weight", 0) for d in destinations]
    if len(destinations) > 1 and sum(w for w in weights if _within(w, 0, float("inf"))) == 0:
        yield f"{path}.route: weights of several destinations must not total 0"


def _fault(fault: dict[str, Any], path: str) -> Iterator[str]:
    if not fault.get("abort") and not fault.get("delay"):
        yield f"{path}: must have an abort and/or a delay"
    abort = fault.get("abort")
    if abort:
        yield from _percentage(abort.get("percentage"), f"{path}.abort.percentage.value")
        if "http2Error" in abort:
            yield f"{path}.abort.http2Error: not supported"
        status = abort.get("httpStatus")
        if status is not None and not _within(status, MIN_HTTP_STATUS, MAX_HTTP_STATUS):
            bounds = f"{MIN_HTTP_STATUS}-{MAX_HTTP_STATUS}"
            yield f"{path}.abort.httpStatus: {status} is outside {bounds}"
        grpc = abort.get("grpcStatus")
        if grpc is not None and grpc not in GRPC_CODES:
            yield f"{path}.abort.grpcStatus: {grpc!r} is not a gRPC status code name"
    delay = fault.get("delay")
    if delay:
        yield from _percentage(delay.get("percentage"), f"{path}.delay.percentage.value")
        if "exponentialDelay" in delay:
            yield f"{path}.delay.exponentialDelay: not supported"
        if "fixedDelay" in delay:
            yield from _duration(delay["fixedDelay"], f"{path}.delay.fixedDelay")
        elif "exponentialDelay" not in delay:
            yield f"{path}.delay.fixedDelay: required"
        percent = delay.get("percent")
        if percent is not None and not _within(percent, 0, 100):
            yield f"{path}.delay.percent: {percent} is outside 0-100"


def _percentage(percentage: Any, path: str) -> Iterator[str]:
    if percentage is None:
        return  # legal, if useless: Istio injects nothing without a percentage
    value = percentage.get("value", 0) if isinstance(percentage, dict) else percentage
    if value != 0 and not _within(value, MIN_PERCENTAGE, MAX_PERCENTAGE):
        yield f"{path}: {value} is outside [{MIN_PERCENTAGE}, {MAX_PERCENTAGE:g}]"


def _within(value: Any, low: float, high: float) -> bool:
    """A JSON number (not a boolean, not a string) in [low, high]."""
    return isinstance(value, int | float) and not isinstance(value, bool) and low <= value <= high


def _duration(value: Any, path: str) -> Iterator[str]:
    try:
        parse_duration_ms(value, path)
    except InvalidInput as error:
        yield str(error)


def _retries(retries: dict[str, Any], path: str) -> Iterator[str]:
    attempts = retries.get("attempts", 0)
    if not _within(attempts, 0, float("inf")):
        yield f"{path}.attempts: must be an integer >= 0"
    if attempts == 0:
        for field in ("perTryTimeout", "retryOn", "retryRemoteLocalities"):
            if field in retries:
                yield f"{path}.{field}: must not be set when attempts is 0"
    if "perTryTimeout" in retries:
        yield from _duration(retries["perTryTimeout"], f"{path}.perTryTimeout")
    if "backoff" in retries:
        yield from _duration(retries["backoff"], f"{path}.backoff")
    for token in str(retries.get("retryOn", "")).split(","):
        policy = token.strip()
        if policy and not policy.isdigit() and policy not in RETRY_ON_POLICIES:
            yield f"{path}.retryOn: {policy!r} is not a retry policy or an HTTP status"


def _destination(destination: dict[str, Any], path: str) -> Iterator[str]:
    target = destination.get("destination") or {}
    if not target.get("host"):
        yield f"{path}.destination.host: required"
    subset = target.get("subset")
    if subset is not None and not _DNS1123_LABEL.match(subset):
        yield f"{path}.destination.subset: {subset!r} is not a DNS-1123 label"
    port = (target.get("port") or {}).get("number")
    if port is not None and not _within(port, 1, 65535):
        yield f"{path}.destination.port.number: {port} is outside 1-65535"
    weight = destination.get("weight")
    if weight is not None and not _within(weight, 0, float("inf")):
        yield f"{path}.weight: must be an integer >= 0"


def _destination_rule(spec: dict[str, Any]) -> Iterator[str]:
    if not spec.get("host"):
        yield "host: required"
    yield from _traffic_policy(spec.get("trafficPolicy"), "trafficPolicy")
    names: set[str] = set()
    for index, subset in enumerate(spec.get("subsets") or []):
        path = f"subsets[{index}]"
        name = subset.get("name", "")
        if not _DNS1123_LABEL.match(name):
            yield f"{path}.name: {name!r} is not a DNS-1123 label"
        if name in names:
            yield f"{path}.name: duplicate subset {name!r}"
        names.add(name)
        yield from _traffic_policy(subset.get("trafficPolicy"), f"{path}.trafficPolicy")


def _traffic_policy(policy: dict[str, Any] | None, path: str) -> Iterator[str]:
    if not policy:
        return
    outlier = policy.get("outlierDetection") or {}
    for field in ("interval", "baseEjectionTime"):
        if field in outlier:
            yield from _duration(outlier[field], f"{path}.outlierDetection.{field}")
    percent = outlier.get("maxEjectionPercent")
    if percent is not None and not _within(percent, 0, 100):
        yield f"{path}.outlierDetection.maxEjectionPercent: {percent} is outside 0-100"
    pool = policy.get("connectionPool") or {}
    for section, fields in (
        ("tcp", ("maxConnections",)),
        ("http", ("http1MaxPendingRequests", "http2MaxRequests", "maxRequestsPerConnection")),
    ):
        for field in fields:
            value = (pool.get(section) or {}).get(field)
            if value is not None and not _within(value, 0, float("inf")):
                yield f"{path}.connectionPool.{section}.{field}: must be >= 0"
    if "tcp" in pool and "connectTimeout" in pool["tcp"]:
        yield from _duration(
            pool["tcp"]["connectTimeout"], f"{path}.connectionPool.tcp.connectTimeout"
        )


_VALIDATORS: dict[str, Callable[[dict[str, Any]], Iterator[str]]] = {
    "VirtualService": _virtual_service,
    "DestinationRule": _destination_rule,
}
