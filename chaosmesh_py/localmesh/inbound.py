"""Each pod's inbound sidecar, as istiod builds it: where every call to the pod arrives.

On a cluster a call from one pod to another goes caller's sidecar (outbound) -> server's sidecar
(inbound) -> app. The server's inbound chain is where server-side policy lives: mutual TLS
(PeerAuthentication), authorization, and the HTTP fault filter an EnvoyFilter may fill in, which
makes an injected abort a real upstream error for the caller (its retries retry it, its outlier
detection counts it), unlike a VirtualService fault, a local reply at the caller.

Envoy configuration (part of ``chaosmesh_py.localmesh.translate``'s output), per pod that serves
(``workload.pod_port``), after istiod's ``listener_inbound.go``, ``httproute.go``
(``buildSidecarInboundHTTPRouteConfig``) and ``route.BuildDefaultHTTPInboundRoute``:

``inbound~<namespace>~<pod>`` on 127.0.0.1:``workload.pod_port``, ``traffic_direction`` INBOUND
    One filter chain named ``0.0.0.0_<port>``, ``<port>`` the pod's container port (the port of
    the Service selecting it, what istiod's chain matches as ``destination_port`` and an
    EnvoyFilter's ``listener.portNumber`` names), holding an HTTP connection manager with
    ``stat_prefix`` ``inbound_<workload>_<port>`` (istiod's is ``inbound_0.0.0.0_<port>``, per
    pod's own Envoy; ours is one Envoy, hence the workload, its replicas' counters summed and
    the name stable when a pod is replaced), so ``http.inbound_<workload>_<port>.fault.*``
    counts what this pod's inbound injected. HTTP filters, in istiod's order: ``jwt_authn``
    when a RequestAuthentication applies (``request_authentication``), one RBAC filter per
    AuthorizationPolicy action present (``authorization``), the fault filter with an empty
    ``HTTPFault`` (istiod puts it there for route-level faults; an EnvoyFilter fills it in),
    then the router. Its route configuration is inline, as istiod's (no RDS for inbound):
    ``inbound|<port>||<namespace>~<pod>``, one virtual host ``inbound|http|<port>`` for every
    domain, route ``default`` to the cluster of the same name, no timeout, istiod's default
    inbound retry policy (2 retries on ``reset-before-request``).
``inbound|<port>||<namespace>~<pod>`` cluster
    The app: 127.0.0.1:``workload.port`` (istiod's is ``inbound|<port>||``; the suffix keeps it
    unique on the shared Envoy).

Mutual TLS, PeerAuthentication (``chaosmesh_py.istio.peer_authentication.effective_mtls``)
    The mode istiod resolves for the pod's labels and container port picks the filter chains
    (``chaosmesh_py.localmesh.mtls.inbound_chains``): STRICT one TLS chain (client certificate
    required: plain text matches no chain and Envoy resets the connection before any byte
    reaches the app), PERMISSIVE a TLS chain for Istio's ALPN and a plain-text chain, DISABLE
    plain text only. Every chain carries the same HTTP connection manager, which, as istiod's
    inbound, appends the peer's certificate to ``x-forwarded-client-cert``
    (``APPEND_FORWARD``, with its subject, URI and DNS SANs): the app sees who called.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from chaosmesh_py.istio.peer_authentication import effective_mtls
from chaosmesh_py.localmesh import envoy_filter
from chaosmesh_py.localmesh.authorization import policies_for, rbac_filters
from chaosmesh_py.localmesh.envoy import JsonDict
from chaosmesh_py.localmesh.kube_proxy import load_assignment
from chaosmesh_py.localmesh.mtls import Secrets, inbound_chains, workload_caller
from chaosmesh_py.localmesh.request_authentication import jwt_filter
from chaosmesh_py.localmesh.route import FAULT_FILTER, HTTP_FAULT_TYPE
from chaosmesh_py.localmesh.topology import Topology, Workload

LISTENER_TYPE = "type.googleapis.com/envoy.config.listener.v3.Listener"
CLUSTER_TYPE = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
HCM_FILTER = "envoy.filters.network.http_connection_manager"
HCM_TYPE = (
    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3"
    ".HttpConnectionManager"
)
ROUTER_FILTER = "envoy.filters.http.router"
ROUTER_TYPE = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
LOCALHOST = "127.0.0.1"
# istiod's defaultInboundRetryOn (route/retry/retry.go), with its 2 retries.
INBOUND_RETRY_ON = "reset-before-request"
MAX_THRESHOLD = 2**32 - 1


def inbound_listener_name(workload: Workload) -> str:
    return f"inbound~{workload.namespace}~{workload.instance}"


def inbound_stat_prefix(workload: Workload, port: int) -> str:
    """The workload's, shared by its replicas (as ``translate.sidecar_stat_prefix``): Envoy sums
    their counters, and the name the mesh's info publishes stays when a pod is replaced."""
    return f"inbound_{workload.name}_{port}"


def inbound_cluster_name(workload: Workload, port: int) -> str:
    return f"inbound|{port}||{workload.namespace}~{workload.instance}"


def inbound_chain_name(port: int) -> str:
    """istiod's filter chain name for a container port (``getListenerName``)."""
    return f"0.0.0.0_{port}"


def container_port(workload: Workload, topology: Topology) -> int:
    """The port a cluster's pod would serve: the first Service selecting it names it (the
    local Services have no targetPort), else the app's own port."""
    for service in topology.services:
        if service.namespace == workload.namespace and workload.matches(service.selector):
            return service.port
    return workload.port


def inbound_config(
    topology: Topology,
    peer_authentications: Sequence[Mapping[str, Any]],
    envoy_filters: Sequence[Mapping[str, Any]] = (),
    secrets: Secrets | None = None,
    *,
    authorization_policies: Sequence[Mapping[str, Any]] = (),
    request_authentications: Sequence[Mapping[str, Any]] = (),
    jwks: Mapping[str, str | None] | None = None,
) -> tuple[list[JsonDict], list[JsonDict]]:
    """The inbound listener and app cluster of every pod that serves, with the
    RequestAuthentications and AuthorizationPolicies (``jwks``: each ``jwksUri``'s keys as the
    local istiod fetched them) and the EnvoyFilters that apply to it."""
    listeners: list[JsonDict] = []
    clusters: list[JsonDict] = []
    pods = sorted(
        (w for w in topology.workloads if w.pod_port and w.port),
        key=lambda w: (w.namespace, w.instance),
    )
    for workload in pods:
        port = container_port(workload, topology)
        mode = effective_mtls(peer_authentications, workload.namespace, workload.labels, port)
        applying = envoy_filter.for_workload(workload, envoy_filters)
        security = security_filters(
            workload.namespace,
            workload.labels,
            authorization_policies,
            request_authentications,
            jwks=jwks or {},
            listener_ports={port: workload.pod_port},
        )
        listeners.append(
            _listener(
                workload,
                port,
                mode=mode,
                envoy_filters=applying,
                secrets=secrets,
                security=security,
            )
        )
        clusters.append(_app_cluster(inbound_cluster_name(workload, port), workload.port))
    return listeners, clusters


def security_filters(
    namespace: str,
    labels: Mapping[str, str],
    authorization_policies: Sequence[Mapping[str, Any]],
    request_authentications: Sequence[Mapping[str, Any]],
    *,
    jwks: Mapping[str, str | None],
    listener_ports: Mapping[int, int] | None = None,
) -> list[JsonDict]:
    """istiod's authn then authz HTTP filters for a proxy (a pod's inbound, the ingress
    gateway) in ``namespace`` with ``labels``: ``jwt_authn`` (if a RequestAuthentication
    applies), then one RBAC filter per action (AUDIT, DENY, ALLOW). ``listener_ports``: the
    container port -> the local listener's own port (``rbac_filters``)."""
    jwt = jwt_filter(policies_for(request_authentications, namespace, labels), jwks)
    applying = policies_for(authorization_policies, namespace, labels)
    rbac = rbac_filters(applying, listener_ports)
    return [jwt, *rbac] if jwt else rbac


def _listener(
    workload: Workload,
    port: int,
    *,
    mode: str,
    envoy_filters: Sequence[Mapping[str, Any]],
    secrets: Secrets | None,
    security: Sequence[JsonDict] = (),
) -> JsonDict:
    cluster = inbound_cluster_name(workload, port)
    # istiod's order (listener_builder.go): jwt_authn -> rbac -> fault -> router.
    http_filters = envoy_filter.patch_inbound_http_filters(
        [
            *security,
            {"name": FAULT_FILTER, "typed_config": {"@type": HTTP_FAULT_TYPE}},
            {"name": ROUTER_FILTER, "typed_config": {"@type": ROUTER_TYPE}},
        ],
        port=port,
        chain_name=inbound_chain_name(port),
        envoy_filters=envoy_filters,
    )
    manager: JsonDict = {
        "@type": HCM_TYPE,
        "stat_prefix": inbound_stat_prefix(workload, port),
        "route_config": {
            "name": cluster,
            "virtual_hosts": [
                {
                    "name": f"inbound|http|{port}",
                    "domains": ["*"],
                    "routes": [
                        {
                            "name": "default",
                            "match": {"prefix": "/"},
                            "route": {
                                "cluster": cluster,
                                "timeout": "0s",
                                "max_stream_duration": {
                                    "max_stream_duration": "0s",
                                    "grpc_timeout_header_max": "0s",
                                },
                                "retry_policy": {
                                    "retry_on": INBOUND_RETRY_ON,
                                    "num_retries": 2,
                                },
                            },
                        }
                    ],
                }
            ],
            "validate_clusters": False,
        },
        "http_filters": http_filters,
        # A sidecar's inbound trusts its caller's X-Forwarded-For, as istiod's (no remote
        # address): the request keeps the headers the caller's sidecar set.
        "use_remote_address": False,
        # istiod's inbound: the app learns the peer's identity from the header.
        "forward_client_cert_details": "APPEND_FORWARD",
        "set_current_client_cert_details": {"subject": True, "dns": True, "uri": True},
    }
    chains, listener_filters = inbound_chains(
        mode,
        inbound_chain_name(port),
        [{"name": HCM_FILTER, "typed_config": manager}],
        workload_caller(workload).secret,
        secrets,
    )
    listener: JsonDict = {
        "@type": LISTENER_TYPE,
        "name": inbound_listener_name(workload),
        "address": {"socket_address": {"address": LOCALHOST, "port_value": workload.pod_port}},
        "traffic_direction": "INBOUND",
        "filter_chains": chains,
    }
    if listener_filters:
        listener["listener_filters"] = listener_filters
    return listener


def _app_cluster(name: str, app_port: int) -> JsonDict:
    """istiod's inbound cluster: the app, no limits of its own."""
    return {
        "@type": CLUSTER_TYPE,
        "name": name,
        "type": "STATIC",
        "connect_timeout": "10s",
        "lb_policy": "ROUND_ROBIN",
        "circuit_breakers": {
            "thresholds": [
                {
                    "max_connections": MAX_THRESHOLD,
                    "max_pending_requests": MAX_THRESHOLD,
                    "max_requests": MAX_THRESHOLD,
                    "max_retries": MAX_THRESHOLD,
                }
            ]
        },
        "load_assignment": load_assignment(name, [app_port]),
    }
