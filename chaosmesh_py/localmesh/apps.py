"""The apps the local mesh's pods run: Bookinfo's, httpbin and the sleep client.

The deployment controller (``chaosmesh_py.localmesh.workloads``) starts one instance per pod
when the pod is due to run, and stops it when the pod is deleted; each instance listens on its
pod's own port (sleep listens nowhere: it only calls out through its sidecar).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

from chaosmesh_py.localmesh.bookinfo import BookinfoThread
from chaosmesh_py.localmesh.httpbin import Httpbin
from chaosmesh_py.localmesh.topology import Topology, Workload

HTTPBIN = "httpbin"
SLEEP = "sleep"


class MeshApps:
    """Bookinfo on its own event loop, an httpbin server per pod, nothing for sleep."""

    def __init__(self, topology: Topology) -> None:
        # The services only: the pods come and go (``start`` / ``stop``).
        self._bookinfo = BookinfoThread(Topology(services=topology.services, workloads=()))
        self._httpbins: dict[tuple[str, str], Httpbin] = {}
        self._lock = threading.Lock()

    def open(self) -> MeshApps:
        self._bookinfo.start()
        return self

    def close(self) -> None:
        with self._lock:
            for httpbin in self._httpbins.values():
                httpbin.stop()
            self._httpbins.clear()
        self._bookinfo.stop()

    def runs(self, labels: Mapping[str, str]) -> bool:
        return labels.get("app") in (HTTPBIN, SLEEP) or self._bookinfo.bookinfo.has(labels)

    def serves(self, labels: Mapping[str, str]) -> bool:
        return labels.get("app") != SLEEP

    def start(self, workload: Workload) -> None:
        app = workload.labels.get("app")
        if app == SLEEP:
            return
        if app == HTTPBIN:
            with self._lock:
                key = (workload.namespace, workload.instance)
                self._httpbins[key] = Httpbin(workload.port, workload.instance).start()
            return
        self._bookinfo.add(workload)

    def stop(self, workload: Workload) -> None:
        app = workload.labels.get("app")
        if app == SLEEP:
            return
        if app == HTTPBIN:
            with self._lock:
                httpbin = self._httpbins.pop((workload.namespace, workload.instance), None)
            if httpbin is not None:
                httpbin.stop()
            return
        self._bookinfo.remove(workload)
