"""The Pods a workload selector picks: what an owned object aimed at workloads (an inbound
EnvoyFilter, a PeerAuthentication, an AuthorizationPolicy) would apply to.

Checked before any write: a selector that picks nothing is admitted by Istio and tests nothing,
so the error names the labels the namespace's Pods do carry.
"""

from __future__ import annotations

from collections.abc import Mapping

from chaosmesh_py.errors import NotFound, TargetNotFound
from chaosmesh_py.kube import POD, Kube
from chaosmesh_py.observe.inbound_hits import inbound_pods


def selected_pods(
    kube: Kube,
    namespace: str,
    labels: Mapping[str, str],
    *,
    field: str = "workload_labels",
    would: str = "the EnvoyFilter would fault nothing",
) -> list[str]:
    """The names of the Pods ``labels`` select in ``namespace``; TargetNotFound (naming
    ``field`` and saying what the object ``would`` do) for none."""
    try:
        pods = kube.list(POD, namespace)
    except NotFound:
        pods = []
    names = sorted(
        str(pod["metadata"]["name"])
        for pod in pods
        if all((pod["metadata"].get("labels") or {}).get(k) == v for k, v in labels.items())
    )
    if names:
        return names
    mesh = kube.local_mesh()
    if mesh is not None and not pods:
        # A local mesh whose API serves no Pods yet: its declared workloads are its pods.
        names = sorted(inbound_pods(mesh, labels)) if mesh.get("namespace") == namespace else []
        if names:
            return names
    selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    existing = sorted(
        {
            ",".join(f"{k}={v}" for k, v in sorted((p["metadata"].get("labels") or {}).items()))
            for p in pods
        }
    )
    raise TargetNotFound(
        field,
        f"no Pod in namespace {namespace!r} carries {selector}: {would}",
        "pods there carry: " + ("; ".join(existing) if existing else "(no pods)"),
    )
