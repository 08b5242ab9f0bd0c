"""The local mesh in one process: API double, control loop, Envoy, Bookinfo.

    API double (Istio resources) --change--> control loop --translate--> Envoy files --> Envoy
                                                                          ^ sidecars + ingress
    Bookinfo workloads <---------------------------------------------------' (each calls out
                                                                             through its sidecar)

The control loop does istiod's job: every committed change to a VirtualService, DestinationRule
or Gateway spec wakes it; it reads the current resources, translates them all (the translation is
pure and cheap, so there is no incremental state to get wrong) and lets the Envoy runner swap the
files that changed. Unlike istiod there is no debounce window: a change reaches Envoy in
milliseconds, where a cluster takes 100 ms to seconds.

When Envoy rejects a configuration, the resources changed since Envoy last accepted one are the
suspects: each gets a ``Reconciled: False`` condition in its status quoting Envoy's reason
(``chaosmesh_py.istio.status``), and the rest goes in with the suspects as Envoy last ran them,
as Envoy keeps its last good version of a resource it NACKs. A later accepted version sets the
condition back to True.

The API is served over TLS with the mesh's own CA and a bearer token (``credentials``), and what
clients need to know about the mesh (``info``) is published in the ConfigMap
``kube.client.LOCAL_MESH_CONFIG_MAP``, read through the API like any other object.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from chaosmesh_py.engine import cleanup
from chaosmesh_py.istio import status
from chaosmesh_py.istio.identity import principal
from chaosmesh_py.kube import Kube
from chaosmesh_py.kube.client import LOCAL_MESH_CONFIG_MAP, LOCAL_MESH_KEY
from chaosmesh_py.localmesh import (
    authorization,
    credentials,
    envoy_filter,
    request_authentication,
)
from chaosmesh_py.localmesh.apiserver import ApiError, ApiServer, User, WatchEvent
from chaosmesh_py.localmesh.apiserver.rbac import ADMIN_RULES
from chaosmesh_py.localmesh.apps import MeshApps
from chaosmesh_py.localmesh.bookinfo import SERVICE_PORT, bookinfo_topology
from chaosmesh_py.localmesh.ca import LocalCA
from chaosmesh_py.localmesh.envoy import ConfigRejected, Envoy
from chaosmesh_py.localmesh.identities import MeshIdentities, is_certificate_state, wanted_states
from chaosmesh_py.localmesh.inbound import (
    container_port,
    inbound_listener_name,
    inbound_stat_prefix,
)
from chaosmesh_py.localmesh.jwks import REFRESH_INTERVAL_S, JwksResolver
from chaosmesh_py.localmesh.jwt_issuer import JwtIssuer
from chaosmesh_py.localmesh.mtls import callers, workload_secret
from chaosmesh_py.localmesh.prometheus import Prometheus, PrometheusFailed
from chaosmesh_py.localmesh.request_authentication import jwks_uris
from chaosmesh_py.localmesh.telemetry import Telemetry
from chaosmesh_py.localmesh.topology import Service, Topology, Workload
from chaosmesh_py.localmesh.translate import translate
from chaosmesh_py.localmesh.workloads import START_DELAY_S, DeploymentController

log = logging.getLogger(__name__)

NAMESPACE = "bookinfo"
ISTIO_NETWORKING = "networking.istio.io/v1"
# What the translation reads, by kind, with the API version it is listed in.
WATCHED = {
    "VirtualService": ISTIO_NETWORKING,
    "DestinationRule": ISTIO_NETWORKING,
    "Gateway": ISTIO_NETWORKING,
    "PeerAuthentication": "security.istio.io/v1",
    "AuthorizationPolicy": "security.istio.io/v1",
    "RequestAuthentication": "security.istio.io/v1",
    "EnvoyFilter": "networking.istio.io/v1alpha3",
    "Service": "v1",
}
WATCHED_KINDS = tuple(WATCHED)
# What else changes the translation: the pods running and the Endpoints listing them, and the
# ConfigMaps setting certificate states (``chaosmesh_py.localmesh.identities``).
WAKING_KINDS = (*WATCHED_KINDS, "Pod", "Endpoints", "ConfigMap")
# The user the mesh's token authenticates: the owner of the mesh may do everything.
OWNER = "chaosmesh-local"

Resources = dict[str, list[dict[str, Any]]]  # by kind, as translate() takes them
Identity = tuple[str, str, str]  # kind, namespace, name
HTTPBIN_PORT = 8000  # as Istio's httpbin sample
# Expired faults live at most this long past their expiry on the local mesh.
REAP_INTERVAL_S = 5.0
NO_PROMETHEUS = "not asked for: this mesh was started without one"


def mesh_topology(ports: Iterator[int], ingress_port: int) -> Topology:
    """Bookinfo, plus what Istio's other tasks use: httpbin v1 and v2, and a ``sleep`` client.

    The client has a sidecar and no server: requests sent to its sidecar reach any service
    through the mesh, as from a pod that is no service's endpoint. Each service also gets an
    entry port: a plain URL that reaches it through the mesh, whatever the Host header; and a
    ClusterIP port, where a client without a sidecar reaches it through kube-proxy.
    """
    bookinfo = bookinfo_topology(ports, namespace=NAMESPACE, ingress_port=ingress_port)
    httpbin = Service("httpbin", NAMESPACE, HTTPBIN_PORT, {"app": "httpbin"})
    extra = [
        Workload(
            f"httpbin-{version}", NAMESPACE, {"app": "httpbin", "version": version}, *_two(ports)
        )
        for version in ("v1", "v2")
    ]
    extra.append(Workload("sleep", NAMESPACE, {"app": "sleep"}, port=0, sidecar_port=next(ports)))
    services = (*bookinfo.services, httpbin)
    return Topology(
        services=services,
        # Every workload that serves has a pod address (sleep serves nothing).
        workloads=tuple(
            replace(
                workload,
                pod_port=next(ports) if workload.port else 0,
                service_account=sample_service_account(workload.labels.get("app", "")),
            )
            for workload in (*bookinfo.workloads, *extra)
        ),
        ingress=bookinfo.ingress,
        entry_ports={service.name: next(ports) for service in services},
        no_sidecar_ports={service.name: next(ports) for service in services},
    )


def sample_service_account(app: str) -> str:
    """The service account Istio's samples give an app: ``bookinfo-<app>`` for Bookinfo's,
    the app's name for httpbin and sleep."""
    return app if app in ("httpbin", "sleep") else f"bookinfo-{app}"


def _two(ports: Iterator[int]) -> tuple[int, int]:
    return next(ports), next(ports)


class LocalMesh:
    """Start, serve and stop every part of the local mesh; ``info`` says where each part is."""

    def __init__(
        self,
        work_dir: Path,
        crd_paths: Sequence[Path],
        manifests: Sequence[Path],
        ports: Iterator[int],
        *,
        api_port: int = 0,
        ingress_port: int | None = None,
        reap_interval_s: float = REAP_INTERVAL_S,
        prometheus: str | None = None,
        no_prometheus_reason: str = NO_PROMETHEUS,
        pod_start_delay_s: float = START_DELAY_S,
    ) -> None:
        """``prometheus``: the binary of a Prometheus to run beside the mesh, scraping it
        (``chaosmesh_py.localmesh.prometheus``); without one, ``no_prometheus_reason`` says why
        in ``info()``. ``pod_start_delay_s``: how long a new pod (a replacement for a deleted
        one, a replica added) takes to run (``chaosmesh_py.localmesh.workloads``)."""
        self.work_dir = work_dir
        self.reap_interval_s = reap_interval_s
        self.manifests = manifests
        # Unique per mesh: a client that recorded it can tell this mesh from a later one.
        self.instance_id = uuid.uuid4().hex
        self.credentials = credentials.issue(work_dir / "api")
        self.api = ApiServer(
            crd_paths=crd_paths,
            port=api_port,
            tokens={self.credentials.token: User(OWNER, ADMIN_RULES)},
            tls=(self.credentials.cert_file, self.credentials.key_file),
        )
        self.topology = mesh_topology(ports, ingress_port or next(ports))
        self.envoy = Envoy(work_dir / "envoy")
        # istiod's CA: its root key lives in this process only (chaosmesh_py.localmesh.ca).
        self.ca = LocalCA()
        self.identities = MeshIdentities(self.ca, self.envoy)
        # The mesh's own JWT issuer, and the local istiod's JWKS fetching and cache.
        self.jwt_issuer = JwtIssuer(work_dir / "jwt", next(ports))
        self.jwks = JwksResolver()
        self.telemetry = Telemetry(self.topology, self.envoy, next(ports))
        self.prometheus = (
            Prometheus(prometheus, work_dir / "prometheus", [self.telemetry.url], next(ports))
            if prometheus
            else None
        )
        self._no_prometheus_reason = no_prometheus_reason
        self.apps = MeshApps(self.topology)
        self.controller = DeploymentController(
            self.api,
            self.apps,
            ports,
            declared=self.topology.workloads,
            start_delay_s=pod_start_delay_s,
            on_change=self._wake,
        )
        self._changed = threading.Event()
        self._sync_lock = threading.Lock()
        # What Envoy last accepted, and each resource's (uid, generation) as last seen.
        self._accepted: dict[Identity, dict[str, Any]] = {}
        self._refused: dict[Identity, tuple[str, int]] = {}
        self._seen: dict[Identity, tuple[str, int]] = {}
        self._stopping = threading.Event()
        self._loop: threading.Thread | None = None
        self.last_sync_s = 0.0

    def start(self) -> None:
        # First: Prometheus's first scrape comes ~5 s after its start, meanwhile the rest starts.
        self._start_prometheus()
        self.api.start()
        self.jwt_issuer.start()
        self._load()
        self.apps.open()
        self.controller.settle()  # every declared workload's pod runs before Envoy starts
        self.identities.start()
        resources = self._resources()
        self.envoy.start(self._translate(resources))
        self._accepted = _by_identity(resources)
        self.telemetry.start()
        self._await_first_scrape()
        self._publish_info()
        self.api.subscribe(self._on_change)
        self._loop = threading.Thread(target=self._control_loop, name="control-loop", daemon=True)
        self._loop.start()
        self.controller.start()
        self._reaper = threading.Thread(target=self._reaper_loop, name="reaper", daemon=True)
        self._reaper.start()
        self._jwks_refresher = threading.Thread(
            target=self._jwks_loop, name="jwks-refresh", daemon=True
        )
        self._jwks_refresher.start()

    def _start_prometheus(self) -> None:
        if self.prometheus is None:
            return
        try:
            self.prometheus.start()
        except PrometheusFailed as error:
            self._without_prometheus(f"it did not start: {error}")

    def _await_first_scrape(self) -> None:
        """Until Prometheus has the mesh's metrics: queries right after ``start`` see them."""
        if self.prometheus is None:
            return
        try:
            seconds = self.prometheus.wait_for_scrape()
        except PrometheusFailed as error:
            self.prometheus.stop()
            self._without_prometheus(f"it did not scrape the mesh: {error}")
        else:
            log.info(f"prometheus {self.prometheus.url}: first scrape after {seconds} s")

    def _without_prometheus(self, reason: str) -> None:
        log.warning(f"the local mesh runs without Prometheus: {reason}")
        self.prometheus = None
        self._no_prometheus_reason = reason

    def reset(self) -> None:
        """Back to the initial resources (tests): every Istio resource re-created as loaded,
        every workload's pod running again (replicas as declared)."""
        # Envoy never sees the API half reset, and the pods of the declared workloads are
        # adopted, their apps left running: a reset costs no restart.
        with self._sync_lock, self.controller.paused():
            self.api.reset()
            self._load()
            self.controller.settle(adopt=True)
            # After the pods settle: the info names the pods that serve now.
            self._publish_info()
        self.sync()

    def sync(self) -> None:
        """Translate and apply now, in the caller's thread (the loop does it on changes).

        A configuration Envoy rejects is reported on the suspects' status, and everything else
        applied without them (see the module's doc); ConfigRejected is not raised.
        """
        with self._sync_lock:  # the loop and a caller must not interleave file swaps
            started = time.perf_counter()
            resources = self._resources()
            try:
                self.envoy.apply(self._translate(resources))
            except ConfigRejected as rejected:
                self._set_aside(resources, rejected)
            else:
                self._accepted = _by_identity(resources)
                self._refused.clear()
            # A departed pod's key goes once Envoy runs a configuration without it.
            self.identities.retire()
            self._mark_accepted(resources)
            self.last_sync_s = time.perf_counter() - started

    def _set_aside(self, resources: Resources, rejected: ConfigRejected) -> None:
        """Find which changed resources Envoy refuses, report each on its status, and apply the
        rest with those as Envoy last accepted them (a new one left out).

        The suspects are the resources changed since Envoy last accepted a configuration; with
        several, each is tried on its own on top of the others' accepted versions.
        """
        current = _by_identity(resources)
        suspects = sorted(i for i, resource in current.items() if not self._runs(i, resource))
        kept = {i: self._accepted[i] for i in current if i in self._accepted}
        blamed: dict[Identity, str] = {}
        if len(suspects) == 1:
            blamed[suspects[0]] = _reason(rejected)
        for identity in suspects if len(suspects) > 1 else ():
            if self._refused.get(identity) == _version(current[identity]):
                continue  # refused as it is now, and reported already
            trial = {**kept, identity: current[identity]}
            try:
                self.envoy.apply(self._translate(_by_kind(trial)))
            except ConfigRejected as refused:
                blamed[identity] = _reason(refused)
            else:
                kept = trial
        try:
            self.envoy.apply(self._translate(_by_kind(kept)))
        except ConfigRejected:
            log.exception("Envoy rejected the configuration without the changes it refused")
            return
        self._accepted = kept
        for identity, reason in blamed.items():
            log.warning(f"Envoy rejected {identity[0]} {identity[1]}/{identity[2]}: {reason}")
            resource = current[identity]
            self._refused[identity] = _version(resource)
            message = f"the local mesh's Envoy rejected this configuration: {reason}"
            self._write_status(resource, status.rejected_patch(resource, message, _now()))

    def _mark_accepted(self, resources: Resources) -> None:
        """Set a rejected resource's condition back once Envoy runs its current version; say
        what of an EnvoyFilter the local mesh does not apply (never silently)."""
        for identity, resource in _by_identity(resources).items():
            if not self._runs(identity, resource):
                continue
            problems = _unsupported(identity[0], resource)
            if problems:
                message = "the local mesh does not apply " + "; ".join(problems)
                if status.not_supported(resource) != message:
                    self._write_status(
                        resource, status.not_supported_patch(resource, message, _now())
                    )
                continue
            patch = status.accepted_patch(resource, _now())
            if patch is not None:
                self._write_status(resource, patch)

    def _runs(self, identity: Identity, resource: dict[str, Any]) -> bool:
        """Does Envoy run this version of the resource?"""
        accepted = self._accepted.get(identity)
        return accepted is not None and _version(accepted) == _version(resource)

    def _write_status(self, resource: dict[str, Any], patch: dict[str, Any]) -> None:
        metadata = resource["metadata"]
        try:
            self.api.patch(
                resource["apiVersion"],
                resource["kind"],
                metadata.get("namespace"),
                metadata["name"],
                patch,
                subresource="status",
            )
        except ApiError as error:  # deleted meanwhile: nothing left to report on
            log.warning(f"could not write the status of {metadata['name']}: {error}")

    def _publish_info(self) -> None:
        """What clients of this API need to know about the mesh, as an ordinary ConfigMap."""
        namespace, name = LOCAL_MESH_CONFIG_MAP
        self.api.create(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": namespace},
                "data": {LOCAL_MESH_KEY: json.dumps(self.info(), sort_keys=True)},
                "immutable": True,
            }
        )

    def stop(self) -> None:
        self._stopping.set()
        self._changed.set()
        if self._loop is not None:
            self._loop.join(timeout=5)
            self._reaper.join(timeout=5)
            self._jwks_refresher.join(timeout=5)
        if self.prometheus is not None:
            self.prometheus.stop()
        self.telemetry.stop()
        self.envoy.stop()
        self.jwt_issuer.stop()
        self.controller.stop()
        self.apps.close()
        self.api.stop()

    def _load(self) -> None:
        self.api.create_namespace(NAMESPACE)
        # The declared services as the Service objects a cluster would hold (bookinfo.yaml's),
        # so clients read them through the API as there.
        for service in self.topology.services:
            self.api.create(
                {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "metadata": {
                        "name": service.name,
                        "namespace": service.namespace,
                        "labels": {"app": service.name, "service": service.name},
                    },
                    "spec": {
                        "selector": dict(service.selector),
                        "ports": [{"name": "http", "port": service.port}],
                    },
                }
            )
        # Their identities, as bookinfo.yaml's ServiceAccounts.
        for namespace, account in sorted(
            {(w.namespace, w.service_account) for w in self.topology.workloads}
        ):
            self.api.create(
                {
                    "apiVersion": "v1",
                    "kind": "ServiceAccount",
                    "metadata": {"name": account, "namespace": namespace},
                }
            )
        # The declared workloads as bookinfo.yaml's Deployments: the controller runs their pods.
        for workload in self.topology.workloads:
            self.api.create(_deployment(workload))
        for manifest in self.manifests:
            for document in yaml.safe_load_all(manifest.read_text()):
                document.setdefault("metadata", {}).setdefault("namespace", NAMESPACE)
                self.api.create(document)

    def info(self) -> dict[str, Any]:
        """Where everything is, for ``chaosmesh local status`` and for effect verification."""
        ingress = self.topology.ingress
        return {
            "instance_id": self.instance_id,
            "api_url": self.api.url,
            "ingress_url": f"http://127.0.0.1:{ingress.port}" if ingress else None,
            # Owner-only (chaosmesh_py.engine.envoy_admin): the admin can stop Envoy.
            "envoy_admin_socket": str(self.envoy.admin_socket),
            # Istio's standard metrics for Prometheus to scrape (chaosmesh_py.localmesh.telemetry).
            "metrics_url": self.telemetry.url,
            # Scraping metrics_url: the URL the istio_* probes, game days and reports ask.
            "prometheus": self._prometheus_info(),
            "namespace": NAMESPACE,
            "services": {
                service.name: {
                    # Reaches the service through the mesh, as a pod without labels would.
                    "url": f"http://127.0.0.1:{self.topology.entry_ports[service.name]}",
                    "host": f"{service.name}:{service.port}",
                    "fqdn": service.fqdn,
                    "selector": dict(service.selector),
                    # Its ClusterIP as a client without a sidecar reaches it: kube-proxy's
                    # spread over every selected pod, per connection, no VirtualService.
                    "no_sidecar_url": f"http://127.0.0.1:{self.topology.no_sidecar_ports[service.name]}",
                }
                for service in self.topology.services
            },
            "workloads": {
                workload.name: {
                    "labels": dict(workload.labels),
                    "app_url": f"http://127.0.0.1:{workload.port}",
                    # The pod's address from outside the pod: its inbound, where
                    # PeerAuthentication applies (STRICT refuses plain text).
                    "pod_url": f"http://127.0.0.1:{workload.pod_port}"
                    if workload.pod_port
                    else None,
                    # A request sent here leaves FROM this workload: through its outbound
                    # sidecar, with its identity, mutual TLS to the destination's inbound.
                    "sidecar_url": f"http://127.0.0.1:{workload.sidecar_port}",
                    # Its identity: what its certificate names, as AuthorizationPolicy's
                    # principals name it.
                    "service_account": workload.service_account,
                    "principal": principal(workload.namespace, workload.service_account),
                    "stat_prefix": f"outbound_{workload.name}",
                    "route_config": f"outbound~{workload.namespace}~{workload.name}",
                    # The pod's inbound sidecar (chaosmesh_py.localmesh.inbound): its listener
                    # and HTTP stat prefix (http.<prefix>.fault.* count what it injected).
                    **(self._inbound_info(workload) if workload.pod_port else {}),
                    # The pod on these ports now (replica 0; a replacement takes them over).
                    "pod": self.controller.on_ports(workload),
                    # That pod's certificate as Envoy names it (chaosmesh_py.localmesh.mtls):
                    # cluster.<c>.ssl.certificate.<secret>.expiration_unix_time_seconds.
                    "certificate_secret": _certificate_secret(
                        workload, self.controller.on_ports(workload)
                    ),
                }
                for workload in self.topology.workloads
            },
            "service_port": SERVICE_PORT,
            # Tokens for RequestAuthentications: the issuer, its JWKS, the path of its private
            # key (0600; the key itself is never published).
            "jwt_issuer": self.jwt_issuer.info(),
        }

    def _inbound_info(self, workload: Workload) -> dict[str, Any]:
        port = container_port(workload, self.topology)
        pod = replace(workload, pod=self.controller.on_ports(workload) or "")
        return {
            "inbound_listener": inbound_listener_name(pod),
            "inbound_stat_prefix": inbound_stat_prefix(workload, port),
            "container_port": port,
        }

    def _prometheus_info(self) -> dict[str, Any]:
        running = self.prometheus
        if running is None:
            return {"url": None, "reason": self._no_prometheus_reason}
        return {
            "url": running.url,
            "scrape_interval_s": running.scrape_interval_s,
            "first_scrape_s": running.first_scrape_s,
            "log": str(running.log_path),
        }

    def _on_change(self, event: WatchEvent) -> None:
        # Called under the store's lock: only wake the loop. A change of status or metadata
        # alone (same uid and generation) does not change the translation.
        if event.resource_type.kind not in WAKING_KINDS:
            return
        if event.resource_type.kind == "ConfigMap" and not is_certificate_state(event.object):
            return
        identity = _identity(event.object)
        version = _version(event.object)
        if event.type == "MODIFIED" and self._seen.get(identity) == version:
            return
        self._seen[identity] = version
        self._changed.set()

    def _wake(self) -> None:
        """Translate again soon: the pods running changed (the deployment controller)."""
        self._changed.set()

    def _control_loop(self) -> None:
        while True:
            self._changed.wait()
            if self._stopping.is_set():
                return
            self._changed.clear()
            try:
                self.sync()
            except Exception:  # keep serving: the next change may fix it
                log.exception("could not apply the mesh configuration to Envoy")

    def _jwks_loop(self) -> None:
        """istiod's JWKS refresh job: fetch every known ``jwksUri`` again, translate on change."""
        while not self._stopping.wait(REFRESH_INTERVAL_S):
            if self.jwks.refresh():
                self._wake()

    def _reaper_loop(self) -> None:
        """``chaosmesh reap`` on a schedule, as deploy/'s CronJob does on a cluster, through the
        same API and code path."""
        kube = Kube.at(
            self.api.url,
            token=self.credentials.token,
            ca_file=str(self.credentials.ca_file),
        )
        while not self._stopping.wait(self.reap_interval_s):
            try:
                report = cleanup.reap(kube)
            except Exception:  # the next round may succeed
                log.exception("the reaper could not list the resources chaosmesh edits")
                continue
            for entry in report.removed:
                log.warning(f"reaper: removed expired edits from {entry['resource']}: {entry}")
            for entry in report.failed:
                log.warning(f"reaper: could not clean {entry.get('resource')}: {entry}")

    def _resources(self) -> Resources:
        return {kind: self.api.list(api_version, kind) for kind, api_version in WATCHED.items()}

    def _translate(self, resources: Resources) -> Any:
        services = (_service(s) for s in resources.get("Service", ()))
        # The pods that run now, and the Endpoints (ready pods) per service: istiod's view.
        workloads = self.controller.workloads()
        self.telemetry.learn(workloads)
        topology = replace(
            self.topology.with_services(s for s in services if s is not None),
            workloads=workloads,
            endpoint_pods=_endpoint_pods(self.api.list("v1", "Endpoints")),
        )
        # istiod's CA: each caller's certificate as the certificate states want it.
        secrets = self.identities.sync(
            callers(topology),
            wanted_states(
                [c for c in self.api.list("v1", "ConfigMap") if is_certificate_state(c)],
                topology.workloads,
            ),
        )
        return translate(
            topology,
            resources["VirtualService"],
            resources["DestinationRule"],
            resources["Gateway"],
            self.envoy.rds_config_source,
            peer_authentications=resources["PeerAuthentication"],
            envoy_filters=resources["EnvoyFilter"],
            secrets=secrets,
            authorization_policies=resources["AuthorizationPolicy"],
            request_authentications=resources["RequestAuthentication"],
            # Fetched here, as istiod does, and inlined into each proxy's jwt_authn filter.
            jwks=self.jwks.resolve(jwks_uris(resources["RequestAuthentication"])),
        )


def _unsupported(kind: str, resource: dict[str, Any]) -> list[str]:
    """What of a resource the local mesh does not apply (said on its status, never silently)."""
    if kind == "EnvoyFilter":
        return envoy_filter.unsupported(resource)
    if kind == "AuthorizationPolicy":
        return authorization.unsupported(resource)
    if kind == "RequestAuthentication":
        return request_authentication.unsupported(resource)
    return []


def _certificate_secret(workload: Workload, pod: str | None) -> str | None:
    return workload_secret(workload.namespace, pod) if pod else None


def _service(resource: dict[str, Any]) -> Service | None:
    """A Service created through the API, as the topology knows services: its first TCP port,
    its selector. None for one that selects nothing (no selector: its Endpoints would be kept
    by hand, which the local mesh does not model)."""
    spec = resource.get("spec") or {}
    ports = [p for p in spec.get("ports") or [] if p.get("protocol", "TCP") == "TCP"]
    if not spec.get("selector") or not ports:
        return None
    metadata = resource["metadata"]
    return Service(
        metadata["name"], metadata.get("namespace", ""), int(ports[0]["port"]), spec["selector"]
    )


def _deployment(workload: Workload) -> dict[str, Any]:
    """A declared workload's Deployment, as Istio's samples declare theirs: labels app and
    version, one replica, the sample's image (which the local mesh never pulls)."""
    labels = dict(workload.labels)
    app, version = labels.get("app", workload.name), labels.get("version", "v1")
    image = _IMAGES.get(app) or BOOKINFO_IMAGE.format(app=app, version=version)
    container = {"name": app, "image": image}
    pod_spec = {"serviceAccountName": workload.service_account, "containers": [container]}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": workload.name, "namespace": workload.namespace, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        },
    }


BOOKINFO_IMAGE = "docker.io/istio/examples-bookinfo-{app}-{version}:1.20.2"
_IMAGES = {
    "httpbin": "docker.io/mccutchen/go-httpbin:v2.15.0",
    "sleep": "docker.io/curlimages/curl:8.16.0",
}


def _endpoint_pods(endpoints: list[dict[str, Any]]) -> dict[tuple[str, str], frozenset[str]]:
    """Per (namespace, service): the pods its Endpoints list as ready."""
    return {
        (item["metadata"]["namespace"], item["metadata"]["name"]): frozenset(
            str((address.get("targetRef") or {}).get("name", ""))
            for subset in item.get("subsets") or ()
            for address in subset.get("addresses") or ()
        )
        for item in endpoints
    }


def _identity(resource: dict[str, Any]) -> Identity:
    metadata = resource["metadata"]
    return resource["kind"], metadata.get("namespace", ""), metadata["name"]


def _version(resource: dict[str, Any]) -> tuple[str, int]:
    """What the translation depends on: the object (uid) and its spec (generation). A kind
    whose spec no generation counts (a Service) is versioned by every write instead."""
    metadata = resource["metadata"]
    if "generation" in metadata:
        return metadata["uid"], int(metadata["generation"])
    return metadata["uid"], int(metadata["resourceVersion"])


def _by_identity(resources: Resources) -> dict[Identity, dict[str, Any]]:
    return {_identity(r): r for items in resources.values() for r in items}


def _by_kind(resources: dict[Identity, dict[str, Any]]) -> Resources:
    grouped: Resources = {kind: [] for kind in WATCHED_KINDS}
    for (kind, _, _), resource in resources.items():
        grouped[kind].append(resource)
    return grouped


def _reason(rejected: ConfigRejected) -> str:
    return rejected.reason or str(rejected).splitlines()[0]


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
