"""One policy report as the CLI and the probes ask for it: the arguments checked before anything
is read, then the edges and objects read, then the report (``chaosmesh_py.resilience.report``).

The checks need no API and no Prometheus (an edges file is read, it is the user's input), so
``chaosmesh validate`` and the control refuse a bad report request before a run starts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chaosmesh_py import checks
from chaosmesh_py.engine.access import Access
from chaosmesh_py.errors import InvalidInput, shown
from chaosmesh_py.faults.injection import Settings
from chaosmesh_py.istio.effective_policy import call_host
from chaosmesh_py.istio.routing import service_namespace
from chaosmesh_py.kube import Kube
from chaosmesh_py.kube.names import parse_namespace
from chaosmesh_py.observe import prometheus_source
from chaosmesh_py.resilience import call_graph, report

MAX_THRESHOLD = 10**12
MAX_PATHS = 100_000


@dataclass(frozen=True)
class ReportRequest:
    namespaces: tuple[str, ...]  # empty: all
    declared: tuple[call_graph.Edge, ...]
    from_metrics: bool
    prometheus_url: str  # "": the local mesh's
    window: str
    max_amplification: int
    max_paths: int
    ignore: tuple[str, ...] = ()
    istio_version: str = "v1"

    @property
    def default_namespace(self) -> str:
        return self.namespaces[0] if self.namespaces else "default"


def parse_request(arguments: Mapping[str, Any]) -> ReportRequest:
    """The probe's (or the CLI's) arguments, checked; InvalidInput names the field and fix."""
    namespaces = _namespaces(arguments.get("namespaces"))
    default_namespace = namespaces[0] if namespaces else "default"
    declared: list[call_graph.Edge] = []
    edges, edges_file = arguments.get("edges"), arguments.get("edges_file")
    if edges is not None:
        declared += call_graph.parse_edges(edges, "edges", default_namespace)
    if edges_file is not None:
        if not isinstance(edges_file, str | Path) or not str(edges_file):
            raise InvalidInput("edges_file", f"must be a file path, got {shown(edges_file)}")
        declared += call_graph.load_edges_file(Path(edges_file), "edges_file", default_namespace)
    from_metrics = checks.flag("from_metrics", arguments.get("from_metrics", False))
    if not declared and not from_metrics:
        raise InvalidInput(
            "edges",
            "no call graph: no edges given and from_metrics is false",
            "declare edges (edges, edges_file / --edges FILE), or read them from Istio's "
            "metrics (from_metrics / --from-metrics)",
        )
    url = arguments.get("prometheus_url") or ""
    if not isinstance(url, str) or (url and not url.startswith(("http://", "https://"))):
        raise InvalidInput(
            "prometheus_url", f"{shown(url)} is not an http(s) URL", "e.g. http://prometheus:9090"
        )
    window = call_graph.parse_window(arguments.get("window", "10m"))
    return ReportRequest(
        namespaces=namespaces,
        declared=tuple(declared),
        from_metrics=from_metrics,
        prometheus_url=url,
        window=window,
        max_amplification=checks.whole(
            "max_amplification",
            arguments.get("max_amplification", report.DEFAULT_MAX_AMPLIFICATION),
            1,
            MAX_THRESHOLD,
            "the most attempts at a leaf per request entering the path that is not a finding",
        ),
        max_paths=checks.whole(
            "max_paths", arguments.get("max_paths", report.DEFAULT_MAX_PATHS), 1, MAX_PATHS
        ),
        ignore=_kinds(arguments.get("ignore")),
        istio_version=Settings.from_configuration(arguments.get("configuration")).kind.version,
    )


def _namespaces(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not value:
        raise InvalidInput(
            "namespaces", f"must be a namespace or a list of them, got {shown(value)}"
        )
    return tuple(dict.fromkeys(parse_namespace(n, "namespaces") for n in value))


def _kinds(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list | tuple) or any(k not in report.FINDING_KINDS for k in value):
        raise InvalidInput(
            "ignore",
            f"must be a list of finding kinds, got {shown(value)}",
            f"kinds are {list(report.FINDING_KINDS)}",
        )
    return tuple(value)


def needs(arguments: Mapping[str, Any]) -> list[Access]:
    """Listing VirtualServices, DestinationRules and Services where the report looks; with
    from_metrics, a Prometheus URL a cluster can reach (``prometheus_source.needs``)."""
    request = parse_request(arguments)
    if request.from_metrics:
        prometheus_source.needs(arguments)
    return call_graph.needs(request.namespaces or None, request.istio_version)


def produce(request: ReportRequest, secrets: Mapping[str, Any] | None) -> report.Analysis:
    """Read the edges and objects, and build the report."""
    kube = Kube.connect(secrets)
    edges = list(request.declared)
    source = "declared" if edges else ""
    if request.from_metrics:
        url = prometheus_source.url(request.prometheus_url, secrets)
        measured = call_graph.edges_from_metrics(url, request.window, request.namespaces)
        if not measured:
            raise InvalidInput(
                "from_metrics",
                f"Istio's metrics show no calls between mesh workloads over the last "
                f"{request.window}{_where(request.namespaces)}",
                "send traffic first, widen the window, or declare the edges",
            )
        edges += measured
        source = "+".join(filter(None, (source, f"metrics over {request.window}")))
    objects = call_graph.read_objects(kube, request.namespaces, request.istio_version)
    built = report.build_report(
        edges,
        objects,
        max_amplification=request.max_amplification,
        max_paths=request.max_paths,
        ignore=request.ignore,
    )
    built.report["edges_from"] = source
    built.report["namespaces"] = list(request.namespaces) or None
    built.report["unread_namespaces"] = _unread(edges, request.namespaces)
    return built


def _unread(edges: Sequence[call_graph.Edge], namespaces: Sequence[str]) -> list[str]:
    """Namespaces the edges touch whose VirtualServices and DestinationRules were not read
    (their edges got Istio's defaults for what lives there): say so rather than guess."""
    if not namespaces:
        return []
    touched = {e.namespace for e in edges} | {
        service_namespace(call_host(e.host, e.namespace)) or "" for e in edges
    }
    return sorted(touched - set(namespaces) - {""})


def _where(namespaces: Sequence[str]) -> str:
    return f" in {', '.join(namespaces)}" if namespaces else ""
