"""Noticing, while a run goes on, that another writer removed what the run holds on an object.

Rollout controllers rewrite the VirtualServices they own: Flagger replaces the whole ``spec``
(and its annotations) with what it generates, so a route copy of ours, or its owner record, can
disappear in the middle of a method. Nothing of ours is then left to remove, and nothing must
claim the fault or route is still live. So, once the run has written to an object, a watch
follows it (``follow``, started by the control after each activity) and compares every change
with what the run's ledger says the run holds there (``ledger.recorded``). What the run wrote
goes as (kind-agnostic, from the owner record's forms):

- a route copy the ledger names that the object no longer has;
- the run's owner record gone from the object;
- an overridden field that no longer holds the value the run wrote;
- the object itself deleted.

Each loss is recorded once, with the moment the watch saw it and, where the API says, who made
the change (``metadata.managedFields``: the latest manager other than ours; a cluster keeps
them, the local API double does not). Our own writes are never taken for another writer's:
a change seen while the run's ledger has a write of the run in flight on the object is not
judged, and a loss is confirmed against a fresh read before it is recorded (a watch event can
predate the run's own latest write).

What was lost is read back by the control's rollback (``stop``: "removed by another writer at
T, nothing to remove"), the journal, each activity result that follows, and the verdict.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from chaosmesh_py.engine import ledger
from chaosmesh_py.engine.run import Run
from chaosmesh_py.errors import ApiError, ChaosMeshError, ConflictPersisted, Forbidden, NotFound
from chaosmesh_py.istio import document, field_override
from chaosmesh_py.istio.owner_record import ABSENT, path_text, record_of
from chaosmesh_py.kube import FIELD_MANAGER, Kube, ResourceRef

logger = logging.getLogger("chaostoolkit")

# Where the control's journal, and each of its removal reports, list what was lost.
JOURNAL_KEY = "removed_by_another_writer"
# How long one watch request lasts before it is renewed (a stop is seen at the latest then).
WATCH_WINDOW_S = 5
# Between reads of an object that cannot be watched (a core kind, or no right to watch it),
# and after an error.
POLL_S = 0.25
# Watches held open at once by this process (each holds a connection). A run that edits more
# objects follows the others by reading each every SLOW_POLL_S: a quarter-second read of
# hundreds of objects would be a load of its own on the API.
MAX_WATCHES = 16
SLOW_POLL_S = 2.0
_watch_slots = threading.BoundedSemaphore(MAX_WATCHES)


@dataclass(frozen=True)
class Vanished:
    """What of the run another writer removed from one object, and when the run saw it."""

    resource: str
    # ISO 8601, UTC, milliseconds: when the run saw the change (None: found gone only by the
    # rollback, as when nothing followed the object).
    at: str | None
    routes: tuple[str, ...] = ()
    fields: tuple[str, ...] = ()
    record: bool = False  # the run's owner record went
    deleted: bool = False  # the object itself went
    by: str | None = None  # the change's manager, where the API names it

    def what(self) -> str:
        parts = [f"route {name}" for name in self.routes]
        parts += [f"field {path}" for path in self.fields]
        if self.deleted:
            parts = ["the object", *parts]
        elif self.record:
            parts.append("the run's owner record")
        return ", ".join(parts) or "nothing"

    def sentence(self) -> str:
        by = f" ({self.by})" if self.by else ""
        when = f"at {self.at}" if self.at else "before the rollback (when: not seen)"
        return f"{self.what()} on {self.resource} removed by another writer{by} {when}"

    def to_json(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            "resource": self.resource,
            "at": self.at,
            "routes": list(self.routes),
            "record": self.record,
        }
        if self.fields:
            found["fields"] = list(self.fields)
        if self.deleted:
            found["deleted"] = True
        if self.by:
            found["by"] = self.by
        return found


def judge(
    resource: Mapping[str, Any] | None, run_id: str, held: ledger.Recorded, at: str
) -> Vanished | None:
    """What of ``held`` (the run's, by its ledger) ``resource`` (None: deleted) has lost."""
    if held.empty:
        return None
    name = ""
    if resource is None:
        return Vanished(name, at, held.routes, record=True, deleted=True)
    present = {r.get("name") for r in (resource.get("spec") or {}).get("http") or []}
    routes = tuple(r for r in held.routes if r not in present)
    fields = tuple(
        path_text(f.path)
        for f in held.fields
        if (now := field_override.read_at(resource, f.path)) is ABSENT
        or not document.same(now, f.wrote)
    )
    record = record_of(resource, run_id) is None
    if not (routes or fields or record):
        return None
    return Vanished(name, at, routes, fields, record, by=last_manager(resource))


def last_manager(resource: Mapping[str, Any]) -> str | None:
    """The manager of the latest change that is not ours, as ``managedFields`` say."""
    entries = [
        e
        for e in (resource.get("metadata") or {}).get("managedFields") or []
        if isinstance(e, dict) and e.get("manager") != FIELD_MANAGER
    ]
    if not entries:
        return None
    # Times are to the second: of equal ones, the later in the list (where a server puts the
    # entry it just wrote).
    latest = max(enumerate(entries), key=lambda found: (str(found[1].get("time") or ""), found[0]))[
        1
    ]
    when = f" at {latest['time']}" if latest.get("time") else ""
    return f"{latest.get('manager')}, {latest.get('operation', 'Update')}{when}"


def landed(entries: list[ledger.Entry], api: str, ref: ResourceRef, run_id: str) -> ledger.Recorded:
    """What the run's writes to ``ref`` are known to have left there: the record as each
    applied injection's answer showed it, less what applied removals took. Narrower than
    ``ledger.recorded`` (which a rollback needs, with what may have landed): a write retried
    after a 409 plans its copy again, and the copy first planned never lands."""
    routes: dict[str, None] = {}
    fields: set[str] = set()
    owns = False
    for entry in entries:
        if entry.ref != ref or entry.api != api or entry.event != "outcome":
            continue
        if entry.detail.get("result") != ledger.APPLIED:
            continue
        if entry.op == ledger.INJECT:
            routes = dict.fromkeys(entry.detail.get("routes") or ())
            fields = set(entry.detail.get("fields") or ())
            owns = owns or bool(entry.detail.get("uid"))
            continue
        if entry.detail.get("gone") or entry.detail.get("deleted"):
            routes, fields, owns = {}, set(), False
        for name in entry.detail.get("routes") or ():
            routes.pop(name, None)
        fields -= {*(entry.detail.get("fields") or ()), *(entry.detail.get("conflicts") or ())}
    held = ledger.recorded(entries, api, ref, run_id)
    return ledger.Recorded(
        tuple(routes),
        tuple(f for f in held.fields if path_text(f.path) in fields),
        held.object_uids,
        owns,
    )


def in_flight(entries: list[ledger.Entry], api: str, ref: ResourceRef) -> bool:
    """A write of the run to ``ref`` announced and not known to have ended (or lost)."""
    last = None
    for entry in entries:
        if entry.ref == ref and entry.api == api:
            last = entry
    if last is None:
        return False
    return last.event == "intent" or last.detail.get("result") == ledger.UNKNOWN


class _Follower:
    """One object the run wrote to, followed in a thread of its own."""

    def __init__(self, kube: Kube, ref: ResourceRef, run: Run) -> None:
        self.kube, self.ref, self.run = kube, ref, run
        self.found: list[Vanished] = []
        self._reported: set[tuple[str, str]] = set()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(
            target=self._follow, name=f"chaosmesh-watch {ref}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def findings(self) -> list[Vanished]:
        with self._lock:
            return list(self.found)

    def _follow(self) -> None:
        # Kube.watch serves custom kinds; a slot is free, or this object is read now and then.
        custom = bool(self.ref.kind.group)
        slot = custom and _watch_slots.acquire(blocking=False)
        try:
            self._follow_with(watching=slot, poll_s=SLOW_POLL_S if custom and not slot else POLL_S)
        finally:
            if slot:
                _watch_slots.release()

    def _follow_with(self, *, watching: bool, poll_s: float) -> None:
        version: str | None = None
        while not self._stop.is_set():
            try:
                if version is None or not watching:
                    version = self._read_and_judge()
                    if not watching or version is None:
                        self._stop.wait(poll_s)
                        continue
                for kind, resource in self.kube.watch(self.ref, version, WATCH_WINDOW_S):
                    if self._stop.is_set():
                        return
                    version = str(resource["metadata"].get("resourceVersion") or version)
                    self._consider(None if kind == "DELETED" else resource)
            except ConflictPersisted:
                version = None  # 410: the version is too old to watch from; read again
            except Forbidden as error:
                logger.debug(f"chaosmesh: may not watch {self.ref}, reading it instead: {error}")
                watching = False
            except ChaosMeshError as error:
                logger.debug(f"chaosmesh: watching {self.ref}: {error}")
                version = None
                self._stop.wait(POLL_S)

    def _read_and_judge(self) -> str | None:
        try:
            resource = self.kube.read(self.ref)
        except NotFound:
            self._consider(None)
            return None
        self._consider(resource)
        return str(resource["metadata"].get("resourceVersion") or "")

    def _consider(self, resource: Mapping[str, Any] | None) -> None:
        at = datetime.now(UTC).isoformat(timespec="milliseconds")
        if self._loss(resource, at) is None:
            return
        # The event may predate the run's own latest write: only what a fresh read confirms.
        try:
            fresh: Mapping[str, Any] | None = self.kube.read(self.ref)
        except NotFound:
            fresh = None
        except ApiError:
            return  # the next event, or the rollback, judges again
        loss = self._loss(fresh, at)
        if loss is None:
            return
        with self._lock:
            if self._stop.is_set():
                return
            new = self._new(loss)
            if new is not None:
                self.found.append(new)
                logger.warning(f"chaosmesh: {new.sentence()}")

    def _loss(self, resource: Mapping[str, Any] | None, at: str) -> Vanished | None:
        entries = self.run.ledger.entries()
        if in_flight(entries, self.kube.host, self.ref):
            return None  # our own write, or its echo
        held = landed(entries, self.kube.host, self.ref, self.run.run_id)
        return judge(resource, self.run.run_id, held, at)

    def _new(self, loss: Vanished) -> Vanished | None:
        """``loss`` without what was already reported; None when nothing is new."""
        routes = tuple(r for r in loss.routes if ("route", r) not in self._reported)
        fields = tuple(f for f in loss.fields if ("field", f) not in self._reported)
        record = loss.record and ("record", "") not in self._reported
        deleted = loss.deleted and ("deleted", "") not in self._reported
        if not (routes or fields or record or deleted):
            return None
        self._reported |= {("route", r) for r in routes} | {("field", f) for f in fields}
        self._reported |= {("record", "")} if record else set()
        self._reported |= {("deleted", "")} if deleted else set()
        return Vanished(str(self.ref), loss.at, routes, fields, record, deleted, loss.by)


# The followers of each run, by run id, then by (API, object); the runs whose rollback began.
_followers: dict[str, dict[tuple[str, ResourceRef], _Follower]] = {}
_stopped: set[str] = set()
_lock = threading.Lock()


def begin(run_id: str) -> None:
    """A run starts (again) under ``run_id``: nothing of an earlier one is kept."""
    with _lock:
        for follower in _followers.pop(run_id, {}).values():
            follower.stop()
        _stopped.discard(run_id)


def follow(run: Run) -> None:
    """Follow every object the run has written to and is not followed yet (none once the
    run's rollback began: its own removals are not another writer's)."""
    with _lock:
        if run.run_id in _stopped:
            return
        mine = _followers.setdefault(run.run_id, {})
        for kube, ref in run.touched():
            if (kube.host, ref) not in mine:
                follower = _Follower(kube, ref, run)
                mine[(kube.host, ref)] = follower
                follower.start()


def seen(run_id: str) -> list[Vanished]:
    """What another writer removed from the run so far, in the order it was seen."""
    with _lock:
        followers = list(_followers.get(run_id, {}).values())
    found = [v for f in followers for v in f.findings()]
    return sorted(found, key=lambda v: v.at or "~")


def seen_on(run_id: str, ref: ResourceRef) -> list[Vanished]:
    return [v for v in seen(run_id) if v.resource == str(ref)]


def explain(run_id: str, ref: ResourceRef) -> str | None:
    """Why the run's edits on ``ref`` are not live, when another writer removed them."""
    found = seen_on(run_id, ref)
    return "; ".join(v.sentence() for v in found) if found else None


def stop(run_id: str) -> list[Vanished]:
    """Stop following the run's objects, before its own rollback writes; what was seen."""
    with _lock:
        _stopped.add(run_id)
        followers = list(_followers.get(run_id, {}).values())
    for follower in followers:
        follower.stop()
    return seen(run_id)


def account(
    report: dict[str, Any], ref: ResourceRef, held: ledger.Recorded, lost: list[Vanished]
) -> list[Vanished]:
    """Say in one removal ``report`` what another writer had removed from ``ref`` before it:
    what the watch saw (``lost``), and the copies the run's ledger says ``held`` there
    (``landed``) that the removal did not find (gone when nothing saw it go). Returns those
    found only now."""
    here = [v for v in lost if v.resource == str(ref)]
    removed = set(report.get("removed") or ())
    explained = {name for v in here for name in v.routes}
    unseen = tuple(r for r in held.routes if r not in removed and r not in explained)
    gone = bool(report.get("gone"))
    found = [Vanished(str(ref), None, unseen, deleted=gone, record=gone)] if unseen else []
    if here or found:
        said = "; ".join(v.sentence() for v in [*here, *found])
        rest = "nothing to remove" if not removed else f"removed the rest ({len(removed)})"
        report[JOURNAL_KEY] = [v.to_json() for v in [*here, *found]]
        report["note"] = f"{said}; {rest}"
        logger.warning(f"chaosmesh: {report['note']}")
    return found


def place_in_method(
    found: list[dict[str, Any]], started: float | None, ended: float | None
) -> None:
    """Mark each loss (as the journal lists it) with whether it fell inside the method: a
    loss seen after the method ended did not change what the method tested."""
    for entry in found:
        at = entry.get("at")
        if at is None or started is None:
            entry["during_method"] = None  # unknown: the verdict takes it as inside
            continue
        moment = datetime.fromisoformat(str(at)).timestamp()
        entry["during_method"] = started <= moment and (ended is None or moment <= ended)
