"""The call graph a policy report is about: its edges, declared or read from Istio's metrics, and
the Istio objects that decide each edge's policy, read from the API.

An edge is one caller calling one host: the caller is a service (its workloads' ``app`` label,
Istio's canonical service) in a namespace, with the labels its pods carry (for ``sourceLabels``
matches; declared edges default to ``{"app": <source>}``, the convention Istio's own canonical
service follows, and may say more), and the host is what it calls, read as its cluster DNS reads
it (``reviews``: the Service in the caller's namespace; ``reviews.shop``; an FQDN).

Declared: a list of ``{"source": "productpage", "destination": "reviews"}``, each optionally with
``namespace`` (the caller's; default the report's first namespace, else ``default``),
``source_labels``, ``source_workload`` and ``port`` (the service port called). A file holds that
list as JSON or YAML, or a mapping with the list under ``edges``.

From metrics: ``istio_requests_total`` as the callers' sidecars report it (``reporter="source"``),
one edge per (source workload, destination service) counter scraped within a window; the
caller's labels are the metric's ``source_app`` / ``source_version`` (Istio's ``app`` and
``version`` labels).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaosmesh_py.engine.access import Access, on
from chaosmesh_py.errors import InvalidInput, shown
from chaosmesh_py.istio import grammar
from chaosmesh_py.istio.routing import service_namespace
from chaosmesh_py.kube import SERVICE, Kube, ResourceKind, virtual_service_kind
from chaosmesh_py.kube.names import is_namespace, parse_namespace
from chaosmesh_py.observe import prometheus

EDGE_FIELDS = ("source", "destination", "namespace", "source_labels", "source_workload", "port")
EDGES_FIX = (
    'a list of {"source": "productpage", "destination": "reviews"}, each optionally with '
    '"namespace", "source_labels", "source_workload" and "port"'
)
MAX_EDGES = 100_000
_WINDOW = re.compile(r"([0-9]+(ms|s|m|h|d))+")
UNKNOWN = "unknown"  # what Istio's metrics say for a label they do not know


@dataclass(frozen=True)
class Edge:
    """A caller (service ``source`` in ``namespace``, its pods' ``labels``) calling ``host``."""

    source: str
    namespace: str
    host: str
    labels: Mapping[str, str] = field(default_factory=dict)
    workload: str = ""
    port: int | None = None

    def key(self) -> tuple[str, str, str, tuple[tuple[str, str], ...], str]:
        return (
            self.namespace,
            self.source,
            self.host,
            tuple(sorted(self.labels.items())),
            self.workload,
        )


@dataclass(frozen=True)
class IstioObjects:
    """What decides the edges' policies: VirtualServices, DestinationRules, Services' ports."""

    virtual_services: tuple[dict[str, Any], ...]
    destination_rules: tuple[dict[str, Any], ...]
    service_ports: Mapping[str, int]  # FQDN -> its port, for services with exactly one


def destination_rule_kind(version: str = "v1") -> ResourceKind:
    return ResourceKind("networking.istio.io", version, "destinationrules", "DestinationRule")


# --- declared edges --------------------------------------------------------------------------


def parse_edges(value: object, field_name: str, default_namespace: str) -> list[Edge]:
    """Declared edges, checked: every problem names the entry and the fix."""
    if isinstance(value, Mapping) and "edges" in value:
        value = value["edges"]
    if not isinstance(value, list) or not value:
        raise InvalidInput(
            field_name, f"must be a non-empty list of edges, got {shown(value)}", EDGES_FIX
        )
    if len(value) > MAX_EDGES:
        raise InvalidInput(
            field_name, f"has {len(value)} edges, more than {MAX_EDGES}", "split the graph"
        )
    return [
        _edge(entry, f"{field_name}[{index}]", default_namespace)
        for index, entry in enumerate(value)
    ]


def _edge(entry: object, where: str, default_namespace: str) -> Edge:
    if not isinstance(entry, Mapping):
        raise InvalidInput(where, f"must be an object, got {shown(entry)}", EDGES_FIX)
    unknown = sorted(str(k) for k in entry if k not in EDGE_FIELDS)
    if unknown:
        raise InvalidInput(
            where, f"unknown field(s) {unknown}", f"the fields are {list(EDGE_FIELDS)}"
        )
    for required in ("source", "destination"):
        if required not in entry:
            raise InvalidInput(f"{where}.{required}", "is missing", EDGES_FIX)
    source = entry["source"]
    if not isinstance(source, str) or not grammar.is_dns1123_label(source):
        raise InvalidInput(
            f"{where}.source", f"{shown(source)} is not a service name", 'e.g. "productpage"'
        )
    namespace = parse_namespace(entry.get("namespace", default_namespace), f"{where}.namespace")
    host = _host(entry["destination"], f"{where}.destination")
    labels = _labels(entry.get("source_labels", {"app": source}), f"{where}.source_labels")
    workload = entry.get("source_workload", "")
    if not isinstance(workload, str) or (workload and not grammar.is_dns1123_label(workload)):
        raise InvalidInput(f"{where}.source_workload", f"{shown(workload)} is not a workload name")
    port = entry.get("port")
    if port is not None and (
        isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535
    ):
        raise InvalidInput(f"{where}.port", f"{shown(port)} is not a port number (1-65535)")
    return Edge(source, namespace, host, labels, workload, port)


def _host(value: object, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidInput(where, f"must be a host name, got {shown(value)}", 'e.g. "reviews"')
    if "*" in value:
        raise InvalidInput(where, f"{value!r} is a wildcard", "an edge calls one host")
    problem = grammar.host_problem(value)
    if problem is not None:
        raise problem.at(where)
    return value.lower()


def _labels(value: object, where: str) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise InvalidInput(where, f"must be an object of label: value, got {shown(value)}")
    for key, label in value.items():
        problem = grammar.label_key_problem(key) if isinstance(key, str) else None
        if not isinstance(key, str) or problem is not None:
            raise InvalidInput(where, f"{shown(key)} is not a label key")
        if not isinstance(label, str) or grammar.label_value_problem(label) is not None:
            raise InvalidInput(f"{where}.{key}", f"{shown(label)} is not a label value")
    return dict(value)


def load_edges_file(path: Path, field_name: str, default_namespace: str) -> list[Edge]:
    """Declared edges from a JSON or YAML file."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise InvalidInput(field_name, f"{path} cannot be read: {error.strerror}") from None
    except UnicodeDecodeError:
        raise InvalidInput(field_name, f"{path} is not UTF-8 text", "JSON or YAML") from None
    try:
        document = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as error:
        first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise InvalidInput(
            field_name, f"{path} is not valid JSON/YAML: {first_line}", EDGES_FIX
        ) from None
    return parse_edges(document, field_name, default_namespace)


# --- edges from Istio's metrics --------------------------------------------------------------


def parse_window(value: object, field_name: str = "window") -> str:
    if not isinstance(value, str) or not _WINDOW.fullmatch(value):
        raise InvalidInput(field_name, f"{shown(value)} is not a PromQL duration", "e.g. 10m, 1h")
    return value


def edges_from_metrics(url: str, window: str, namespaces: Sequence[str]) -> list[Edge]:
    """Every (source workload -> destination service) pair whose request counter Prometheus
    scraped within ``window``, as the callers' sidecars report them; only pairs touching
    ``namespaces`` (all when empty). A pair's counter exists once it has been called and lives
    as long as the caller's proxy, so this is every call since then, not only recent ones (a
    rate over the window would miss a pair whose counter appeared with its last request)."""
    promql = (
        "group by (source_workload, source_workload_namespace, source_canonical_service, "
        "source_app, source_version, destination_service) "
        f'(last_over_time(istio_requests_total{{reporter="source"}}[{parse_window(window)}]))'
    )
    edges = []
    for series in prometheus.query(url, promql):
        labels = series["metric"]
        namespace = labels.get("source_workload_namespace", "")
        host = labels.get("destination_service", "")
        source = _known(labels.get("source_canonical_service")) or _known(labels.get("source_app"))
        if not is_namespace(namespace) or not source or not host or host == UNKNOWN:
            continue  # the ingress's or a client's without a sidecar: not a mesh caller
        if namespaces and namespace not in namespaces and service_namespace(host) not in namespaces:
            continue
        pod_labels = {
            key: value
            for key, value in (
                ("app", labels.get("source_app")),
                ("version", labels.get("source_version")),
            )
            if _known(value)
        }
        edges.append(
            Edge(source, namespace, host.lower(), pod_labels, _known(labels.get("source_workload")))
        )
    return edges


def _known(value: str | None) -> str:
    return "" if value in (None, "", UNKNOWN) else str(value)


# --- the Istio objects -----------------------------------------------------------------------


def needs(namespaces: Sequence[str] | None, version: str = "v1") -> list[Access]:
    """Listing VirtualServices, DestinationRules and Services in ``namespaces`` (None: all)."""
    kinds = (virtual_service_kind(version), destination_rule_kind(version), SERVICE)
    scopes: Iterable[str | None] = namespaces if namespaces else [None]
    return [access for kind in kinds for scope in scopes for access in on(kind, ["list"], scope)]


def read_objects(kube: Kube, namespaces: Sequence[str], version: str = "v1") -> IstioObjects:
    """The objects in ``namespaces`` (all of them when empty); a namespace holding none of them
    at all is refused: it is most likely a typo, and a report of nothing would read as fine."""
    scopes: list[str | None] = list(namespaces) or [None]
    virtual_services: list[dict[str, Any]] = []
    destination_rules: list[dict[str, Any]] = []
    services: list[dict[str, Any]] = []
    for scope in scopes:
        found = (
            kube.list(virtual_service_kind(version), scope),
            kube.list(destination_rule_kind(version), scope),
            kube.list(SERVICE, scope),
        )
        if scope is not None and not any(found):
            raise InvalidInput(
                "namespaces",
                f"{scope!r} holds no Service, VirtualService or DestinationRule",
                "name the namespace the services run in (-n, repeatable)",
            )
        virtual_services += found[0]
        destination_rules += found[1]
        services += found[2]
    return IstioObjects(tuple(virtual_services), tuple(destination_rules), _service_ports(services))


def _service_ports(services: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    ports = {}
    for service in services:
        metadata = service.get("metadata") or {}
        declared = (service.get("spec") or {}).get("ports") or []
        if len(declared) == 1 and isinstance(declared[0].get("port"), int):
            fqdn = (
                f"{metadata.get('name')}.{metadata.get('namespace') or 'default'}.svc.cluster.local"
            )
            ports[fqdn] = int(declared[0]["port"])
    return ports
