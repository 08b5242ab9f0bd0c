"""What Kubernetes would know about the local mesh's workloads: services, pods, ports.

On a cluster, istiod learns this from Services, Pods and Endpoints. The local mesh has no
kubelet, so the topology is declared: each workload (a "pod") listens on its own port on
127.0.0.1, and has its own sidecar, an outbound listener on the shared Envoy through which the
workload makes every call to another service (it sends ``Host: <service>:<port>``, like a call
to the service's cluster DNS name). Traffic from outside enters through the ingress listener.
"""

from __future__ import annotations

import random
import socket
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
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
    """One pod: the labels it carries, where its app listens, where its sidecar listens."""

    name: str
    namespace: str
    labels: Mapping[str, str]
    port: int
    sidecar_port: int

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
        """The workloads behind ``service``, narrowed to a DestinationRule subset's labels."""
        return [
            workload
            for workload in self.workloads
            if workload.namespace == service.namespace
            and workload.matches(service.selector)
            and workload.matches(subset or {})
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
