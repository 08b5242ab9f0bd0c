"""``chaosmesh local up | down | status``: the local mesh as a background service.

State lives in one directory (default ``~/.local/state/chaosmesh/local``, or
``CHAOSMESH_STATE_DIR``): ``status.json`` (written by the daemon when the mesh answers),
``daemon.pid``, ``daemon.log``, and Envoy's working files. ``up`` is idempotent: a running mesh
is reported, not restarted. ``down`` stops the daemon's whole process group and removes the
directory and the kubeconfig context, so nothing is left behind.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
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
from chaosmesh_py.localmesh import kubeconfig
from chaosmesh_py.localmesh.daemon import STATUS_FILE

# In a source checkout, Istio's CRDs beside it (never shipped with the package).
DEFAULT_CRDS = Path(__file__).resolve().parents[3] / "shared/istio/crds-1.30.3.gen.yaml"
DEFAULT_MANIFESTS = packaged.bookinfo_manifests()
START_TIMEOUT_S = 60.0
PID_FILE = "daemon.pid"  # written by `up` at once, so `down` finds a daemon that never got ready


class LocalMeshError(ChaosMeshError):
    """The local mesh could not be started, reached or stopped."""


@dataclass(frozen=True)
class Options:
    state_dir: Path
    kubeconfig: Path
    crds: tuple[Path, ...] = ()
    manifests: tuple[Path, ...] = DEFAULT_MANIFESTS
    api_port: int = 0
    ingress_port: int | None = None


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
    try:
        recorded = json.loads((state_dir / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not alive(int(recorded.get("pid", 0))):
        return None
    try:
        requests.get(f"{recorded['api_url']}/version", timeout=2).raise_for_status()
    except requests.RequestException:
        return None
    return {"running": True, "context": kubeconfig.CONTEXT, **recorded}


def up(options: Options) -> dict[str, Any]:
    """Start the mesh in the background unless it already runs; return its status."""
    running = status(options.state_dir)
    if running is not None:
        return running
    down(options)  # whatever a crashed run left
    for port, flag in ((options.api_port, "--api-port"), (options.ingress_port, "--ingress-port")):
        if port and not _port_free(port):
            raise LocalMeshError(f"port {port} is in use; choose another with {flag}")
    options.state_dir.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "chaosmesh_py.localmesh.daemon",
        "--state-dir",
        str(options.state_dir),
    ]
    command += [f"--crds={path}" for path in options.crds]
    command += [f"--apply={path}" for path in options.manifests]
    command += [f"--api-port={options.api_port}"]
    if options.ingress_port:
        command += [f"--ingress-port={options.ingress_port}"]
    log = (options.state_dir / "daemon.log").open("ab")
    daemon = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
    )
    log.close()
    (options.state_dir / PID_FILE).write_text(str(daemon.pid))
    deadline = time.monotonic() + START_TIMEOUT_S
    while (started := status(options.state_dir)) is None:
        if daemon.poll() is not None or time.monotonic() > deadline:
            tail = _tail(options.state_dir / "daemon.log")
            down(options)
            raise LocalMeshError(f"the local mesh did not start:\n{tail}")
        time.sleep(0.05)
    kubeconfig.add_context(options.kubeconfig, started["api_url"])
    return started


def experiment_environment(status: dict[str, Any], kubeconfig_path: Path) -> dict[str, str]:
    """What an experiment run against this mesh needs set (KUBECONFIG only when the context went
    to a file other than the one kubectl and the Kubernetes client read by default)."""
    other_file = kubeconfig_path != kubeconfig.default_path()
    return {
        **({"KUBECONFIG": str(kubeconfig_path)} if other_file else {}),
        "KUBERNETES_CONTEXT": status["context"],
        "PRODUCTPAGE_URL": status["ingress_url"],
        "BOOKINFO_NAMESPACE": status["namespace"],
    }


def shell_assignments(variables: dict[str, str]) -> str:
    """``NAME=value ...``, quoted for a POSIX shell."""
    return " ".join(f"{name}={shlex.quote(value)}" for name, value in variables.items())


def down(options: Options) -> list[int]:
    """Stop every process the mesh started and remove its files; returns the pids stopped."""
    stopped = []
    try:
        pid = int((options.state_dir / PID_FILE).read_text())
    except (OSError, ValueError):
        pid = 0
    if pid and alive(pid):
        stopped.append(pid)
        _stop_group(pid)
    kubeconfig.remove_context(options.kubeconfig)
    if options.state_dir.exists():
        shutil.rmtree(options.state_dir)
    return stopped


def _stop_group(pid: int, timeout_s: float = 10.0) -> None:
    # The daemon leads its own session: its group holds Envoy too.
    try:
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
