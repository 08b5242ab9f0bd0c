"""`python -m chaosmesh_py.localmesh.apiserver`: serves until SIGTERM, announces its URL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.apiserver.conftest import ISTIO_CRDS, raw

ROOT = Path(__file__).resolve().parents[2]


def run_standalone(tmp_path: Path, *arguments: str) -> tuple[subprocess.Popen[str], str]:
    ready = tmp_path / "url"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "chaosmesh_py.localmesh.apiserver",
            "--ready-file",
            str(ready),
            *arguments,
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 20
    while not ready.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the standalone server did not start (exit {process.poll()})")
        time.sleep(0.02)
    return process, ready.read_text().strip()


def stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=10)
    assert process.returncode == 0
    return output


def test_serves_the_crds_until_sigterm(tmp_path: Path) -> None:
    process, url = run_standalone(tmp_path, "--crds", str(ISTIO_CRDS))
    try:
        assert url.startswith("http://127.0.0.1:")
        assert raw(url, "GET", "/version")[0] == 200
        kinds = {r["kind"] for r in raw(url, "GET", "/apis/security.istio.io/v1")[2]["resources"]}
        assert kinds == {"AuthorizationPolicy", "PeerAuthentication", "RequestAuthentication"}
    finally:
        output = stop(process)
    assert output.strip() == url


def test_without_crds_serves_the_permissive_networking_kinds(tmp_path: Path) -> None:
    process, url = run_standalone(tmp_path)
    try:
        names = {
            r["name"] for r in raw(url, "GET", "/apis/networking.istio.io/v1alpha3")[2]["resources"]
        }
        assert names == {"virtualservices", "destinationrules", "gateways"} | {
            f"{n}/status" for n in ("virtualservices", "destinationrules", "gateways")
        }
        fault = {"method": "GET", "status": 503}
        assert raw(url, "POST", "/chaosmesh/v1/api-faults", fault)[0] == 201
        assert raw(url, "GET", "/apis/networking.istio.io/v1/virtualservices")[0] == 503
    finally:
        stop(process)
