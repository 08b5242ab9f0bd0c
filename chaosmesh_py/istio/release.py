"""Removing what runs own on one object, from their records: pure plans, whatever the form.

One merge patch per object however many runs and forms are involved: the route copies the
records name (and orphaned copies that prove themselves ours) are removed, every overridden field
that still holds what the run wrote gets back the value it replaced, and the records and fences
go. A field someone else changed meanwhile keeps their value and comes back as a conflict.
Objects a run created as a whole are not patched but deleted (``owned_object``; the engine
does it with preconditions).

``Extra`` carries what a run's ledger names on the object, for when its record was removed by
someone: ownership is what the run recorded, on the object or in its ledger.
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from chaosmesh_py.istio import document, field_override, route_copy
from chaosmesh_py.istio.owner_record import (
    FieldRecord,
    annotations_of,
    fence_key,
    holdings,
    owner_key,
    path_text,
    record_of,
)

Patch = dict[str, Any]


@dataclass(frozen=True)
class Extra:
    """What a run's ledger says it added to the object (used when its record is gone)."""

    routes: tuple[str, ...] = ()
    fields: tuple[FieldRecord, ...] = ()


@dataclass
class Released:
    """What a release plan removes: per object, for the report."""

    runs: list[str] = field(default_factory=list)
    routes: list[str] = field(default_factory=list)
    fields: list[str] = field(default_factory=list)
    # What each restored field had been set to and is back to, for people, by path.
    described: dict[str, str] = field(default_factory=dict)
    conflicts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def anything(self) -> bool:
        return bool(self.routes or self.fields or self.conflicts)


def runs_holding(resource: Mapping[str, Any]) -> list[str]:
    """Every run with a record, a fence or a proven orphan copy on the resource."""
    found = set(holdings(resource).run_ids())
    found |= set(route_copy.owned_routes(resource).values())
    return sorted(found)


def expired_runs(resource: Mapping[str, Any], now: datetime | None = None) -> list[str]:
    """The runs whose hold on the resource is due for reaping: the record expired, or none is
    left to honour (a fence, or a proven orphan copy whose record someone deleted)."""
    moment = now or datetime.now(UTC)
    live = {r.run_id for r in holdings(resource).records if not r.expired(moment)}
    return [run_id for run_id in runs_holding(resource) if run_id not in live]


def plan_release(
    resource: Mapping[str, Any],
    run_ids: Collection[str],
    extra: Mapping[str, Extra] | None = None,
    only_routes: Collection[str] | None = None,
    only_fields: bool = False,
) -> tuple[Patch | None, Released]:
    """The merge patch removing every trace of each run in ``run_ids`` (with ``only_routes``:
    only those copies, keeping the rest and the record; with ``only_fields``: only the field
    overrides, keeping the copies and the record of them), and what it removes. None when there
    is nothing to remove."""
    extra = extra or {}
    current = copy.deepcopy(dict(resource))
    current.setdefault("spec", {})
    released = Released()
    notes = annotations_of(resource)
    changes: dict[str, str | None] = {}
    owned = route_copy.owned_routes(resource)
    for run_id in run_ids:
        record = record_of(resource, run_id)
        named = set(record.routes if record else ()) | set(extra.get(run_id, Extra()).routes)
        named |= {name for name, owner in owned.items() if owner == run_id}
        if only_routes is not None:
            named &= set(only_routes)
        if only_fields:
            named = set()
        removed = route_copy.without_routes(current, named)
        released.routes += removed
        if only_routes is not None:
            if record is not None and removed:
                left = tuple(name for name in record.routes if name not in set(removed))
                kept = replace(record, routes=left)
                changes[owner_key(run_id)] = None if kept.holds_nothing else kept.to_annotation()
            if removed and run_id not in released.runs:
                released.runs.append(run_id)
            continue
        fields: Sequence[FieldRecord] = (
            record.fields if record else extra.get(run_id, Extra()).fields
        )
        restored, conflicts = field_override.restore(current, fields)
        released.fields += [path_text(f.path) for f in restored]
        released.described.update({path_text(f.path): field_override.describe(f) for f in restored})
        released.conflicts += [{"run_id": run_id, **c} for c in conflicts]
        if only_fields:
            if record is not None and record.fields:
                kept = replace(record, fields=())
                changes[owner_key(run_id)] = None if kept.holds_nothing else kept.to_annotation()
            if restored or conflicts:
                released.runs.append(run_id)
            continue
        for key in (owner_key(run_id), fence_key(run_id)):
            if key in notes:
                changes[key] = None
        held = owner_key(run_id) in notes or fence_key(run_id) in notes
        if removed or restored or conflicts or held:
            released.runs.append(run_id)
    spec = document.merge_patch(resource.get("spec") or {}, current["spec"])
    if not spec and not changes:
        return None, released
    patch: Patch = {"metadata": {"resourceVersion": resource["metadata"]["resourceVersion"]}}
    if changes:
        patch["metadata"]["annotations"] = changes
    if spec:
        patch["spec"] = spec
    return patch, released


def plan_fence(
    resource: Mapping[str, Any], run_id: str, now: datetime | None = None
) -> Patch | None:
    """A write that changes the resourceVersion, so that a write of ``run_id`` still in flight
    (sent by a process that was then interrupted or killed) fails its precondition instead of
    landing after the rollback has looked. The server does not bump the version for a write
    that changes nothing, hence the mark; ``plan_release`` removes it."""
    if fence_key(run_id) in annotations_of(resource):
        return None
    moment = now or datetime.now(UTC)
    return {
        "metadata": {
            "resourceVersion": resource["metadata"]["resourceVersion"],
            "annotations": {fence_key(run_id): moment.isoformat(timespec="seconds")},
        }
    }
