"""Which timeout, retries, circuit breaker and outlier detection a call really gets.

Pure Istio knowledge, no I/O: for a call from a sidecar (its namespace and labels) to a host,
what istiod would program, read from the VirtualServices and DestinationRules. The local mesh's
translator (``chaosmesh_py.localmesh.route`` / ``translate``) takes Istio's defaults and the
DestinationRule merge from here, so the report's prediction and the local data plane share one
definition.

Which VirtualService (istiod's ``VirtualServicesForGateway`` order for the ``mesh`` gateway):
those bound to ``mesh`` (no ``gateways``, or ``mesh`` among them) and visible to the caller's
namespace (``exportTo``: absent or ``*`` everywhere, ``.`` its own namespace, or named
namespaces), private ones of the caller's namespace first, then those exported to it by name,
then public ones; oldest first within each group. The first naming the host (short names read in
the VirtualService's namespace, ``*`` wildcards) that still has a route for this caller (its
``sourceLabels``, ``sourceNamespace``, ``port``) applies; none: Istio's default route.

Which route: a caller's requests differ by path and headers, which a policy report cannot know.
So every route that some request of this caller can reach is reported (``routes``: in order, up
to and including the first catch-all), and the call's headline figures are the worst of them
(most attempts, then the longest worst-case time). An experiment asserting "at most N attempts"
holds for every request that way.

Istio's defaults (``pilot/pkg/networking/core/route/retry/retry.go``): no ``timeout`` is 0s, no
timeout at all; no ``retries`` is 2 retries (3 attempts) on connect-failure, refused-stream,
unavailable, cancelled and retriable-status-codes with no codes, so a 503 answer is NOT
retried, a refused connection is; ``attempts: 0`` turns retries off. Envoy's route timeout
bounds all attempts together; a ``perTryTimeout`` bounds each.

Which DestinationRule: Istio's lookup (``chaosmesh_py.istio.routing.destination_rules_for``),
then the subset's policy merged onto the top level's (istiod's ``MergeTrafficPolicy``:
each section the subset sets replaces the service's; port-level settings for the port replace
the rest wholesale).
"""

from __future__ import annotations

import http
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from chaosmesh_py.istio.fault import parse_duration_ms
from chaosmesh_py.istio.routing import CLUSTER_DOMAIN, destination_rules_for, qualified

MESH_GATEWAY = "mesh"
# Istio's retry policy on every route whose VirtualService says nothing about retries.
DEFAULT_RETRY_ON = "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
DEFAULT_RETRIES = 2
TRAFFIC_POLICY_SECTIONS = ("connectionPool", "outlierDetection", "loadBalancer", "tls")
# Envoy's retry_on tokens that retry a 5xx answer, a gateway error (502/503/504), a failed
# connection. "5xx" covers all three; "gateway-error" the last two; "reset" a connection reset.
_RETRIES_5XX = frozenset({"5xx"})
_RETRIES_GATEWAY = frozenset({"5xx", "gateway-error"})
_RETRIES_CONNECT = frozenset({"5xx", "gateway-error", "connect-failure", "reset"})
_GATEWAY_CODES = frozenset({502, 503, 504})
# A Go duration of zero ("0s", "0ms", "0.0s"): parse_duration_ms refuses anything under 1 ms,
# which is right for faults, but a zero timeout is meaningful (disabled).
_ZERO_DURATION = re.compile(r"(?:(?:0+(?:\.0*)?|\.0+)(?:ns|us|µs|ms|s|m|h))+")

IstioObject = TypeVar("IstioObject", bound=Mapping[str, Any])


# --- durations, retryOn, ordering: shared with the local mesh's translator -----------------------


def duration_ms(value: object) -> int:
    """A Go-style duration ("3m", "100ms", "1.5s") in whole milliseconds; "0s" is 0."""
    if isinstance(value, str) and _ZERO_DURATION.fullmatch(value.strip()):
        return 0
    return parse_duration_ms(value, "duration")


def parse_retry_on(retry_on: str) -> tuple[str, list[int]]:
    """Split ``retryOn`` into Envoy's retry_on and the HTTP status codes among its tokens."""
    policies: list[str] = []
    codes: list[int] = []
    for token in (part.strip() for part in retry_on.split(",")):
        if not token:
            continue
        if _is_http_status(token):
            codes.append(int(token))
        else:
            policies.append(token)
    return ",".join(policies), codes


def _is_http_status(token: str) -> bool:
    # istiod keeps a number as a status code only if Go knows the status (http.StatusText).
    if not token.isdigit():
        return False
    try:
        http.HTTPStatus(int(token))
    except ValueError:
        return False
    return True


def namespace_of(resource: Mapping[str, Any]) -> str:
    return str((resource.get("metadata") or {}).get("namespace") or "default")


def oldest_first(resources: Iterable[IstioObject]) -> list[IstioObject]:
    """istiod's order: creationTimestamp (RFC 3339, so it sorts as text), name, namespace."""

    def key(resource: Mapping[str, Any]) -> tuple[str, str, str]:
        metadata = resource.get("metadata") or {}
        return (
            str(metadata.get("creationTimestamp") or ""),
            str(metadata.get("name") or ""),
            namespace_of(resource),
        )

    return sorted(resources, key=key)


def port_traffic_policy(
    policy: Mapping[str, Any] | None, port: int | None
) -> Mapping[str, Any] | None:
    """A trafficPolicy's settings for ``port``: port-level ones replace the rest wholesale."""
    if policy is None:
        return None
    for settings in policy.get("portLevelSettings") or []:
        if port is not None and (settings.get("port") or {}).get("number") == port:
            return {s: settings[s] for s in TRAFFIC_POLICY_SECTIONS if s in settings}
    return policy


def merge_traffic_policy(
    policy: Mapping[str, Any] | None, subset_policy: Mapping[str, Any] | None, port: int | None
) -> Mapping[str, Any] | None:
    """istiod's MergeTrafficPolicy: each section the subset sets replaces the service's (whose
    port-level settings for ``port`` are already applied); the subset's own port-level settings
    for ``port`` replace everything."""
    if subset_policy is None:
        return policy
    merged = {s: (policy or {})[s] for s in TRAFFIC_POLICY_SECTIONS if s in (policy or {})}
    for settings in subset_policy.get("portLevelSettings") or []:
        if port is not None and (settings.get("port") or {}).get("number") == port:
            return {s: settings[s] for s in TRAFFIC_POLICY_SECTIONS if s in settings}
    merged.update(
        {s: subset_policy[s] for s in TRAFFIC_POLICY_SECTIONS if subset_policy.get(s) is not None}
    )
    return merged


# --- what one route gives -------------------------------------------------------------------


@dataclass(frozen=True)
class Retries:
    """A route's retries as Envoy runs them. ``attempts`` counts the first try (1: none)."""

    attempts: int
    per_try_timeout_s: float | None
    retry_on: tuple[str, ...]
    status_codes: tuple[int, ...]
    implicit: bool  # Istio's default policy: the VirtualService said nothing

    @property
    def retries_5xx(self) -> bool:
        """A 500 answer is retried (so is every 5xx)."""
        return self.attempts > 1 and (
            bool(_RETRIES_5XX & set(self.retry_on)) or self._codes_retried({500})
        )

    @property
    def retries_gateway_errors(self) -> bool:
        """A 503 answer (an upstream failing, overloaded or ejected) is retried."""
        return self.attempts > 1 and (
            bool(_RETRIES_GATEWAY & set(self.retry_on)) or self._codes_retried({503})
        )

    @property
    def retries_connect_failure(self) -> bool:
        """A refused or failed connection (a dead pod) is retried."""
        return self.attempts > 1 and bool(_RETRIES_CONNECT & set(self.retry_on))

    def _codes_retried(self, codes: set[int]) -> bool:
        return "retriable-status-codes" in self.retry_on and bool(codes & set(self.status_codes))

    def to_json(self) -> dict[str, Any]:
        return {
            "attempts": self.attempts,
            "per_try_timeout_s": self.per_try_timeout_s,
            "retry_on": list(self.retry_on),
            "retriable_status_codes": list(self.status_codes),
            "implicit_default": self.implicit,
            "retries_5xx": self.retries_5xx,
            "retries_gateway_errors": self.retries_gateway_errors,
            "retries_connect_failure": self.retries_connect_failure,
        }


def route_retries(retries: Mapping[str, Any] | None) -> Retries:
    """An ``HTTPRetry`` (None: the VirtualService has none) as Envoy will run it."""
    if retries is None:
        tokens, codes = parse_retry_on(DEFAULT_RETRY_ON)
        return Retries(1 + DEFAULT_RETRIES, None, tuple(tokens.split(",")), tuple(codes), True)
    retries_count = int(retries.get("attempts") or 0)
    if retries_count <= 0:
        return Retries(1, None, (), (), False)
    tokens, codes = parse_retry_on(str(retries.get("retryOn") or DEFAULT_RETRY_ON))
    token_list = [t for t in tokens.split(",") if t]
    if codes and "retriable-status-codes" not in token_list:
        token_list.append("retriable-status-codes")  # as istiod adds it
    per_try_s = _seconds_or_none(retries.get("perTryTimeout"))
    return Retries(1 + retries_count, per_try_s, tuple(token_list), tuple(codes), False)


@dataclass(frozen=True)
class DestinationPolicy:
    """Where a route sends (host, subset, weight) and the circuit breaking it meets there."""

    host: str
    subset: str
    weight: int
    destination_rule: str | None  # "namespace/name" (several merged: comma-separated)
    connection_pool: Mapping[str, Any] | None
    outlier_detection: Mapping[str, Any] | None

    @property
    def circuit_breaker(self) -> bool:
        """A connection pool limit that can overflow (a connect timeout alone breaks nothing)."""
        pool = self.connection_pool or {}
        tcp, http_ = pool.get("tcp") or {}, pool.get("http") or {}
        limits = (
            tcp.get("maxConnections"),
            http_.get("http1MaxPendingRequests"),
            http_.get("http2MaxRequests"),
            http_.get("maxRequestsPerConnection"),
            http_.get("maxRetries"),
        )
        return any(positive(limit) for limit in limits)

    @property
    def ejects(self) -> bool:
        """Outlier detection that can eject: Istio's consecutive5xxErrors defaults to 5 once
        outlierDetection is set; 0 turns that count off."""
        outlier = self.outlier_detection
        if outlier is None:
            return False
        five_xx = outlier.get("consecutive5xxErrors")
        return (
            five_xx is None
            or positive(five_xx) > 0
            or positive(outlier.get("consecutiveGatewayErrors")) > 0
            or positive(outlier.get("consecutiveLocalOriginFailures")) > 0
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "subset": self.subset,
            "weight": self.weight,
            "destination_rule": self.destination_rule,
            "circuit_breaker": self.circuit_breaker,
            "outlier_detection": self.ejects,
            "connection_pool": dict(self.connection_pool or {}) or None,
            "outlier": dict(self.outlier_detection or {}) or None,
        }


@dataclass(frozen=True)
class RoutePolicy:
    """One route a caller's requests can take, with its timeout, retries and destinations."""

    virtual_service: str | None  # "namespace/name"; None: Istio's default route
    route: str  # the route's name, else http[<index>]
    index: int | None
    conditional: bool  # only some requests reach it (headers, paths...)
    timeout_s: float | None  # None: no timeout (Istio's 0s)
    retries: Retries
    fault_delay_s: float  # a fixed delay every request of the route meets (fault at 100 %)
    destinations: tuple[DestinationPolicy, ...]

    @property
    def worst_case_s(self) -> float | None:
        """The longest the caller waits on this route, given the callee answers at some point:
        the route timeout, or attempts x per-try timeout; None when nothing bounds it."""
        bounds = [self.timeout_s]
        if self.retries.per_try_timeout_s is not None:
            bounds.append(self.retries.attempts * self.retries.per_try_timeout_s)
        known = [b for b in bounds if b is not None]
        return min(known) if known else None

    @property
    def per_attempt_budget_s(self) -> float | None:
        """How long one attempt may take before the caller gives up on it."""
        known = [b for b in (self.timeout_s, self.retries.per_try_timeout_s) if b is not None]
        return min(known) if known else None

    def to_json(self) -> dict[str, Any]:
        return {
            "virtual_service": self.virtual_service,
            "route": self.route,
            "index": self.index,
            "conditional": self.conditional,
            "timeout_s": self.timeout_s,
            **self.retries.to_json(),
            "fault_delay_s": self.fault_delay_s,
            "worst_case_s": self.worst_case_s,
            "destinations": [d.to_json() for d in self.destinations],
        }


@dataclass(frozen=True)
class EffectivePolicy:
    """What a call from a caller to ``host`` gets: every reachable route, the worst headline."""

    host: str
    routes: tuple[RoutePolicy, ...]

    @property
    def worst(self) -> RoutePolicy:
        """The route with the most attempts, then the longest (unbounded first) worst case."""
        return max(
            self.routes,
            key=lambda r: (r.retries.attempts, _infinite_if_none(r.worst_case_s)),
        )

    @property
    def timeout_s(self) -> float | None:
        return self.worst.timeout_s

    @property
    def attempts(self) -> int:
        return self.worst.retries.attempts

    @property
    def per_try_timeout_s(self) -> float | None:
        return self.worst.retries.per_try_timeout_s

    @property
    def retry_on(self) -> tuple[str, ...]:
        return self.worst.retries.retry_on

    @property
    def implicit(self) -> bool:
        return self.worst.retries.implicit

    @property
    def connection_pool(self) -> Mapping[str, Any] | None:
        return self.worst.destinations[0].connection_pool if self.worst.destinations else None

    @property
    def outlier(self) -> Mapping[str, Any] | None:
        return self.worst.destinations[0].outlier_detection if self.worst.destinations else None

    @property
    def circuit_breaker(self) -> bool:
        """Every destination of every route has a connection pool limit."""
        return all(d.circuit_breaker for r in self.routes for d in r.destinations)

    @property
    def outlier_detection(self) -> bool:
        """Every destination of every route has outlier detection that can eject."""
        return all(d.ejects for r in self.routes for d in r.destinations)


def effective_route_policy(
    virtual_services: Sequence[dict[str, Any]],
    destination_rules: Sequence[dict[str, Any]],
    *,
    source_namespace: str,
    source_labels: Mapping[str, str],
    host: str,
    port: int | None = None,
) -> EffectivePolicy:
    """The policy a sidecar in ``source_namespace`` with ``source_labels`` applies to a call to
    ``host`` (a short name reads as a Service in the caller's namespace, as its DNS would).
    ``port``: the service port called, for port-level DestinationRule settings and ``port``
    matches (None: the first ``portLevelSettings`` never apply, every match port may)."""
    fqdn = _fully_qualified(host.lower(), source_namespace)
    for virtual_service in _visible_in_order(virtual_services, source_namespace):
        vs_namespace = namespace_of(virtual_service)
        if not any(_host_matches(h, vs_namespace, fqdn) for h in _hosts(virtual_service)):
            continue
        routes = _reachable_routes(
            virtual_service, source_namespace, source_labels, port, destination_rules
        )
        if routes:  # none left for this caller: istiod falls through to the next one
            return EffectivePolicy(fqdn, tuple(routes))
    default = RoutePolicy(
        virtual_service=None,
        route="default",
        index=None,
        conditional=False,
        timeout_s=None,
        retries=route_retries(None),
        fault_delay_s=0.0,
        destinations=(
            _destination(
                {"host": fqdn},
                source_namespace,
                100,
                source_namespace=source_namespace,
                port=port,
                destination_rules=destination_rules,
            ),
        ),
    )
    return EffectivePolicy(fqdn, (default,))


def _visible_in_order(
    virtual_services: Sequence[dict[str, Any]], namespace: str
) -> list[dict[str, Any]]:
    private, exported, public = [], [], []
    for vs in oldest_first([vs for vs in virtual_services if _bound_to_mesh(vs)]):
        export = [str(e) for e in (vs.get("spec") or {}).get("exportTo") or ["*"]]
        own = namespace_of(vs) == namespace
        if "*" in export:
            public.append(vs)
        elif "." in export and own:
            private.append(vs)
        elif namespace in export:
            exported.append(vs)
    return private + exported + public


def _bound_to_mesh(virtual_service: Mapping[str, Any]) -> bool:
    gateways = (virtual_service.get("spec") or {}).get("gateways") or []
    return not gateways or MESH_GATEWAY in gateways


def _hosts(virtual_service: Mapping[str, Any]) -> list[str]:
    return [str(h).lower() for h in (virtual_service.get("spec") or {}).get("hosts") or []]


def _host_matches(vs_host: str, vs_namespace: str, fqdn: str) -> bool:
    if vs_host == "*":
        return True
    if vs_host.startswith("*."):
        return fqdn.endswith(vs_host[1:])
    return qualified(vs_host, vs_namespace) == fqdn


def _fully_qualified(host: str, namespace: str) -> str:
    """A caller's ``reviews`` / ``reviews.ns`` / ``reviews.ns.svc`` as the Service's FQDN, the
    way its cluster DNS resolves them (a VirtualService host only expands a bare name)."""
    parts = host.split(".")
    if len(parts) == 1:
        return qualified(host, namespace)
    if len(parts) == 2:
        return f"{host}.{CLUSTER_DOMAIN}"
    if len(parts) == 3 and parts[2] == "svc":
        return f"{host}.cluster.local"
    return host


def _reachable_routes(
    virtual_service: Mapping[str, Any],
    source_namespace: str,
    source_labels: Mapping[str, str],
    port: int | None,
    destination_rules: Sequence[dict[str, Any]],
) -> list[RoutePolicy]:
    vs_namespace = namespace_of(virtual_service)
    name = f"{vs_namespace}/{(virtual_service.get('metadata') or {}).get('name') or ''}"
    routes: list[RoutePolicy] = []
    for index, rule in enumerate((virtual_service.get("spec") or {}).get("http") or []):
        matches = rule.get("match") or [None]
        applicable = [m for m in matches if _applies_to(m, source_namespace, source_labels, port)]
        if not applicable or not (rule.get("route") or []):
            continue  # redirects and direct responses call nothing further
        routes.append(
            RoutePolicy(
                virtual_service=name,
                route=str(rule.get("name") or f"http[{index}]"),
                index=index,
                conditional=not any(_catches_all(m) for m in applicable),
                timeout_s=_seconds_or_none(rule.get("timeout")),
                retries=route_retries(rule.get("retries")),
                fault_delay_s=_certain_delay_s(rule.get("fault")),
                destinations=tuple(
                    _destination(
                        weighted.get("destination") or {},
                        vs_namespace,
                        int(weighted.get("weight") or (100 if len(rule["route"]) == 1 else 0)),
                        source_namespace=source_namespace,
                        port=port,
                        destination_rules=destination_rules,
                    )
                    for weighted in rule["route"]
                ),
            )
        )
        if not routes[-1].conditional:
            break  # every later route is shadowed for this caller
    return routes


def _applies_to(
    match: Mapping[str, Any] | None,
    source_namespace: str,
    source_labels: Mapping[str, str],
    port: int | None,
) -> bool:
    """Whether some request of this caller can meet this match entry (istiod's sourceMatchHTTP:
    gateways named in the entry win over sourceLabels)."""
    if match is None:
        return True
    if match.get("port") and port is not None and int(match["port"]) != port:
        return False
    gateways = match.get("gateways") or []
    if gateways:
        return MESH_GATEWAY in gateways
    if any(source_labels.get(k) != v for k, v in (match.get("sourceLabels") or {}).items()):
        return False
    wanted = match.get("sourceNamespace")
    return not wanted or wanted == source_namespace


def _catches_all(match: Mapping[str, Any] | None) -> bool:
    """Every request of a caller this entry applies to meets it: no request conditions."""
    if match is None:
        return True
    request_conditions = (
        "headers",
        "withoutHeaders",
        "queryParams",
        "method",
        "authority",
        "scheme",
    )
    if any(match.get(field) for field in request_conditions):
        return False
    uri = match.get("uri") or {}
    return not uri or uri.get("prefix") == "/" or uri.get("regex") in (".*", "/.*")


def _certain_delay_s(fault: Mapping[str, Any] | None) -> float:
    delay = (fault or {}).get("delay") or {}
    if "fixedDelay" not in delay:
        return 0.0
    percentage = delay.get("percentage")
    percent = (
        float(percentage.get("value", 0))
        if percentage is not None
        else float(delay.get("percent", 0))
    )
    return duration_ms(delay["fixedDelay"]) / 1000 if percent >= 100 else 0.0


def _destination(
    destination: Mapping[str, Any],
    namespace: str,
    weight: int,
    *,
    source_namespace: str,
    port: int | None,
    destination_rules: Sequence[dict[str, Any]],
) -> DestinationPolicy:
    """An Istio ``Destination`` (its host read in ``namespace``) and the DestinationRule
    policy it meets there; its own port number, else ``port``."""
    fqdn = qualified(str(destination.get("host") or "").lower(), namespace)
    subset = str(destination.get("subset") or "")
    port = (destination.get("port") or {}).get("number") or port
    rules = destination_rules_for(fqdn, source_namespace, destination_rules)
    policy: Mapping[str, Any] | None = None
    subset_policy: Mapping[str, Any] | None = None
    for rule in oldest_first(rules):  # the oldest rule's trafficPolicy; a subset's first definer
        spec = rule.get("spec") or {}
        if policy is None and spec.get("trafficPolicy") is not None:
            policy = spec["trafficPolicy"]
        for defined in spec.get("subsets") or []:
            if subset and defined.get("name") == subset and subset_policy is None:
                subset_policy = defined.get("trafficPolicy") or {}
    merged = merge_traffic_policy(port_traffic_policy(policy, port), subset_policy, port) or {}
    names = ",".join(f"{namespace_of(r)}/{(r.get('metadata') or {}).get('name')}" for r in rules)
    return DestinationPolicy(
        host=fqdn,
        subset=subset,
        weight=weight,
        destination_rule=names or None,
        connection_pool=merged.get("connectionPool"),
        outlier_detection=merged.get("outlierDetection"),
    )


def positive(value: Any) -> int:
    """The integer if it is > 0, else 0 (istiod cannot tell 0 from unset, so 0 means unset)."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        return 0
    return max(number, 0)


def _seconds_or_none(duration: object) -> float | None:
    """A duration in seconds; None when unset or zero (Istio's 0s: disabled)."""
    milliseconds = duration_ms(duration) if duration else 0
    return milliseconds / 1000 if milliseconds else None


def _infinite_if_none(value: float | None) -> float:
    return math.inf if value is None else value
