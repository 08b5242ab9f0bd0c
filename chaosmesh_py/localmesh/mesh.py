"""The local mesh in one process: API double, control loop, Envoy, Bookinfo.

    API double (Istio resources) --change--> control loop --translate--> Envoy files --> Envoy
                                                                          ^ sidecars + ingress
    Bookinfo workloads <---------------------------------------------------' (each calls out
                                                                             through its sidecar)

The control loop does istiod's job: every committed change to a VirtualService, DestinationRule
or Gateway wakes it; it reads the current resources, translates them all (the translation is
pure and cheap, so there is no incremental state to get wrong) and lets the Envoy runner swap the
files that changed. Unlike istiod there is no debounce window: a change reaches Envoy in
milliseconds, where a cluster takes 100 ms to seconds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

from chaosmesh_py.engine import cleanup
from chaosmesh_py.kube import Kube
from chaosmesh_py.localmesh.apiserver import ApiServer, WatchEvent
from chaosmesh_py.localmesh.bookinfo import SERVICE_PORT, bookinfo_topology, run_bookinfo
from chaosmesh_py.localmesh.envoy import Envoy
from chaosmesh_py.localmesh.httpbin import Httpbin
from chaosmesh_py.localmesh.telemetry import Telemetry
from chaosmesh_py.localmesh.topology import Service, Topology, Workload
from chaosmesh_py.localmesh.translate import translate

log = logging.getLogger(__name__)

NAMESPACE = "bookinfo"
ISTIO_NETWORKING = "networking.istio.io/v1"
WATCHED_KINDS = frozenset({"VirtualService", "DestinationRule", "Gateway"})
HTTPBIN_PORT = 8000  # as Istio's httpbin sample
# Expired faults live at most this long past their expiry on the local mesh.
REAP_INTERVAL_S = 5.0


def mesh_topology(ports: Iterator[int], ingress_port: int) -> Topology:
    """Bookinfo, plus what Istio's other tasks use: httpbin v1 and v2, and a ``sleep`` client.

    The client has a sidecar and no server: requests sent to its sidecar reach any service
    through the mesh, as from a pod that is no service's endpoint. Each service also gets an
    entry port: a plain URL that reaches it through the mesh, whatever the Host header.
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
        workloads=(*bookinfo.workloads, *extra),
        ingress=bookinfo.ingress,
        entry_ports={service.name: next(ports) for service in services},
    )


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
    ) -> None:
        self.work_dir = work_dir
        self.reap_interval_s = reap_interval_s
        self.manifests = manifests
        self.api = ApiServer(crd_paths=crd_paths, port=api_port)
        self.topology = mesh_topology(ports, ingress_port or next(ports))
        self.envoy = Envoy(work_dir / "envoy")
        self.telemetry = Telemetry(self.topology, self.envoy, next(ports))
        self._bookinfo: Any = None
        self._httpbins: list[Httpbin] = []
        self._changed = threading.Event()
        self._sync_lock = threading.Lock()
        self._stopping = threading.Event()
        self._loop: threading.Thread | None = None
        self.last_sync_s = 0.0

    def start(self) -> None:
        self.api.start()
        self._load()
        self._bookinfo = run_bookinfo(self.topology)
        self._httpbins = [
            Httpbin(w.port, w.name).start()
            for w in self.topology.workloads
            if w.labels.get("app") == "httpbin"
        ]
        self.envoy.start(self._translate())
        self.telemetry.start()
        self.api.subscribe(self._on_change)
        self.api.mesh_info = self.info
        self._loop = threading.Thread(target=self._control_loop, name="control-loop", daemon=True)
        self._loop.start()
        self._reaper = threading.Thread(target=self._reaper_loop, name="reaper", daemon=True)
        self._reaper.start()

    def reset(self) -> None:
        """Back to the initial resources (tests): every Istio resource re-created as loaded."""
        self.api.reset()
        self._load()
        self.sync()

    def sync(self) -> None:
        """Translate and apply now, in the caller's thread (the loop does it on changes)."""
        with self._sync_lock:  # the loop and a caller must not interleave file swaps
            started = time.perf_counter()
            self.envoy.apply(self._translate())
            self.last_sync_s = time.perf_counter() - started

    def stop(self) -> None:
        self._stopping.set()
        self._changed.set()
        if self._loop is not None:
            self._loop.join(timeout=5)
            self._reaper.join(timeout=5)
        self.telemetry.stop()
        self.envoy.stop()
        if self._bookinfo is not None:
            self._bookinfo.stop()
        for httpbin in self._httpbins:
            httpbin.stop()
        self.api.stop()

    def _load(self) -> None:
        self.api.create_namespace(NAMESPACE)
        for manifest in self.manifests:
            for document in yaml.safe_load_all(manifest.read_text()):
                document.setdefault("metadata", {}).setdefault("namespace", NAMESPACE)
                self.api.create(document)

    def info(self) -> dict[str, Any]:
        """Where everything is, for ``chaosmesh local status`` and for effect verification."""
        ingress = self.topology.ingress
        return {
            "api_url": self.api.url,
            "ingress_url": f"http://127.0.0.1:{ingress.port}" if ingress else None,
            "envoy_admin_url": self.envoy.admin_url,
            # Istio's standard metrics for Prometheus to scrape (chaosmesh_py.localmesh.telemetry).
            "metrics_url": self.telemetry.url,
            "namespace": NAMESPACE,
            "services": {
                service.name: {
                    # Reaches the service through the mesh, as a pod without labels would.
                    "url": f"http://127.0.0.1:{self.topology.entry_ports[service.name]}",
                    "host": f"{service.name}:{service.port}",
                    "fqdn": service.fqdn,
                }
                for service in self.topology.services
            },
            "workloads": {
                workload.name: {
                    "labels": dict(workload.labels),
                    "app_url": f"http://127.0.0.1:{workload.port}",
                    "sidecar_url": f"http://127.0.0.1:{workload.sidecar_port}",
                    "stat_prefix": f"outbound_{workload.name}",
                    "route_config": f"outbound~{workload.namespace}~{workload.name}",
                }
                for workload in self.topology.workloads
            },
            "service_port": SERVICE_PORT,
            "last_sync_s": self.last_sync_s,
        }

    def _on_change(self, event: WatchEvent) -> None:
        # Called under the store's lock: only wake the loop.
        if event.resource_type.kind in WATCHED_KINDS:
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

    def _reaper_loop(self) -> None:
        """``chaosmesh reap`` on a schedule, as deploy/'s CronJob does on a cluster, through the
        same API and code path."""
        kube = Kube.at(self.api.url)
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

    def _translate(self) -> Any:
        return translate(
            self.topology,
            self.api.list(ISTIO_NETWORKING, "VirtualService"),
            self.api.list(ISTIO_NETWORKING, "DestinationRule"),
            self.api.list(ISTIO_NETWORKING, "Gateway"),
            self.envoy.rds_config_source,
        )
