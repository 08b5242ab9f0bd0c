"""Route copies in a VirtualService: pure functions from the object read to the patch to write.

A copy carries one change (``Change``): a fault (``chaosmesh_py.istio.fault``), new destinations
(one subset, or weights across subsets) or a mirror (``chaosmesh_py.istio.routing``). How a
change is added, so that it can be removed exactly:
- each targeted HTTP route is **copied**; the copy carries the extra match (headers, source
  labels) and the change, and is inserted directly before the original, because Istio takes the
  first route that matches. The original route is never modified. Without narrowing the copy
  has the original's match, so it takes all of the original's traffic; with it, only the
  matching requests (a dark launch for ``end-user: jason``);
- the run's owner record (``chaosmesh_py.istio.owner_record``) names the copy, in the same
  write. Only records say which routes are copies: a user's route named ``chaosmesh-…`` is a
  user's route, targeted, counted and kept like any other;
- the copy is named ``chaosmesh-<run>-<digest>``, the digest taken over the run id and the copy's
  content, so a copy whose record someone deleted still proves itself ours while nobody changed
  it (``proven_copy_owner``); a retried injection finds its copy (by that name, or as the copy
  with our change and match directly before the original, should the original have been edited
  meanwhile) and writes nothing, which makes retries after an ambiguous API error safe.

A run's changes of one route compose: when the route already has copies of the same run directly
before it, the new change and narrowing are also applied on top of each of them (``_bases``), and
these composed copies go before them in the same order, then the route's own copy. So a fault
after a canary step keeps the step's weights, and jason keeps his dark launch while a fault for
everyone is on. A base contradicting the narrowing is left alone; a base whose own change the
new one replaces is not built on (the route's copy does the same, first); a base that already
carries the change moves up with the new copies. Retries stay idempotent: a composed copy is its
own composition, found by its name. Other runs' copies are never bases.

Removal (``chaosmesh_py.istio.release``) deletes exactly the copies a record names. Every patch
carries the ``resourceVersion`` it was computed from, so a concurrent change makes the API answer
409 and the caller re-reads and plans again (see ``chaosmesh_py.kube.update``): other writers'
edits made meanwhile survive in both directions.

Targeting every route (no route name or index), a route whose own match contradicts the narrowing
(a ``tester`` route beside a ``jason`` narrowing) is skipped and reported, not refused: such a
route can never carry the narrowed traffic. The injection fails only when no route is left.
Route indices given by users count only the routes that are not copies, i.e. the routes the
users wrote, so they stay stable while copies come and go.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from chaosmesh_py.errors import InvalidInput, OwnedByAnotherRun, TargetNotFound
from chaosmesh_py.istio import document, routing, validation
from chaosmesh_py.istio.fault import Abort, Delay, Fault
from chaosmesh_py.istio.fault import from_istio as fault_from_istio
from chaosmesh_py.istio.owner_record import (
    NAME_PREFIX,
    iso,
    new_record,
    owned_name,
    owner_key,
    record_of,
    records,
    self_certifies,
    split_owned_name,
)

PURPOSE = "route-copy"

Patch = dict[str, Any]

# What one copy changes: a fault, or where its traffic goes (destinations, a mirror).
Change = Fault | routing.RoutingChange

# The route fields each kind of change sets: what tells one copy's change from another's.
_CHANGED_FIELDS: dict[str, tuple[str, ...]] = {
    "delay": ("fault",),
    "abort": ("fault",),
    "destinations": ("route",),
    "mirror": ("mirror", "mirrorPercentage", "mirrors"),
}


@dataclass(frozen=True)
class Injection:
    """One request to add a change (a fault, destinations, a mirror) to some routes of a
    VirtualService.

    ``route_name`` / ``route_index`` pick one route; with neither, every route that forwards
    traffic (has ``route`` destinations) is targeted. ``headers`` maps a header name to an Istio
    StringMatch (``{"exact": "jason"}``); ``source_labels`` narrows to callers with those labels.
    """

    run_id: str
    change: Change
    expires_at: datetime
    route_name: str | None = None
    route_index: int | None = None
    headers: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    source_labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def picks_one_route(self) -> bool:
        return self.route_name is not None or self.route_index is not None


@dataclass(frozen=True)
class Skipped:
    """A route targeting every route left out, and why."""

    route: str
    reason: str

    def to_json(self) -> dict[str, str]:
        return {"route": self.route, "reason": self.reason}


class _Contradiction(Exception):
    def __init__(self, field_name: str, problem: str) -> None:
        self.field_name = field_name
        self.problem = problem
        super().__init__(problem)


def owned_routes(resource: Mapping[str, Any]) -> dict[str, str]:
    """Route name → run id, for every copy some run owns: named by a record, or an orphan whose
    content proves it ours."""
    owned = {name: record.run_id for record in records(resource) for name in record.routes}
    for route in _http(resource):
        name = str(route.get("name", ""))
        if name and name not in owned and (run_id := proven_copy_owner(route)) is not None:
            owned[name] = run_id
    return owned


def proven_copy_owner(route: Mapping[str, Any]) -> str | None:
    """The run whose copy ``route`` is, when its name proves it (see the module docstring)."""
    return self_certifies(str(route.get("name", "")), PURPOSE, _content(route))


def unproven_copies(resource: Mapping[str, Any]) -> list[str]:
    """Routes named like copies that no record names and whose content does not prove them
    ours (changed since, or written by hand): reported, never removed."""
    owned = owned_routes(resource)
    return [
        str(r["name"])
        for r in _http(resource)
        if r.get("name") and r["name"] not in owned and split_owned_name(str(r["name"]))
    ]


def run_route_prefix(run_id: str) -> str:
    """How the name of every copy of ``run_id`` begins: a filter for reading Envoy's per-route
    counters, never a proof of ownership (the record is)."""
    return f"{NAME_PREFIX}{run_id}-"


def run_routes(resource: Mapping[str, Any], run_id: str) -> list[dict[str, Any]]:
    """The copies of ``run_id`` present in the resource, in order."""
    owned = owned_routes(resource)
    return [r for r in _http(resource) if owned.get(str(r.get("name", ""))) == run_id]


def user_routes(resource: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The routes as their authors wrote them: every route that is not a copy."""
    owned = owned_routes(resource)
    return [r for r in _http(resource) if str(r.get("name", "")) not in owned]


def plan_injection(
    resource: Mapping[str, Any], injection: Injection, allow_other_runs: bool = False
) -> Patch | None:
    """The merge patch that adds ``injection``, or None when it is already in place.

    Raises InvalidInput / TargetNotFound / OwnedByAnotherRun before anything is written.
    """
    _refuse_other_owners(resource, injection.run_id, allow_other_runs)
    _check_source_labels_apply(resource, injection)
    routes = _http(resource)
    owned = owned_routes(resource)
    copies, _ = _planned_copies(resource, injection, owned)

    copies_before: dict[int, list[dict[str, Any]]] = {}
    new_names = []
    moved: set[str] = set()
    for position, wanted in copies:
        existing = _existing_copy(routes, position, wanted, owned, injection)
        if existing is None:
            copies_before.setdefault(position, []).append(wanted)
            new_names.append(wanted["name"])
        elif existing not in moved and existing in _block_names(routes, position, owned):
            # Already in place (an attempt whose answer was lost), or a copy of the run that
            # already carries this change: it moves up with the new copies, keeping its place
            # among them, so that the route's new copy does not shadow it.
            moved.add(existing)
            copies_before.setdefault(position, []).append(_route_named(routes, existing))
    if not new_names:
        return None

    new_routes: list[dict[str, Any]] = []
    for position, route in enumerate(routes):
        if str(route.get("name", "")) in moved:
            continue
        if position in copies_before:
            # Before the copies already attached to this route: the newest change is the one
            # traffic sees, since the first matching route wins.
            start = len(new_routes)
            while start > 0 and str(new_routes[start - 1].get("name", "")) in owned:
                start -= 1
            new_routes[start:start] = copies_before[position]
        new_routes.append(route)

    own = record_of(resource, injection.run_id) or new_record(
        injection.run_id, injection.expires_at
    )
    record = own.adding(injection.expires_at, routes=new_names)
    new_resource = copy.deepcopy(dict(resource))
    new_resource["spec"]["http"] = new_routes
    errors = validation.admission_errors(str(resource.get("kind", "VirtualService")), new_resource)
    if errors:
        raise InvalidInput(
            _change_field(injection.change), "Istio would reject the result: " + "; ".join(errors)
        )
    return {
        "metadata": {
            "resourceVersion": resource["metadata"]["resourceVersion"],
            "annotations": {owner_key(injection.run_id): record.to_annotation()},
        },
        "spec": {"http": new_routes},
    }


def copy_names(resource: Mapping[str, Any], injection: Injection) -> list[str]:
    """The names of the injection's copies in ``resource``, in route order."""
    routes = _http(resource)
    owned = owned_routes(resource)
    copies, _ = _planned_copies(resource, injection, owned)
    found = [_existing_copy(routes, p, wanted, owned, injection) for p, wanted in copies]
    # One copy may answer for two planned ones (a retry after the original changed).
    return list(dict.fromkeys(name for name in found if name is not None))


def targeted_routes(resource: Mapping[str, Any], injection: Injection) -> list[dict[str, Any]]:
    """The original routes the injection copies (before any is skipped for contradicting
    the narrowing); raises TargetNotFound / InvalidInput as planning would."""
    routes = _http(resource)
    return [routes[p] for p in _select_routes(resource, injection, owned_routes(resource))]


def skipped_routes(resource: Mapping[str, Any], injection: Injection) -> list[Skipped]:
    """The routes targeting every route leaves out in ``resource``, with the reason."""
    if injection.picks_one_route:
        return []
    try:
        return _planned_copies(resource, injection, owned_routes(resource))[1]
    except InvalidInput:
        return []


def without_routes(resource: dict[str, Any], names: set[str]) -> list[str]:
    """Remove the routes named ``names`` from ``resource`` (in place); the names removed."""
    routes = _http(resource)
    removed = [str(r["name"]) for r in routes if r.get("name") in names]
    if removed:
        resource["spec"]["http"] = [r for r in routes if r.get("name") not in names]
    return removed


def describe_routes(resource: Mapping[str, Any]) -> str:
    """A short listing for error messages: index, name and destinations of each user route."""
    parts = []
    for index, route in enumerate(user_routes(resource)):
        hosts = ",".join(
            d.get("destination", {}).get("host", "?") for d in route.get("route") or []
        )
        parts.append(f"[{index}] {route.get('name', '(unnamed)')} -> {hosts or '(no route)'}")
    return "; ".join(parts) or "(no http routes)"


def describe_copy(resource: Mapping[str, Any], name: str) -> str:
    """What the copy ``name`` does, for people ("routes reviews to v2 for header end-user"):
    told by the fields in which it differs from its original, the user route right after the
    copies before it (a copy with no original left says what it carries)."""
    routes = _http(resource)
    owned = owned_routes(resource)
    position = next((i for i, r in enumerate(routes) if r.get("name") == name), None)
    if position is None:
        return "(gone)"
    route = routes[position]
    original = next(
        (r for r in routes[position + 1 :] if str(r.get("name", "")) not in owned), None
    )
    parts = []
    if original is None or not document.same(route.get("route"), original.get("route")):
        hosts = routing.destination_hosts(route)
        subsets = [
            f"{d.get('destination', {}).get('subset') or '(all)'}"
            + (f" {d['weight']}%" if "weight" in d else "")
            for d in route.get("route") or []
        ]
        parts.append(f"routes {', '.join(hosts)} to {', '.join(subsets)}")
    mirror_fields = ("mirror", "mirrorPercentage", "mirrors")
    if any(not document.same(route.get(k), (original or {}).get(k)) for k in mirror_fields) and (
        route.get("mirror") or route.get("mirrors")
    ):
        targets = [(route["mirror"], route.get("mirrorPercentage"))] if route.get("mirror") else []
        targets += [
            (m.get("destination", {}), m.get("percentage")) for m in route.get("mirrors") or []
        ]
        shown_targets = ", ".join(
            f"{float((percentage or {}).get('value', 100)):g}% to "
            + " ".join(str(target[k]) for k in ("host", "subset") if target.get(k))
            for target, percentage in targets
        )
        parts.append(f"mirrors {shown_targets}")
    if route.get("fault") and (
        original is None or not document.same(route.get("fault"), original.get("fault"))
    ):
        found = fault_from_istio(route["fault"])
        parts.append(found.describe() if found is not None else "injects a fault")
    conditions = _shown_who(route)
    return " and ".join(parts or ["copies the route"]) + (
        f" for {conditions}" if conditions else ""
    )


def _shown_who(route: Mapping[str, Any]) -> str:
    """Who the copy applies to, by its headers and source labels (its first match entry's).

    Header values are never shown: a header may carry a credential (a tester's token), and the
    commands that print this (rollback, reap, halt) know no experiment's secrets to hide."""
    entries = route.get("match") or [{}]
    first = entries[0]
    parts = [
        f"header {name}" + ("" if _one(condition)[0] == "exact" else f" ({_one(condition)[0]})")
        for name, condition in (first.get("headers") or {}).items()
    ]
    parts += [f"source {key}={value}" for key, value in (first.get("sourceLabels") or {}).items()]
    if parts and len(entries) > 1:
        parts.append(f"(+{len(entries) - 1} more match)")
    return ", ".join(parts)


def _change_field(change: Change) -> str:
    """The argument users give the change by, for error messages."""
    if isinstance(change, routing.Destinations):
        return "weights" if len(change.weights) > 1 else "subset"
    if isinstance(change, routing.Mirror):
        return "percentage"
    return "fault"


def _http(resource: Mapping[str, Any]) -> list[dict[str, Any]]:
    return list(resource.get("spec", {}).get("http") or [])


def _content(route: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in route.items() if k != "name"}


def _name(resource: Mapping[str, Any]) -> str:
    metadata = resource.get("metadata", {})
    return f"{metadata.get('namespace', '')}/{metadata.get('name', '')}"


def _refuse_other_owners(resource: Mapping[str, Any], run_id: str, allowed: bool) -> None:
    if allowed:
        return
    others = [r for r in records(resource) if r.run_id != run_id]
    if others:
        listing = ", ".join(f"{o.run_id} (expires {iso(o.expires_at)})" for o in others)
        raise OwnedByAnotherRun(
            f"VirtualService {_name(resource)} carries faults of another run: {listing}. "
            "Wait for that run to end, roll it back, or pass allow_other_runs: true to share it."
        )


def _planned_copies(
    resource: Mapping[str, Any], injection: Injection, owned: Mapping[str, str]
) -> tuple[list[tuple[int, dict[str, Any]]], list[Skipped]]:
    """The copies each targeted route should have, by position, in the order they go before it;
    and the routes skipped. A route the run has copies of directly before it gets one copy per
    such copy too, composed (see ``_bases``)."""
    return _composed_plan(resource, injection, owned)[:2]


def _composed_plan(
    resource: Mapping[str, Any], injection: Injection, owned: Mapping[str, str]
) -> tuple[list[tuple[int, dict[str, Any]]], list[Skipped], dict[str, str]]:
    """``_planned_copies``, and for each composed copy the name of the run's copy it is built
    on (copies built on the user's route are not in it)."""
    routes = _http(resource)
    copies: list[tuple[int, dict[str, Any]]] = []
    skipped = []
    composed_on: dict[str, str] = {}
    copied_by_name: dict[str, str] = {}
    for position in _select_routes(resource, injection, owned):
        label = _label(routes, position, owned)
        try:
            wanted = _changed_copy(routes[position], label, injection)
        except _Contradiction as contradiction:
            if injection.picks_one_route:
                raise InvalidInput(
                    contradiction.field_name,
                    contradiction.problem,
                    "target another route, or drop this narrowing",
                ) from None
            skipped.append(Skipped(label, contradiction.problem))
            continue
        if wanted["name"] in copied_by_name:
            # The same copy (same match, same change: a new destination makes the copies of
            # routes that differ only in theirs alike) is already planned before an earlier
            # route and takes all of this traffic first; a second would be dead, and a
            # duplicate route name.
            earlier = copied_by_name[wanted["name"]]
            skipped.append(Skipped(label, f"its copy would be the copy of route {earlier}"))
            continue
        change = _resolved_for(injection.change, routes[position])
        planned_here: dict[str, None] = {}
        for base in _bases(routes, position, owned, injection.run_id):
            try:
                built = _changed_copy(base, label, injection, change)
            except _Contradiction:
                continue  # the base serves no request of the narrowing: nothing to compose
            if built["name"] != base.get("name") and not _same_but_match(built, wanted):
                composed_on[str(built["name"])] = str(base["name"])
            if built["name"] in planned_here or _same_but_match(built, wanted):
                # A copy this change made already, met again as a base (a retry); or a base
                # whose own change the new one replaces: the route's copy, first, does the same
                # for every request the base's would take (its match is narrower).
                continue
            planned_here[built["name"]] = None
            copies.append((position, built))
        copied_by_name[wanted["name"]] = label
        # Kept even when a composed copy with the route's own match takes all its requests:
        # it is what tells this change from a copy the run made that merely looks like it.
        copies.append((position, wanted))
    if not copies:
        reasons = "; ".join(f"{s.route}: {s.reason}" for s in skipped)
        raise InvalidInput(
            "headers" if injection.headers else "source_labels",
            f"no route of VirtualService {_name(resource)} can carry the narrowed traffic "
            f"({reasons})",
            "narrow to traffic some route serves, or target another VirtualService",
        )
    return copies, skipped, composed_on


def _block_names(
    routes: Sequence[Mapping[str, Any]], position: int, owned: Mapping[str, str]
) -> set[str]:
    """The names of the copies directly before the route at ``position``."""
    start = position
    while start > 0 and str(routes[start - 1].get("name", "")) in owned:
        start -= 1
    return {str(r["name"]) for r in routes[start:position]}


def _route_named(routes: Sequence[Mapping[str, Any]], name: str) -> dict[str, Any]:
    return dict(next(r for r in routes if r.get("name") == name))


def _bases(
    routes: Sequence[Mapping[str, Any]], position: int, owned: Mapping[str, str], run_id: str
) -> list[Mapping[str, Any]]:
    """The run's own copies in the block of copies directly before the route at ``position``,
    in order: the requests they take never reach the route, so a new change of the route is
    composed onto each of them too. Other runs' copies are theirs: never built on."""
    block = _block_names(routes, position, owned)
    return [r for r in routes if r.get("name") in block and owned[str(r["name"])] == run_id]


def _resolved_for(change: Change, original: Mapping[str, Any]) -> Change:
    """The change with the host it means: new destinations or a mirror without a host name
    the host of the user's route, also when composed onto a copy that sends elsewhere."""
    if isinstance(change, routing.Destinations | routing.Mirror) and change.host is None:
        hosts = routing.destination_hosts(original)
        if len(hosts) == 1:
            return dataclasses.replace(change, host=hosts[0])
    return change


def _same_but_match(one: Mapping[str, Any], other: Mapping[str, Any]) -> bool:
    return document.same(
        {k: v for k, v in one.items() if k not in ("name", "match")},
        {k: v for k, v in other.items() if k not in ("name", "match")},
    )


def composed_copies(resource: Mapping[str, Any], injection: Injection) -> dict[str, str]:
    """The injection's copies in ``resource`` built on another copy of the run, with the name of
    that copy: the requests its change met before now take the composed copy, which carries that
    change too (fault hits are counted there, ``chaosmesh_py.observe.hits``)."""
    present = {str(r.get("name", "")) for r in _http(resource)}
    composed = _composed_plan(resource, injection, owned_routes(resource))[2]
    return {new: base for new, base in composed.items() if new in present and base in present}


def _existing_copy(
    routes: Sequence[Mapping[str, Any]],
    position: int,
    wanted: Mapping[str, Any],
    owned: Mapping[str, str],
    injection: Injection,
) -> str | None:
    """The name of the run's copy of the route at ``position`` with the wanted change and match:
    by name, or among the copies directly before the route (its original may have been edited
    since the copy was made, changing the name a copy would get now)."""
    if any(r.get("name") == wanted["name"] for r in routes):
        return str(wanted["name"])
    index = position - 1
    while index >= 0 and str(routes[index].get("name", "")) in owned:
        candidate = routes[index]
        if owned[str(candidate["name"])] == injection.run_id and all(
            document.same(candidate.get(key), wanted.get(key))
            for key in _identifying_fields(injection.change.kind)
        ):
            return str(candidate["name"])
        index -= 1
    return None


def _identifying_fields(kind: str) -> tuple[str, ...]:
    """What tells the run's copy of a change from its other copies of the same route: the
    match, and every field any change may set (a fault copy and a canary step with equal
    destinations are different copies), except the destinations of a copy that does not
    change them: those follow the original, which a rollout controller edits all the time."""
    fields = {"match", *(f for fs in _CHANGED_FIELDS.values() for f in fs)}
    if "route" not in _CHANGED_FIELDS[kind]:
        fields.discard("route")
    return tuple(sorted(fields))


def _select_routes(
    resource: Mapping[str, Any], injection: Injection, owned: Mapping[str, str]
) -> list[int]:
    """Positions in spec.http of the routes to copy."""
    routes = _http(resource)
    user_positions = [i for i, r in enumerate(routes) if str(r.get("name", "")) not in owned]
    if injection.route_name is not None:
        chosen = [i for i in user_positions if routes[i].get("name") == injection.route_name]
        if not chosen:
            raise TargetNotFound(
                "route_name",
                f"VirtualService {_name(resource)} has no route named {injection.route_name!r}",
                f"its routes: {describe_routes(resource)}",
            )
        field_name = "route_name"
    elif injection.route_index is not None:
        if not 0 <= injection.route_index < len(user_positions):
            raise TargetNotFound(
                "route_index",
                f"VirtualService {_name(resource)} has no route {injection.route_index}",
                f"its routes: {describe_routes(resource)}",
            )
        chosen = [user_positions[injection.route_index]]
        field_name = "route_index"
    else:
        chosen = [i for i in user_positions if routes[i].get("route")]
        if not chosen:
            raise TargetNotFound(
                "virtual_service",
                f"VirtualService {_name(resource)} has no HTTP route that forwards traffic",
                f"its routes: {describe_routes(resource)}",
            )
        return chosen
    if not routes[chosen[0]].get("route"):
        raise InvalidInput(
            field_name,
            "the route redirects or answers directly; Istio puts faults on forwarding routes only",
            f"pick one of: {describe_routes(resource)}",
        )
    return chosen


def _check_source_labels_apply(resource: Mapping[str, Any], injection: Injection) -> None:
    # Istio ignores sourceLabels unless the route applies to sidecars ("mesh" gateway).
    gateways = resource.get("spec", {}).get("gateways")
    if injection.source_labels and gateways and "mesh" not in gateways:
        raise InvalidInput(
            "source_labels",
            f"VirtualService {_name(resource)} is bound to gateways {gateways} without 'mesh', "
            "so Istio would ignore the source labels",
            "narrow by headers instead, or target the VirtualService that serves mesh traffic",
        )


def _label(routes: Sequence[Mapping[str, Any]], position: int, owned: Mapping[str, str]) -> str:
    """A route as users know it: its name, else its index among the routes they wrote."""
    name = routes[position].get("name")
    if name:
        return str(name)
    index = sum(1 for r in routes[:position] if str(r.get("name", "")) not in owned)
    return f"#{index}"


def _changed_copy(
    original: Mapping[str, Any],
    label: str,
    injection: Injection,
    change: Change | None = None,
) -> dict[str, Any]:
    """``original`` (a user's route, or a copy of the run being composed onto) with the
    injection's narrowing and ``change`` (default: the injection's) applied on top."""
    route_copy = copy.deepcopy(dict(original))
    change = injection.change if change is None else change
    if isinstance(change, Delay | Abort):
        # A fault already on the route stays in force for the narrowed traffic; ours overrides
        # only the part (delay or abort) it injects.
        route_copy["fault"] = {**(original.get("fault") or {}), **change.to_istio()}
    else:
        # Everything else the route does (retries, timeout, a fault of theirs) stays as it is.
        change.applied_to(route_copy)
    route_copy.pop("name", None)
    if injection.headers or injection.source_labels:
        entries = original.get("match") or [{}]
        narrowed = []
        contradictions = []
        for entry in entries:
            try:
                narrowed.append(_narrow(entry, injection))
            except _Contradiction as contradiction:
                contradictions.append(contradiction)
        if not narrowed:
            # Every entry contradicts it: nothing the route matches is narrowed traffic.
            first = contradictions[0]
            raise _Contradiction(first.field_name, f"route {label} {first.problem}")
        route_copy["match"] = narrowed
    digest = document.digest(PURPOSE, injection.run_id, route_copy)
    return {"name": owned_name(injection.run_id, digest), **route_copy}


def _narrow(entry: Mapping[str, Any], injection: Injection) -> dict[str, Any]:
    narrowed = copy.deepcopy(dict(entry))
    if injection.headers:
        merged = dict(narrowed.get("headers") or {})
        excluded = dict(narrowed.get("withoutHeaders") or {})
        for name, ours in injection.headers.items():
            if name in merged:
                merged[name] = _combine("headers", name, merged[name], ours)
            else:
                merged[name] = dict(ours)
            if name in excluded and _implies(merged[name], excluded[name]):
                raise _Contradiction(
                    "headers",
                    f"excludes {name}={_shown_match(excluded[name])}, "
                    f"so {name}={_shown_match(ours)} would match nothing",
                )
        narrowed["headers"] = merged
    if injection.source_labels:
        labels = dict(narrowed.get("sourceLabels") or {})
        for key, value in injection.source_labels.items():
            if key in labels and labels[key] != value:
                raise _Contradiction(
                    "source_labels",
                    f"already requires source label {key}={labels[key]}, "
                    f"so {key}={value} would match nothing",
                )
            labels[key] = value
        narrowed["sourceLabels"] = labels
    return narrowed


def _combine(
    field_name: str, header: str, theirs: Mapping[str, str], ours: Mapping[str, str]
) -> dict[str, str]:
    """The one condition meaning both (a match holds one per header), or _Contradiction."""
    if dict(theirs) == dict(ours):
        return dict(ours)
    (their_kind, their_value), (our_kind, our_value) = _one(theirs), _one(ours)
    both = {their_kind, our_kind}
    stricter: dict[str, str] | None
    if both == {"exact"}:
        stricter = None
    elif "exact" in both:
        exact, other = (theirs, ours) if their_kind == "exact" else (ours, theirs)
        stricter = dict(exact) if _implies(exact, other) else None
    elif both == {"prefix"}:
        if our_value.startswith(their_value):
            stricter = dict(ours)
        elif their_value.startswith(our_value):
            stricter = dict(theirs)
        else:
            stricter = None
    else:
        raise _Contradiction(
            field_name,
            f"already requires {header}={_shown_match(theirs)}; a route matches one condition "
            f"per header, and {_shown_match(ours)} cannot be combined with it",
        )
    if stricter is None:
        raise _Contradiction(
            field_name,
            f"already requires {header}={_shown_match(theirs)}, "
            f"so {header}={_shown_match(ours)} would match nothing",
        )
    return stricter


def _implies(exact: Mapping[str, str], condition: Mapping[str, str]) -> bool:
    """Every value ``exact`` matches also matches ``condition`` (only decided for an exact)."""
    kind, value = _one(exact)
    other_kind, other_value = _one(condition)
    if kind != "exact":
        return dict(exact) == dict(condition)
    if other_kind == "exact":
        return value == other_value
    if other_kind == "prefix":
        return value.startswith(other_value)
    if other_kind == "regex":
        try:
            return re.fullmatch(other_value, value) is not None
        except re.error:
            return False
    return False


def _one(condition: Mapping[str, str]) -> tuple[str, str]:
    (kind, value), *_ = condition.items() if condition else (("exact", ""),)
    return str(kind), str(value)


def _shown_match(condition: Mapping[str, str]) -> str:
    kind, value = _one(condition)
    return value if kind == "exact" else f"{kind}:{value}"
