"""Field overrides: set one field of an existing object, remembering the value it replaced.

For faults that change a setting rather than add a route: a DestinationRule's
``trafficPolicy.connectionPool`` or ``outlierDetection``, a route's ``timeout``, ``retries`` or
destination weights. The run's owner record (``chaosmesh_py.istio.owner_record``) keeps, per
field, the path, the value written and the value replaced, in the same write as the field.

Removal restores the replaced value (or removes the field, and the objects created to hold it,
when there was none) **only where the field still holds the value we wrote**. Where another
writer changed it meanwhile, their value stays and the removal reports a conflict: their intent
is newer than ours, and restoring ours would silently undo it.

A path is a tuple of segments: object keys, and list elements picked by their own fields
(``{"name": "v1"}``), never by index, since indices move when others insert. A selector value
of null asks for the field to be absent (``{"name": null, "match": null}``: the unnamed route
that matches everything), so an element with no identifying field of its own can still be
picked. Paths start at ``spec``: metadata (and the records in it) is never overridden. Two
runs never hold the same or nested fields: a second override on top of another run's would
make either removal restore a value the other wrote.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from chaosmesh_py.errors import InvalidInput, OwnedByAnotherRun, TargetNotFound, shown
from chaosmesh_py.istio import document, validation
from chaosmesh_py.istio.owner_record import (
    ABSENT,
    FieldRecord,
    Path,
    Segment,
    new_record,
    owner_key,
    path_text,
    record_of,
    records,
)

Patch = dict[str, Any]


class Ambiguous(Exception):
    """A list selector matched several elements: the field cannot be told apart."""


def parse_path(value: object, field_name: str = "path") -> Path:
    """A field path from an experiment: ``["spec", "subsets", {"name": "v1"}, "trafficPolicy"]``
    or the dotted shorthand ``"spec.trafficPolicy.connectionPool"`` (object keys only)."""
    segments: list[Any]
    if isinstance(value, str):
        segments = value.split(".")
    elif isinstance(value, list | tuple):
        segments = list(value)
    else:
        raise InvalidInput(
            field_name, f"must be a field path, got {shown(value)}", 'e.g. "spec.trafficPolicy"'
        )
    if len(segments) < 2 or segments[0] != "spec":
        raise InvalidInput(
            field_name,
            f"{shown(value)} does not name a field under spec",
            "only spec fields are overridden, e.g. spec.trafficPolicy.connectionPool",
        )
    for segment in segments:
        if isinstance(segment, str) and segment:
            continue
        if (
            isinstance(segment, Mapping)
            and segment
            and all(isinstance(k, str) and k for k in segment)
        ):
            continue
        raise InvalidInput(
            field_name,
            f"segment {shown(segment)} is neither a key nor a list element selector",
            'select list elements by their fields, e.g. {"name": "v1"}',
        )
    return tuple(segments)


def read_at(resource: Mapping[str, Any], path: Path) -> Any:
    """The value at ``path``, or ABSENT. Raises Ambiguous when a selector matches several."""
    node: Any = resource
    for segment in path:
        if isinstance(segment, str):
            if not isinstance(node, Mapping) or segment not in node:
                return ABSENT
            node = node[segment]
        else:
            position = _select(node, segment)
            if position is None:
                return ABSENT
            node = node[position]
    return node


def plan_override(
    resource: Mapping[str, Any],
    run_id: str,
    path: Path,
    value: Any,
    expires_at: datetime,
) -> Patch | None:
    """The merge patch that sets ``path`` to ``value`` and records it, or None when this run
    already holds the field (a retried write, or the same override asked twice).

    Raises OwnedByAnotherRun, InvalidInput or TargetNotFound before anything is written.
    """
    own = record_of(resource, run_id)
    for record in records(resource):
        for held in record.fields:
            if held.path == path and record.run_id == run_id:
                return None
            if _nested(held.path, path):
                if record.run_id != run_id:
                    raise OwnedByAnotherRun(
                        f"{_name(resource)}: field {path_text(held.path)} is overridden by run "
                        f"{record.run_id}; wait for it to end or roll it back"
                    )
                raise InvalidInput(
                    "path",
                    f"{path_text(path)} overlaps {path_text(held.path)}, which this run "
                    "already overrides",
                    "override one of them",
                )
    try:
        replaced = read_at(resource, path)
    except Ambiguous:
        raise TargetNotFound(
            "path", f"{path_text(path)} matches several list elements in {_name(resource)}"
        ) from None
    created = _missing_ancestors(resource, path)
    updated = copy.deepcopy(dict(resource))
    _write(updated, path, copy.deepcopy(value))
    errors = validation.admission_errors(str(resource.get("kind", "")), updated)
    if errors:
        raise InvalidInput("value", "Istio would reject the result: " + "; ".join(errors))
    record = (own or new_record(run_id, expires_at)).adding(
        expires_at,
        fields=[FieldRecord(path, copy.deepcopy(value), copy.deepcopy(replaced), created)],
    )
    patch: Patch = {
        "metadata": {
            "resourceVersion": resource["metadata"]["resourceVersion"],
            "annotations": {owner_key(run_id): record.to_annotation()},
        }
    }
    spec = document.merge_patch(resource.get("spec") or {}, updated["spec"])
    if spec:
        patch["spec"] = spec
    return patch


def restore(
    resource: dict[str, Any], fields: Sequence[FieldRecord]
) -> tuple[list[FieldRecord], list[dict[str, Any]]]:
    """Put back, in ``resource`` (changed in place), every field that still holds what we wrote;
    newest first, so nested history unwinds in order. Returns the fields restored and one
    conflict per field someone else changed meanwhile (left as they set it); a field already
    holding the value it had before is neither."""
    restored: list[FieldRecord] = []
    conflicts: list[dict[str, Any]] = []
    for held in reversed(fields):
        try:
            now = read_at(resource, held.path)
        except Ambiguous:
            now = "(several list elements match)"
        if now is not ABSENT and document.same(now, held.wrote):
            if held.replaced is ABSENT:
                _delete(resource, held.path)
                for ancestor in sorted(held.created, key=len, reverse=True):
                    if read_at(resource, ancestor) == {}:
                        _delete(resource, ancestor)
            else:
                _write(resource, held.path, copy.deepcopy(held.replaced))
            restored.append(held)
            continue
        if _same_or_both_absent(now, held.replaced):
            # Back as it was already: restored by an earlier write of this removal (the API
            # answer is re-planned, the ledger still naming the field) or by someone's hand.
            continue
        conflicts.append(
            {
                "field": path_text(held.path),
                "wrote": held.wrote,
                "now": "(absent)" if now is ABSENT else now,
                "replaced": "(absent)" if held.replaced is ABSENT else held.replaced,
            }
        )
    return restored, conflicts


def describe(held: FieldRecord) -> str:
    """What an override did and undoes, for people, beside its path: ``the run had set it to
    "0.5s"; back to unset``."""
    was = "unset" if held.replaced is ABSENT else _shown_value(held.replaced)
    return f"the run had set it to {_shown_value(held.wrote)}; back to {was}"


def _shown_value(value: Any) -> str:
    text = json.dumps(value, separators=(",", ":"), sort_keys=True)
    return text if len(text) <= 80 else text[:77] + "..."


def _same_or_both_absent(now: Any, replaced: Any) -> bool:
    if now is ABSENT or replaced is ABSENT:
        return now is replaced
    return document.same(now, replaced)


def _nested(a: Path, b: Path) -> bool:
    """One path is the other, or inside it."""
    shorter = min(len(a), len(b))
    return a[:shorter] == b[:shorter]


def _select(node: Any, selector: Mapping[str, Any]) -> int | None:
    if not isinstance(node, list):
        return None
    found = [
        i
        for i, element in enumerate(node)
        if isinstance(element, Mapping)
        and all(
            element.get(k) is None if v is None else k in element and document.same(element[k], v)
            for k, v in selector.items()
        )
    ]
    if len(found) > 1:
        raise Ambiguous
    return found[0] if found else None


def _missing_ancestors(resource: Mapping[str, Any], path: Path) -> tuple[Path, ...]:
    missing = []
    for end in range(1, len(path)):
        if read_at(resource, path[:end]) is ABSENT:
            if not isinstance(path[end - 1], str):
                raise TargetNotFound(
                    "path",
                    f"{_name(resource)} has no {path_text(path[:end])}",
                    "list elements are selected, never created",
                )
            missing.append(path[:end])
    return tuple(missing)


def _write(resource: dict[str, Any], path: Path, value: Any) -> None:
    node = _parent(resource, path, create=True)
    last = path[-1]
    if isinstance(last, str):
        node[last] = value
    else:
        position = _select(node, last)
        if position is None:
            raise TargetNotFound("path", f"no list element matches {path_text(path)}")
        node[position] = value


def _delete(resource: dict[str, Any], path: Path) -> None:
    node = _parent(resource, path, create=False)
    last = path[-1]
    if isinstance(last, str):
        node.pop(last, None)
    else:
        position = _select(node, last)
        if position is not None:
            del node[position]


def _parent(resource: dict[str, Any], path: Path, create: bool) -> Any:
    node: Any = resource
    for segment in path[:-1]:
        node = _child(node, segment, create)
    return node


def _child(node: Any, segment: Segment, create: bool) -> Any:
    if isinstance(segment, str):
        if segment not in node and create:
            node[segment] = {}
        return node[segment]
    position = _select(node, segment)
    if position is None:
        raise TargetNotFound("path", f"no list element matches {dict(segment)}")
    return node[position]


def _name(resource: Mapping[str, Any]) -> str:
    metadata = resource.get("metadata", {})
    return f"{resource.get('kind', '?')} {metadata.get('namespace', '')}/{metadata.get('name', '')}"
