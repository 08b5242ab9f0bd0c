"""A DestinationRule's trafficPolicy as a call meets it: port-level settings, the subset merge,
and whether it holds a circuit breaker or outlier detection that can act.

Pure Istio knowledge, shared by the policy report (``chaosmesh_py.istio.effective_policy``) and
the local mesh's translator (``chaosmesh_py.localmesh.translate``), which programs the same
merge into Envoy's clusters.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from chaosmesh_py.istio.routing import qualified

TRAFFIC_POLICY_SECTIONS = ("connectionPool", "outlierDetection", "loadBalancer", "tls")

IstioObject = TypeVar("IstioObject", bound=Mapping[str, Any])


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


def positive(value: Any) -> int:
    """The integer if it is > 0, else 0 (istiod cannot tell 0 from unset, so 0 means unset)."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        return 0
    return max(number, 0)


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
        """A connection-pool limit that sheds load when reached (503, flag UO): connections,
        pending or concurrent requests. A connect timeout, maxRequestsPerConnection or the
        maxRetries cap alone shed nothing."""
        pool = self.connection_pool or {}
        tcp, http_ = pool.get("tcp") or {}, pool.get("http") or {}
        limits = (
            tcp.get("maxConnections"),
            http_.get("http1MaxPendingRequests"),
            http_.get("http2MaxRequests"),
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


def destination_policy(
    destination: Mapping[str, Any],
    namespace: str,
    weight: int,
    *,
    rules: Sequence[Mapping[str, Any]],
    port: int | None,
) -> DestinationPolicy:
    """An Istio ``Destination`` (its host read in ``namespace``) and the policy it meets under
    ``rules``, the DestinationRules that apply to its host (``routing.destination_rules_for``):
    the oldest rule's trafficPolicy, the subset's from its first definer; the destination's own
    port number, else ``port``."""
    fqdn = qualified(str(destination.get("host") or "").lower(), namespace)
    subset = str(destination.get("subset") or "")
    port = (destination.get("port") or {}).get("number") or port
    policy: Mapping[str, Any] | None = None
    subset_policy: Mapping[str, Any] | None = None
    for rule in oldest_first(rules):
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
