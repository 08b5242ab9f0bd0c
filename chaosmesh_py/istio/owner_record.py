"""Owner records: what one run holds on one Kubernetes object, written on the object itself.

Every owned edit carries its record in the same write as the edit, so the two are never apart:
one annotation per run, ``fault.chaosmesh.io/<run id>``, whose JSON value names exactly what the
run added there::

    {"expires": "2026-11-25T11:00:00+00:00",
     "routes": ["chaosmesh-3f9c1a2b7e-5d1e0c9a4b7f"],   # route copies (route_copy)
     "fields": [{"path": ["spec", "trafficPolicy", "connectionPool"],
                 "wrote": {...}, "replaced": {...},     # field overrides (field_override;
                 "created": [...]}],                    #   no "replaced": it was absent)
     "object": true}                                    # the run made it (owned_object)

Removal (``chaosmesh_py.istio.release``, driven by the engine) uses these records and nothing
else: a route, field or object no record names is never touched because of its name. The one
exception is an orphan that proves itself ours: copies and owned objects are named
``chaosmesh-<run>-<digest>``, the digest taken over the run id and the content we wrote
(``self_certifies``), so a copy whose record someone deleted, but whose content is still exactly
what we wrote, can be recognised without guessing; anything else is reported and left.

The key is the previous release's, whose records hold only ``expires`` and ``routes`` and read the
same: a reaper of either release sees the other's live records and leaves them alone (a new key
would have let an old reaper, which took route names for ownership, reap new runs' copies).
Keys under ``chaosmesh.io`` belong to this project by Kubernetes' convention: a prefixed key is
its domain owner's.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from chaosmesh_py.istio import document

OWNER_ANNOTATION_PREFIX = "fault.chaosmesh.io/"
# A short-lived mark a rollback writes when a write of its run may still be in flight (see
# ``chaosmesh_py.istio.release.plan_fence``); the removal that follows takes it away again.
FENCE_ANNOTATION_PREFIX = "fence.chaosmesh.io/"
NAME_PREFIX = "chaosmesh-"

# A route or object name as chaosmesh writes it; 10 hex digits: the previous release's copies.
_OWNED_NAME = re.compile(rf"^{NAME_PREFIX}(.+)-([0-9a-f]{{{document.DIGEST_HEX}}}|[0-9a-f]{{10}})$")

# A segment of a field path: an object key, or the one list element whose fields include these
# (e.g. {"name": "v1"}: the subset named v1). Never a list index: indices move when others edit.
Segment = str | Mapping[str, Any]
Path = tuple[Segment, ...]


class _Absent:
    """A field that is not there (distinct from a field holding null). One instance: copies
    of a record that holds it must still compare ``is ABSENT``."""

    def __repr__(self) -> str:
        return "ABSENT"

    def __copy__(self) -> _Absent:
        return self

    def __deepcopy__(self, _: object) -> _Absent:
        return self


ABSENT: Any = _Absent()


@dataclass(frozen=True)
class FieldRecord:
    """One field override: where, the value written, and the value it replaced."""

    path: Path
    wrote: Any
    replaced: Any = ABSENT
    # The objects on the path that did not exist and were created to hold the field: removed
    # again, when left empty, so the resource comes back exactly as it was.
    created: tuple[Path, ...] = ()

    def to_json(self) -> dict[str, Any]:
        record: dict[str, Any] = {"path": path_json(self.path), "wrote": self.wrote}
        if self.replaced is not ABSENT:
            record["replaced"] = self.replaced
        if self.created:
            record["created"] = [path_json(p) for p in self.created]
        return record

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> FieldRecord:
        return cls(
            path=path_from_json(value["path"]),
            wrote=value["wrote"],
            replaced=value.get("replaced", ABSENT),
            created=tuple(path_from_json(p) for p in value.get("created") or ()),
        )


@dataclass(frozen=True)
class OwnerRecord:
    """What one run holds on one object, as its annotation says."""

    run_id: str
    expires_at: datetime
    routes: tuple[str, ...] = ()
    fields: tuple[FieldRecord, ...] = ()
    owns_object: bool = False

    def expired(self, now: datetime) -> bool:
        return now >= self.expires_at

    @property
    def holds_nothing(self) -> bool:
        return not self.routes and not self.fields and not self.owns_object

    def adding(
        self,
        expires_at: datetime,
        routes: Sequence[str] = (),
        fields: Sequence[FieldRecord] = (),
    ) -> OwnerRecord:
        """This record with more edits; the expiry is the latest asked for."""
        return replace(
            self,
            expires_at=max(self.expires_at, expires_at),
            routes=(*self.routes, *routes),
            fields=(*self.fields, *fields),
        )

    def to_annotation(self) -> str:
        record: dict[str, Any] = {"expires": iso(self.expires_at), "routes": list(self.routes)}
        if self.fields:
            record["fields"] = [f.to_json() for f in self.fields]
        if self.owns_object:
            record["object"] = True
        return json.dumps(record)


@dataclass(frozen=True)
class Holdings:
    """Everything chaosmesh holds on one object: the runs' records, the fences, and orphans."""

    records: tuple[OwnerRecord, ...] = ()
    fences: tuple[str, ...] = ()
    unreadable: tuple[str, ...] = field(default=())  # record keys whose value is not a record

    def run_ids(self) -> list[str]:
        return sorted({r.run_id for r in self.records} | set(self.fences))


def owner_key(run_id: str) -> str:
    return OWNER_ANNOTATION_PREFIX + run_id


def fence_key(run_id: str) -> str:
    return FENCE_ANNOTATION_PREFIX + run_id


def annotations_of(resource: Mapping[str, Any]) -> dict[str, str]:
    return dict(resource.get("metadata", {}).get("annotations") or {})


def records(resource: Mapping[str, Any]) -> list[OwnerRecord]:
    """Every run's record on the resource (unreadable ones are skipped: see ``holdings``)."""
    return list(holdings(resource).records)


def record_of(resource: Mapping[str, Any], run_id: str) -> OwnerRecord | None:
    return next((r for r in records(resource) if r.run_id == run_id), None)


def new_record(run_id: str, expires_at: datetime) -> OwnerRecord:
    return OwnerRecord(run_id, expires_at)


def holdings(resource: Mapping[str, Any]) -> Holdings:
    found = []
    fences = []
    unreadable = []
    for key, value in annotations_of(resource).items():
        if key.startswith(FENCE_ANNOTATION_PREFIX):
            fences.append(key.removeprefix(FENCE_ANNOTATION_PREFIX))
        if not key.startswith(OWNER_ANNOTATION_PREFIX):
            continue
        parsed = parse_record(key.removeprefix(OWNER_ANNOTATION_PREFIX), value)
        if parsed is None:
            unreadable.append(key)
        else:
            found.append(parsed)
    return Holdings(tuple(found), tuple(fences), tuple(unreadable))


def parse_record(run_id: str, value: object) -> OwnerRecord | None:
    """The record an annotation value holds, or None when it holds none."""
    try:
        return _parse(run_id, value)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def _parse(run_id: str, value: object) -> OwnerRecord:
    if not isinstance(value, str):
        raise TypeError("not a string")
    record = json.loads(value)
    expires_at = datetime.fromisoformat(record["expires"])
    if expires_at.tzinfo is None:
        raise ValueError("expiry without a time zone")
    return OwnerRecord(
        run_id=run_id,
        expires_at=expires_at,
        routes=tuple(str(name) for name in record.get("routes") or ()),
        fields=tuple(FieldRecord.from_json(f) for f in record.get("fields") or ()),
        owns_object=record.get("object") is True,
    )


def owned_name(run_id: str, digest: str) -> str:
    return f"{NAME_PREFIX}{run_id}-{digest}"


def split_owned_name(name: str) -> tuple[str, str] | None:
    """(run id, digest) of a name shaped like an owned route's or object's, else None."""
    found = _OWNED_NAME.match(name)
    return (found.group(1), found.group(2)) if found else None


def self_certifies(name: str, purpose: str, content: Any) -> str | None:
    """The run id when ``name`` is the name chaosmesh gives ``content`` (so chaosmesh wrote
    it, and nobody changed it since); else None."""
    parts = split_owned_name(name)
    if parts is None:
        return None
    run_id, digest = parts
    return run_id if document.digest(purpose, run_id, content) == digest else None


def path_json(path: Path) -> list[Any]:
    return [s if isinstance(s, str) else dict(s) for s in path]


def path_from_json(value: Any) -> Path:
    if not isinstance(value, list) or not all(isinstance(s, str | dict) for s in value):
        raise ValueError(f"not a field path: {value!r}")
    return tuple(value)


def path_text(path: Path) -> str:
    """``spec.subsets[name=v1].trafficPolicy``: a path for people. A selector's null value (the
    field absent) reads ``(none)``; a structured one (a route's match) shows its keys only, as
    ``match=[headers.end-user]``: header values may carry a credential, and the commands that
    print paths (rollback, reap, halt) know no experiment's secrets to hide."""
    text = ""
    for segment in path:
        if isinstance(segment, str):
            text += ("." if text else "") + segment
        else:
            text += "[" + ",".join(f"{k}={_shown_key(v)}" for k, v in segment.items()) + "]"
    return text


def _shown_key(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, list):
        return "[" + ";".join(_shown_key(item) for item in value) + "]"
    if isinstance(value, Mapping):
        return ",".join(
            key if not isinstance(inner, Mapping) or not inner else f"{key}.{'.'.join(inner)}"
            for key, inner in value.items()
        )
    return str(value)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")
