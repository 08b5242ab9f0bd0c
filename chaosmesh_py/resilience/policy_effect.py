"""Is a policy edit live in the data plane? Envoy's own configuration says.

A timeout, a retry policy, a circuit breaker or outlier detection shows in requests only when
something fails, so the check reads what Envoy holds rather than sending traffic:

- a route policy: on the local mesh, Envoy's route configurations (``config_dump``), in the
  virtual hosts of the VirtualService's hosts, must hold the route (by its name; an unnamed
  route by its destinations' clusters) with the timeout or retry policy as istiod translates it
  (``timeout``; ``retry_policy.num_retries``, ``per_try_timeout``, ``retry_on`` and
  ``retriable_status_codes``; attempts 0: no retry policy). Every route configuration that has
  the route must show it;
- a DestinationRule policy: the host's clusters (``outbound|<port>|<subset>|<fqdn>``: the
  subset's, or the host's own for the top-level policy) must hold the circuit-breaker
  thresholds (``max_connections``, ``max_pending_requests``, ``max_requests``, ``max_retries``)
  and the outlier detection (``consecutive_5xx``, ``consecutive_gateway_failure``,
  ``interval``, ``base_ejection_time``, ``max_ejection_percent``) the edit sets.

The report has ``config_s`` (seconds until Envoy showed it), as a fault's effect does. On a
cluster the sidecars' configuration cannot be read from here: the report says what was checked
instead (the API holds the field, and Istio's status reports no rejection of it).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from chaosmesh_py.engine import verify
from chaosmesh_py.engine.envoy_admin import EnvoyAdmin
from chaosmesh_py.errors import ApiError
from chaosmesh_py.faults import injection
from chaosmesh_py.istio import policy_target, routing, status
from chaosmesh_py.istio.effective_policy import DEFAULT_RETRIES
from chaosmesh_py.istio.fault import parse_duration_ms
from chaosmesh_py.kube import Kube, ResourceRef

# Istio's names of a connection pool's limits and of outlier detection's fields -> Envoy's, as
# istiod translates them (pilot/pkg/networking/core/cluster_traffic_policy.go).
_THRESHOLDS = {
    ("tcp", "maxConnections"): "max_connections",
    ("http", "http1MaxPendingRequests"): "max_pending_requests",
    ("http", "http2MaxRequests"): "max_requests",
    ("http", "maxRetries"): "max_retries",
}
_OUTLIER_COUNTS = {
    "consecutive5xxErrors": "consecutive_5xx",
    "consecutiveGatewayErrors": "consecutive_gateway_failure",
    "maxEjectionPercent": "max_ejection_percent",
}
_OUTLIER_DURATIONS = {"interval": "interval", "baseEjectionTime": "base_ejection_time"}

# What istiod sets every circuit-breaker threshold to when the DestinationRule sets none.
_NO_LIMIT = 2**32 - 1

Check = Callable[[EnvoyAdmin], tuple[bool, str]]


def off(settings_timeout_s: float) -> dict[str, Any] | None:
    if settings_timeout_s <= 0:
        return {"checked": "no: verification is off (chaosmesh_verify_timeout_s is 0)"}
    return None


def verify_routes(
    kube: Kube,
    ref: ResourceRef,
    routes: Sequence[tuple[Mapping[str, Any], str]],
    field: str,
    value: Any,
    *,
    timeout_s: float,
    verify_url: str | None,
) -> dict[str, Any]:
    """Wait until Envoy holds ``field`` = ``value`` on each of ``routes`` (route, label)."""
    skipped = off(timeout_s)
    if skipped is not None:
        return skipped
    written = kube.get(ref)
    mesh = kube.local_mesh()
    if mesh is None:
        return _on_cluster(kube, ref, written, verify_url)
    namespace = ref.namespace
    hosts = {routing.qualified(str(h), namespace) for h in written["spec"].get("hosts") or []}
    wanted = [
        (
            label,
            str(route.get("name") or ""),
            _route_clusters(route, namespace),
        )
        for route, label in routes
    ]

    def check(admin: EnvoyAdmin) -> tuple[bool, str]:
        configs = _route_configs(admin, hosts)
        shown_in = 0
        for label, name, clusters in wanted:
            holding = [
                envoy_routes
                for envoy_routes in (
                    [r for r in routes_ if _is_route(r, name, clusters)]
                    for routes_ in configs.values()
                )
                if envoy_routes
            ]
            if not holding:
                return False, f"no route configuration holds route {label} yet"
            for envoy_routes in holding:
                if not any(_route_shows(r, field, value) for r in envoy_routes):
                    return False, f"route {label} does not show {field} {_shown(value)} yet"
            shown_in = max(shown_in, len(holding))
        return True, f"{len(wanted)} route(s), in {shown_in} route configuration(s)"

    return _wait(
        mesh,
        check,
        timeout_s,
        injection.rejection_check(kube, ref, written),
        f"{field} {_shown(value)}",
    )


def _shown(value: Any) -> str:
    return "unset" if value is None else str(value)


def verify_rule(
    kube: Kube,
    ref: ResourceRef,
    subset: str | None,
    field: str,
    value: Any,
    *,
    timeout_s: float,
) -> dict[str, Any]:
    """Wait until Envoy's clusters of the DestinationRule's host (``subset``'s) hold the policy
    ``value`` (None: the field unset)."""
    skipped = off(timeout_s)
    if skipped is not None:
        return skipped
    written = kube.get(ref)
    mesh = kube.local_mesh()
    if mesh is None:
        return _on_cluster(kube, ref, written, None)
    fqdn = routing.qualified(str(written.get("spec", {}).get("host", "")), ref.namespace)
    wanted_subset = subset or ""

    def check(admin: EnvoyAdmin) -> tuple[bool, str]:
        clusters = [
            c for name, c in _clusters(admin).items() if _cluster_of(name) == (wanted_subset, fqdn)
        ]
        if not clusters:
            return False, f"Envoy has no cluster for {fqdn} {subset or '(all)'} yet"
        for cluster in clusters:
            if not _cluster_shows(cluster, field, value):
                return False, f"cluster {cluster.get('name')} does not show the {field} yet"
        return True, f"{len(clusters)} cluster(s) of {fqdn} {subset or '(host)'}"

    return _wait(mesh, check, timeout_s, injection.rejection_check(kube, ref, written), field)


def combined(effects: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Several checks as one effect: what each checked; the slowest time, when all had one."""
    if not effects:
        return {"checked": "no: nothing restored is left to see in the data plane"}
    report: dict[str, Any] = {"checked": "; ".join(str(e.get("checked")) for e in effects)}
    if all("config_s" in e for e in effects):
        report["config_s"] = max(float(e["config_s"]) for e in effects)
    return report


def _wait(
    mesh: Mapping[str, Any],
    check: Check,
    timeout_s: float,
    rejection: verify.RejectionCheck | None,
    what: str,
) -> dict[str, Any]:
    started = time.monotonic()
    deadline = started + timeout_s
    next_rejection = started
    with EnvoyAdmin(str(mesh["envoy_admin_socket"])) as admin:
        while True:
            done, detail = check(admin)
            if done:
                return {
                    "checked": f"local mesh: Envoy config ({detail})",
                    "config_s": time.monotonic() - started,
                }
            if rejection is not None and time.monotonic() >= next_rejection:
                reason = rejection()
                if reason is not None:
                    raise verify.DataPlaneRejected(reason)
                next_rejection = time.monotonic() + verify.REJECTION_POLL_S
            if time.monotonic() > deadline:
                raise verify.FaultNotObserved(
                    f"Envoy never showed {what} within {timeout_s:g}s: {detail}"
                )
            time.sleep(verify.POLL_S)


def _on_cluster(
    kube: Kube, ref: ResourceRef, written: Mapping[str, Any], verify_url: str | None
) -> dict[str, Any]:
    generation = int((written.get("metadata") or {}).get("generation") or 0)
    try:
        reason = status.rejection(kube.get(ref), generation)
    except ApiError:
        reason = None
    if reason is not None:
        raise verify.DataPlaneRejected(reason)
    asked = " (verify_url is not used: a timeout or retry shows only when calls fail)"
    return {
        "checked": "no: a cluster's sidecars cannot be read from here; the API holds the "
        "field and Istio's status reports no rejection (measure the policy with the resilience "
        "probes)" + (asked if verify_url is not None else "")
    }


# ------------------------------------------------------------------------------ routes


def _route_clusters(route: Mapping[str, Any], namespace: str) -> frozenset[tuple[str, str]]:
    """(subset, fqdn) of each destination: what Envoy's route action names its clusters by."""
    return frozenset(
        (
            str(d.get("destination", {}).get("subset") or ""),
            routing.qualified(str(d.get("destination", {}).get("host", "")), namespace),
        )
        for d in route.get("route") or []
        if d.get("weight", 1) != 0 or len(route.get("route") or []) == 1
    )


def _route_configs(admin: EnvoyAdmin, hosts: set[str]) -> dict[str, list[dict[str, Any]]]:
    """Envoy's routes for ``hosts``, by route configuration."""
    dump = admin.get_json("/config_dump", {"resource": "dynamic_route_configs"})
    found: dict[str, list[dict[str, Any]]] = {}
    for entry in dump.get("configs", []):
        config = entry.get("route_config", {})
        routes = [
            route
            for vhost in config.get("virtual_hosts", [])
            if hosts & set(vhost.get("domains") or [])
            for route in vhost.get("routes", [])
        ]
        if routes:
            found[str(config.get("name", ""))] = routes
    return found


def _is_route(
    envoy_route: Mapping[str, Any], name: str, clusters: frozenset[tuple[str, str]]
) -> bool:
    envoy_name = str(envoy_route.get("name", ""))
    if name:
        return envoy_name == name or envoy_name.startswith(name + ".")
    if envoy_name:
        return False
    action = envoy_route.get("route") or {}
    names = (
        [action["cluster"]]
        if "cluster" in action
        else [
            c.get("name", "") for c in (action.get("weighted_clusters") or {}).get("clusters", [])
        ]
    )
    return frozenset(_cluster_of(str(n)) for n in names) == clusters


def _route_shows(envoy_route: Mapping[str, Any], field: str, value: Any) -> bool:
    """Envoy's route has ``field`` = ``value`` as istiod translates it; ``value`` None: the
    field unset (no timeout; Istio's default retries)."""
    action = envoy_route.get("route") or {}
    if field == policy_target.TIMEOUT:
        wanted = 0 if value is None else parse_duration_ms(value, "timeout")
        return (_ms(action.get("timeout")) or 0) == wanted
    policy = action.get("retry_policy")
    if value is None:
        return policy is not None and int(policy.get("num_retries", 1)) == DEFAULT_RETRIES
    if value["attempts"] == 0:
        return policy is None or int(policy.get("num_retries", 1)) == 0
    if policy is None or int(policy.get("num_retries", 1)) != value["attempts"]:
        return False
    if "perTryTimeout" in value and _ms(policy.get("per_try_timeout")) != parse_duration_ms(
        value["perTryTimeout"], "per_try_timeout"
    ):
        return False
    if "retryOn" in value:
        tokens = str(value["retryOn"]).split(",")
        conditions = set(str(policy.get("retry_on", "")).split(","))
        codes = {int(c) for c in policy.get("retriable_status_codes") or []}
        for token in tokens:
            if token.isdigit() and int(token) not in codes:
                return False
            if not token.isdigit() and token not in conditions:
                return False
    return True


def _ms(value: object) -> int | None:
    """An Envoy duration (``"0.500s"``) in milliseconds; 0 for ``"0s"``, None when absent."""
    if value is None:
        return None
    text = str(value)
    if text.rstrip("s").strip("0.") == "":
        return 0
    return parse_duration_ms(text, "envoy")


# ---------------------------------------------------------------------------- clusters


def _clusters(admin: EnvoyAdmin) -> dict[str, dict[str, Any]]:
    dump = admin.get_json("/config_dump", {"resource": "dynamic_active_clusters"})
    return {
        str(entry.get("cluster", {}).get("name", "")): entry.get("cluster", {})
        for entry in dump.get("configs", [])
    }


def _cluster_of(name: str) -> tuple[str, str] | None:
    """(subset, fqdn) of an istiod-named cluster ``outbound|<port>|<subset>|<fqdn>``."""
    parts = name.split("|")
    if len(parts) != 4 or parts[0] != "outbound":
        return None
    return parts[2], parts[3]


def _cluster_shows(cluster: Mapping[str, Any], field: str, value: Mapping[str, Any] | None) -> bool:
    """Envoy's cluster holds the policy ``value``; None: the field unset (Istio's limits of
    2^32-1, no outlier detection)."""
    thresholds = ((cluster.get("circuit_breakers") or {}).get("thresholds") or [{}])[0]
    if value is None:
        if field == policy_target.CONNECTION_POOL:
            return int(thresholds.get("max_connections", -1)) == _NO_LIMIT
        return cluster.get("outlier_detection") is None
    if field == policy_target.CONNECTION_POOL:
        return all(
            int(thresholds.get(envoy, -1)) == int(value[section][istio])
            for (section, istio), envoy in _THRESHOLDS.items()
            if (value.get(section) or {}).get(istio)
        )
    outlier = cluster.get("outlier_detection")
    if outlier is None:
        return False
    counts = all(
        int(outlier.get(envoy, -1)) == int(value[istio])
        for istio, envoy in _OUTLIER_COUNTS.items()
        if value.get(istio)
    )
    durations = all(
        _ms(outlier.get(envoy)) == parse_duration_ms(value[istio], istio)
        for istio, envoy in _OUTLIER_DURATIONS.items()
        if value.get(istio)
    )
    return counts and durations
