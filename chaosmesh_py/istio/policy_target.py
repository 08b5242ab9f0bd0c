"""Where a policy edit writes: the field paths of route timeouts and retries in a VirtualService,
and of connection pools and outlier detection in a DestinationRule. Pure: resource in, paths out.

A field override (``chaosmesh_py.istio.field_override``) picks list elements by their own fields,
never by index (indices move when others insert). A named route is picked by its name. Most
routes have none (Bookinfo's, and Istio's task VirtualServices), so an unnamed route is picked
by what makes it that route: no name, and its own ``match`` (absent for the catch-all route);
when two unnamed routes share the match, by their destinations too. Route copies a run added
(faults, routing edits) always carry a name, so "no name" never picks one of them; they are
never targets. When even the destinations do not tell two routes apart, the edit is refused
before any write, naming the fix: give the routes names and pick one with ``route_name``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chaosmesh_py.errors import InvalidInput, TargetNotFound
from chaosmesh_py.istio import field_override, route_copy
from chaosmesh_py.istio.owner_record import Path

TIMEOUT = "timeout"
RETRIES = "retries"
CONNECTION_POOL = "connectionPool"
OUTLIER_DETECTION = "outlierDetection"


@dataclass(frozen=True)
class RouteTarget:
    """One user route a policy edit sets a field of: how users know it, and how it is picked."""

    label: str  # its name, else "#<index among the routes users wrote>"
    selector: Mapping[str, Any]
    route: Mapping[str, Any]

    def path(self, field: str) -> Path:
        return ("spec", "http", dict(self.selector), field)


def route_targets(
    resource: Mapping[str, Any], route_name: str | None, route_index: int | None
) -> list[RouteTarget]:
    """The routes of ``resource`` (a VirtualService) a route policy edit targets: the one named
    or at ``route_index`` (counting the routes users wrote, from 0), else every route that
    forwards traffic. Raises TargetNotFound / InvalidInput naming the argument to change."""
    users = route_copy.user_routes(resource)
    name = _name(resource)
    listing = route_copy.describe_routes(resource)
    if route_name is not None:
        chosen = [i for i, r in enumerate(users) if r.get("name") == route_name]
        if not chosen:
            raise TargetNotFound(
                "route_name",
                f"VirtualService {name} has no route named {route_name!r}",
                f"its routes: {listing}",
            )
        field_name = "route_name"
    elif route_index is not None:
        if not 0 <= route_index < len(users):
            raise TargetNotFound(
                "route_index",
                f"VirtualService {name} has no route {route_index}",
                f"its routes: {listing}",
            )
        chosen = [route_index]
        field_name = "route_index"
    else:
        chosen = [i for i, r in enumerate(users) if r.get("route")]
        if not chosen:
            raise TargetNotFound(
                "virtual_service",
                f"VirtualService {name} has no HTTP route that forwards traffic",
                f"its routes: {listing}",
            )
        field_name = "virtual_service"
    if not users[chosen[0]].get("route"):
        raise InvalidInput(
            field_name,
            "the route redirects, delegates or answers directly: timeouts and retries apply "
            "to routes that forward traffic",
            f"pick one of: {listing}",
        )
    routes = list(resource.get("spec", {}).get("http") or [])
    return [
        RouteTarget(
            label=str(users[i].get("name") or f"#{i}"),
            selector=_selector(routes, users[i], i, name),
            route=users[i],
        )
        for i in chosen
    ]


def _selector(
    routes: Sequence[Mapping[str, Any]], route: Mapping[str, Any], index: int, name: str
) -> dict[str, Any]:
    if route.get("name"):
        return {"name": route["name"]}
    candidates = [
        {"name": None, "match": route.get("match")},
        {"name": None, "match": route.get("match"), "route": route.get("route")},
    ]
    for selector in candidates:
        try:
            field_override.read_at({"http": routes}, ("http", selector))
        except field_override.Ambiguous:
            continue
        return selector
    raise InvalidInput(
        "route_index",
        f"route #{index} of VirtualService {name} has no name, and another unnamed route has "
        "the same match and destinations: a policy edit could not find it again to restore it",
        "give the routes names in the VirtualService and pick one with route_name",
    )


def policy_path(field: str, subset: str | None = None) -> Path:
    """A DestinationRule's ``trafficPolicy`` field, or that of its subset ``subset``."""
    if subset is None:
        return ("spec", "trafficPolicy", field)
    return ("spec", "subsets", {"name": subset}, "trafficPolicy", field)


def subset_names(resource: Mapping[str, Any]) -> list[str]:
    return [
        str(s.get("name"))
        for s in resource.get("spec", {}).get("subsets") or []
        if isinstance(s, Mapping)
    ]


def _name(resource: Mapping[str, Any]) -> str:
    metadata = resource.get("metadata", {})
    return f"{metadata.get('namespace', '')}/{metadata.get('name', '')}"
