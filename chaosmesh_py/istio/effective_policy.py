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
then the subset's policy merged onto the top level's (``chaosmesh_py.istio.traffic_policy``,
istiod's ``MergeTrafficPolicy``: each section the subset sets replaces the service's; port-level
settings for the port replace the rest wholesale).
"""

from __future__ import annotations

import http
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chaosmesh_py.errors import InvalidInput
from chaosmesh_py.istio.fault import parse_duration_ms
from chaosmesh_py.istio.routing import (
    CLUSTER_DOMAIN,
    ROOT_NAMESPACE,
    destination_rules_for,
    qualified,
    service_namespace,
)
from chaosmesh_py.istio.traffic_policy import (
    DestinationPolicy,
    destination_policy,
    namespace_of,
    oldest_first,
)

MESH_GATEWAY = "mesh"
# Istio's retry policy on every route whose VirtualService says nothing about retries.
DEFAULT_RETRY_ON = "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
DEFAULT_RETRIES = 2
# Envoy's retry_on tokens that retry a 5xx answer, a gateway error (502/503/504), a failed
# connection. "5xx" covers all three; "gateway-error" the last two; "reset" a connection reset.
_RETRIES_5XX = frozenset({"5xx"})
_RETRIES_GATEWAY = frozenset({"5xx", "gateway-error"})
_RETRIES_CONNECT = frozenset({"5xx", "gateway-error", "connect-failure", "reset"})
_GATEWAY_CODES = frozenset({502, 503, 504})
# A Go duration of zero ("0s", "0ms", "0.0s"): parse_duration_ms refuses anything under 1 ms,
# which is right for faults, but a zero timeout is meaningful (disabled).
_ZERO_DURATION = re.compile(r"(?:(?:0+(?:\.0*)?|\.0+)(?:ns|us|µs|ms|s|m|h))+")


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
    methods: tuple[str, ...] = ()  # the HTTP methods its match entries name (exact)

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
            "methods": list(self.methods),
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
    ``host`` (read as the caller's cluster DNS reads it, ``call_host``). ``port``: the service
    port called, for port-level DestinationRule settings and ``port`` matches (None: no
    ``portLevelSettings`` apply, every match port may). For many calls, use a ``PolicyIndex``."""
    index = PolicyIndex(virtual_services, destination_rules)
    return index.effective(
        source_namespace=source_namespace, source_labels=source_labels, host=host, port=port
    )


class PolicyIndex:
    """The VirtualServices and DestinationRules indexed by host: built once (O(objects)), then
    each call looks only at the objects that name its host (a report of E edges is O(E), not
    O(E x objects))."""

    def __init__(
        self,
        virtual_services: Sequence[dict[str, Any]],
        destination_rules: Sequence[dict[str, Any]],
    ) -> None:
        mesh = oldest_first([vs for vs in virtual_services if _bound_to_mesh(vs)])
        self._age = {id(vs): age for age, vs in enumerate(mesh)}
        self._by_host: dict[str, list[dict[str, Any]]] = {}
        self._wildcard: list[dict[str, Any]] = []
        for vs in mesh:
            hosts = {qualified(h, namespace_of(vs)) for h in _hosts(vs) if not h.startswith("*")}
            for fqdn in hosts:
                self._by_host.setdefault(fqdn, []).append(vs)
            if any(h.startswith("*") for h in _hosts(vs)):
                self._wildcard.append(vs)
        self._rules: dict[tuple[str, str], list[dict[str, Any]]] = {}  # (namespace, host)
        self._wildcard_rules: dict[str, list[dict[str, Any]]] = {}  # namespace
        for rule in destination_rules:
            namespace = namespace_of(rule)
            pattern = str((rule.get("spec") or {}).get("host") or "").lower()
            if pattern.startswith("*"):
                self._wildcard_rules.setdefault(namespace, []).append(rule)
            else:
                self._rules.setdefault((namespace, qualified(pattern, namespace)), []).append(rule)

    def effective(
        self,
        *,
        source_namespace: str,
        source_labels: Mapping[str, str],
        host: str,
        port: int | None = None,
    ) -> EffectivePolicy:
        fqdn = call_host(host, source_namespace)
        for virtual_service in self._virtual_services(fqdn, source_namespace):
            try:
                routes = _reachable_routes(
                    virtual_service,
                    source_namespace,
                    source_labels,
                    port,
                    lambda host: self.destination_rules(host, source_namespace),
                )
            except InvalidInput:
                # A duration istiod cannot read (a cluster without Istio's webhook admitted
                # it): istiod rejects the whole VirtualService, so it applies to nothing.
                continue
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
                destination_policy(
                    {"host": fqdn},
                    source_namespace,
                    100,
                    rules=self.destination_rules(fqdn, source_namespace),
                    port=port,
                ),
            ),
        )
        return EffectivePolicy(fqdn, (default,))

    def destination_rules(self, fqdn: str, source_namespace: str) -> list[Mapping[str, Any]]:
        """The DestinationRules that apply to ``fqdn`` for a caller in ``source_namespace``."""
        candidates: list[dict[str, Any]] = []
        for namespace in dict.fromkeys(
            n for n in (source_namespace, service_namespace(fqdn), ROOT_NAMESPACE) if n
        ):
            candidates += self._rules.get((namespace, fqdn), [])
            candidates += self._wildcard_rules.get(namespace, [])
        return destination_rules_for(fqdn, source_namespace, candidates)

    def _virtual_services(self, fqdn: str, namespace: str) -> list[dict[str, Any]]:
        """Those naming ``fqdn`` that the caller's namespace sees, in istiod's order: private
        ones of its namespace, then those exported to it by name, then public; oldest first."""
        named = self._by_host.get(fqdn, []) + [
            vs
            for vs in self._wildcard
            if any(_host_matches(h, namespace_of(vs), fqdn) for h in _hosts(vs))
        ]
        ranked = []
        for vs in {id(vs): vs for vs in named}.values():
            export = [str(e) for e in (vs.get("spec") or {}).get("exportTo") or ["*"]]
            if "*" in export:
                group = 2
            elif "." in export and namespace_of(vs) == namespace:
                group = 0
            elif namespace in export:
                group = 1
            else:
                continue
            ranked.append((group, self._age[id(vs)], vs))
        return [vs for _, _, vs in sorted(ranked, key=lambda r: r[:2])]


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


def call_host(host: str, namespace: str) -> str:
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
    rules_for: Callable[[str], list[Mapping[str, Any]]],
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
                conditional=not any(_catches_all(m, port) for m in applicable),
                timeout_s=_seconds_or_none(rule.get("timeout")),
                retries=route_retries(rule.get("retries")),
                fault_delay_s=_certain_delay_s(rule.get("fault")),
                methods=_methods(applicable),
                destinations=tuple(
                    _destination(weighted, vs_namespace, len(rule["route"]), port, rules_for)
                    for weighted in rule["route"]
                ),
            )
        )
        if not routes[-1].conditional:
            break  # every later route is shadowed for this caller
    return routes


def _destination(
    weighted: Mapping[str, Any],
    namespace: str,
    siblings: int,
    port: int | None,
    rules_for: Callable[[str], list[Mapping[str, Any]]],
) -> DestinationPolicy:
    """A route's ``HTTPRouteDestination`` (a lone one weighs 100) and what it meets there."""
    destination = weighted.get("destination") or {}
    fqdn = qualified(str(destination.get("host") or "").lower(), namespace)
    weight = int(weighted.get("weight") or (100 if siblings == 1 else 0))
    return destination_policy(destination, namespace, weight, rules=rules_for(fqdn), port=port)


def _methods(matches: list[Mapping[str, Any] | None]) -> tuple[str, ...]:
    """The HTTP methods the match entries name exactly."""
    named = {
        str(m["method"]["exact"]) for m in matches if m and (m.get("method") or {}).get("exact")
    }
    return tuple(sorted(named))


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


def _catches_all(match: Mapping[str, Any] | None, port: int | None) -> bool:
    """Every request of a caller this entry applies to meets it: no request conditions (a
    ``port`` condition is one when the called port is not known)."""
    if match is None:
        return True
    if match.get("port") and port is None:
        return False
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


def _seconds_or_none(duration: object) -> float | None:
    """A duration in seconds; None when unset or zero (Istio's 0s: disabled)."""
    milliseconds = duration_ms(duration) if duration else 0
    return milliseconds / 1000 if milliseconds else None


def _infinite_if_none(value: float | None) -> float:
    return math.inf if value is None else value
