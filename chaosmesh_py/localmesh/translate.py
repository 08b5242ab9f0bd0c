"""istiod's job for the local mesh: Istio resources and the topology in, Envoy configuration out.

Pure and deterministic: the same inputs give equal output, whatever order the resources come
in (VirtualServices and DestinationRules are taken oldest first, like istiod, by
``creationTimestamp`` then name then namespace). The mapping, after istiod's
``pilot/pkg/networking/core`` (routes are in ``chaosmesh_py.localmesh.route``):

Listeners (one Envoy carries every sidecar and the ingress gateway)
    ``sidecar~<namespace>~<pod>`` on 127.0.0.1:``sidecar_port``, one per pod (replica), with
    ``stat_prefix`` ``outbound_<workload>`` (so ``http.outbound_<workload>.fault.*`` counts what
    that workload's calls suffered, its replicas summed) and the workload's route configuration
    ``outbound~<namespace>~<workload>`` over RDS. ``ingress`` on 127.0.0.1:``ingress.port``,
    ``stat_prefix`` and route configuration ``ingress``, ``use_remote_address`` as on istiod's
    gateways. HTTP filters: the fault filter with an empty ``HTTPFault`` (the faults live on
    the routes), then the router. Each connection manager has a stats access logger naming its
    caller, in place of Istio's stats filter (``chaosmesh_py.localmesh.telemetry``).
    Not in Istio: ``entry~<namespace>~<service>`` on ``topology.entry_ports[service]``, the
    service's virtual host as a workload without labels sees it, for any Host header: a plain
    URL per service that goes through the mesh.
    ``inbound~<namespace>~<pod>`` on each pod's address (``pod_port``): the pod's inbound
    sidecar, istiod's inbound HTTP chain (jwt_authn, RBAC, fault filter, then router) in front
    of the app, with PeerAuthentication's mode, the RequestAuthentications and
    AuthorizationPolicies and the EnvoyFilters that apply to it
    (``chaosmesh_py.localmesh.inbound``, ``chaosmesh_py.localmesh.envoy_filter``).
    For clients without a sidecar: each service's ClusterIP as kube-proxy serves it
    (``chaosmesh_py.localmesh.kube_proxy``).

Sidecar route configuration (per workload, because ``sourceLabels`` are evaluated per proxy)
    One virtual host per Service in the topology, named ``<fqdn>:<port>``, with domains
    ``<fqdn>``, ``<name>.<ns>.svc``, ``<name>.<ns>`` and, for the workload's own namespace,
    ``<name>``, each also with ``:<port>``. Its routes come from the oldest VirtualService
    naming the service and bound to ``mesh`` (no ``gateways``, or ``mesh`` among them) that
    still has routes once this workload's source conditions are applied; otherwise a
    ``default`` route to ``outbound|<port>||<fqdn>`` with Istio's default timeout (none) and
    retry policy.

Ingress route configuration
    Gateways whose ``selector`` is among ``ingress.labels``; for each HTTP server, the
    VirtualServices bound to that Gateway (``gateways`` entry ``name`` in the VirtualService's
    namespace, or ``namespace/name``); one virtual host per host in both the server's and the
    VirtualService's hosts (``*`` matches everything), named ``<host>:<server port>``, routes of
    several VirtualServices appended with catch-alls moved last. No host at all: istiod's
    ``blackhole`` virtual host, which answers 404.

Clusters
    ``outbound|<port>||<fqdn>`` per Service with its endpoints (the pods its Endpoints list as
    ready; every selected workload of a topology without them), and
    ``outbound|<port>|<subset>|<fqdn>`` per DestinationRule subset with the workloads carrying
    the subset's labels: STATIC, endpoints the pods' inbound addresses 127.0.0.1:``pod_port``
    (the app's port for a workload without one), so a call goes caller's sidecar -> server's
    inbound sidecar -> app, in mutual TLS with the caller's certificate
    (``chaosmesh_py.localmesh.mtls``: auto mTLS, or a DestinationRule's ``tls.mode`` DISABLE /
    ISTIO_MUTUAL, port-level and subset-level as istiod merges them). Istio's defaults:
    connect_timeout 10s, LEAST_REQUEST, every circuit-breaker threshold 2^32-1. A
    DestinationRule's ``trafficPolicy`` (port-level settings for the service's port replacing
    it, a subset's sections replacing the top level's) sets: connection-pool limits (0 means
    unset), connect/idle timeouts, ``maxRequestsPerConnection`` (upstream HTTP protocol
    options), outlier detection (``maxEjectionPercent`` only if > 0, so Envoy's 10% applies and
    with fewer than 10 hosts nothing is ejected; success-rate ejection off; panic threshold
    ``minHealthPercent``, 0 by default), and ``loadBalancer.simple``.

Where this differs from istiod, on purpose
    - Hosts must name a Service of the topology (short names resolved in the resource's
      namespace, ``name.namespace`` accepted too); other hosts, wildcards included, are skipped
      silently. No passthrough ``allow_any`` virtual host: an unknown Host gets a 404.
    - Virtual hosts keep ``:port`` domains instead of ``ignore_port_in_host_matching`` (the
      ingress does ignore ports, as istiod's gateways do, since clients call it on any port).
    - DestinationRules apply to every workload alike (no per-namespace lookup, ``exportTo``
      or ``workloadSelector``); several for one host merge as in istiod: the oldest one's
      ``trafficPolicy``, subsets from all, first of a name wins.
    - The ingress serves every HTTP server of its Gateways on its one port; HTTPS/TLS servers,
      ``tls.httpsRedirect``, consistent hashing, ``h2UpgradePolicy``, locality settings, TLS
      modes SIMPLE and MUTUAL (for external services; auto mTLS applies instead),
      ``retryBudget`` and ``tcpKeepalive`` are not translated.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from chaosmesh_py.istio.traffic_policy import (
    merge_traffic_policy,
    oldest_first,
    port_traffic_policy,
)
from chaosmesh_py.istio.traffic_policy import namespace_of as _namespace
from chaosmesh_py.istio.traffic_policy import positive as _positive
from chaosmesh_py.localmesh.envoy import EnvoyConfig, JsonDict
from chaosmesh_py.localmesh.inbound import inbound_config, security_filters
from chaosmesh_py.localmesh.kube_proxy import load_assignment, no_sidecar_config
from chaosmesh_py.localmesh.mtls import (
    Caller,
    MeshTls,
    Secrets,
    callers,
    entry_caller,
    identity_filter,
    ingress_caller,
    workload_caller,
)
from chaosmesh_py.localmesh.route import (
    FAULT_FILTER,
    HTTP_FAULT_TYPE,
    MESH_GATEWAY,
    RouteContext,
    convert_duration,
    default_route,
    resolve_gateway,
    sort_catch_all_last,
    translate_http_routes,
)
from chaosmesh_py.localmesh.telemetry import INGRESS_WORKLOAD, access_log
from chaosmesh_py.localmesh.topology import Ingress, Service, Topology, Workload

LISTENER_TYPE = "type.googleapis.com/envoy.config.listener.v3.Listener"
CLUSTER_TYPE = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
ROUTE_CONFIG_TYPE = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
HCM_TYPE = (
    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3"
    ".HttpConnectionManager"
)
ROUTER_TYPE = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
HTTP_PROTOCOL_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
LOCALHOST = "127.0.0.1"

INGRESS_NAME = "ingress"
# Where Istio installs its ingress gateway; the namespace a ``sourceNamespace`` match sees there.
INGRESS_NAMESPACE = "istio-system"
MAX_THRESHOLD = 2**32 - 1
DEFAULT_CONNECT_TIMEOUT = "10s"
# istiod sends direct responses up to 1 MiB (the webhook's bound); Envoy's default is 4 KiB.
MAX_DIRECT_RESPONSE_BODY_BYTES = 1024 * 1024
HTTP_PROTOCOLS = frozenset({"HTTP", "HTTP2", "GRPC", "GRPC-WEB"})
LB_POLICIES = {"ROUND_ROBIN": "ROUND_ROBIN", "RANDOM": "RANDOM"}  # anything else: LEAST_REQUEST

RdsConfigSource = Callable[[str], dict[str, Any]]


def sidecar_listener_name(workload: Workload) -> str:
    """Each pod's own (``Workload.instance``): every replica has its sidecar, on its port."""
    return f"sidecar~{workload.namespace}~{workload.instance}"


def sidecar_route_config_name(workload: Workload) -> str:
    """The workload's, shared by its replicas: the routes depend only on the labels and the
    namespace they share, and the name stays when a pod is replaced (effect verification
    expects it in the mesh's published info)."""
    return f"outbound~{workload.namespace}~{workload.name}"


def sidecar_stat_prefix(workload: Workload) -> str:
    """The workload's: Envoy sums the replicas' counters under it, as Prometheus sums a
    workload's pods, and the name stays when a pod is replaced."""
    return f"outbound_{workload.name}"


def entry_name(service: Service) -> str:
    """Listener and route config of a service's entry point (``Topology.entry_ports``)."""
    return f"entry~{service.namespace}~{service.name}"


def translate(
    topology: Topology,
    virtual_services: Sequence[dict[str, Any]],
    destination_rules: Sequence[dict[str, Any]],
    gateways: Sequence[dict[str, Any]],
    rds_config_source: RdsConfigSource,
    *,
    peer_authentications: Sequence[dict[str, Any]] = (),
    envoy_filters: Sequence[dict[str, Any]] = (),
    authorization_policies: Sequence[dict[str, Any]] = (),
    request_authentications: Sequence[dict[str, Any]] = (),
    jwks: Mapping[str, str | None] | None = None,
    secrets: Secrets | None = None,
) -> EnvoyConfig:
    """The whole Envoy configuration for ``topology`` under these Istio resources (``jwks``:
    each RequestAuthentication ``jwksUri``'s keys as fetched, None where the fetch failed).

    With ``secrets`` (where Envoy reads the CA's certificates), sidecars speak mutual TLS as
    istiod configures it (``chaosmesh_py.localmesh.mtls``); without, plain text everywhere
    (a translation checked for its routing alone)."""
    ordered_services = oldest_first(virtual_services)
    mesh_services = [vs for vs in ordered_services if _bound_to_mesh(vs)]
    listeners: list[JsonDict] = []
    route_configs: dict[str, JsonDict] = {}
    for workload in sorted(topology.workloads, key=lambda w: (w.namespace, w.instance)):
        route_name = sidecar_route_config_name(workload)
        route_configs[route_name] = _sidecar_route_config(
            route_name, workload, topology, mesh_services
        )
        listeners.append(
            _listener(
                sidecar_listener_name(workload),
                workload.sidecar_port,
                sidecar_stat_prefix(workload),
                route_name,
                rds_config_source,
                source=(workload.name, workload.namespace),
                caller=workload_caller(workload) if secrets else None,
            )
        )
    for service in topology.services:
        port = topology.entry_ports.get(service.name)
        if port is None:
            continue
        client = Workload(f"entry-{service.name}", service.namespace, {}, 0, port)
        route_name = entry_name(service)
        whole = _sidecar_route_config(route_name, client, topology, mesh_services)
        own = [h for h in whole["virtual_hosts"] if h["name"] == f"{service.fqdn}:{service.port}"]
        route_configs[route_name] = {**whole, "virtual_hosts": [{**own[0], "domains": ["*"]}]}
        listeners.append(
            _listener(
                route_name,
                port,
                f"entry_{service.name}",
                route_name,
                rds_config_source,
                source=(client.name, client.namespace),
                caller=entry_caller(client.namespace) if secrets else None,
            )
        )
    if topology.ingress is not None:
        route_configs[INGRESS_NAME] = _ingress_route_config(
            topology.ingress, topology, ordered_services, gateways
        )
        listeners.append(
            _listener(
                INGRESS_NAME,
                topology.ingress.port,
                INGRESS_NAME,
                INGRESS_NAME,
                rds_config_source,
                source=(INGRESS_WORKLOAD, INGRESS_NAMESPACE),
                ingress=True,
                # istiod builds the gateway's authn and authz filters as a sidecar's.
                security=security_filters(
                    INGRESS_NAMESPACE,
                    topology.ingress.labels,
                    authorization_policies,
                    request_authentications,
                    jwks=jwks or {},
                ),
                caller=ingress_caller() if secrets else None,
            )
        )
    inbound_listeners, inbound_clusters = inbound_config(
        topology,
        peer_authentications,
        envoy_filters,
        secrets,
        authorization_policies=authorization_policies,
        request_authentications=request_authentications,
        jwks=jwks,
    )
    no_sidecar_listeners, no_sidecar_clusters = no_sidecar_config(topology)
    listeners += inbound_listeners + no_sidecar_listeners
    mtls = MeshTls(secrets, callers(topology), peer_authentications) if secrets else None
    clusters = (
        _clusters(topology, destination_rules, mtls, _inbound_versions(inbound_listeners))
        + inbound_clusters
        + no_sidecar_clusters
    )
    return EnvoyConfig(
        listeners=tuple(listeners),
        clusters=tuple(sorted(clusters, key=lambda cluster: str(cluster["name"]))),
        route_configs=dict(sorted(route_configs.items())),
    )


# --- listeners -----------------------------------------------------------------------------


def _listener(
    name: str,
    port: int,
    stat_prefix: str,
    route_config_name: str,
    rds_config_source: RdsConfigSource,
    *,
    source: tuple[str, str],
    ingress: bool = False,
    caller: Caller | None = None,
    security: Sequence[JsonDict] = (),
) -> JsonDict:
    manager: JsonDict = {
        "@type": HCM_TYPE,
        "stat_prefix": stat_prefix,
        "rds": {
            "route_config_name": route_config_name,
            "config_source": rds_config_source(route_config_name),
        },
        "http_filters": [
            *security,
            {"name": FAULT_FILTER, "typed_config": {"@type": HTTP_FAULT_TYPE}},
            {"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER_TYPE}},
        ],
        # Istio's standard metrics, counted for this caller (chaosmesh_py.localmesh.telemetry).
        "access_log": [access_log(*source)],
    }
    filters: list[JsonDict] = [identity_filter(caller)] if caller else []
    filters.append(
        {"name": "envoy.filters.network.http_connection_manager", "typed_config": manager}
    )
    listener: JsonDict = {
        "@type": LISTENER_TYPE,
        "name": name,
        "address": {"socket_address": {"address": LOCALHOST, "port_value": port}},
        "filter_chains": [{"filters": filters}],
    }
    if ingress:
        # As istiod's gateways: the edge appends the client to X-Forwarded-For.
        manager["use_remote_address"] = True
    else:
        listener["traffic_direction"] = "OUTBOUND"
    return listener


# --- sidecar routes ------------------------------------------------------------------------


def _sidecar_route_config(
    name: str,
    workload: Workload,
    topology: Topology,
    mesh_services: list[dict[str, Any]],
) -> JsonDict:
    virtual_hosts = []
    for service in topology.services:
        context = RouteContext(
            topology=topology,
            labels=workload.labels,
            namespace=workload.namespace,
            gateways=frozenset({MESH_GATEWAY}),
            listen_port=service.port,
        )
        routes: list[JsonDict] = []
        for virtual_service in mesh_services:
            if service in _services_named(virtual_service, topology):
                # A VirtualService left with no routes for this proxy does not claim the
                # service: istiod falls through to the next one, then to the default route.
                routes = translate_http_routes(virtual_service, context)
                if routes:
                    break
        if not routes:
            routes = [default_route(f"outbound|{service.port}||{service.fqdn}")]
        virtual_hosts.append(
            {
                "name": f"{service.fqdn}:{service.port}",
                "domains": _domains(service, workload.namespace),
                "routes": routes,
                "include_request_attempt_count": True,
            }
        )
    return _route_config(name, virtual_hosts)


def _domains(service: Service, namespace: str) -> list[str]:
    """The Host headers that reach ``service`` from a workload in ``namespace``."""
    short = f"{service.name}.{service.namespace}"
    hosts = [service.fqdn]
    if service.namespace == namespace:
        # Only a caller in the same namespace resolves the bare name to this service.
        hosts.append(service.name)
    hosts += [f"{short}.svc", short]
    return [domain for host in hosts for domain in (host, f"{host}:{service.port}")]


def _route_config(name: str, virtual_hosts: list[JsonDict], **extra: Any) -> JsonDict:
    return {
        "@type": ROUTE_CONFIG_TYPE,
        "name": name,
        "virtual_hosts": sorted(virtual_hosts, key=lambda host: str(host["name"])),
        # A route may name a cluster that does not exist (a subset with no DestinationRule):
        # Envoy answers 503 for it instead of refusing the whole configuration.
        "validate_clusters": False,
        "max_direct_response_body_size_bytes": MAX_DIRECT_RESPONSE_BODY_BYTES,
        **extra,
    }


def _services_named(virtual_service: Mapping[str, Any], topology: Topology) -> list[Service]:
    namespace = _namespace(virtual_service)
    services = [topology.service(host, namespace) for host in _hosts(virtual_service)]
    return [service for service in services if service is not None]


def _hosts(virtual_service: Mapping[str, Any]) -> list[str]:
    return [str(host).lower() for host in (virtual_service.get("spec") or {}).get("hosts") or []]


def _bound_to_mesh(virtual_service: Mapping[str, Any]) -> bool:
    gateways = (virtual_service.get("spec") or {}).get("gateways") or []
    return not gateways or MESH_GATEWAY in gateways


# --- ingress routes ------------------------------------------------------------------------


def _ingress_route_config(
    ingress: Ingress,
    topology: Topology,
    virtual_services: list[dict[str, Any]],
    gateways: Sequence[Mapping[str, Any]],
) -> JsonDict:
    virtual_hosts: dict[str, JsonDict] = {}
    merged: set[tuple[str, ...]] = set()  # (host, gateway, virtual service) already in
    for gateway in sorted(gateways, key=_identity):
        spec = gateway.get("spec") or {}
        selector = spec.get("selector") or {}
        if any(ingress.labels.get(key) != value for key, value in selector.items()):
            continue
        gateway_namespace, name = _identity(gateway)
        gateway_name = f"{gateway_namespace}/{name}"
        bound = [vs for vs in virtual_services if gateway_name in _gateways_of(vs)]
        for server in spec.get("servers") or []:
            port = server.get("port") or {}
            if str(port.get("protocol", "")).upper() not in HTTP_PROTOCOLS:
                continue  # TLS servers: the ingress listener is plain HTTP
            port_number = int(port.get("number") or ingress.port)
            context = RouteContext(
                topology=topology,
                labels=ingress.labels,
                namespace=INGRESS_NAMESPACE,
                gateways=frozenset({gateway_name}),
                listen_port=port_number,
            )
            for virtual_service in bound:
                server_hosts = _server_hosts(server, _namespace(virtual_service), gateway_namespace)
                hosts = _intersection(server_hosts, _hosts(virtual_service))
                routes = translate_http_routes(virtual_service, context) if hosts else []
                if not routes:
                    continue
                for host in hosts:
                    key = (host, gateway_name, *_identity(virtual_service))
                    if key in merged:
                        continue
                    merged.add(key)
                    virtual_host = virtual_hosts.setdefault(
                        host,
                        {
                            "name": f"{host}:{port_number}",
                            "domains": [host],
                            "routes": [],
                            "include_request_attempt_count": True,
                        },
                    )
                    virtual_host["routes"].extend(copy.deepcopy(routes))
    for virtual_host in virtual_hosts.values():
        virtual_host["routes"] = sort_catch_all_last(virtual_host["routes"])
    if not virtual_hosts:
        # istiod's answer for a gateway port with nothing bound: a 404 for every request.
        virtual_hosts["*"] = {"name": f"blackhole:{ingress.port}", "domains": ["*"], "routes": []}
    return _route_config(
        INGRESS_NAME, list(virtual_hosts.values()), ignore_port_in_host_matching=True
    )


def _gateways_of(virtual_service: Mapping[str, Any]) -> set[str]:
    namespace = _namespace(virtual_service)
    names = (virtual_service.get("spec") or {}).get("gateways") or []
    return {resolve_gateway(str(name), namespace) for name in names}


def _server_hosts(
    server: Mapping[str, Any], vs_namespace: str, gateway_namespace: str
) -> list[str]:
    """The server's hosts a VirtualService in ``vs_namespace`` may bind to, namespace stripped."""
    hosts = []
    for host in server.get("hosts") or []:
        text = str(host).lower()
        if "/" in text:
            namespace, text = text.split("/", 1)
            namespace = gateway_namespace if namespace == "." else namespace
            if namespace not in ("*", vs_namespace):
                continue
        hosts.append(text)
    return hosts


def _intersection(server_hosts: list[str], vs_hosts: list[str]) -> list[str]:
    """istiod's host.Names.Intersection: the more specific of each overlapping pair."""
    result: list[str] = []
    for server_host in server_hosts:
        for vs_host in vs_hosts:
            if _subset_of(server_host, vs_host):
                found = server_host
            elif _subset_of(vs_host, server_host):
                found = vs_host
            else:
                continue
            if found not in result:
                result.append(found)
    return result


def _subset_of(host: str, other: str) -> bool:
    """Every name ``host`` matches, ``other`` matches too (``*`` and ``*.suffix`` wildcards)."""
    if host.startswith("*"):
        return other.startswith("*") and host[1:].endswith(other[1:])
    if other.startswith("*"):
        return host.endswith(other[1:])
    return host == other


# --- clusters ------------------------------------------------------------------------------


def _inbound_versions(inbound_listeners: Sequence[JsonDict]) -> dict[int, str]:
    """Each pod address's inbound listener, as a short digest of its configuration."""
    return {
        int(listener["address"]["socket_address"]["port_value"]): hashlib.sha256(
            json.dumps(listener, sort_keys=True).encode()
        ).hexdigest()[:12]
        for listener in inbound_listeners
    }


def _clusters(
    topology: Topology,
    destination_rules: Sequence[dict[str, Any]],
    mtls: MeshTls | None,
    inbound_versions: Mapping[int, str],
) -> list[JsonDict]:
    policies, subsets = _destination_rules_by_host(topology, destination_rules)
    clusters = []
    for service in topology.services:
        policy = port_traffic_policy(policies.get(service.fqdn), service.port)
        variants = [("", topology.endpoints(service), policy)] + [
            (
                str(subset["name"]),
                topology.endpoints(service, subset.get("labels") or {}),
                merge_traffic_policy(policy, subset.get("trafficPolicy"), service.port),
            )
            for subset in subsets.get(service.fqdn, [])
        ]
        for subset_name, endpoints, merged in variants:
            cluster = _cluster(
                f"outbound|{service.port}|{subset_name}|{service.fqdn}", endpoints, merged
            )
            if mtls is not None:
                cluster.update(mtls.cluster_tls(service, subset_name, endpoints, merged or {}))
            # The endpoints' inbound configuration, named: a change at the server (an
            # EnvoyFilter, an AuthorizationPolicy, PeerAuthentication, a certificate) changes
            # the cluster, so Envoy drains the callers' pooled connections and the very next
            # request meets the new server configuration. Without it, each kept-alive
            # connection is answered once more by the old filter chain as it drains.
            served = sorted(inbound_versions.get(w.pod_port, "") for w in endpoints)
            cluster["metadata"] = {
                "filter_metadata": {"chaosmesh.io/local": {"endpoint_inbound": served}}
            }
            clusters.append(cluster)
    return sorted(clusters, key=lambda cluster: str(cluster["name"]))


def _destination_rules_by_host(
    topology: Topology, destination_rules: Sequence[dict[str, Any]]
) -> tuple[dict[str, Mapping[str, Any]], dict[str, list[Mapping[str, Any]]]]:
    """Per service FQDN: the oldest rule's trafficPolicy, the subsets of all (first name wins)."""
    policies: dict[str, Mapping[str, Any]] = {}
    subsets: dict[str, list[Mapping[str, Any]]] = {}
    for rule in oldest_first(destination_rules):
        spec = rule.get("spec") or {}
        service = topology.service(str(spec.get("host") or "").lower(), _namespace(rule))
        if service is None:
            continue
        if service.fqdn not in subsets:
            subsets[service.fqdn] = []
            if spec.get("trafficPolicy") is not None:
                policies[service.fqdn] = spec["trafficPolicy"]
        known = {subset.get("name") for subset in subsets[service.fqdn]}
        for subset in spec.get("subsets") or []:
            if subset.get("name") and subset["name"] not in known:
                known.add(subset["name"])
                subsets[service.fqdn].append(subset)
    return policies, subsets


def _cluster(name: str, endpoints: list[Workload], policy: Mapping[str, Any] | None) -> JsonDict:
    policy = policy or {}
    pool = policy.get("connectionPool") or {}
    tcp = pool.get("tcp") or {}
    http = pool.get("http") or {}
    thresholds: JsonDict = {
        "max_connections": _positive(tcp.get("maxConnections")) or MAX_THRESHOLD,
        "max_pending_requests": _positive(http.get("http1MaxPendingRequests")) or MAX_THRESHOLD,
        "max_requests": _positive(http.get("http2MaxRequests")) or MAX_THRESHOLD,
        "max_retries": _positive(http.get("maxRetries")) or MAX_THRESHOLD,
        "track_remaining": True,
    }
    cluster: JsonDict = {
        "@type": CLUSTER_TYPE,
        "name": name,
        "type": "STATIC",
        "connect_timeout": (
            convert_duration(tcp["connectTimeout"])
            if tcp.get("connectTimeout")
            else DEFAULT_CONNECT_TIMEOUT
        ),
        "lb_policy": LB_POLICIES.get(
            str((policy.get("loadBalancer") or {}).get("simple")), "LEAST_REQUEST"
        ),
        "circuit_breakers": {"thresholds": [thresholds]},
        # Each endpoint is the pod's inbound sidecar.
        "load_assignment": load_assignment(
            name,
            [
                w.pod_port or w.port
                for w in sorted(endpoints, key=lambda w: (w.namespace, w.instance))
            ],
        ),
    }
    common = _common_http_options(tcp, http)
    if common:
        cluster["typed_extension_protocol_options"] = {
            HTTP_PROTOCOL_OPTIONS: {
                "@type": f"type.googleapis.com/{HTTP_PROTOCOL_OPTIONS}",
                "common_http_protocol_options": common,
                # The apps speak HTTP/1.1; Envoy needs the upstream protocol stated here.
                "explicit_http_config": {"http_protocol_options": {}},
            }
        }
    outlier = policy.get("outlierDetection")
    if outlier is not None:
        cluster["outlier_detection"] = _outlier_detection(outlier)
        # Istio turns Envoy's panic mode (default at 50% healthy) off unless asked for.
        cluster["common_lb_config"] = {
            "healthy_panic_threshold": {"value": float(outlier.get("minHealthPercent") or 0)}
        }
    return cluster


def _common_http_options(tcp: Mapping[str, Any], http: Mapping[str, Any]) -> JsonDict:
    common: JsonDict = {}
    idle_timeout = http.get("idleTimeout") or tcp.get("idleTimeout")
    if idle_timeout:
        common["idle_timeout"] = convert_duration(idle_timeout)
    if _positive(http.get("maxRequestsPerConnection")):
        common["max_requests_per_connection"] = int(http["maxRequestsPerConnection"])
    if tcp.get("maxConnectionDuration"):
        common["max_connection_duration"] = convert_duration(tcp["maxConnectionDuration"])
    return common


def _outlier_detection(outlier: Mapping[str, Any]) -> JsonDict:
    # Success-rate ejection off; a consecutive-error count of 0 disables its enforcement.
    out: JsonDict = {"enforcing_success_rate": 0}
    for istio_field, envoy_field in (
        ("consecutive5xxErrors", "consecutive_5xx"),
        ("consecutiveGatewayErrors", "consecutive_gateway_failure"),
    ):
        if outlier.get(istio_field) is not None:
            count = int(outlier[istio_field])
            out[envoy_field] = count
            out[f"enforcing_{envoy_field}"] = 100 if count > 0 else 0
    if outlier.get("interval"):
        out["interval"] = convert_duration(outlier["interval"])
    if outlier.get("baseEjectionTime"):
        out["base_ejection_time"] = convert_duration(outlier["baseEjectionTime"])
    if _positive(outlier.get("maxEjectionPercent")):
        out["max_ejection_percent"] = int(outlier["maxEjectionPercent"])
    if outlier.get("splitExternalLocalOriginErrors"):
        out["split_external_local_origin_errors"] = True
        if _positive(outlier.get("consecutiveLocalOriginFailures")):
            out["consecutive_local_origin_failure"] = int(outlier["consecutiveLocalOriginFailures"])
            out["enforcing_consecutive_local_origin_failure"] = 100
        out["enforcing_local_origin_success_rate"] = 0
    return out


# --- helpers -------------------------------------------------------------------------------


def _identity(resource: Mapping[str, Any]) -> tuple[str, str]:
    return _namespace(resource), str((resource.get("metadata") or {}).get("name") or "")
