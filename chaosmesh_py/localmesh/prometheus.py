"""A real Prometheus for the local mesh: Debian's ``prometheus`` scraping its Istio metrics.

With Prometheus beside it, the local mesh answers the same PromQL a cluster's Prometheus does:
the ``istio_*`` probes, a game day's preflight checks and abort conditions, report plots. It is
the binary ``CHAOSMESH_PROMETHEUS`` names, else ``prometheus`` on PATH (Debian: ``apt-get
install prometheus``); without one the mesh runs without it and says why (``find_binary``).

What runs, under the mesh's working directory (``work_dir``)::

    prometheus.yml      one job, ``local-mesh``: the mesh's /metrics every ``scrape_interval_s``
    data/               the TSDB (removed with the state directory by ``chaosmesh local down``)
    prometheus.log      its output, appended

It listens on 127.0.0.1 only, is the mesh process's child (it dies with it; ``down`` stops the
whole process group), and is restarted when it exits on its own, at most ``MAX_RESTARTS``
times. Ready takes ~0.1 s; the first scrape comes ~5 s later whatever the interval, because
Prometheus 2.x applies target changes at most every 5 s (its discovery and scrape managers'
update ticks): ``wait_for_scrape`` says how long it took.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from urllib.parse import urlsplit

import requests

from chaosmesh_py.errors import ChaosMeshError
from chaosmesh_py.localmesh import process

log = logging.getLogger(__name__)

BINARY_VARIABLE = "CHAOSMESH_PROMETHEUS"
INSTALL = "apt-get install prometheus"
JOB = "local-mesh"
SCRAPE_INTERVAL_S = 1.0
# Prometheus's own default retention is 15 days; a local mesh's history is worth a day.
RETENTION = "1d"
READY_TIMEOUT_S = 10.0
FIRST_SCRAPE_TIMEOUT_S = 20.0
MAX_RESTARTS = 3
_WATCH_INTERVAL_S = 1.0
_LOG_TAIL_CHARS = 2000


class PrometheusUnavailable(ChaosMeshError):
    """No Prometheus binary to run; the message says why and how to get one."""


class PrometheusFailed(ChaosMeshError):
    """Prometheus exited, or was not ready or scraping in time; the message ends with its log."""


def find_binary(environ: Mapping[str, str] = os.environ) -> str:
    """The prometheus binary to run: ``CHAOSMESH_PROMETHEUS``, else ``prometheus`` on PATH."""
    configured = environ.get(BINARY_VARIABLE)
    if configured:
        if os.path.isfile(configured) and os.access(configured, os.X_OK):
            return configured
        raise PrometheusUnavailable(
            f"{BINARY_VARIABLE}={configured} is not an executable file: name the prometheus "
            f"binary, or unset it to use the one on PATH ({INSTALL})"
        )
    found = shutil.which("prometheus", path=environ.get("PATH", os.defpath))
    if found is None:
        raise PrometheusUnavailable(
            f"prometheus is not installed: {INSTALL} (Debian), or set {BINARY_VARIABLE} to "
            "its binary"
        )
    return found


class Prometheus:
    """``binary`` on 127.0.0.1:``port`` scraping ``targets`` (metrics URLs) every
    ``scrape_interval_s``, its files in ``work_dir``."""

    def __init__(
        self,
        binary: str,
        work_dir: Path,
        targets: Sequence[str],
        port: int,
        scrape_interval_s: float = SCRAPE_INTERVAL_S,
    ) -> None:
        self.binary = binary
        self.work_dir = work_dir
        self.targets = tuple(targets)
        self.port = port
        self.scrape_interval_s = scrape_interval_s
        self.log_path = work_dir / "prometheus.log"
        self.first_scrape_s: float | None = None  # from start() to every target scraped once
        self.restarts = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._started_at = 0.0
        self._stopping = threading.Event()
        self._lock = threading.Lock()  # one start or stop at a time: the watcher restarts
        self._watcher: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        running = self._process
        return running.pid if running is not None and running.poll() is None else None

    def start(self, timeout_s: float = READY_TIMEOUT_S) -> Prometheus:
        """Start it and wait until it answers ready (not for the first scrape:
        ``wait_for_scrape``); then watch it, restarting it should it exit."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.work_dir.chmod(0o700)
        (self.work_dir / "prometheus.yml").write_text(json.dumps(self._config(), indent=1))
        self._stopping.clear()
        self._started_at = time.monotonic()
        with self._lock:
            self._launch(process.die_with_parent())
        try:
            self._wait(self._ready, timeout_s, "ready")
        except BaseException:
            self.stop()
            raise
        self._watcher = threading.Thread(target=self._watch, name="prometheus", daemon=True)
        self._watcher.start()
        return self

    def wait_for_scrape(self, timeout_s: float = FIRST_SCRAPE_TIMEOUT_S) -> float:
        """Until every target has been scraped successfully; the seconds since ``start``."""
        if self.first_scrape_s is None:
            self._wait(self._all_up, timeout_s, "successful scrape of every target")
            self.first_scrape_s = round(time.monotonic() - self._started_at, 3)
        return self.first_scrape_s

    def answers(self) -> bool:
        try:
            return self._ready()
        except requests.RequestException:
            return False

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop it (SIGTERM, SIGKILL after ``timeout_s``) and its watcher. Idempotent."""
        self._stopping.set()
        with self._lock:
            if self._process is not None:
                process.stop(self._process, timeout_s)
                self._process = None
        if self._watcher is not None and self._watcher is not threading.current_thread():
            self._watcher.join(timeout_s)
            self._watcher = None

    def log_tail(self) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            text = ""
        return text[-_LOG_TAIL_CHARS:].strip() or "(nothing logged)"

    def _config(self) -> dict[str, object]:
        interval = f"{int(self.scrape_interval_s * 1000)}ms"
        by_path: dict[str, list[str]] = {}
        for target in self.targets:
            parts = urlsplit(target)
            by_path.setdefault(parts.path or "/metrics", []).append(parts.netloc)
        return {  # JSON is YAML
            "global": {"scrape_interval": interval, "scrape_timeout": interval},
            "scrape_configs": [
                {
                    "job_name": JOB if len(by_path) == 1 else f"{JOB}{path.replace('/', '-')}",
                    "metrics_path": path,
                    "static_configs": [{"targets": hosts}],
                }
                for path, hosts in by_path.items()
            ],
        }

    def _launch(self, preexec: Callable[[], None] | None) -> None:
        command = [
            self.binary,
            f"--config.file={self.work_dir / 'prometheus.yml'}",
            f"--storage.tsdb.path={self.work_dir / 'data'}",
            f"--storage.tsdb.retention.time={RETENTION}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--log.level=warn",
        ]
        with self.log_path.open("ab") as output:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                preexec_fn=preexec,  # noqa: PLW1509
            )

    def _watch(self) -> None:
        """Restart Prometheus when it exits on its own, at most MAX_RESTARTS times."""
        while not self._stopping.wait(_WATCH_INTERVAL_S):
            with self._lock:
                running = self._process
                if self._stopping.is_set() or running is None or running.poll() is None:
                    continue
                if self.restarts >= MAX_RESTARTS:
                    log.error(
                        f"prometheus exited with {running.returncode} after {self.restarts} "
                        f"restarts; not restarting it: {self.log_tail()}"
                    )
                    self._process = None
                    return
                self.restarts += 1
                log.warning(f"prometheus exited with {running.returncode}; restarting it")
                # Not tied by PDEATHSIG (this thread is not the main one): the process group
                # still takes it down with the mesh (``chaosmesh local down``).
                self._launch(None)

    def _ready(self) -> bool:
        return requests.get(f"{self.url}/-/ready", timeout=2).status_code == 200

    def _all_up(self) -> bool:
        answer = requests.get(f"{self.url}/api/v1/targets", timeout=2).json()
        targets = answer["data"]["activeTargets"]
        return len(targets) == len(self.targets) and all(t["health"] == "up" for t in targets)

    def _wait(self, predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            running = self._process
            if running is not None and running.poll() is not None:
                raise PrometheusFailed(
                    f"prometheus exited with {running.returncode}: {self.log_tail()}"
                )
            try:
                if predicate():
                    return
            except (requests.RequestException, ValueError, KeyError):
                pass  # not listening yet
            if time.monotonic() > deadline:
                raise PrometheusFailed(
                    f"prometheus: no {what} within {timeout_s} s: {self.log_tail()}"
                )
            time.sleep(0.05)
