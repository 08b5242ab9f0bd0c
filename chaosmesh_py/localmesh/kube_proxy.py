"""What a client without a sidecar meets: kube-proxy in front of a Service, then the pod's inbound.

On Kubernetes, a pod without a sidecar (or a node, or anything outside the mesh) that calls
``reviews:9080`` resolves the Service's ClusterIP, and kube-proxy sends each *connection* to one
of the ready endpoints the Service's selector picks. It works at L4: no VirtualService, no
DestinationRule subset, no header is looked at. The connection then reaches the pod, where the
pod's inbound sidecar decides by PeerAuthentication: PERMISSIVE (Istio's default) lets plain
text through to the app; STRICT accepts only mutual TLS, so a plain-text client's connection is
closed before any byte reaches the app.

Envoy configuration (part of ``chaosmesh_py.localmesh.translate``'s output)

``kube-proxy~<namespace>~<service>`` on 127.0.0.1:``topology.no_sidecar_ports[service]``
    A TCP proxy to ``kube-proxy|<port>||<fqdn>``: ROUND_ROBIN over the pod addresses of every
    workload the Service selects, one choice per connection. A pod's address is its inbound
    sidecar (``chaosmesh_py.localmesh.inbound``), which applies PeerAuthentication's mode.

PeerAuthentication's mode for the pod is istiod's (``chaosmesh_py.istio.peer_authentication``),
applied by the pod's inbound (``chaosmesh_py.localmesh.inbound``).

Where this differs from Kubernetes and Istio
    - kube-proxy's choice is round robin (iptables mode picks at random, IPVS defaults to round
      robin); there is no readiness: every selected workload is an endpoint.
    - A Service created through the API gets no ClusterIP address here (only the declared
      services have a ``no_sidecar_ports`` entry); sidecars do route to it.
"""

from __future__ import annotations

from chaosmesh_py.localmesh.envoy import JsonDict
from chaosmesh_py.localmesh.topology import Service, Topology

LISTENER_TYPE = "type.googleapis.com/envoy.config.listener.v3.Listener"
CLUSTER_TYPE = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
TCP_PROXY_TYPE = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"
LOCALHOST = "127.0.0.1"


def kube_proxy_cluster_name(service: Service) -> str:
    return f"kube-proxy|{service.port}||{service.fqdn}"


def no_sidecar_config(topology: Topology) -> tuple[list[JsonDict], list[JsonDict]]:
    """Listeners and clusters for the services' ClusterIPs."""
    listeners: list[JsonDict] = []
    clusters: list[JsonDict] = []
    for service in topology.services:
        port = topology.no_sidecar_ports.get(service.name)
        if port is None:
            continue
        cluster = kube_proxy_cluster_name(service)
        endpoints = [w.pod_port for w in topology.endpoints(service) if w.pod_port]
        clusters.append(_static_cluster(cluster, sorted(endpoints), "ROUND_ROBIN"))
        name = f"kube-proxy~{service.namespace}~{service.name}"
        listeners.append(_tcp_listener(name, port, f"kube_proxy_{service.name}", cluster))
    return listeners, clusters


def _tcp_proxy(stat_prefix: str, cluster: str) -> JsonDict:
    return {
        "name": "envoy.filters.network.tcp_proxy",
        "typed_config": {"@type": TCP_PROXY_TYPE, "stat_prefix": stat_prefix, "cluster": cluster},
    }


def _tcp_listener(name: str, port: int, stat_prefix: str, cluster: str) -> JsonDict:
    return {
        "@type": LISTENER_TYPE,
        "name": name,
        "address": {"socket_address": {"address": LOCALHOST, "port_value": port}},
        "filter_chains": [{"filters": [_tcp_proxy(stat_prefix, cluster)]}],
    }


def _static_cluster(name: str, ports: list[int], lb_policy: str) -> JsonDict:
    return {
        "@type": CLUSTER_TYPE,
        "name": name,
        "type": "STATIC",
        "connect_timeout": "10s",
        "lb_policy": lb_policy,
        "load_assignment": load_assignment(name, ports),
    }


def load_assignment(cluster: str, ports: list[int]) -> JsonDict:
    """A STATIC cluster's endpoints: 127.0.0.1 at each port, in this order."""
    return {
        "cluster_name": cluster,
        "endpoints": [
            {
                "lb_endpoints": [
                    {
                        "endpoint": {
                            "address": {
                                "socket_address": {"address": LOCALHOST, "port_value": port}
                            }
                        }
                    }
                    for port in ports
                ]
            }
        ],
    }
