"""``chaosmesh local up | down | status``: the local mesh as a background service.

State lives in one directory (default ``~/.local/state/chaosmesh/local``, or
``CHAOSMESH_STATE_DIR``), 0700: ``status.json`` (written by the daemon when the mesh answers),
``daemon.pid``, ``daemon.log``, ``kubeconfig.json`` (what ``up`` added where), the API's
credentials and Envoy's working files. ``up`` is idempotent: a running mesh is reported, not
restarted. ``down`` stops the daemon's whole process group and removes what ``up`` made: the
kubeconfig entries and the state directory, so nothing is left behind, and nothing else is
touched: a directory ``up`` did not make, or a process it cannot prove is its daemon, is left
alone (``chaosmesh_py.localmesh.state``).
"""

from __future__ import annotations

import functools
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from chaosmesh_py import packaged
from chaosmesh_py.errors import ChaosMeshError
from chaosmesh_py.localmesh import kubeconfig, state
from chaosmesh_py.localmesh.daemon import STATUS_FILE
from chaosmesh_py.localmesh.prometheus import PrometheusUnavailable, find_binary

# In a source checkout, Istio's CRDs beside it (never shipped with the package).
DEFAULT_CRDS = Path(__file__).resolve().parents[3] / "shared/istio/crds-1.30.3.gen.yaml"
DEFAULT_MANIFESTS = packaged.bookinfo_manifests()
START_TIMEOUT_S = 60.0
KUBECONFIG_RECORD = "kubeconfig.json"  # the file and server `up` added the context for


class LocalMeshError(ChaosMeshError):
    """The local mesh could not be started, reached or stopped."""


@dataclass(frozen=True)
class Options:
    state_dir: Path  # made absolute: the daemon's command line names it
    kubeconfig: Path
    crds: tuple[Path, ...] = ()
    manifests: tuple[Path, ...] = DEFAULT_MANIFESTS
    api_port: int = 0
    ingress_port: int | None = None
    prometheus: bool = True  # run Prometheus beside the mesh when one is installed
    # How long a new pod takes to run (chaosmesh_py.localmesh.workloads); None: the default.
    pod_start_delay_s: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "state_dir", Path(os.path.abspath(self.state_dir)))


def default_state_dir() -> Path:
    configured = os.environ.get("CHAOSMESH_STATE_DIR")
    if configured:
        return Path(configured)
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local/state")
    return base / "chaosmesh/local"


def default_crds() -> tuple[Path, ...]:
    configured = os.environ.get("CHAOSMESH_ISTIO_CRDS")
    path = Path(configured) if configured else DEFAULT_CRDS
    return (path,) if path.exists() else ()


def status(state_dir: Path) -> dict[str, Any] | None:
    """The running mesh's status, or None when none answers from this state directory."""
    state_dir = Path(os.path.abspath(state_dir))
    try:
        recorded = json.loads((state_dir / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return None
    if state.our_daemon(state_dir) != recorded.get("pid"):
        return None
    try:
        authorization = {"Authorization": f"Bearer {Path(recorded['token_file']).read_text()}"}
        api = functools.partial(
            requests.get, headers=authorization, verify=recorded["ca_file"], timeout=2
        )
        api(f"{recorded['api_url']}/version").raise_for_status()
        listed = api(f"{recorded['api_url']}/api/v1/pods")
        listed.raise_for_status()
    except (requests.RequestException, OSError, KeyError):
        return None
    recorded["pods"] = [_pod_summary(pod) for pod in listed.json().get("items") or ()]
    if "prometheus" in recorded:
        recorded["prometheus"] = _prometheus_now(recorded["prometheus"])
    return {"running": True, "context": kubeconfig.CONTEXT, **recorded}


def _pod_summary(pod: dict[str, Any]) -> dict[str, Any]:
    """A pod as ``local status`` lists it: where, its phase, whether it is Ready."""
    status = pod.get("status") or {}
    conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or ()}
    return {
        "name": pod["metadata"]["name"],
        "namespace": pod["metadata"].get("namespace"),
        "labels": pod["metadata"].get("labels") or {},
        "phase": status.get("phase", "Pending"),
        "ready": conditions.get("Ready") == "True",
    }


def up(options: Options) -> dict[str, Any]:
    """Start the mesh in the background unless it already runs; return its status.

    NotOurs (nothing touched) for a state directory that is neither new, empty nor ours.
    """
    state.check_ours_or_empty(options.state_dir)
    running = status(options.state_dir)
    if running is not None:
        return running
    if state.is_marked(options.state_dir):
        down(options)  # whatever a crashed run left
    for port, flag in ((options.api_port, "--api-port"), (options.ingress_port, "--ingress-port")):
        if port and not _port_free(port):
            raise LocalMeshError(f"port {port} is in use; choose another with {flag}")
    state.claim(options.state_dir)
    command = [sys.executable, *state.daemon_command(options.state_dir)]
    command += [f"--crds={path}" for path in options.crds]
    command += [f"--apply={path}" for path in options.manifests]
    command += [f"--api-port={options.api_port}"]
    if options.ingress_port:
        command += [f"--ingress-port={options.ingress_port}"]
    if options.pod_start_delay_s is not None:
        command += [f"--pod-start-delay={options.pod_start_delay_s}"]
    command += _prometheus_arguments(options)
    log = (options.state_dir / "daemon.log").open("ab")
    daemon = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
    )
    log.close()
    state.record_daemon(options.state_dir, daemon.pid)
    deadline = time.monotonic() + START_TIMEOUT_S
    while (started := status(options.state_dir)) is None:
        if daemon.poll() is not None or time.monotonic() > deadline:
            tail = _tail(options.state_dir / "daemon.log")
            down(options)
            raise LocalMeshError(f"the local mesh did not start:\n{tail}")
        time.sleep(0.05)
    # Recorded before the write: a `down` after a crash mid-write still finds what to remove.
    record = {"kubeconfig": str(options.kubeconfig.absolute()), "server": started["api_url"]}
    (options.state_dir / KUBECONFIG_RECORD).write_text(json.dumps(record))
    kubeconfig.add_context(
        options.kubeconfig,
        started["api_url"],
        Path(started["ca_file"]).read_bytes(),
        Path(started["token_file"]).read_text().strip(),
    )
    return started


def _prometheus_arguments(options: Options) -> list[str]:
    """The daemon's Prometheus: the binary found here (the user's PATH and variables), or why
    there is none."""
    if not options.prometheus:
        return ["--no-prometheus-reason=not asked for (chaosmesh local up --no-prometheus)"]
    try:
        return [f"--prometheus={find_binary()}"]
    except PrometheusUnavailable as absent:
        return [f"--no-prometheus-reason={absent}"]


def _prometheus_now(recorded: dict[str, Any]) -> dict[str, Any]:
    """The recorded Prometheus, unless it no longer answers (it is restarted when it exits)."""
    url = recorded.get("url")
    if not url:
        return recorded
    try:
        requests.get(f"{url}/-/ready", timeout=2).raise_for_status()
    except requests.RequestException as error:
        log = recorded.get("log", "its log")
        return {"url": None, "reason": f"{url} does not answer ({error}); see {log}"}
    return recorded


def experiment_environment(status: dict[str, Any], kubeconfig_path: Path) -> dict[str, str]:
    """What an experiment run against this mesh needs set (KUBECONFIG only when the context went
    to a file other than the one kubectl and the Kubernetes client read by default)."""
    other_file = kubeconfig_path != kubeconfig.default_path()
    return {
        **({"KUBECONFIG": str(kubeconfig_path)} if other_file else {}),
        "KUBERNETES_CONTEXT": status["context"],
        "PRODUCTPAGE_URL": status["ingress_url"],
        "BOOKINFO_NAMESPACE": status["namespace"],
        # What the experiments' ${PROMETHEUS_URL} names on a cluster: this mesh's Prometheus.
        **({"PROMETHEUS_URL": url} if (url := prometheus_url(status)) else {}),
        # The mesh's JWT issuer, as the JWT experiments' RequestAuthentication names it (its key
        # stays in its file: the policy matrix reads it there, never from the environment).
        **{
            name: str(issuer[key])
            for name, key in (("JWT_ISSUER", "issuer"), ("JWKS_URI", "jwks_uri"))
            if isinstance(issuer := status.get("jwt_issuer"), dict) and issuer.get(key)
        },
    }


def prometheus_url(status: dict[str, Any]) -> str | None:
    """The running mesh's Prometheus URL; None without one (``status["prometheus"]["reason"]``
    says why)."""
    url = (status.get("prometheus") or {}).get("url")
    return url if isinstance(url, str) else None


def shell_assignments(variables: dict[str, str]) -> str:
    """``NAME=value ...``, quoted for a POSIX shell."""
    return " ".join(f"{name}={shlex.quote(value)}" for name, value in variables.items())


def down(options: Options) -> list[int]:
    """Stop the mesh's daemon and remove what ``up`` made; returns the pids stopped.

    NotOurs (nothing touched) for a state directory ``up`` did not make. A pid file naming a
    process that is not this directory's daemon (gone, or its pid reused) signals nothing.
    """
    state.check_ours(options.state_dir)
    stopped = []
    pid = state.our_daemon(options.state_dir)
    if pid is not None:
        stopped.append(pid)
        _stop_group(pid)
    try:
        record = json.loads((options.state_dir / KUBECONFIG_RECORD).read_text())
    except (OSError, ValueError):
        record = None
    if isinstance(record, dict):
        # Only the context this mesh added: another mesh's context of the same name stays.
        kubeconfig.remove_context(Path(record["kubeconfig"]), server=record["server"])
    state.release(options.state_dir)
    return stopped


def _stop_group(pid: int, timeout_s: float = 10.0) -> None:
    """SIGTERM the verified daemon's process group (Envoy is in it), SIGKILL after a while.

    While any member of the group lives, no new process can get its id: the group stays ours.
    """
    try:
        if os.getpgid(pid) != pid:  # not leading its own group: only the daemon itself
            os.kill(pid, signal.SIGTERM)
            return
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout_s
    while _group_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _group_alive(pid):
        os.killpg(pid, signal.SIGKILL)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    # A zombie we have not reaped still counts for killpg; reap our own child if it is one.
    try:
        finished, _ = os.waitpid(pgid, os.WNOHANG)
        if finished:
            return _group_alive(pgid)
    except ChildProcessError:
        pass
    return True


def alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
