"""Rollback evidence: each object a run wrote, as it was before the run and after its rollback.

A rollback that says "removed" is a claim; the evidence is the object itself. The run keeps
the object as read just before its first write (``Run.remember_before``, from the write loop in
``chaosmesh_py.engine.ownership``; an object the run created was absent before) and as each of
its removals left it (``Run.remember_after``, from ``faults.injection.remove``: the server's
answer to the removal, absent once deleted or gone); the control reads back any object no
removal saw. ``compare`` turns the two into the journal's ``chaosmesh.evidence``: equal, or each
difference named by its path.

Only the ``spec`` is compared: metadata (resourceVersion, generation, our owner record)
changes with every write by design. The entry stays small: a spec is kept whole up to
``MAX_SPEC_CHARS`` of canonical JSON, else only its digest and size, and at most
``MAX_DIFFERENCES`` differences are named (each value shortened). The control redacts the
journal after this, as everything else in it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from typing import Any

MAX_SPEC_CHARS = 4000
MAX_DIFFERENCES = 20
MAX_VALUE_CHARS = 200

# A snapshot of an object that is not there.
ABSENT: None = None


def spec_of(obj: Mapping[str, Any] | None) -> Any:
    """What the evidence compares of ``obj``: its spec (None when the object is absent)."""
    if obj is None:
        return ABSENT
    return obj.get("spec", {})


def digest(spec: Any) -> str:
    return "sha256:" + hashlib.sha256(_canonical(spec).encode()).hexdigest()


def compare(resource: str, before: Any, after: Any) -> dict[str, Any]:
    """The evidence entry for one object: ``before`` and ``after`` are ``spec_of`` snapshots."""
    differences = list(_differences(before, after, ""))
    entry: dict[str, Any] = {
        "resource": resource,
        "equal": not differences,
        "before": _snapshot(before),
        "after": _snapshot(after),
    }
    if differences:
        entry["differences"] = differences[:MAX_DIFFERENCES]
        if len(differences) > MAX_DIFFERENCES:
            entry["differences_not_shown"] = len(differences) - MAX_DIFFERENCES
    return entry


def _snapshot(spec: Any) -> dict[str, Any]:
    if spec is ABSENT:
        return {"present": False}
    text = _canonical(spec)
    snapshot: dict[str, Any] = {"present": True, "digest": digest(spec), "chars": len(text)}
    if len(text) <= MAX_SPEC_CHARS:
        snapshot["spec"] = spec
    return snapshot


def _differences(before: Any, after: Any, path: str) -> Iterator[dict[str, Any]]:
    """Each place where ``after`` differs from ``before``, as a JSON pointer and both values."""
    if isinstance(before, dict) and isinstance(after, dict):
        for key in sorted(set(before) | set(after), key=str):
            child = f"{path}/{_escape(str(key))}"
            if key not in before:
                yield {"path": child, "change": "added", "after": _short(after[key])}
            elif key not in after:
                yield {"path": child, "change": "removed", "before": _short(before[key])}
            else:
                yield from _differences(before[key], after[key], child)
    elif isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        for index, (old, new) in enumerate(zip(before, after, strict=True)):
            yield from _differences(old, new, f"{path}/{index}")
    elif _canonical(before) != _canonical(after):
        change = "changed"
        if before is ABSENT:
            change = "created"
        elif after is ABSENT:
            change = "deleted"
        yield {
            "path": path or "/",
            "change": change,
            "before": _short(before),
            "after": _short(after),
        }


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _short(value: Any) -> Any:
    text = _canonical(value)
    return value if len(text) <= MAX_VALUE_CHARS else text[:MAX_VALUE_CHARS] + "…"


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")
