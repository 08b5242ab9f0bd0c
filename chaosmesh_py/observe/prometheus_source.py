"""Which Prometheus a probe asks: the URL an experiment gives, or, when it is empty, the one the
local mesh serving this API publishes (an unset ``${PROMETHEUS_URL}`` with default "" means
"the local mesh's"). One place for the rule, used by every probe that reads Istio's metrics."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chaosmesh_py.engine.access import Access
from chaosmesh_py.errors import ChaosMeshError, InvalidInput
from chaosmesh_py.kube import Kube


def needs(arguments: Mapping[str, Any]) -> list[Access]:
    """A Prometheus URL asks nothing of the Kubernetes API; an empty one means the local
    mesh's Prometheus, which only a local mesh has: refused for a cluster's game day (what
    these declarations serve, chaosmesh_py.gameday.rbac)."""
    if arguments.get("prometheus_url"):
        return []
    raise InvalidInput(
        "prometheus_url",
        "is empty: that means the local mesh's own Prometheus, and a cluster has none",
        "give the URL of the Prometheus that scrapes Istio's metrics (for a game day: "
        "render --env PROMETHEUS_URL=http://prometheus.istio-system:9090, if the experiment "
        "reads ${PROMETHEUS_URL})",
    )


def url(prometheus_url: str, secrets: Mapping[str, Any] | None) -> str:
    """`prometheus_url`, or when empty (an unset ${PROMETHEUS_URL} with default "") the one the
    local mesh serving this API publishes; InvalidInput on a cluster or a mesh without one."""
    if prometheus_url:
        return prometheus_url
    fix = "give the URL of the Prometheus that scrapes Istio's metrics, e.g. ${PROMETHEUS_URL}"
    try:
        mesh = Kube.connect(secrets).local_mesh()
    except ChaosMeshError as error:
        raise InvalidInput(
            "prometheus_url", f"is empty, and no local mesh could be asked for one ({error})", fix
        ) from error
    if mesh is None:
        raise InvalidInput("prometheus_url", "is empty, and this API is a cluster's", fix)
    running = mesh.get("prometheus") or {}
    if not running.get("url"):
        reason = running.get("reason", "it is older than this version")
        raise InvalidInput(
            "prometheus_url",
            f"is empty, and the local mesh runs no Prometheus: {reason}",
            f"{fix}, or install Prometheus and start the mesh again",
        )
    return str(running["url"])
