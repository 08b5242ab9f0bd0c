"""What Kubernetes would know about the local mesh's workloads: services, pods, ports.

On a cluster, istiod learns this from Services, Pods and Endpoints. The local mesh has no
kubelet, so the topology is declared: each workload (a "pod") listens on its own port on
127.0.0.1, and has its own sidecar, an outbound listener on the shared Envoy through which the
workload makes every call to another service (it sends ``Host: <service>:<port>``, like a call
to the service's cluster DNS name). Traffic from outside enters through the ingress listener.

Clients without a sidecar have their own ways in, as on Kubernetes: a workload's ``pod_port`` is
its pod address (the pod's inbound, where PeerAuthentication applies, in front of the app), and a
service's ``no_sidecar_ports`` entry is its ClusterIP as kube-proxy serves it (every endpoint the
selector picks, per connection, no VirtualService; ``chaosmesh_py.localmesh.kube_proxy``).
"""

from __future__ import annotations

import random
import socket
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

CLUSTER_DOMAIN = "svc.cluster.local"


@dataclass(frozen=True)
class Service:
    """A Kubernetes Service: a name, a port, and the labels that select its workloads."""

    name: str
    namespace: str
    port: int
    selector: Mapping[str, str]

    @property
    def fqdn(self) -> str:
        return f"{self.name}.{self.namespace}.{CLUSTER_DOMAIN}"


@dataclass(frozen=True)
class Workload:
    """One pod (a replica): the labels it carries, where its app listens, where its sidecar
    listens.

    ``name`` is the workload as Istio's telemetry names it (the Deployment: ``reviews-v1``),
    shared by its replicas; ``pod`` the Pod's own name (``reviews-v1-6d8f7c9b4-x2x7k``), "" for a
    workload declared without one. Each replica has its own ports, hence its own listeners.
    """

    name: str
    namespace: str
    labels: Mapping[str, str]
    port: int
    sidecar_port: int
    # The pod's address as a client outside the pod reaches it; 0: not served.
    pod_port: int = 0
    pod: str = ""
    # The pod template's serviceAccountName: the identity its certificate carries.
    service_account: str = "default"

    @property
    def instance(self) -> str:
        """What this replica's own Envoy resources are named after: its pod, else the workload."""
        return self.pod or self.name

    def matches(self, selector: Mapping[str, str]) -> bool:
        return all(self.labels.get(key) == value for key, value in selector.items())


@dataclass(frozen=True)
class Ingress:
    """The ingress gateway: one listener serving VirtualServices bound to a Gateway."""

    port: int
    # Labels of the gateway workload, matched against Gateway.spec.selector.
    labels: Mapping[str, str] = field(default_factory=lambda: {"istio": "ingressgateway"})


@dataclass(frozen=True)
class Topology:
    services: tuple[Service, ...]
    workloads: tuple[Workload, ...]
    ingress: Ingress | None = None
    # Service name -> port of an entry listener that reaches the service as a mesh client
    # without labels would (any Host header): a plain URL per service, for people and probes.
    entry_ports: Mapping[str, int] = field(default_factory=dict)
    # Service name -> port of its ClusterIP as a client without a sidecar reaches it.
    no_sidecar_ports: Mapping[str, int] = field(default_factory=dict)
    # (namespace, service name) -> the pods its Endpoints list as ready: istiod's endpoints. A
    # service without an entry is served by every workload its selector picks (a topology
    # declared by hand, with no API behind it).
    endpoint_pods: Mapping[tuple[str, str], frozenset[str]] = field(default_factory=dict)

    def with_services(self, services: Iterable[Service]) -> Topology:
        """This topology plus ``services`` (Services created through the API); one named like a
        declared service is left out: the declared one stays."""
        known = {(service.name, service.namespace) for service in self.services}
        added = tuple(s for s in services if (s.name, s.namespace) not in known)
        return replace(self, services=(*self.services, *added)) if added else self

    def service(self, host: str, namespace: str) -> Service | None:
        """The service a VirtualService/DestinationRule host names, short or fully qualified."""
        for service in self.services:
            if host in (service.fqdn, f"{service.name}.{service.namespace}") or (
                host == service.name and service.namespace == namespace
            ):
                return service
        return None

    def endpoints(
        self, service: Service, subset: Mapping[str, str] | None = None
    ) -> list[Workload]:
        """The workloads behind ``service`` (those its Endpoints list ready, when known),
        narrowed to a DestinationRule subset's labels."""
        ready = self.endpoint_pods.get((service.namespace, service.name))
        return [
            workload
            for workload in self.workloads
            if workload.namespace == service.namespace
            and workload.matches(service.selector)
            and workload.matches(subset or {})
            and (ready is None or workload.pod in ready)
        ]


def free_ports() -> Iterator[int]:
    """Ports free on 127.0.0.1 now, never the same one twice, chosen *below* the kernel's
    ephemeral range.

    A port is found free here and bound later by another process (Envoy, an app). Asking the
    kernel for port 0 would return an ephemeral port, which the same kernel may meanwhile give to
    an outgoing connection as its source port, and the later bind fails. Below the range, only
    listeners compete, and the check sees them.
    """
    low = _ephemeral_range()[0]
    handed_out: set[int] = set()
    candidates = list(range(max(1024, low - 12000), low))
    random.shuffle(candidates)  # parallel runs start in different places
    for port in candidates:
        if port in handed_out:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        handed_out.add(port)
        yield port
    raise RuntimeError("no free port below the ephemeral range")


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default
