"""HTTP to Envoy's admin API over its Unix socket: the one way this project talks to the admin.

Envoy's admin can stop Envoy (``POST /quitquitquit``), rewrite its runtime and dump its whole
configuration, so the local mesh serves it only on a Unix socket of mode 0600 in a 0700
directory: only the user who started the mesh can open it. A TCP port on 127.0.0.1 would be open
to every local user. Every reader (effect verification, Envoy counters, the local mesh's own
runner and telemetry, tests and benchmarks) goes through ``EnvoyAdmin``.

    admin = EnvoyAdmin(mesh["envoy_admin_socket"])
    stats = admin.get_json("/stats", {"format": "json", "filter": "^http\\."})
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from chaosmesh_py.errors import ChaosMeshError


class EnvoyAdminError(ChaosMeshError):
    """Envoy's admin could not be reached, or did not answer as asked."""


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, socket_path: str, timeout_s: float) -> None:
        super().__init__("localhost", timeout=timeout_s)
        self.socket_path = socket_path

    def connect(self) -> None:
        connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        connection.settimeout(self.timeout)
        try:
            connection.connect(self.socket_path)
        except OSError:
            connection.close()
            raise
        self.sock = connection


def query(parameters: Mapping[str, str | None] | None) -> str:
    """``?a=1&b`` from the parameters: None leaves one out, "" gives a bare flag."""
    pairs = [
        f"{key}={quote(value, safe='')}" if value else key
        for key, value in (parameters or {}).items()
        if value is not None
    ]
    return "?" + "&".join(pairs) if pairs else ""


class EnvoyAdmin:
    """One kept-alive connection to an admin socket, reopened once when Envoy had closed it.

    Thread-safe: requests from several threads take turns on the connection.
    """

    def __init__(self, socket_path: str | Path, timeout_s: float = 5.0) -> None:
        self.socket_path = str(socket_path)
        self.timeout_s = timeout_s
        self._connection: _UnixConnection | None = None
        self._lock = threading.Lock()

    def request(
        self, method: str, path: str, parameters: Mapping[str, str | None] | None = None
    ) -> tuple[int, bytes]:
        """The status and body of one request; EnvoyAdminError when the socket fails twice."""
        target = path + query(parameters)
        with self._lock:
            for attempt in range(2):
                connection = self._connection or _UnixConnection(self.socket_path, self.timeout_s)
                try:
                    connection.request(method, target)
                    response = connection.getresponse()
                    body = response.read()
                except (OSError, http.client.HTTPException) as error:
                    connection.close()
                    self._connection = None
                    if attempt:
                        raise EnvoyAdminError(
                            f"Envoy admin {method} {path} at {self.socket_path} failed: {error}"
                        ) from error
                    continue
                self._connection = connection
                return response.status, body
        raise AssertionError("unreachable")

    def get(self, path: str, parameters: Mapping[str, str | None] | None = None) -> bytes:
        """The body of a GET answered 200; EnvoyAdminError otherwise."""
        return self.call("GET", path, parameters)

    def call(
        self, method: str, path: str, parameters: Mapping[str, str | None] | None = None
    ) -> bytes:
        status, body = self.request(method, path, parameters)
        if status != 200:
            raise EnvoyAdminError(f"Envoy admin {method} {path} answered {status}: {body[:300]!r}")
        return body

    def get_json(
        self, path: str, parameters: Mapping[str, str | None] | None = None
    ) -> dict[str, Any]:
        document = json.loads(self.get(path, parameters))
        if not isinstance(document, dict):
            raise EnvoyAdminError(f"Envoy admin GET {path} did not answer a JSON object")
        return document

    def stat_values(self, filter_regex: str | None = None) -> dict[str, int | str]:
        """Counters and gauges (int) and text readouts (str) of ``/stats?format=json``."""
        document = self.get_json("/stats", {"format": "json", "filter": filter_regex})
        # Histograms come as one {"histograms": ...} entry without a name.
        return {
            item["name"]: item["value"]
            for item in document.get("stats", [])
            if "name" in item and isinstance(item.get("value"), int | str)
        }

    def counters(self, filter_regex: str | None = None) -> dict[str, int]:
        """Counters and gauges only, optionally filtered (Envoy's regex)."""
        return {
            name: value
            for name, value in self.stat_values(filter_regex).items()
            if isinstance(value, int)
        }

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    def __enter__(self) -> EnvoyAdmin:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def inbound_listener(admin: EnvoyAdmin, workload: Mapping[str, Any]) -> Mapping[str, Any]:
    """The active inbound listener of a local-mesh workload, as the mesh's published info
    describes the workload; ``{}`` when Envoy has none (or cannot be read).

    Found by its address (the ``pod_url`` port), not by ``inbound_listener``'s name: the name
    follows the pod, and a process reads the info once, so after a pod is replaced (its
    successor takes the same ports under a new name) only the address still finds it."""
    port = urlsplit(str(workload.get("pod_url") or "")).port
    try:
        dump = admin.get_json("/config_dump", {"resource": "dynamic_listeners"})
    except EnvoyAdminError:
        return {}
    for item in dump.get("configs", []):
        listener = (item.get("active_state") or {}).get("listener") or {}
        address = (listener.get("address") or {}).get("socket_address") or {}
        if port is not None and address.get("port_value") == port:
            return dict(listener)
        if port is None and item.get("name") == workload.get("inbound_listener"):
            return dict(listener)
    return {}
