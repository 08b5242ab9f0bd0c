"""Istio's validating webhook rules, for the fields this project writes, before it writes them.

A cluster runs these checks in istiod's ``validation.istio.io`` webhook (HTTP 400), after the CRD
schema and CEL rules; Envoy then refuses what it cannot load. Both only answer after the write,
so every object the project is about to send is checked here first, with a message naming the
field. The rules are Istio's (``pkg/config/validation`` at istio/istio 86c9f01, written in our
words), made stricter where Envoy is (see ``istio.grammar``), for:

- VirtualService HTTP routes: the route's action (route / redirect / directResponse / delegate)
  and its conflicts with a fault, every match entry (StringMatches, header names, port, source
  labels and namespace, JWT-claim keys only at gateways), the fault, the destinations and their
  weights, the timeout and the retries;
- DestinationRule: host, subsets, and the traffic policy's connection pool and outlier detection;
- PeerAuthentication, AuthorizationPolicy, RequestAuthentication: their rules live in
  ``istio.security_validation`` (with the argument checks of the security changes).

Out of scope, because the project never writes them: redirect, rewrite, mirror(s), corsPolicy,
directResponse and header manipulation contents, gateways and hosts of the VirtualService, TCP
and TLS routes, and the rest of a DestinationRule. The local Kubernetes API validates all of it
with its own port of Istio's webhook; ``tests/data/istio_virtualservice_cases.json`` holds
Istio's cases that both implementations are run against.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from chaosmesh_py.errors import InvalidInput, shown
from chaosmesh_py.istio import grammar, security_validation
from chaosmesh_py.istio.fault import (
    GRPC_CODES,
    MAX_HTTP_STATUS,
    MAX_PERCENTAGE,
    MIN_HTTP_STATUS,
    MIN_PERCENTAGE,
    parse_duration_ms,
)

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
# A retryOn item may be an HTTP status that has a name (Go's http.StatusText; Python knows the
# same list), written as Go's strconv.Atoi reads it.
_KNOWN_STATUSES = frozenset(status.value for status in HTTPStatus)
_ATOI = re.compile(r"[+-]?[0-9]+")
_MAX_PORT = 65535
_STRING_MATCH_KINDS = ("exact", "prefix", "regex")
_MATCH_STRINGS = ("uri", "scheme", "method", "authority")


def admission_errors(kind: str, obj: dict[str, Any]) -> list[str]:
    """Every reason Istio (or its Envoy) would refuse ``obj``; an empty list admits it."""
    validator = _VALIDATORS.get(kind)
    if validator is None:
        return []
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return ["spec: must be an object"]
    return list(validator(spec))


# -- VirtualService --------------------------------------------------------------------------


def _virtual_service(spec: dict[str, Any]) -> Iterator[str]:
    routes = spec.get("http")
    if routes is None:
        return
    if not isinstance(routes, list):
        yield "http: must be a list of routes"
        return
    gateways = spec.get("gateways") or []
    context = _RouteContext(
        delegate=not spec.get("hosts"),
        # Istio routes on JWT claims only where a gateway (not the sidecars) serves the route.
        jwt_claims=bool(gateways) and "mesh" not in gateways,
    )
    for index, route in enumerate(routes):
        path = f"http[{index}]"
        if isinstance(route, dict):
            yield from _http_route(route, path, context)
        else:
            yield f"{path}: must be a route object, got {shown(route)}"


@dataclass(frozen=True)
class _RouteContext:
    """What the VirtualService around a route decides for it."""

    delegate: bool  # the VirtualService has no hosts: it is a delegate, its routes may not delegate
    jwt_claims: bool  # bound to gateways only: JWT-claim header keys are allowed


def _http_route(route: dict[str, Any], path: str, context: _RouteContext) -> Iterator[str]:
    yield from _route_action(route, path, context)
    yield from _matches(route.get("match"), f"{path}.match", context)
    if route.get("fault") is not None:
        yield from _fault(route["fault"], f"{path}.fault")
    if route.get("route") is not None:
        yield from _destinations(route["route"], f"{path}.route")
    if route.get("timeout") is not None:
        yield from _duration(route["timeout"], f"{path}.timeout")
    if route.get("retries") is not None:
        yield from _retries(route["retries"], f"{path}.retries")


def _route_action(route: dict[str, Any], path: str, context: _RouteContext) -> Iterator[str]:
    """What the route does, and the combinations Istio refuses (a fault needs a forward)."""

    def present(field: str) -> bool:
        return route.get(field) is not None

    forwards = bool(route.get("route"))
    if present("delegate"):
        if context.delegate:
            yield f"{path}.delegate: a delegate VirtualService's routes cannot delegate again"
        elif present("redirect") or present("route"):
            yield f"{path}: a route that delegates may not also redirect or have destinations"
        return
    destinations = ["route"] if forwards else []
    if present("redirect"):
        others = [f for f in ("fault", "rewrite", "directResponse") if present(f)] + destinations
        if others:
            yield f"{path}: a redirect cannot be combined with {', '.join(others)}"
    elif present("directResponse"):
        others = [f for f in ("fault", "rewrite") if present(f)] + destinations
        if others:
            yield f"{path}: a directResponse cannot be combined with {', '.join(others)}"
    elif not forwards:
        yield f"{path}: needs route destinations, a redirect or a directResponse"


def _matches(matches: Any, path: str, context: _RouteContext) -> Iterator[str]:
    if matches is None:
        return
    if not isinstance(matches, list):
        yield f"{path}: must be a list of match conditions"
        return
    for index, entry in enumerate(matches):
        if entry is None:
            continue  # Istio skips a null entry
        if isinstance(entry, dict):
            yield from _match(entry, f"{path}[{index}]", context)
        else:
            yield f"{path}[{index}]: must be an object, got {shown(entry)}"


def _match(entry: dict[str, Any], path: str, context: _RouteContext) -> Iterator[str]:
    for field in ("headers", "withoutHeaders"):
        yield from _header_matches(entry.get(field), f"{path}.{field}", context)
    for field in _MATCH_STRINGS:
        if entry.get(field) is not None:
            yield from _string_match(entry[field], f"{path}.{field}", empty_prefix=field == "uri")
    queries, errors = _items(entry.get("queryParams"), f"{path}.queryParams")
    yield from errors
    for name, condition in queries:
        if condition is not None:
            yield from _string_match(condition, f"{path}.queryParams.{name}")
    port = entry.get("port")
    if port not in (None, 0) and not _integer_within(port, 1, _MAX_PORT):
        yield f"{path}.port: {shown(port)} is not a port number (1-{_MAX_PORT})"
    yield from _labels(entry.get("sourceLabels"), f"{path}.sourceLabels")
    namespace = entry.get("sourceNamespace")
    if namespace not in (None, "") and not (
        isinstance(namespace, str) and grammar.is_dns1123_label(namespace)
    ):
        yield f"{path}.sourceNamespace: {shown(namespace)} is not a namespace name"


def _header_matches(headers: Any, path: str, context: _RouteContext) -> Iterator[str]:
    items, errors = _items(headers, path)
    yield from errors
    for name, condition in items:
        field = f"{path}.{name}"
        problem = grammar.header_name_problem(name)
        if problem is not None:
            yield problem.text(path)
        elif grammar.is_jwt_claim(name) and not context.jwt_claims:
            yield (
                f"{field}: Istio routes on JWT claims only in a VirtualService bound to gateways "
                "(not 'mesh'); narrow by a request header instead"
            )
        if condition is None:
            yield f"{field}: must be a header match, not null"
        elif path.endswith("withoutHeaders") and condition == {"regex": "*"}:
            continue  # Istio's spelling of "header absent": never compiled
        else:
            yield from _string_match(condition, field, header_value=True)


def _string_match(
    condition: Any, path: str, *, empty_prefix: bool = False, header_value: bool = False
) -> Iterator[str]:
    """An Istio StringMatch: ``{}`` (present), or one of exact / prefix / regex."""
    if not isinstance(condition, dict) or set(condition) - set(_STRING_MATCH_KINDS):
        yield f"{path}: {shown(condition)} is not a match: write {{exact|prefix|regex: ...}}"
        return
    if len(condition) > 1:
        yield f"{path}: give one of exact, prefix, regex, not {' and '.join(condition)}"
        return
    for kind, value in condition.items():
        field = f"{path}.{kind}"
        if not isinstance(value, str):
            yield f"{field}: must be a string, got {shown(value)}"
        elif kind == "regex":
            problem = grammar.regex_problem(value)
            if problem is not None:
                yield problem.text(field)
        elif kind == "prefix" and value == "" and not empty_prefix:
            yield f"{field}: is empty (Istio refuses an empty prefix; leave the condition out)"
        elif header_value and (problem := grammar.header_value_problem(value)) is not None:
            yield problem.text(field)


def _labels(labels: Any, path: str) -> Iterator[str]:
    items, errors = _items(labels, path)
    yield from errors
    for key, value in items:
        problem = grammar.label_key_problem(key)
        if problem is not None:
            yield problem.text(path)
        if not isinstance(value, str):
            yield f"{path}.{key}: must be a string, got {shown(value)}"
        elif (problem := grammar.label_value_problem(value)) is not None:
            yield problem.text(f"{path}.{key}")


def _items(value: Any, path: str) -> tuple[list[tuple[str, Any]], list[str]]:
    """The items of a JSON object field (none when absent), and the error if it is no object."""
    if value is None:
        return [], []
    if not isinstance(value, dict):
        return [], [f"{path}: must be an object, got {shown(value)}"]
    return list(value.items()), []


# -- fault -----------------------------------------------------------------------------------


def _fault(fault: Any, path: str) -> Iterator[str]:
    if not isinstance(fault, dict):
        yield f"{path}: must be an object, got {shown(fault)}"
        return
    abort, delay = fault.get("abort"), fault.get("delay")
    if abort is None and delay is None:
        yield f"{path}: must have an abort and/or a delay"
    if abort is not None:
        yield from _abort(abort, f"{path}.abort")
    if delay is not None:
        yield from _delay(delay, f"{path}.delay")


def _abort(abort: Any, path: str) -> Iterator[str]:
    if not isinstance(abort, dict):
        yield f"{path}: must be an object, got {shown(abort)}"
        return
    yield from _percentage(abort.get("percentage"), f"{path}.percentage")
    kinds = [k for k in ("httpStatus", "grpcStatus", "http2Error") if k in abort]
    if len(kinds) > 1:
        yield f"{path}: give one of httpStatus, grpcStatus, not {' and '.join(kinds)}"
    if "http2Error" in abort:
        yield f"{path}.http2Error: Istio does not support HTTP/2 aborts; use httpStatus"
    if "httpStatus" in abort:
        status = abort["httpStatus"]
        if not _integer_within(status, MIN_HTTP_STATUS, MAX_HTTP_STATUS):
            bounds = f"{MIN_HTTP_STATUS}-{MAX_HTTP_STATUS}"
            yield f"{path}.httpStatus: {shown(status)} is not an HTTP status in {bounds}"
    if "grpcStatus" in abort and abort["grpcStatus"] not in GRPC_CODES:
        yield f"{path}.grpcStatus: {shown(abort['grpcStatus'])} is not a gRPC status code name"


def _delay(delay: Any, path: str) -> Iterator[str]:
    if not isinstance(delay, dict):
        yield f"{path}: must be an object, got {shown(delay)}"
        return
    yield from _percentage(delay.get("percentage"), f"{path}.percentage")
    if "fixedDelay" in delay and "exponentialDelay" in delay:
        yield f"{path}: give one of fixedDelay, exponentialDelay, not both"
    if "exponentialDelay" in delay:
        yield f"{path}.exponentialDelay: Istio does not support it; use fixedDelay"
    if "fixedDelay" in delay:
        yield from _duration(delay["fixedDelay"], f"{path}.fixedDelay")
    # The deprecated integer ``percent`` is not checked: Istio does not, and Envoy caps it.


def _percentage(percentage: Any, path: str) -> Iterator[str]:
    if percentage is None:
        return  # legal, if useless: Istio injects nothing without a percentage
    if not isinstance(percentage, dict):
        yield f"{path}: must be an object {{value: ...}}, got {shown(percentage)}"
        return
    value = percentage.get("value", 0)
    if not _number(value):
        yield f"{path}.value: must be a number, got {shown(value)}"
    elif value != 0 and not MIN_PERCENTAGE <= value <= MAX_PERCENTAGE:
        yield f"{path}.value: {value} is neither 0 nor in [{MIN_PERCENTAGE}, {MAX_PERCENTAGE:g}]"


# -- destinations, timeout, retries ----------------------------------------------------------


def _destinations(destinations: Any, path: str) -> Iterator[str]:
    if not isinstance(destinations, list):
        yield f"{path}: must be a list of destinations"
        return
    total_weight = 0
    for index, entry in enumerate(destinations):
        where = f"{path}[{index}]"
        if not isinstance(entry, dict):
            yield f"{where}: must be an object, got {shown(entry)}"
            continue
        target = entry.get("destination")
        if target is None:
            yield f"{where}.destination: required"
        else:
            yield from _destination(target, f"{where}.destination")
        weight = entry.get("weight", 0)
        if not _integer_within(weight, 0, 2**31 - 1):
            yield f"{where}.weight: {shown(weight)} is not a whole number >= 0"
        else:
            total_weight += weight
    if len(destinations) > 1 and total_weight == 0:
        yield f"{path}: the weights of several destinations must not total 0"


def _destination(target: Any, path: str) -> Iterator[str]:
    if not isinstance(target, dict):
        yield f"{path}: must be an object, got {shown(target)}"
        return
    host = target.get("host", "")
    if not isinstance(host, str):
        yield f"{path}.host: must be a string, got {shown(host)}"
    elif (problem := grammar.host_problem(host)) is not None:
        yield problem.text(f"{path}.host")
    subset = target.get("subset", "")
    if subset != "" and not (isinstance(subset, str) and grammar.is_dns1123_label(subset)):
        yield f"{path}.subset: {shown(subset)} is not a subset name (a DNS-1123 label)"
    port = target.get("port")
    if port is not None:
        number = port.get("number", 0) if isinstance(port, dict) else None
        if not _integer_within(number, 1, _MAX_PORT):
            yield f"{path}.port.number: {shown(number)} is not a port number (1-{_MAX_PORT})"


def _retries(retries: Any, path: str) -> Iterator[str]:
    if not isinstance(retries, dict):
        yield f"{path}: must be an object, got {shown(retries)}"
        return
    attempts = retries.get("attempts", 0)
    if not _integer_within(attempts, 0, 2**31 - 1):
        yield f"{path}.attempts: {shown(attempts)} is not a whole number >= 0"
    retry_on = retries.get("retryOn", "")
    if attempts == 0:
        configured = [
            field
            for field, set_ in (
                ("perTryTimeout", retries.get("perTryTimeout") is not None),
                ("retryOn", retry_on != ""),
                ("retryRemoteLocalities", retries.get("retryRemoteLocalities") is not None),
            )
            if set_
        ]
        if configured:
            yield (
                f"{path}: {', '.join(configured)} set while attempts is 0 (retries disabled); "
                "set attempts, or drop them"
            )
    for field in ("perTryTimeout", "backoff"):
        if retries.get(field) is not None:
            yield from _duration(retries[field], f"{path}.{field}")
    if not isinstance(retry_on, str):
        yield f"{path}.retryOn: must be a comma-separated string, got {shown(retry_on)}"
    elif retry_on:
        for item in retry_on.split(","):  # Istio does not trim: "5xx, reset" is refused
            if item not in RETRY_ON_POLICIES and not _known_status(item):
                yield (
                    f"{path}.retryOn: {shown(item)} is not a retry policy or an HTTP status "
                    "(items are separated by commas without spaces)"
                )


def _known_status(item: str) -> bool:
    return _ATOI.fullmatch(item) is not None and int(item) in _KNOWN_STATUSES


def _duration(value: Any, path: str) -> Iterator[str]:
    if isinstance(value, str) and value != value.strip():
        yield f'{path}: {shown(value)} has spaces around it (write e.g. "7s")'
        return
    try:
        parse_duration_ms(value, path)
    except InvalidInput as error:
        yield str(error)


# -- DestinationRule -------------------------------------------------------------------------


def _destination_rule(spec: dict[str, Any]) -> Iterator[str]:
    host = spec.get("host", "")
    problem = grammar.host_problem(host) if isinstance(host, str) and host != "*" else None
    if problem is not None:
        yield problem.text("host")
    yield from _traffic_policy(spec.get("trafficPolicy"), "trafficPolicy")
    subsets = spec.get("subsets") or []
    if not isinstance(subsets, list):
        yield f"subsets: must be a list, got {shown(subsets)}"
        return
    names: set[str] = set()
    for index, subset in enumerate(subsets):
        path = f"subsets[{index}]"
        if not isinstance(subset, dict):
            yield f"{path}: must be an object, got {shown(subset)}"
            continue
        name = subset.get("name", "")
        if not (isinstance(name, str) and grammar.is_dns1123_label(name)):
            yield f"{path}.name: {shown(name)} is not a subset name (a DNS-1123 label)"
        elif name in names:
            yield f"{path}.name: duplicate subset {name!r}"
        else:
            names.add(name)
        yield from _labels(subset.get("labels"), f"{path}.labels")
        yield from _traffic_policy(subset.get("trafficPolicy"), f"{path}.trafficPolicy")


_POLICY_FIELDS = (
    "outlierDetection",
    "connectionPool",
    "loadBalancer",
    "tls",
    "portLevelSettings",
    "tunnel",
    "proxyProtocol",
    "retryBudget",
)


def _traffic_policy(policy: Any, path: str) -> Iterator[str]:
    if policy is None:
        return
    if not isinstance(policy, dict) or all(policy.get(f) is None for f in _POLICY_FIELDS):
        yield f"{path}: must set at least one field (Istio refuses an empty traffic policy)"
        return
    if policy.get("outlierDetection") is not None:
        yield from _outlier_detection(policy["outlierDetection"], f"{path}.outlierDetection")
    if policy.get("connectionPool") is not None:
        yield from _connection_pool(policy["connectionPool"], f"{path}.connectionPool")


# The fields of Istio's OutlierDetection and ConnectionPoolSettings (networking v1 CRD). A custom
# resource's unknown fields are dropped by the API server without a word, so a misspelt one
# ("maxConnection") would silently leave the policy unset: refused here instead.
OUTLIER_DETECTION_FIELDS = (
    "consecutiveErrors",
    "consecutive5xxErrors",
    "consecutiveGatewayErrors",
    "consecutiveLocalOriginFailures",
    "splitExternalLocalOriginErrors",
    "interval",
    "baseEjectionTime",
    "maxEjectionPercent",
    "minHealthPercent",
)
CONNECTION_POOL_FIELDS = {
    "tcp": (
        "maxConnections",
        "connectTimeout",
        "tcpKeepalive",
        "maxConnectionDuration",
        "idleTimeout",
    ),
    "http": (
        "http1MaxPendingRequests",
        "http2MaxRequests",
        "maxRequestsPerConnection",
        "maxRetries",
        "idleTimeout",
        "h2UpgradePolicy",
        "useClientProtocol",
        "maxConcurrentStreams",
    ),
}
_KEEPALIVE_FIELDS = ("probes", "time", "interval")
_H2_UPGRADE_POLICIES = ("DEFAULT", "DO_NOT_UPGRADE", "UPGRADE")
_UINT32 = 2**32 - 1


def outlier_detection_errors(outlier: Any, path: str) -> list[str]:
    """Why Istio (or the API server) would refuse ``outlier`` as an outlierDetection at ``path``."""
    return list(_outlier_detection(outlier, path))


def connection_pool_errors(pool: Any, path: str) -> list[str]:
    """Why Istio (or the API server) would refuse ``pool`` as a connectionPool at ``path``."""
    return list(_connection_pool(pool, path))


def retries_errors(retries: Any, path: str) -> list[str]:
    """Why Istio would refuse ``retries`` as an HTTP route's retries at ``path``."""
    return list(_retries(retries, path))


def duration_errors(value: Any, path: str) -> list[str]:
    """Why Istio would refuse ``value`` as a duration (at least 1ms, whole milliseconds)."""
    return list(_duration(value, path))


def _unknown_fields(value: dict[str, Any], known: tuple[str, ...], path: str) -> Iterator[str]:
    for name in value:
        if name not in known:
            yield f"{path}.{name}: Istio has no such field (known: {', '.join(known)})"


def _outlier_detection(outlier: Any, path: str) -> Iterator[str]:
    if not isinstance(outlier, dict):
        yield f"{path}: must be an object, got {shown(outlier)}"
        return
    yield from _unknown_fields(outlier, OUTLIER_DETECTION_FIELDS, path)
    for field in (
        "consecutive5xxErrors",
        "consecutiveGatewayErrors",
        "consecutiveLocalOriginFailures",
    ):
        value = outlier.get(field)
        if value is not None and not _integer_within(value, 0, _UINT32):
            yield f"{path}.{field}: {shown(value)} is not a whole number >= 0"
    errors = outlier.get("consecutiveErrors", 0)
    if not _integer_within(errors, 0, 2**31 - 1):
        yield f"{path}.consecutiveErrors: {shown(errors)} is not a whole number >= 0"
    split = outlier.get("splitExternalLocalOriginErrors", False)
    if not isinstance(split, bool):
        yield f"{path}.splitExternalLocalOriginErrors: must be true or false, got {shown(split)}"
    for field in ("interval", "baseEjectionTime"):
        if outlier.get(field) is not None:
            yield from _duration(outlier[field], f"{path}.{field}")
    for field in ("maxEjectionPercent", "minHealthPercent"):
        value = outlier.get(field, 0)
        if not _integer_within(value, 0, 100):
            yield f"{path}.{field}: {shown(value)} is not a whole percentage (0-100)"
    failures = outlier.get("consecutiveLocalOriginFailures", 0)
    if _integer_within(failures, 1, 2**32 - 1) and not outlier.get(
        "splitExternalLocalOriginErrors"
    ):
        yield f"{path}.consecutiveLocalOriginFailures: needs splitExternalLocalOriginErrors: true"


CONNECTION_POOL_LIMITS = {
    "http": (
        "http1MaxPendingRequests",
        "http2MaxRequests",
        "maxRequestsPerConnection",
        "maxRetries",
        "maxConcurrentStreams",
    ),
    "tcp": ("maxConnections",),
}
_POOL_DURATIONS = {"http": ("idleTimeout",), "tcp": ("connectTimeout", "maxConnectionDuration")}


def _connection_pool(pool: Any, path: str) -> Iterator[str]:
    if isinstance(pool, dict):
        yield from _unknown_fields(pool, tuple(CONNECTION_POOL_FIELDS), path)
    if not isinstance(pool, dict) or (pool.get("http") is None and pool.get("tcp") is None):
        yield f"{path}: must set http or tcp"
        return
    for section, counts in CONNECTION_POOL_LIMITS.items():
        settings = pool.get(section)
        if settings is None:
            continue
        if not isinstance(settings, dict):
            yield f"{path}.{section}: must be an object, got {shown(settings)}"
            continue
        yield from _unknown_fields(settings, CONNECTION_POOL_FIELDS[section], f"{path}.{section}")
        for field in counts:
            value = settings.get(field, 0)
            if not _integer_within(value, 0, 2**31 - 1):
                yield f"{path}.{section}.{field}: {shown(value)} is not a whole number >= 0"
        for field in _POOL_DURATIONS[section]:
            if settings.get(field) is not None:
                yield from _duration(settings[field], f"{path}.{section}.{field}")
    tcp = pool.get("tcp")
    if isinstance(tcp, dict) and tcp.get("idleTimeout") not in (None, "0s", "0"):
        yield from _duration(tcp["idleTimeout"], f"{path}.tcp.idleTimeout")  # 0 turns it off
    if isinstance(tcp, dict) and tcp.get("tcpKeepalive") is not None:
        yield from _keepalive(tcp["tcpKeepalive"], f"{path}.tcp.tcpKeepalive")
    http = pool.get("http")
    if not isinstance(http, dict):
        return
    policy = http.get("h2UpgradePolicy")
    if policy is not None and policy not in _H2_UPGRADE_POLICIES:
        yield (
            f"{path}.http.h2UpgradePolicy: {shown(policy)} is not one of "
            f"{', '.join(_H2_UPGRADE_POLICIES)}"
        )
    client_protocol = http.get("useClientProtocol", False)
    if not isinstance(client_protocol, bool):
        yield f"{path}.http.useClientProtocol: must be true or false, got {shown(client_protocol)}"
    elif policy == "UPGRADE" and client_protocol:
        yield f"{path}.http: useClientProtocol cannot be true with h2UpgradePolicy UPGRADE"


def _keepalive(keepalive: Any, path: str) -> Iterator[str]:
    if not isinstance(keepalive, dict):
        yield f"{path}: must be an object, got {shown(keepalive)}"
        return
    yield from _unknown_fields(keepalive, _KEEPALIVE_FIELDS, path)
    probes = keepalive.get("probes", 0)
    if not _integer_within(probes, 0, _UINT32):
        yield f"{path}.probes: {shown(probes)} is not a whole number >= 0"
    for field in ("time", "interval"):
        if keepalive.get(field) is not None:
            yield from _duration(keepalive[field], f"{path}.{field}")


# -- values ----------------------------------------------------------------------------------


def _number(value: Any) -> bool:
    """A JSON number (not a boolean, not NaN)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and not math.isnan(value)


def _integer_within(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


_VALIDATORS: dict[str, Callable[[dict[str, Any]], Iterator[str]]] = {
    "VirtualService": _virtual_service,
    "DestinationRule": _destination_rule,
    "PeerAuthentication": security_validation.peer_authentication_errors,
    "AuthorizationPolicy": security_validation.authorization_policy_errors,
    "RequestAuthentication": security_validation.request_authentication_errors,
}
