"""Owned edits on a VirtualService: pure functions from the object read to the patch to write.

How a fault is added, so that it can be removed exactly:
- each targeted HTTP route is **copied**; the copy carries the extra match (headers, source
  labels) and the fault, and is inserted directly before the original, because Istio takes the
  first route that matches. The original route is never modified;
- the copy is named ``chaosmesh-<run>-<digest>``, the digest taken from the original route, the
  fault and the match: repeating the same injection finds its copy already there and writes
  nothing, which makes retries after an ambiguous API error safe;
- the resource gets one annotation per run, ``fault.chaosmesh.io/<run>``, holding the run's route
  names and an expiry, written in the same patch as the routes.

Removal deletes this run's copies and annotation and nothing else. Every patch carries the
``resourceVersion`` it was computed from, so a concurrent change makes the API answer 409 and the
caller re-reads and plans again (see ``chaosmesh_py.kube.update``): other writers' edits made
meanwhile survive in both directions.

Route indices given by users count only routes that are not fault copies, i.e. the routes the
user wrote, so they stay stable while copies come and go.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from chaosmesh_py.errors import InvalidInput, OwnedByAnotherRun, TargetNotFound, shown
from chaosmesh_py.istio import grammar, validation
from chaosmesh_py.istio.fault import Fault

OWNER_ANNOTATION_PREFIX = "fault.chaosmesh.io/"
# A short-lived mark a rollback writes when a write of its run may still be in flight (see
# ``plan_fence``); the removal that follows takes it away again.
FENCE_ANNOTATION_PREFIX = "fence.chaosmesh.io/"
ROUTE_NAME_PREFIX = "chaosmesh-"

Patch = dict[str, Any]

_STRING_MATCH_KINDS = ("exact", "prefix", "regex")


@dataclass(frozen=True)
class Ownership:
    """What one run holds on one resource, as recorded in its annotation."""

    run_id: str
    expires_at: datetime
    routes: tuple[str, ...]

    def expired(self, now: datetime) -> bool:
        return now >= self.expires_at


@dataclass(frozen=True)
class Injection:
    """One request to add a fault to some routes of a VirtualService.

    ``route_name`` / ``route_index`` pick one route; with neither, every route that forwards
    traffic (has ``route`` destinations) is targeted. ``headers`` maps a header name to an Istio
    StringMatch (``{"exact": "jason"}``); ``source_labels`` narrows to callers with those labels.
    """

    run_id: str
    fault: Fault
    expires_at: datetime
    route_name: str | None = None
    route_index: int | None = None
    headers: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    source_labels: Mapping[str, str] = field(default_factory=dict)


def annotation_key(run_id: str) -> str:
    return OWNER_ANNOTATION_PREFIX + run_id


def is_fault_copy(route: Mapping[str, Any]) -> bool:
    return str(route.get("name", "")).startswith(ROUTE_NAME_PREFIX)


def ownerships(resource: Mapping[str, Any]) -> list[Ownership]:
    """Every run's ownership recorded on the resource (unreadable records are skipped)."""
    found = []
    annotations = resource.get("metadata", {}).get("annotations") or {}
    for key, value in annotations.items():
        if not key.startswith(OWNER_ANNOTATION_PREFIX):
            continue
        try:
            record = json.loads(value)
            found.append(
                Ownership(
                    run_id=key.removeprefix(OWNER_ANNOTATION_PREFIX),
                    expires_at=datetime.fromisoformat(record["expires"]),
                    routes=tuple(record["routes"]),
                )
            )
        except (ValueError, KeyError, TypeError):
            continue
    return found


def ownership_of(resource: Mapping[str, Any], run_id: str) -> Ownership | None:
    return next((o for o in ownerships(resource) if o.run_id == run_id), None)


def run_route_prefix(run_id: str) -> str:
    """How the name of every fault copy of ``run_id`` begins."""
    return f"{ROUTE_NAME_PREFIX}{run_id}-"


def run_routes(resource: Mapping[str, Any], run_id: str) -> list[dict[str, Any]]:
    """The fault copies of ``run_id`` present in the resource, in order."""
    prefix = run_route_prefix(run_id)
    return [r for r in _http(resource) if str(r.get("name", "")).startswith(prefix)]


def plan_injection(
    resource: Mapping[str, Any], injection: Injection, allow_other_runs: bool = False
) -> Patch | None:
    """The merge patch that adds ``injection``, or None when it is already in place.

    Raises InvalidInput / TargetNotFound / OwnedByAnotherRun before anything is written.
    """
    _refuse_other_owners(resource, injection.run_id, allow_other_runs)
    routes = _http(resource)
    targets = _select_routes(resource, injection)
    _check_source_labels_apply(resource, injection)

    copies_before: dict[int, list[dict[str, Any]]] = {}
    new_names = []
    for position in targets:
        original = routes[position]
        fault_copy = _fault_copy(original, _user_index(routes, position), injection)
        if any(r.get("name") == fault_copy["name"] for r in routes):
            continue  # already injected, e.g. by an attempt whose answer was lost
        copies_before.setdefault(position, []).append(fault_copy)
        new_names.append(fault_copy["name"])
    if not new_names:
        return None

    new_routes: list[dict[str, Any]] = []
    for position, route in enumerate(routes):
        if position in copies_before:
            # Before the copies already attached to this route: the newest fault is the one
            # traffic sees, since the first matching route wins.
            start = len(new_routes)
            while start > 0 and is_fault_copy(new_routes[start - 1]):
                start -= 1
            new_routes[start:start] = copies_before[position]
        new_routes.append(route)

    previous = ownership_of(resource, injection.run_id)
    recorded = tuple(previous.routes) if previous else ()
    expires_at = (
        max(injection.expires_at, previous.expires_at) if previous else injection.expires_at
    )
    record = {"expires": _iso(expires_at), "routes": [*recorded, *new_names]}

    new_resource = copy.deepcopy(dict(resource))
    new_resource["spec"]["http"] = new_routes
    errors = validation.admission_errors(str(resource.get("kind", "VirtualService")), new_resource)
    if errors:
        raise InvalidInput("fault", "Istio would reject the result: " + "; ".join(errors))
    return {
        "metadata": {
            "resourceVersion": resource["metadata"]["resourceVersion"],
            "annotations": {annotation_key(injection.run_id): json.dumps(record)},
        },
        "spec": {"http": new_routes},
    }


def copy_names(resource: Mapping[str, Any], injection: Injection) -> list[str]:
    """The names the injection's fault copies have in ``resource``, in route order."""
    routes = _http(resource)
    return [
        _fault_copy(routes[p], _user_index(routes, p), injection)["name"]
        for p in _select_routes(resource, injection)
    ]


def plan_removal(
    resource: Mapping[str, Any], run_id: str, only: Collection[str] | None = None
) -> Patch | None:
    """The merge patch that removes every trace of ``run_id`` (or only its routes named in
    ``only``, keeping the rest and their record), or None when there is nothing to remove."""
    own = ownership_of(resource, run_id)
    recorded = set(own.routes) if own else set()
    mine = {r.get("name") for r in run_routes(resource, run_id)} | recorded
    if only is not None:
        mine &= set(only)
    routes = _http(resource)
    kept = [r for r in routes if r.get("name") not in mine]
    key = annotation_key(run_id)
    annotated = key in (resource.get("metadata", {}).get("annotations") or {})
    left = [name for name in (own.routes if own else ()) if name not in mine]
    record_changes = annotated and (not left or len(left) != len(recorded))
    fenced = fence_key(run_id) in (resource.get("metadata", {}).get("annotations") or {})
    if len(kept) == len(routes) and not record_changes and not fenced:
        return None
    patch: Patch = {"metadata": {"resourceVersion": resource["metadata"]["resourceVersion"]}}
    if record_changes:
        assert own is not None
        value = json.dumps({"expires": _iso(own.expires_at), "routes": left}) if left else None
        patch["metadata"]["annotations"] = {key: value}
    if fenced:
        patch["metadata"].setdefault("annotations", {})[fence_key(run_id)] = None
    if len(kept) != len(routes):
        patch["spec"] = {"http": kept}
    return patch


def fence_key(run_id: str) -> str:
    return FENCE_ANNOTATION_PREFIX + run_id


def plan_fence(resource: Mapping[str, Any], run_id: str) -> Patch | None:
    """A write that changes the resourceVersion, so that a write of ``run_id`` still in flight
    (sent by a process that was then interrupted or killed) fails its precondition instead of
    landing after the rollback has looked. The server does not bump the version for a write
    that changes nothing, hence the mark; ``plan_removal`` removes it."""
    if fence_key(run_id) in (resource.get("metadata", {}).get("annotations") or {}):
        return None
    return {
        "metadata": {
            "resourceVersion": resource["metadata"]["resourceVersion"],
            "annotations": {fence_key(run_id): _iso(datetime.now(UTC))},
        }
    }


def owner_run_ids(resource: Mapping[str, Any]) -> list[str]:
    """Every run with a trace on the resource: an owner annotation, or a fault copy whose
    annotation someone else removed (the run id is its name between prefix and digest)."""
    found = {owner.run_id for owner in ownerships(resource)}
    for key in resource.get("metadata", {}).get("annotations") or {}:
        if key.startswith(FENCE_ANNOTATION_PREFIX):
            found.add(key.removeprefix(FENCE_ANNOTATION_PREFIX))
    for route in _http(resource):
        if is_fault_copy(route):
            found.add(str(route["name"]).removeprefix(ROUTE_NAME_PREFIX).rpartition("-")[0])
    return sorted(found - {""})


def plan_removal_of_runs(resource: Mapping[str, Any], run_ids: Collection[str]) -> Patch | None:
    """One merge patch removing every trace of each run in ``run_ids``, or None if none is
    there: one write per resource however many runs left something on it."""
    current: dict[str, Any] = copy.deepcopy(dict(resource))
    combined: Patch = {"metadata": {"resourceVersion": resource["metadata"]["resourceVersion"]}}
    for run_id in run_ids:
        patch = plan_removal(current, run_id)
        if patch is None:
            continue
        annotations = patch["metadata"].get("annotations")
        if annotations:
            combined["metadata"].setdefault("annotations", {}).update(annotations)
            kept = {
                key: value
                for key, value in {
                    **(current["metadata"].get("annotations") or {}),
                    **annotations,
                }.items()
                if value is not None
            }
            current["metadata"]["annotations"] = kept
        if "spec" in patch:
            combined["spec"] = patch["spec"]
            current["spec"]["http"] = patch["spec"]["http"]
    return combined if len(combined) > 1 or len(combined["metadata"]) > 1 else None


def user_routes(resource: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The routes as their authors wrote them: every route that is not a fault copy."""
    return [r for r in _http(resource) if not is_fault_copy(r)]


def describe_routes(resource: Mapping[str, Any]) -> str:
    """A short listing for error messages: index, name and destinations of each user route."""
    parts = []
    for index, route in enumerate(user_routes(resource)):
        hosts = ",".join(
            d.get("destination", {}).get("host", "?") for d in route.get("route") or []
        )
        parts.append(f"[{index}] {route.get('name', '(unnamed)')} -> {hosts or '(no route)'}")
    return "; ".join(parts) or "(no http routes)"


def _http(resource: Mapping[str, Any]) -> list[dict[str, Any]]:
    return list(resource.get("spec", {}).get("http") or [])


def _name(resource: Mapping[str, Any]) -> str:
    metadata = resource.get("metadata", {})
    return f"{metadata.get('namespace', '')}/{metadata.get('name', '')}"


def _refuse_other_owners(resource: Mapping[str, Any], run_id: str, allowed: bool) -> None:
    if allowed:
        return
    others = [o for o in ownerships(resource) if o.run_id != run_id]
    if others:
        listing = ", ".join(f"{o.run_id} (expires {_iso(o.expires_at)})" for o in others)
        raise OwnedByAnotherRun(
            f"VirtualService {_name(resource)} carries faults of another run: {listing}. "
            "Wait for that run to end, roll it back, or pass allow_other_runs: true to share it."
        )


def _select_routes(resource: Mapping[str, Any], injection: Injection) -> list[int]:
    """Positions in spec.http of the routes to copy."""
    routes = _http(resource)
    user_positions = [i for i, r in enumerate(routes) if not is_fault_copy(r)]
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


def _user_index(routes: Sequence[Mapping[str, Any]], position: int) -> int:
    return sum(1 for r in routes[:position] if not is_fault_copy(r))


def _fault_copy(
    original: Mapping[str, Any], user_index: int, injection: Injection
) -> dict[str, Any]:
    identity = original.get("name") or f"#{user_index}"
    digest = hashlib.sha256(
        json.dumps(
            {
                "route": identity,
                "fault": injection.fault.to_istio(),
                "headers": injection.headers,
                "sourceLabels": injection.source_labels,
            },
            sort_keys=True,
        ).encode()
    ).hexdigest()[:10]
    route_copy = copy.deepcopy(dict(original))
    route_copy["name"] = f"{ROUTE_NAME_PREFIX}{injection.run_id}-{digest}"
    # A fault already on the route stays in force for the narrowed traffic; ours overrides
    # only the part (delay or abort) it injects.
    route_copy["fault"] = {**(original.get("fault") or {}), **injection.fault.to_istio()}
    if injection.headers or injection.source_labels:
        route_copy["match"] = [
            _narrow(entry, injection, identity) for entry in original.get("match") or [{}]
        ]
    return route_copy


def _narrow(entry: Mapping[str, Any], injection: Injection, route: str) -> dict[str, Any]:
    narrowed = copy.deepcopy(dict(entry))
    for field_name, wire_name, extra in (
        ("headers", "headers", injection.headers),
        ("source_labels", "sourceLabels", injection.source_labels),
    ):
        if not extra:
            continue
        merged = dict(narrowed.get(wire_name) or {})
        for key, condition in extra.items():
            if key in merged and merged[key] != condition:
                raise InvalidInput(
                    field_name,
                    f"route {route} already requires {key}={merged[key]}, "
                    f"so {key}={condition} would match nothing",
                    "target another route, or drop this narrowing",
                )
            merged[key] = condition
        narrowed[wire_name] = merged
    return narrowed


def parse_headers(value: object) -> dict[str, dict[str, str]]:
    """Header narrowing from an experiment: ``{"end-user": "jason"}`` or Istio StringMatch form.

    Each name and condition is checked as Istio and Envoy would (``istio.grammar``): a bad one
    fails here, naming the field, rather than after the write."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput(
            "headers", f"must be a mapping, got {shown(value)}", 'e.g. {"end-user": "jason"}'
        )
    parsed = {}
    for name, given in value.items():
        if not isinstance(name, str) or not name:
            raise InvalidInput("headers", f"header name {shown(name)} must be a non-empty string")
        problem = grammar.header_name_problem(name)
        if problem is not None:
            raise problem.at("headers")
        condition = {"exact": given} if isinstance(given, str) else given
        if (
            not isinstance(condition, dict)
            or len(condition) != 1
            or next(iter(condition)) not in _STRING_MATCH_KINDS
            or not isinstance(next(iter(condition.values())), str)
        ):
            raise InvalidInput(
                f"headers.{name}",
                f"{shown(condition)} is not a header match",
                'use a string for an exact match, or one of {"exact"|"prefix"|"regex": "..."}',
            )
        _check_condition(condition, f"headers.{name}")
        parsed[name] = dict(condition)
    return parsed


def _check_condition(condition: Mapping[str, str], field_name: str) -> None:
    ((kind, text),) = condition.items()
    if kind == "regex":
        problem = grammar.regex_problem(text)
    elif kind == "prefix" and text == "":
        problem = grammar.Problem("is empty", "Istio refuses an empty prefix; leave it out")
    else:
        problem = grammar.header_value_problem(text)
    if problem is not None:
        raise problem.at(f"{field_name}.{kind}")


def parse_source_labels(value: object) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and k and isinstance(v, str) for k, v in value.items()
    ):
        raise InvalidInput(
            "source_labels",
            f"must map label names to string values, got {shown(value)}",
            'e.g. {"app": "productpage"}',
        )
    for key, label_value in value.items():
        problem = grammar.label_key_problem(key)
        if problem is not None:
            raise problem.at("source_labels")
        problem = grammar.label_value_problem(label_value)
        if problem is not None:
            raise problem.at(f"source_labels.{key}")
    return dict(value)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def parse_route_choice(route_name: object, route_index: object) -> tuple[str | None, int | None]:
    """At most one of a route name or a route index (counting the routes as written, from 0)."""
    if route_name is not None and route_index is not None:
        raise InvalidInput("route_name/route_index", "give one of them, not both")
    if route_name is not None and (not isinstance(route_name, str) or not route_name):
        raise InvalidInput("route_name", f"must be a non-empty string, got {shown(route_name)}")
    if route_index is not None and (
        isinstance(route_index, bool) or not isinstance(route_index, int) or route_index < 0
    ):
        raise InvalidInput(
            "route_index",
            f"must be a whole number from 0, got {shown(route_index)}",
            "0 is the first route",
        )
    return route_name, route_index
