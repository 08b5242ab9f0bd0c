"""Owned edits through the API, whatever the kind: the write loop and exact removal.

Every owned edit goes the same way, whichever of the three forms
(``chaosmesh_py.istio.route_copy``, ``field_override``, ``owned_object``) it takes:

1. the run remembers the resource, and its ledger gets the *intent* (the patch or the object,
   the resource as it was, what the API is) fsynced **before** the request goes out;
2. the write carries its owner record in the same request, and a precondition (a patch: the
   resourceVersion it was planned from; a create: the name, which a second create cannot take);
3. the ledger gets the *outcome*: applied (with what the record now names), failed (refused:
   nothing landed) or unknown (the answer was lost: it may land yet).

Removal (``release``) reads the object and removes exactly what the records name, for one run
or for several (``release_runs``, re-choosing the runs from every fresh read): route copies
out, overridden fields back where they still hold our value (else a conflict is reported and
their value kept), owned objects deleted with uid + resourceVersion preconditions taken from the
read that judged them ours. A run's ledger may add what its record no longer says
(``ledger.Recorded``): the record is on the object, so someone may have removed it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from chaosmesh_py.engine import evidence, ledger
from chaosmesh_py.engine.run import Run
from chaosmesh_py.errors import (
    Forbidden,
    InvalidInput,
    NotFound,
    OwnedByAnotherRun,
    Rejected,
    Unauthorized,
)
from chaosmesh_py.istio import document, field_override, owned_object, route_copy
from chaosmesh_py.istio import release as releasing
from chaosmesh_py.istio.owner_record import ABSENT, Path, path_text, record_of
from chaosmesh_py.kube import Kube, Outcome, ResourceKind, ResourceRef

logger = logging.getLogger("chaostoolkit")

Plan = Callable[[dict[str, Any]], dict[str, Any] | None]
# Answers that mean the server applied nothing.
Refused = Rejected | Unauthorized | Forbidden | NotFound | OwnedByAnotherRun


@dataclass
class Release:
    """What removing a run's (or several runs') holdings from one resource did."""

    resource: str
    runs: list[str] = field(default_factory=list)
    routes: list[str] = field(default_factory=list)
    route_copies: list[dict[str, Any]] = field(default_factory=list)  # the copies removed
    # What each removed copy did, for people: "routes reviews to v2 for header end-user"; and
    # each restored field (by path): 'the run had set it to "0.5s"; back to unset'.
    described: dict[str, str] = field(default_factory=dict)
    fields: list[str] = field(default_factory=list)
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    deleted: bool = False
    gone: bool = False
    attempts: int = 0
    # 409s met (another writer changed the object between our read and our write; each one
    # re-read and re-planned), and reads after the first.
    api_conflicts: int = 0
    api_rereads: int = 0
    # The object as the server holds it afterwards (None: deleted, gone, or not read).
    final: dict[str, Any] | None = None

    @property
    def anything(self) -> bool:
        return bool(self.routes or self.fields or self.deleted)

    def to_json(self) -> dict[str, Any]:
        found: dict[str, Any] = {"resource": self.resource, "removed": list(self.routes)}
        if self.described:
            found["what"] = dict(self.described)
        if self.fields:
            found["fields"] = list(self.fields)
        if self.conflicts:
            found["conflicts"] = list(self.conflicts)
        if self.deleted:
            found["deleted"] = True
        if self.gone:
            found["gone"] = True
        if self.attempts:
            found["api_attempts"] = self.attempts
            found["api_conflicts"] = self.api_conflicts
            found["api_rereads"] = self.api_rereads
        return found


def api_binding(kube: Kube) -> dict[str, Any]:
    """What the API is, for the ledger: a local mesh (and which instance) or a cluster."""
    mesh = kube.local_mesh()
    if mesh is None:
        return {"local_mesh": False}
    return {"local_mesh": True, "instance_id": mesh.get("instance_id")}


def apply_edit(
    kube: Kube,
    ref: ResourceRef,
    run: Run,
    plan: Plan,
    *,
    verify_url: str | None = None,
    just_read: dict[str, Any] | None = None,
) -> Outcome:
    """Write an owned edit into an existing object: ``plan`` maps the object as read to the
    merge patch adding the edit and its record (None: already in place). Intent before the
    write, outcome after (see the module docstring). Raises NotFound if the object is not
    there, and whatever the plan raises, before anything is written. ``just_read``, the object
    as the caller has just read it, saves the first read (``Kube.update``)."""

    planned_from: list[dict[str, Any]] = []  # the read the last planned write started from

    def planned(current: dict[str, Any]) -> dict[str, Any] | None:
        patch = plan(current)
        if patch is not None:
            planned_from[:] = [current]
            run.touch(kube, ref, verify_url)
            run.ledger.intent(
                ledger.INJECT,
                kube.host,
                ref,
                patch,
                prior=current,
                verify_url=verify_url,
                api_binding=api_binding(kube),
            )
        return patch

    with outcome_recorded(run.ledger, ledger.INJECT, kube.host, ref) as recorded:
        try:
            outcome = kube.update(ref, planned, current=just_read)
        finally:
            # Also when the answer was lost: the write may have landed.
            if planned_from:
                run.remember_before(kube, ref, evidence.spec_of(planned_from[0]))
        if outcome.conflicts:
            logger.info(
                f"chaosmesh: {ref}: {outcome.conflicts} conflict(s) with another writer, each "
                f"re-read and re-planned ({outcome.attempts} attempt(s))"
            )
        held = record_of(outcome.resource, run.run_id)
        recorded["routes"] = list(held.routes) if held else []
        if held and held.fields:
            recorded["fields"] = [path_text(f.path) for f in held.fields]
    return outcome


def override_field(
    kube: Kube, ref: ResourceRef, run: Run, *, path: Path, value: Any, expires_at: datetime
) -> dict[str, Any]:
    """Set the field at ``path`` of ``ref`` to ``value``, remembering what it replaced, until
    ``expires_at`` (form b; see ``chaosmesh_py.istio.field_override``). Idempotent for the run.

    Returns the field, the value written, the one replaced, and whether the field holds ours
    now (another writer may have set it since our write).
    """
    outcome = apply_edit(
        kube,
        ref,
        run,
        lambda current: field_override.plan_override(current, run.run_id, path, value, expires_at),
    )
    held = record_of(outcome.resource, run.run_id)
    mine = next((f for f in (held.fields if held else ()) if f.path == path), None)
    now = field_override.read_at(outcome.resource, path)
    report: dict[str, Any] = {
        "run_id": run.run_id,
        "resource": str(ref),
        "field": path_text(path),
        "wrote": value,
        "in_place": now is not ABSENT and document.same(now, value),
        "expires": held.expires_at.isoformat() if held else None,
        "api_attempts": outcome.attempts,
    }
    if mine is not None:
        report["replaced"] = None if mine.replaced is ABSENT else mine.replaced
    return report


def create_object(
    kube: Kube,
    run: Run,
    *,
    kind: ResourceKind,
    namespace: str,
    spec: Mapping[str, Any],
    expires_at: datetime,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Create an object of ``kind`` with ``spec`` (a ConfigMap: its ``data``), ``labels`` and
    ``annotations`` in
    ``namespace``, owned by the run until ``expires_at`` (form c; see
    ``chaosmesh_py.istio.owned_object``). Idempotent for the run:
    the same spec again finds the object already there. An object of that name that is not the
    run's is left alone (ConflictPersisted)."""
    body = owned_object.build(
        run.run_id,
        # A core kind (a ConfigMap) is "v1" alone.
        api_version=f"{kind.group}/{kind.version}" if kind.group else kind.version,
        kind=kind.kind,
        namespace=namespace,
        spec=spec,
        expires_at=expires_at,
        labels=labels,
        annotations=annotations,
    )
    ref = ResourceRef(kind, namespace, body["metadata"]["name"])
    run.touch(kube, ref)
    run.ledger.intent(ledger.INJECT, kube.host, ref, body, api_binding=api_binding(kube))
    with outcome_recorded(run.ledger, ledger.INJECT, kube.host, ref) as recorded:
        outcome = kube.ensure_created(
            ref, body, lambda existing: _object_owner(existing, [run.run_id], {}) is not None
        )
        recorded["uid"] = outcome.resource["metadata"]["uid"]
    run.remember_before(kube, ref, evidence.ABSENT)
    return {
        "run_id": run.run_id,
        "resource": str(ref),
        "name": ref.name,
        "uid": outcome.resource["metadata"]["uid"],
        "created": outcome.wrote,
        "expires": expires_at.isoformat(),
    }


def release(
    kube: Kube,
    ref: ResourceRef,
    run_id: str,
    *,
    run_ledger: ledger.Ledger | None = None,
    listed: dict[str, Any] | None = None,
    fence: bool = False,
    only_routes: list[str] | None = None,
    only_fields: bool = False,
    extra: ledger.Recorded | None = None,
) -> Release:
    """Remove everything ``run_id`` holds on ``ref`` (or, with ``only_routes``, only those
    copies; with ``only_fields``, only its field overrides), as its record (and ``extra``, from
    its ledger) names it; a no-op when nothing is left. Writes are recorded in ``run_ledger`` if
    given; ``listed`` is the object as just read, to save a read.

    ``fence`` first changes the resource's version (``release.plan_fence``): a write of the run
    that may still be in flight then fails its precondition instead of landing after this
    removal looked. Needed when the ledger does not know how the last injection ended.
    """
    extras = {run_id: extra} if extra is not None else {}
    if fence:
        try:
            listed = kube.update(
                ref,
                lambda current: (
                    None
                    if _object_owner(current, [run_id], extras)
                    else releasing.plan_fence(current, run_id)
                ),
                current=listed,
            ).resource
        except NotFound:
            return Release(str(ref), gone=True)
    scope = _Scope(lambda _: [run_id], run_ledger, extras, only_routes, only_fields)
    return _release(kube, ref, scope, listed)


def release_runs(
    kube: Kube,
    ref: ResourceRef,
    choose: Callable[[dict[str, Any]], list[str]],
    listed: dict[str, Any] | None = None,
) -> Release:
    """Remove what the runs ``choose`` picks from the object hold there, re-chosen from every
    fresh read (a run may have added or removed meanwhile): ``halt`` and ``reap``."""
    return _release(kube, ref, _Scope(choose), listed)


@dataclass(frozen=True)
class _Scope:
    """Whose holdings a release removes, and what it goes on besides the object's records."""

    choose: Callable[[dict[str, Any]], list[str]]
    run_ledger: ledger.Ledger | None = None
    extras: Mapping[str, ledger.Recorded] = field(default_factory=dict)
    only_routes: list[str] | None = None
    only_fields: bool = False


def _release(kube: Kube, ref: ResourceRef, scope: _Scope, listed: dict[str, Any] | None) -> Release:
    choose, run_ledger, extras, only_routes = (
        scope.choose,
        scope.run_ledger,
        scope.extras,
        scope.only_routes,
    )
    result = Release(str(ref))
    current = listed
    try:
        if current is None:
            current = kube.read(ref)
    except NotFound:
        result.gone = True
        return result
    owner = None if scope.only_fields else _object_owner(current, choose(current), extras)
    if only_routes is None and owner is not None:
        return _delete_owned(kube, ref, scope, current)
    patch_extras = {
        run_id: releasing.Extra(recorded.routes, recorded.fields)
        for run_id, recorded in extras.items()
    }

    written_once: list[bool] = []

    def plan(fresh: dict[str, Any]) -> dict[str, Any] | None:
        runs = choose(fresh)
        patch, released = releasing.plan_release(
            fresh, runs, patch_extras, only_routes, scope.only_fields
        )
        # A conflict is news even when nothing is left to write (the record already gone);
        # the read that confirms our write (no record left, nothing to compare) keeps it.
        if patch is not None or released.conflicts or not written_once:
            result.conflicts = released.conflicts
        if patch is not None:
            written_once.append(True)
        if patch is not None:
            # Kept when a later read finds them gone: a lost answer still removed them.
            result.runs = released.runs
            result.routes = released.routes
            result.route_copies = [
                r
                for r in fresh.get("spec", {}).get("http") or []
                if r.get("name") in released.routes
            ]
            result.described = {
                str(r["name"]): route_copy.describe_copy(fresh, str(r["name"]))
                for r in result.route_copies
            }
            result.described.update(released.described)
            result.fields = released.fields
            if run_ledger is not None:
                ledger.best_effort(lambda: run_ledger.intent(ledger.REMOVE, kube.host, ref, patch))
        return patch

    with outcome_recorded(run_ledger, ledger.REMOVE, kube.host, ref) as recorded:
        try:
            outcome = kube.update(ref, plan, current=current)
        except NotFound:
            # The resource is gone, and everything of ours with it.
            recorded["gone"] = True
            return Release(str(ref), gone=True)
        if not outcome.wrote:
            result = Release(str(ref), conflicts=result.conflicts)
        result.attempts = outcome.attempts
        result.api_conflicts = outcome.conflicts
        result.api_rereads = outcome.rereads
        result.final = outcome.resource
        recorded["routes"] = result.routes
        if result.fields:
            recorded["fields"] = result.fields
        if result.conflicts:
            recorded["conflicts"] = [c["field"] for c in result.conflicts]
    return result


def _delete_owned(kube: Kube, ref: ResourceRef, scope: _Scope, current: dict[str, Any]) -> Release:
    choose, run_ledger, extras = scope.choose, scope.run_ledger, scope.extras
    result = Release(str(ref))

    def ours(fresh: dict[str, Any]) -> bool:
        return _object_owner(fresh, choose(fresh), extras) is not None

    metadata = current["metadata"]
    if run_ledger is not None:
        precondition = {
            "uid": metadata.get("uid"),
            "resourceVersion": metadata.get("resourceVersion"),
        }
        ledger.best_effort(
            lambda: run_ledger.intent(ledger.REMOVE, kube.host, ref, {"delete": precondition})
        )
    with outcome_recorded(run_ledger, ledger.REMOVE, kube.host, ref) as recorded:
        try:
            outcome = kube.delete_if(ref, ours, current=current)
        except NotFound:
            recorded["gone"] = True
            return Release(str(ref), gone=True)
        recorded["deleted"] = outcome.wrote
    owner = _object_owner(current, choose(current), extras)
    result.runs = [owner] if owner and outcome.wrote else []
    result.deleted = outcome.wrote
    description = owned_object.describe(current) if outcome.wrote else None
    if description:
        result.described = {ref.name: description}
    result.attempts = outcome.attempts
    result.api_conflicts = outcome.conflicts
    result.api_rereads = outcome.rereads
    return result


def _object_owner(
    obj: Mapping[str, Any], runs: list[str], extras: Mapping[str, ledger.Recorded]
) -> str | None:
    """Which of ``runs`` created ``obj``: by its record, its ledger's uid, or its name's proof."""
    uid = obj.get("metadata", {}).get("uid")
    proven = owned_object.proven_owner(obj)
    for run_id in runs:
        if owned_object.owner_of(obj, run_id) or proven == run_id:
            return run_id
        recorded = extras.get(run_id)
        if recorded is not None and uid and uid in recorded.object_uids:
            return run_id
    return None


@contextmanager
def outcome_recorded(
    run_ledger: ledger.Ledger | None, op: str, api: str, ref: ResourceRef
) -> Iterator[dict[str, Any]]:
    """Record how the write went: applied (with what the caller adds to the dict), or failed
    with the error; the ledger then tells a later rollback what may be in place."""
    recorded: dict[str, Any] = {}
    try:
        yield recorded
    except BaseException as error:
        if run_ledger is not None:
            # Only a refusal is known to have changed nothing; a lost answer or an interrupt
            # may still land (see ``release``'s fence).
            refused = isinstance(error, InvalidInput | Refused)
            result = ledger.FAILED if refused else ledger.UNKNOWN
            text = str(error) or type(error).__name__
            ledger.best_effort(lambda: run_ledger.outcome(op, api, ref, result, error=text))
        raise
    if run_ledger is not None:
        ledger.best_effort(lambda: run_ledger.outcome(op, api, ref, ledger.APPLIED, **recorded))
