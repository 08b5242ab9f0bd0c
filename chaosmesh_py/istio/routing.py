"""Routing changes a route copy can carry besides a fault: new destinations, or a mirror.

Pure Istio knowledge, no I/O. A route copy (``chaosmesh_py.istio.route_copy``) is the original
route with one change; the changes here are:

- ``Destinations``: the copy sends its traffic to one subset (a dark launch: ``route_to_version``)
  or splits it by weight across subsets (a canary step: ``shift_traffic``), of the host the
  original route sends to unless another host is named;
- ``Mirror``: the copy forwards as the original does and also copies ``percentage`` % of its
  requests to a subset and/or another host, responses discarded (Istio ``mirror`` and
  ``mirrorPercentage``; beside a mirror the original already has, ``mirrors``).

The argument parsers check what users give the way Istio's webhook and the API would, stricter
where a value could only be a mistake (weights are whole numbers summing to 100; a bool is not a
number). ``subsets_for`` says which subsets the DestinationRules define for a host, following
Istio's DestinationRule lookup (see its docstring).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chaosmesh_py.errors import InvalidInput, shown
from chaosmesh_py.istio import grammar

# Istio's root configuration namespace (meshConfig.rootNamespace) unless a mesh changes it.
ROOT_NAMESPACE = "istio-system"
CLUSTER_DOMAIN = "svc.cluster.local"


@dataclass(frozen=True)
class Destinations:
    """Send the copy's traffic to ``weights`` (subset, percent) of ``host`` (None: the host the
    original route sends to). One subset at 100 is written without a weight, as Istio users
    write a single destination."""

    weights: tuple[tuple[str, int], ...]
    host: str | None = None

    kind = "destinations"

    def applied_to(self, route: dict[str, Any]) -> None:
        """Change the copy ``route`` (in place): its destinations become ours."""
        host, port = _destination_host(route, self.host, "destination_host")
        destinations = []
        for subset, weight in self.weights:
            destination: dict[str, Any] = {"host": host, "subset": subset}
            if port is not None:
                destination["port"] = port
            entry: dict[str, Any] = {"destination": destination}
            if len(self.weights) > 1:
                entry["weight"] = weight
            destinations.append(entry)
        route["route"] = destinations

    def to_json(self) -> dict[str, Any]:
        edit: dict[str, Any] = {"weights": dict(self.weights)}
        if self.host is not None:
            edit["destination_host"] = self.host
        return edit


@dataclass(frozen=True)
class Mirror:
    """Copy ``percentage`` % of the copy's requests to ``subset`` of ``host`` (None: the host the
    original route sends to), responses discarded."""

    percentage: float
    subset: str | None = None
    host: str | None = None

    kind = "mirror"

    def applied_to(self, route: dict[str, Any]) -> None:
        host, port = _destination_host(route, self.host, "mirror_host")
        target: dict[str, Any] = {"host": host}
        if self.subset is not None:
            target["subset"] = self.subset
        if port is not None:
            target["port"] = port
        if _mirrors_already(route, target, self.percentage):
            return  # composed onto a copy that mirrors there already (a retry): once is enough
        if not route.get("mirror") and not route.get("mirrors"):
            route["mirror"] = target
            route["mirrorPercentage"] = {"value": self.percentage}
            return
        # The original mirrors already: Istio holds several only as ``mirrors`` (and refuses
        # both forms on one route), so the copy lists theirs and ours there.
        mirrors = list(route.pop("mirrors", None) or [])
        percentage = route.pop("mirrorPercentage", None)
        legacy_percent = route.pop("mirrorPercent", None)  # Istio's deprecated whole percent
        if route.get("mirror"):
            theirs: dict[str, Any] = {"destination": route.pop("mirror")}
            if percentage is None and legacy_percent is not None:
                percentage = {"value": legacy_percent}
            if percentage is not None:
                theirs["percentage"] = percentage
            mirrors.append(theirs)
        mirrors.append({"destination": target, "percentage": {"value": self.percentage}})
        route["mirrors"] = mirrors

    def to_json(self) -> dict[str, Any]:
        edit: dict[str, Any] = {"mirror_percentage": self.percentage}
        if self.subset is not None:
            edit["subset"] = self.subset
        if self.host is not None:
            edit["mirror_host"] = self.host
        return edit


RoutingChange = Destinations | Mirror


def _mirrors_already(
    route: Mapping[str, Any], target: Mapping[str, Any], percentage: float
) -> bool:
    """``route`` mirrors ``percentage`` % of its requests to ``target`` already."""
    if route.get("mirror") == target:
        return float((route.get("mirrorPercentage") or {}).get("value", 100)) == percentage
    return any(
        m.get("destination") == target
        and float((m.get("percentage") or {}).get("value", 100)) == percentage
        for m in route.get("mirrors") or []
    )


def destination_hosts(route: Mapping[str, Any]) -> list[str]:
    """The hosts a route sends to, in order, without repeats."""
    hosts: list[str] = []
    for entry in route.get("route") or []:
        host = str(entry.get("destination", {}).get("host", ""))
        if host and host not in hosts:
            hosts.append(host)
    return hosts


def _destination_host(
    route: Mapping[str, Any], named: str | None, field_name: str
) -> tuple[str, dict[str, Any] | None]:
    """The host a change of ``route`` sends to, and the port to keep (the original's, when it
    names one for that host)."""
    hosts = destination_hosts(route)
    if named is None:
        if len(hosts) != 1:
            raise InvalidInput(
                field_name,
                f"route {route.get('name') or '(unnamed)'} sends to several hosts "
                f"({', '.join(hosts)})",
                f"name the host with {field_name}",
            )
        named = hosts[0]
    ports = [
        entry["destination"]["port"]
        for entry in route.get("route") or []
        if entry.get("destination", {}).get("host") == named and entry["destination"].get("port")
    ]
    port = ports[0] if ports and all(p == ports[0] for p in ports) else None
    return named, port


def parse_subset(value: object, field_name: str = "subset") -> str:
    if not isinstance(value, str) or not grammar.is_dns1123_label(value):
        raise InvalidInput(
            field_name,
            f"{shown(value)} is not a subset name",
            'a subset is named as in its DestinationRule, e.g. "v2" (a DNS-1123 label)',
        )
    return value


def parse_weights(value: object) -> tuple[tuple[str, int], ...]:
    """``{"v1": 90, "v3": 10}``: whole percentages 0-100 per subset, summing to 100."""
    example = 'e.g. {"v1": 90, "v3": 10}'
    if not isinstance(value, dict) or not value:
        raise InvalidInput(
            "weights", f"must map subset names to percentages, got {shown(value)}", example
        )
    weights = []
    for subset, weight in value.items():
        parse_subset(subset, "weights")
        field_name = f"weights.{subset}"
        if isinstance(weight, bool) or not isinstance(weight, int):
            fix = "write a whole number from 0 to 100, without quotes"
            if isinstance(weight, float) and math.isfinite(weight) and weight.is_integer():
                fix = f"write it as a whole number: {int(weight)}"
            raise InvalidInput(
                field_name,
                f"must be a whole percentage, got {type(weight).__name__} {shown(weight)}",
                fix + " (Istio's weights are integers)",
            )
        if not 0 <= weight <= 100:
            raise InvalidInput(field_name, f"{weight} is outside 0-100", example)
        weights.append((subset, weight))
    total = sum(weight for _, weight in weights)
    if total != 100:
        raise InvalidInput(
            "weights",
            f"the weights sum to {total}, not 100 ({shown(value)})",
            "give every subset's share so that they add up to 100",
        )
    return tuple(weights)


def parse_mirror_percentage(value: object) -> float:
    """Istio's ``mirrorPercentage.value``: a double above 0 and at most 100 (0 mirrors nothing,
    so it is refused as input)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise InvalidInput(
            "percentage",
            f"must be a number, got {type(value).__name__} {shown(value)}",
            "write e.g. 100 or 12.5 (a percentage of requests, without quotes)",
        )
    if not 0 < value <= 100:
        raise InvalidInput(
            "percentage",
            f"{shown(value)} is outside (0, 100]",
            "0 mirrors nothing and Istio cannot mirror more than 100%",
        )
    return float(value)


def parse_host(value: object, field_name: str) -> str | None:
    """A host name as a VirtualService destination holds it: short, FQDN, or a ServiceEntry's."""
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise InvalidInput(field_name, f"must be a host name, got {shown(value)}")
    if "*" in value:
        raise InvalidInput(
            field_name, f"{value!r} is a wildcard", 'a destination is one host, e.g. "reviews"'
        )
    problem = grammar.host_problem(value)
    if problem is not None:
        raise problem.at(field_name)
    return value


def qualified(host: str, namespace: str) -> str:
    """Istio reads a host without dots as a Service in the namespace of the config naming it."""
    return host if "." in host else f"{host}.{namespace}.{CLUSTER_DOMAIN}"


def service_namespace(fqdn: str) -> str | None:
    """The namespace of ``<name>.<namespace>.svc.cluster.local``; None for other hosts."""
    parts = fqdn.split(".")
    if len(parts) == 5 and ".".join(parts[2:]) == CLUSTER_DOMAIN:
        return parts[1]
    return None


@dataclass(frozen=True)
class Subsets:
    """The subsets defined for a host, and which DestinationRules define them."""

    names: tuple[str, ...]
    rules: tuple[str, ...]  # "namespace/name"


def destination_rules_for(
    fqdn: str, client_namespace: str, destination_rules: Iterable[Mapping[str, Any]]
) -> list[Mapping[str, Any]]:
    """The DestinationRules that apply to ``fqdn`` for a client in ``client_namespace`` (all in
    one namespace, to be merged), or an empty list.

    Istio's lookup: the rules visible to the client (``exportTo``: absent or ``*`` everywhere,
    ``.`` its own namespace only, or named namespaces) are searched in the client's namespace
    first, then the service's namespace, then the root namespace (istio-system); within one
    namespace the most specific host wins (exact over wildcard, the longer wildcard first) and
    rules for the same host are merged. Rules with a workloadSelector apply to some workloads
    only; they are counted like the others.
    """
    visible = [r for r in destination_rules if _exported_to(r, client_namespace)]
    order = [client_namespace, service_namespace(fqdn), ROOT_NAMESPACE]
    for namespace in dict.fromkeys(n for n in order if n):
        candidates = [
            (rule, _specificity(qualified(str(rule["spec"].get("host", "")), namespace), fqdn))
            for rule in visible
            if rule["metadata"].get("namespace") == namespace
        ]
        matching = [(rule, rank) for rule, rank in candidates if rank is not None]
        if matching:
            best = max(rank for _, rank in matching)
            return [rule for rule, rank in matching if rank == best]
    return []


def subsets_for(
    fqdn: str, client_namespace: str, destination_rules: Iterable[Mapping[str, Any]]
) -> Subsets | None:
    """The subsets the DestinationRules define for ``fqdn``, as seen from ``client_namespace``
    (where the VirtualService is, standing for its callers), or None when no rule applies
    (``destination_rules_for``: the rules found are merged, their subsets together)."""
    chosen = destination_rules_for(fqdn, client_namespace, destination_rules)
    if not chosen:
        return None
    names: list[str] = []
    for rule in chosen:
        for subset in rule["spec"].get("subsets") or []:
            if subset.get("name") and subset["name"] not in names:
                names.append(str(subset["name"]))
    return Subsets(
        tuple(names),
        tuple(f"{rule['metadata']['namespace']}/{rule['metadata']['name']}" for rule in chosen),
    )


def _exported_to(rule: Mapping[str, Any], namespace: str) -> bool:
    export = rule.get("spec", {}).get("exportTo") or ["*"]
    own = rule.get("metadata", {}).get("namespace")
    return "*" in export or namespace in export or ("." in export and own == namespace)


def _specificity(pattern: str, fqdn: str) -> int | None:
    """How specifically ``pattern`` (a DestinationRule host) names ``fqdn``: None if not at all."""
    if pattern == fqdn:
        return 1_000
    if pattern == "*":
        return 0
    if pattern.startswith("*") and fqdn.endswith(pattern[1:]):
        return len(pattern)
    return None


def missing_subsets(wanted: Sequence[str], defined: Subsets) -> list[str]:
    return [subset for subset in wanted if subset not in defined.names]
