"""Removing owned faults from outside the run that injected them: rollback, halt, reap.

- ``roll_back_run``: replay one run's ledger (``chaosmesh_py.engine.ledger``) and remove what
  is still in place. It works after ``kill -9`` and from another shell while the run goes on.
- ``halt``: remove every owned fault, of every run, from every VirtualService the credentials
  can list: the incident button.
- ``reap``: remove only what has outlived its expiry (the owner annotation says when), with no
  ledger at all: the runner's machine may be gone. A fault copy whose owner annotation someone
  removed has no expiry left to honour, and is reaped too.

All three visit resources in parallel (a few workers: the API server, not this process, is the
bottleneck) and never raise for one resource's failure: the report says what is left and why.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chaosmesh_py.engine import ledger
from chaosmesh_py.errors import ChaosMeshError, InvalidInput, NotFound
from chaosmesh_py.faults import injection
from chaosmesh_py.istio import route_copy
from chaosmesh_py.kube import Kube, ResourceKind, ResourceRef

WORKERS = 8


@dataclass
class Report:
    """What a clean-up did: removed routes per resource, what it could not do, and why."""

    removed: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    unchanged: int = 0

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
            "unchanged": self.unchanged,
            "routes_removed": self.route_count,
            "complete": self.complete,
        }


def halt(kube: Kube, kind: ResourceKind, namespaces: Collection[str] | None = None) -> Report:
    """Remove every trace of every run from every VirtualService in ``namespaces`` (all when
    None)."""
    return _sweep(kube, kind, namespaces, route_copy.owner_run_ids)


def reap(
    kube: Kube,
    kind: ResourceKind,
    namespaces: Collection[str] | None = None,
    now: datetime | None = None,
) -> Report:
    """Remove every owned edit whose expiry has passed, and fault copies left without owner."""
    moment = now or datetime.now(UTC)

    def due(resource: dict[str, Any]) -> list[str]:
        live = {o.run_id for o in route_copy.ownerships(resource) if not o.expired(moment)}
        return [run_id for run_id in route_copy.owner_run_ids(resource) if run_id not in live]

    return _sweep(kube, kind, namespaces, due)


def roll_back_run(kube: Kube, directory: Path, run_id: str) -> Report:
    """Remove what run ``run_id`` still has in place on every resource its ledger names."""
    run_ledger = ledger.Ledger(directory, run_id)
    if not run_ledger.path.exists():
        known = ", ".join(ledger.run_ids(directory)) or "(none)"
        raise InvalidInput(
            "--run", f"no ledger for run {run_id!r} in {directory}", f"runs with a ledger: {known}"
        )
    entries = run_ledger.entries()
    in_flight = ledger.uncertain(entries)
    report = Report()
    refs = []
    for api, ref in ledger.touched(entries):
        if api == kube.host:
            refs.append(ref)
        else:
            report.skipped.append(
                {
                    "virtual_service": f"{ref.namespace}/{ref.name}",
                    "run_id": run_id,
                    "reason": f"recorded for the API at {api}, not {kube.host}: point "
                    "KUBECONFIG / KUBERNETES_CONTEXT (or KUBERNETES_HOST) at it and run again",
                }
            )

    def remove(ref: ResourceRef) -> dict[str, Any]:
        fence = (kube.host, ref) in in_flight
        return injection.remove(kube, ref, run_id, run_ledger=run_ledger, fence=fence)

    _visit(report, [(ref, [run_id], remove) for ref in refs])
    if report.complete:
        ledger.best_effort(lambda: run_ledger.close(kube.host))
    return report


def pending_runs(directory: Path) -> list[str]:
    """Runs whose ledger does not end with a complete rollback."""
    return [
        run_id
        for run_id in ledger.run_ids(directory)
        if not ledger.is_closed(ledger.Ledger(directory, run_id).entries())
    ]


Selector = Callable[[dict[str, Any]], list[str]]


def _sweep(
    kube: Kube, kind: ResourceKind, namespaces: Collection[str] | None, runs_to_remove: Selector
) -> Report:
    report = Report()
    work = []
    for resource in _listed(kube, kind, namespaces, report):
        metadata = resource["metadata"]
        ref = ResourceRef(kind, metadata["namespace"], metadata["name"])
        run_ids = runs_to_remove(resource)
        if not run_ids:
            continue
        work.append((ref, run_ids, _remover(kube, ref, runs_to_remove, resource)))
    _visit(report, work)
    return report


def _remover(
    kube: Kube, ref: ResourceRef, runs_to_remove: Selector, listed: dict[str, Any]
) -> Callable[[ResourceRef], dict[str, Any]]:
    def remove(_: ResourceRef) -> dict[str, Any]:
        removed: list[str] = []

        def plan(current: dict[str, Any]) -> dict[str, Any] | None:
            # Chosen again from every fresh read: a run may have added or removed meanwhile.
            run_ids = runs_to_remove(current)
            patch = route_copy.plan_removal_of_runs(current, run_ids)
            if patch is not None:
                removed[:] = [
                    r["name"] for run_id in run_ids for r in route_copy.run_routes(current, run_id)
                ]
            return patch

        try:
            outcome = kube.update(ref, plan, current=listed)
        except NotFound:
            return {"removed": [], "gone": True}
        return {"removed": removed if outcome.wrote else []}

    return remove


def _listed(
    kube: Kube, kind: ResourceKind, namespaces: Collection[str] | None, report: Report
) -> Iterable[dict[str, Any]]:
    if namespaces is None:
        return kube.list(kind)
    found: list[dict[str, Any]] = []
    for namespace in namespaces:
        try:
            found += kube.list(kind, namespace)
        except NotFound:
            continue  # no such namespace: nothing owned there
        except ChaosMeshError as error:
            report.failed.append({"namespace": namespace, "error": str(error)})
    return found


Work = tuple[ResourceRef, list[str], Callable[[ResourceRef], dict[str, Any]]]


def _visit(report: Report, work: list[Work]) -> None:
    def attempt(item: Work) -> tuple[Work, dict[str, Any] | None, str | None]:
        ref, _, remove = item
        try:
            return item, remove(ref), None
        except ChaosMeshError as error:
            return item, None, str(error)

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        results = list(pool.map(attempt, work))
    for (ref, run_ids, _), result, error in results:
        where = f"{ref.namespace}/{ref.name}"
        if error is not None:
            report.failed.append({"virtual_service": where, "run_ids": run_ids, "error": error})
        elif result and result["removed"]:
            report.removed.append(
                {"virtual_service": where, "run_ids": run_ids, "routes": result["removed"]}
            )
        else:
            report.unchanged += 1


def format_report(title: str, report: Report) -> str:
    """The report for a person: one line per resource that changed or could not be cleaned."""
    lines = [
        f"{title}: removed {report.route_count} route(s) from {len(report.removed)} "
        f"VirtualService(s), {report.unchanged} already clean"
    ]
    for entry in report.removed:
        lines.append(f"  removed  {entry['virtual_service']}: {', '.join(entry['routes'])}")
    for entry in report.failed:
        where = entry.get("virtual_service") or f"namespace {entry.get('namespace')}"
        lines.append(f"  LEFT     {where}: {entry['error']}")
    for entry in report.skipped:
        lines.append(f"  skipped  {entry['virtual_service']}: {entry['reason']}")
    if not report.complete:
        lines.append("  incomplete: run the same command again once the above is fixed")
    return "\n".join(lines)
