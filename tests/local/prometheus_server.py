"""Debian's Prometheus for the tests: a real server scraping the local mesh every second.

Start it once per module or session: ready takes ~60 ms, but the first scrape only comes ~5-6 s
later (Prometheus batches target discovery updates every 5 s). CI installs it with
``apt-get install -y prometheus``; without the binary the tests fail and say so.
"""

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import requests

INSTALL = "apt-get install -y prometheus"
SCRAPE_INTERVAL_S = 1


def prometheus_binary():
    """The prometheus binary (CHAOSMESH_PROMETHEUS, else /usr/bin/prometheus or on PATH)."""
    configured = os.environ.get("CHAOSMESH_PROMETHEUS")
    found = configured or shutil.which("prometheus") or "/usr/bin/prometheus"
    if not Path(found).is_file():
        pytest.fail(
            f"Prometheus not found at {found}: install it ({INSTALL}) or set CHAOSMESH_PROMETHEUS"
        )
    return found


class PrometheusServer:
    """``prometheus`` on 127.0.0.1:``port`` scraping ``targets`` (host:port, path /metrics)."""

    def __init__(self, work_dir, targets, port):
        self.work_dir = Path(work_dir)
        self.targets = list(targets)
        self.url = f"http://127.0.0.1:{port}"
        self._port = port
        self._process = None
        self._log_path = self.work_dir / "prometheus.log"

    def start(self, timeout_s=10.0):
        """Start and wait until it answers ready (not for the first scrape: ``wait_for_scrape``)."""
        config = self.work_dir / "prometheus.yml"
        interval = f"{SCRAPE_INTERVAL_S}s"
        # JSON is YAML.
        config.write_text(
            json.dumps(
                {
                    "global": {"scrape_interval": interval, "scrape_timeout": interval},
                    "scrape_configs": [
                        {"job_name": "local-mesh", "static_configs": [{"targets": self.targets}]}
                    ],
                }
            )
        )
        command = [
            prometheus_binary(),
            f"--config.file={config}",
            f"--storage.tsdb.path={self.work_dir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self._port}",
            "--log.level=warn",
        ]
        with self._log_path.open("ab") as log:
            self._process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        self._wait(lambda: self._get("/-/ready").status_code == 200, timeout_s, "ready")
        return self

    def wait_for_scrape(self, timeout_s=20.0):
        """Until every target has been scraped successfully once."""

        def all_up():
            targets = self._get("/api/v1/targets").json()["data"]["activeTargets"]
            return len(targets) == len(self.targets) and all(
                target["health"] == "up" for target in targets
            )

        return self._wait(all_up, timeout_s, "the first scrape")

    def stop(self):
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def _get(self, path):
        return requests.get(self.url + path, timeout=2)

    def _wait(self, predicate, timeout_s, what):
        started = time.monotonic()
        while True:
            if self._process.poll() is not None:
                pytest.fail(f"prometheus exited with {self._process.returncode}: {self._log()}")
            try:
                if predicate():
                    return time.monotonic() - started
            except requests.RequestException:
                pass  # not listening yet
            if time.monotonic() - started > timeout_s:
                pytest.fail(f"prometheus: no {what} within {timeout_s} s: {self._log()}")
            time.sleep(0.05)

    def _log(self):
        return self._log_path.read_text(errors="replace")[-2000:] or "(nothing logged)"
