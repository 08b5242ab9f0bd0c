"""Removing owned edits from outside the run that made them: rollback, halt, reap, forget.

- ``roll_back_run``: replay one run's ledger (``chaosmesh_py.engine.ledger``) and remove what is
  still in place. It works after ``kill -9`` and from another shell while the run goes on. A
  run bound to a local mesh that is gone is closed with that reason instead.
- ``halt``: remove everything every run holds, on every kind chaosmesh may edit
  (``chaosmesh_py.engine.kinds``) the credentials can list: the incident button.
- ``reap``: remove only what has outlived its expiry (the owner record says when), with no
  ledger at all: the runner's machine may be gone. An orphan that proves itself ours (its
  record was removed; see ``chaosmesh_py.istio.owner_record``) has no expiry left to honour and
  is reaped too.
- ``forget_run``: close a ledger by hand, saying what may remain where.

Halt and reap act on records only: a route or object named like ours that no record names and
whose content does not prove it ours is reported (``unproven``) and left. All of them visit
resources in parallel (a few workers: the API server, not this process, is the bottleneck) and
never raise for one resource's failure: the report says what is left and why.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chaosmesh_py.engine import kinds as editable
from chaosmesh_py.engine import ledger, ownership, vanished
from chaosmesh_py.engine.run import is_run_id, parse_run_id
from chaosmesh_py.errors import ChaosMeshError, Forbidden, InvalidInput, NotFound
from chaosmesh_py.istio import owned_object, release, route_copy
from chaosmesh_py.istio.owner_record import records, split_owned_name
from chaosmesh_py.kube import Kube, ResourceKind, ResourceRef, refuses_connections

WORKERS = 8
FORGOTTEN = "forgotten by hand (chaosmesh rollback --forget)"


@dataclass
class Report:
    """What a clean-up did: removed edits per resource, what it could not do, and why."""

    removed: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    unproven: list[dict[str, Any]] = field(default_factory=list)
    not_served: list[str] = field(default_factory=list)
    unchanged: int = 0
    closed: str | None = None
    # What a run's ledger says it held and another writer removed before this clean-up.
    removed_by_another_writer: list[dict[str, Any]] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Nothing left that this clean-up was meant to remove."""
        return not self.failed and not self.skipped

    @property
    def route_count(self) -> int:
        return sum(len(r["routes"]) for r in self.removed)

    def to_json(self) -> dict[str, Any]:
        return {
            "removed": self.removed,
            "failed": self.failed,
            "skipped": self.skipped,
            "conflicts": self.conflicts,
            "unproven": self.unproven,
            "kinds_not_served": self.not_served,
            "unchanged": self.unchanged,
            "routes_removed": self.route_count,
            "complete": self.complete,
            "closed": self.closed,
            vanished.JOURNAL_KEY: self.removed_by_another_writer,
        }


def halt(
    kube: Kube,
    namespaces: Collection[str] | None = None,
    kinds: Collection[ResourceKind] | None = None,
) -> Report:
    """Remove every trace of every run from every resource in ``namespaces`` (all when None)."""
    return _sweep(kube, kinds or editable.sweep_kinds(), namespaces, release.runs_holding)


def reap(
    kube: Kube,
    namespaces: Collection[str] | None = None,
    now: datetime | None = None,
    kinds: Collection[ResourceKind] | None = None,
) -> Report:
    """Remove every owned edit whose expiry has passed, and orphans that prove themselves ours."""
    moment = now or datetime.now(UTC)
    return _sweep(
        kube,
        kinds or editable.sweep_kinds(),
        namespaces,
        lambda resource: release.expired_runs(resource, moment),
    )


def roll_back_run(kube: Kube, directory: Path, run_id: str) -> Report:
    """Remove what run ``run_id`` still has in place on every resource its ledger names."""
    run_ledger = _existing_ledger(directory, run_id, "--run")
    entries = run_ledger.entries()
    in_flight = ledger.uncertain(entries)
    report = Report()
    gone = {
        api: reason
        for api, binding in ledger.bindings(entries).items()
        if (reason := _mesh_gone(kube, api, binding)) is not None
    }
    refs = []
    for api, ref in ledger.touched(entries):
        if api in gone:
            continue
        if api == kube.host:
            refs.append(ref)
        else:
            report.skipped.append(
                {
                    "resource": str(ref),
                    "run_id": run_id,
                    "reason": f"recorded for the API at {api}, not {kube.host}: point "
                    "KUBECONFIG / KUBERNETES_CONTEXT (or KUBERNETES_HOST) at it and run again",
                }
            )

    def remover(ref: ResourceRef) -> Callable[[], ownership.Release]:
        def remove() -> ownership.Release:
            fence = (kube.host, ref) in in_flight
            released = ownership.release(
                kube,
                ref,
                run_id,
                run_ledger=run_ledger,
                fence=fence,
                extra=ledger.recorded(entries, kube.host, ref, run_id),
            )
            if not fence:  # else a copy may be missing because it never landed
                said = {"removed": released.routes, "gone": released.gone}
                held = vanished.landed(entries, kube.host, ref, run_id)
                for lost in vanished.account(said, ref, held, []):
                    report.removed_by_another_writer.append(lost.to_json())
            return released

        return remove

    _visit(report, [(ref, [run_id], remover(ref)) for ref in refs])
    if report.complete:
        reason = "; ".join(sorted(set(gone.values()))) or None
        apis = ",".join(sorted({kube.host, *gone}))
        ledger.best_effort(lambda: run_ledger.close(apis, reason))
        report.closed = reason or "rolled back completely"
    return report


def forget_run(directory: Path, run_id: str) -> dict[str, Any]:
    """Close the run's ledger by hand: nothing more will be tried for it. Returns what the
    ledger says may remain, and where. Idempotent."""
    run_ledger = _existing_ledger(directory, run_id, "--forget")
    entries = run_ledger.entries()
    may_remain = [
        {"api": api, "resource": str(ref), **recorded.to_json()}
        for api, ref, recorded in ledger.last_applied(entries)
    ]
    already = ledger.closed_reason(entries)
    if already is None:
        apis = ",".join(sorted({api for api, _ in ledger.touched(entries)}))
        run_ledger.close(apis, FORGOTTEN)
    return {
        "run_id": run_id,
        "closed": already or FORGOTTEN,
        "already_closed": already is not None,
        "may_remain": may_remain,
        "ledger": str(run_ledger.path),
    }


def pending_runs(directory: Path) -> list[str]:
    """Runs whose ledger does not end with a complete rollback (or a closing reason)."""
    pending = []
    for run_id in ledger.run_ids(directory):
        try:
            if is_run_id(run_id) and not ledger.is_closed(
                ledger.Ledger(directory, run_id).entries()
            ):
                pending.append(run_id)
        except InvalidInput:
            continue  # reported by foreign_ledger_files
    return pending


def foreign_ledger_files(directory: Path) -> list[str]:
    """Files in the ledger directory that are not ledgers this release reads: names that are no
    run id (e.g. the previous release's hyphenated ids), links leading elsewhere. Reported,
    never read."""
    foreign = []
    for name in ledger.run_ids(directory):
        try:
            if is_run_id(name):
                ledger.Ledger(directory, name)
                continue
        except InvalidInput:
            pass
        foreign.append(f"{name}.jsonl")
    return foreign


def _existing_ledger(directory: Path, run_id: str, field: str) -> ledger.Ledger:
    """The run's ledger; InvalidInput naming ``field`` (the option the id came from) when there
    is none."""
    run_ledger = ledger.Ledger(directory, parse_run_id(run_id, field))
    if not run_ledger.path.exists():
        known = ", ".join(r for r in ledger.run_ids(directory) if is_run_id(r)) or "(none)"
        raise InvalidInput(
            field, f"no ledger for run {run_id!r} in {directory}", f"runs with a ledger: {known}"
        )
    return run_ledger


def _mesh_gone(kube: Kube, api: str, binding: dict[str, Any]) -> str | None:
    """Why the local mesh the run wrote to at ``api`` no longer exists, if it does not. Never
    for a cluster: a cluster that does not answer is down for now, not gone."""
    if binding.get("local_mesh") is not True:
        return None
    if refuses_connections(api):
        return f"the local mesh at {api} is gone (connection refused): its state went with it"
    recorded = binding.get("instance_id")
    if api != kube.host or not recorded:
        return None
    now = (kube.local_mesh() or {}).get("instance_id")
    if now and now != recorded:
        return (
            f"the local mesh at {api} is another instance ({now}; the run wrote to {recorded}): "
            "the run's state went with the one taken down"
        )
    return None


Choose = Callable[[dict[str, Any]], list[str]]


def _sweep(
    kube: Kube, kinds: Collection[ResourceKind], namespaces: Collection[str] | None, choose: Choose
) -> Report:
    report = Report()
    work = []
    for kind in kinds:
        for resource in _listed(kube, kind, namespaces, report):
            metadata = resource["metadata"]
            ref = ResourceRef(kind, metadata["namespace"], metadata["name"])
            report.unproven += _unproven(ref, resource)
            run_ids = choose(resource)
            if run_ids:
                work.append((ref, run_ids, _sweeper(kube, ref, choose, resource)))
    _visit(report, work)
    return report


def _sweeper(
    kube: Kube, ref: ResourceRef, choose: Choose, listed: dict[str, Any]
) -> Callable[[], ownership.Release]:
    return lambda: ownership.release_runs(kube, ref, choose, listed)


def _unproven(ref: ResourceRef, resource: dict[str, Any]) -> list[dict[str, Any]]:
    """What looks like ours but is not proven ours: reported, left in place."""
    found = [
        {
            "resource": str(ref),
            "route": name,
            "reason": "named like a chaosmesh copy, but no record names it and its content "
            "is not what chaosmesh wrote: left in place; remove it by hand if it is a leftover",
        }
        for name in route_copy.unproven_copies(resource)
    ]
    name = str(resource["metadata"].get("name", ""))
    if split_owned_name(name) and not records(resource) and not owned_object.proven_owner(resource):
        found.append(
            {
                "resource": str(ref),
                "object": name,
                "reason": "named like an object chaosmesh creates, but it carries no record "
                "and its content is not what chaosmesh wrote: left in place",
            }
        )
    return found


def _listed(
    kube: Kube, kind: ResourceKind, namespaces: Collection[str] | None, report: Report
) -> Iterable[dict[str, Any]]:
    if namespaces is None:
        try:
            return kube.list(kind, label_selector=editable.sweep_selector(kind))
        except NotFound:
            report.not_served.append(kind.resource)
            return []
        except Forbidden as error:
            # This kind only: the other kinds are still cleaned. Anything else (credentials
            # refused, the API down) holds for every kind and stops the sweep.
            report.failed.append({"kind": kind.resource, "error": str(error)})
            return []
    found: list[dict[str, Any]] = []
    for namespace in namespaces:
        try:
            found += kube.list(kind, namespace, editable.sweep_selector(kind))
        except NotFound:
            continue  # no such namespace, or the kind is not served: nothing owned there
        except ChaosMeshError as error:
            report.failed.append({"namespace": namespace, "error": str(error)})
    return found


Work = tuple[ResourceRef, list[str], Callable[[], ownership.Release]]


def _visit(report: Report, work: list[Work]) -> None:
    def attempt(item: Work) -> tuple[Work, ownership.Release | None, str | None]:
        try:
            return item, item[2](), None
        except ChaosMeshError as error:
            return item, None, str(error)

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        results = list(pool.map(attempt, work))
    for (ref, run_ids, _), result, error in results:
        if error is not None or result is None:
            report.failed.append({"resource": str(ref), "run_ids": run_ids, "error": error})
            continue
        report.conflicts += [{"resource": str(ref), **c} for c in result.conflicts]
        if result.anything:
            entry: dict[str, Any] = {
                "resource": str(ref),
                "run_ids": result.runs or run_ids,
                "routes": result.routes,
            }
            if result.described:
                entry["what"] = result.described
            if result.fields:
                entry["fields"] = result.fields
            if result.deleted:
                entry["deleted"] = True
            report.removed.append(entry)
        else:
            report.unchanged += 1


def format_report(title: str, report: Report) -> str:
    """The report for a person: one line per resource that changed or could not be cleaned."""
    fields = sum(len(r.get("fields", ())) for r in report.removed)
    deleted = sum(1 for r in report.removed if r.get("deleted"))
    restored = f", restored {fields} field(s)" if fields else ""
    deletions = f", deleted {deleted} object(s)" if deleted else ""
    lines = [
        f"{title}: removed {report.route_count} route(s){restored}{deletions} from "
        f"{len(report.removed)} resource(s), {report.unchanged} already clean"
    ]
    for entry in report.removed:
        what = []
        if entry["routes"]:
            described = entry.get("what") or {}
            what.append(
                ", ".join(
                    f"{name} ({described[name]})" if name in described else name
                    for name in entry["routes"]
                )
            )
        if entry.get("fields"):
            described = entry.get("what") or {}
            what.append(
                "restored "
                + ", ".join(
                    f"{path} ({described[path]})" if path in described else path
                    for path in entry["fields"]
                )
            )
        if entry.get("deleted"):
            # An owned object's description, when its kind has one (an inbound fault's).
            described = list((entry.get("what") or {}).values()) if not entry["routes"] else []
            what.append("deleted" + (f" ({'; '.join(described)})" if described else ""))
        lines.append(f"  removed  {entry['resource']}: {'; '.join(what)}")
    for entry in report.conflicts:
        lines.append(f"  kept     {describe_conflict(entry['resource'], entry)}")
    for lost in report.removed_by_another_writer:
        routes = ", ".join(lost["routes"]) or "its edits"
        lines.append(
            f"  gone     {lost['resource']}: {routes} removed by another writer before this "
            "rollback; nothing of it to remove"
        )
    for entry in report.failed:
        where = entry.get("resource") or entry.get("kind") or f"namespace {entry.get('namespace')}"
        lines.append(f"  LEFT     {where}: {entry['error']}")
    for entry in report.skipped:
        lines.append(f"  skipped  {entry['resource']}: {entry['reason']}")
    for entry in report.unproven:
        lines.append(
            f"  unproven {entry['resource']}: {entry.get('route') or entry.get('object')}: "
            f"{entry['reason']}"
        )
    if report.closed and report.closed != "rolled back completely":
        lines.append(f"  closed   {report.closed}")
    if not report.complete:
        lines.append("  incomplete: run the same command again once the above is fixed")
    return "\n".join(lines)


def describe_conflict(resource: str, conflict: Mapping[str, Any]) -> str:
    """A field a removal left as another writer set it, for people."""
    return (
        f"{resource}: {conflict['field']} was changed by another writer after run "
        f"{conflict['run_id']} set it; their value stays (before the run: "
        f"{_short(conflict['replaced'])})"
    )


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 80 else text[:77] + "..."
