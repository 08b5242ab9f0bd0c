"""What each upstream fault hit: the requests the faulted pods' inbound sidecars failed, per pod.

An upstream fault (``chaosmesh_py.resilience.actions.inject_upstream_fault``) is applied by the
*server's* sidecar, so the routes of the callers never show it (``chaosmesh_py.observe.hits``
counts route copies). The control counts it where it happens and writes the counts into the
journal (``chaosmesh.upstream_faults``), from the start of the method to the rollback:

    local mesh   each selected pod's inbound fault counters
                 (``http.<inbound prefix>.fault.aborts_injected`` / ``delays_injected``): how
                 much they grew, less the effect check's own requests (its ``verifier_hits``).
                 A request both delayed and aborted counts twice; another fault on the same pod
                 in the same window counts too (the counters are per pod, not per EnvoyFilter).
    cluster      "unknown": the destination's ``istio_requests_total{reporter="destination",
                 response_flags="FI"|"DI"}`` names workloads, not the pods a selector picked.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from chaosmesh_py.engine.envoy_admin import EnvoyAdmin, EnvoyAdminError
from chaosmesh_py.errors import ChaosMeshError
from chaosmesh_py.kube import Kube

logger = logging.getLogger("chaostoolkit")

ACTIONS_MODULE = "chaosmesh_py.resilience.actions"
ACTION = "inject_upstream_fault"
COUNTERS = {"aborts_injected": "aborted", "delays_injected": "delayed"}
UNKNOWN = "unknown"


@dataclass(frozen=True)
class InjectedUpstream:
    """One upstream fault a method injected, as its action reported it."""

    activity: str
    envoy_filter: str
    pods: tuple[str, ...]  # as the action found them in the API
    labels: Mapping[str, str] = field(default_factory=dict)  # the EnvoyFilter's selector
    verifier_hits: Mapping[str, int] = field(default_factory=dict)


def injected(runs: Iterable[Any]) -> list[InjectedUpstream]:
    """The upstream faults a journal's ``run`` entries show injected."""
    found = []
    for entry in runs:
        if not isinstance(entry, dict) or entry.get("status") != "succeeded":
            continue
        activity = entry.get("activity") or {}
        provider = activity.get("provider") or {}
        output = entry.get("output")
        if (provider.get("module"), provider.get("func")) != (ACTIONS_MODULE, ACTION):
            continue
        if not isinstance(output, dict):
            continue
        effect = output.get("effect")
        effect = effect if isinstance(effect, dict) else {}
        found.append(
            InjectedUpstream(
                activity=str(activity.get("name", "?")),
                envoy_filter=str(output.get("envoy_filter", "?")),
                pods=tuple(str(p) for p in output.get("workloads") or ()),
                labels={
                    str(k): str(v)
                    for k, v in ((output.get("fault") or {}).get("workload_labels") or {}).items()
                },
                verifier_hits={
                    str(k): int(v) for k, v in (effect.get("verifier_hits") or {}).items()
                },
            )
        )
    return found


def start(kube: Kube | None) -> dict[str, int]:
    """Every pod's inbound fault counters now (a local mesh's; {} elsewhere). Never raises."""
    mesh = _local_mesh(kube)
    if mesh is None:
        return {}
    try:
        return _counters(mesh)
    except (EnvoyAdminError, OSError) as error:
        logger.debug(f"chaosmesh: no inbound fault baseline from Envoy: {error}")
        return {}


def count(
    faults: Sequence[InjectedUpstream], apis: Sequence[Kube], started: Mapping[str, int] | None
) -> list[dict[str, Any]]:
    """What each upstream fault hit since ``started``, per pod, as the journal holds it."""
    if not faults:
        return []
    meshes = [mesh for mesh in (_local_mesh(kube) for kube in apis) if mesh is not None]
    if started is None or not meshes:
        why = (
            "not counted: the method's start was not recorded"
            if started is None
            else 'not counted on a cluster: read istio_requests_total{reporter="destination",'
            'response_flags=~"FI|DI"} for the faulted workloads'
        )
        return [_entry(fault, None, why) for fault in faults]
    try:
        now = _counters(meshes[0])
    except (EnvoyAdminError, OSError) as error:
        return [_entry(f, None, f"Envoy's counters could not be read: {error}") for f in faults]
    counted = []
    for fault in faults:
        by_pod: dict[str, dict[str, int]] = {}
        for pod in inbound_pods(meshes[0], fault.labels):
            moved = {
                name: now.get(_key(pod, counter), 0) - started.get(_key(pod, counter), 0)
                for counter, name in COUNTERS.items()
            }
            own = fault.verifier_hits.get(pod, 0)
            by_pod[pod] = {**moved, "hits": max(sum(moved.values()) - own, 0)}
        counted.append(
            _entry(
                fault,
                by_pod,
                "local mesh: each pod's inbound fault counters from the start of the method to "
                "the rollback, less the effect check's own requests",
            )
        )
    return counted


def _entry(
    fault: InjectedUpstream, by_pod: Mapping[str, Mapping[str, int]] | None, counted: str
) -> dict[str, Any]:
    return {
        "activity": fault.activity,
        "envoy_filter": fault.envoy_filter,
        "pods": list(fault.pods),
        "hits": UNKNOWN if by_pod is None else sum(p["hits"] for p in by_pod.values()),
        "by_pod": {} if by_pod is None else {pod: dict(c) for pod, c in by_pod.items()},
        "counted": counted,
    }


def inbound_pods(mesh: Mapping[str, Any], labels: Mapping[str, str]) -> dict[str, Any]:
    """The local mesh's pods (as its status names them) that ``labels`` select and that have
    an inbound sidecar: what an EnvoyFilter's workloadSelector picks there."""
    return {
        name: workload
        for name, workload in sorted((mesh.get("workloads") or {}).items())
        if workload.get("inbound_stat_prefix")
        and all((workload.get("labels") or {}).get(k) == v for k, v in labels.items())
    }


def _key(pod: str, counter: str) -> str:
    return f"{pod}|{counter}"


def _counters(mesh: Mapping[str, Any]) -> dict[str, int]:
    """``<pod>|<counter>`` -> value, for every pod with an inbound sidecar."""
    prefixes = {
        str(w["inbound_stat_prefix"]): name
        for name, w in (mesh.get("workloads") or {}).items()
        if w.get("inbound_stat_prefix")
    }
    with EnvoyAdmin(str(mesh["envoy_admin_socket"])) as admin:
        stats = admin.counters(r"^http\.inbound_.*\.fault\.(aborts|delays)_injected$")
    values = {}
    for prefix, pod in prefixes.items():
        for counter in COUNTERS:
            values[_key(pod, counter)] = stats.get(f"http.{prefix}.fault.{counter}", 0)
    return values


def _local_mesh(kube: Kube | None) -> Mapping[str, Any] | None:
    if kube is None:
        return None
    try:
        return kube.local_mesh()
    except ChaosMeshError:
        return None
