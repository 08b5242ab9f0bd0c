"""Policy edits on the local mesh: time until Envoy shows them, time until it shows them restored,
and API requests per edit and restore.

    python bench/policy_edits.py [--rounds 20]

For each action (a 0.5 s timeout on reviews' jason route, retries off on ratings, a circuit
breaker and outlier detection on reviews v1) on Bookinfo, ``--rounds`` times, with effect
verification on: the action's wall time, Envoy's ``config_s`` after the write and after
``restore_policies``, and the API requests the edit and its restore make (reads included).
Median and p95, in milliseconds. Compare on a quiet machine; on a shared one, read the ratios.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from chaosmesh_py.localmesh.lifecycle import DEFAULT_MANIFESTS, default_crds  # noqa: E402
from chaosmesh_py.localmesh.mesh import LocalMesh  # noqa: E402
from chaosmesh_py.localmesh.topology import free_ports  # noqa: E402
from chaosmesh_py.resilience.actions import (  # noqa: E402
    set_connection_pool,
    set_outlier_detection,
    set_retries,
    set_route_timeout,
)
from chaosmesh_py.resilience.rollbacks import restore_policies  # noqa: E402

RUN = {"chaosmesh_run_id": "benchpolicy"}
NS = {"namespace": "bookinfo", "configuration": RUN}
EDITS: dict[str, tuple[Callable[[], dict[str, Any]], dict[str, str]]] = {
    "set_route_timeout 0.5s (jason route)": (
        lambda: set_route_timeout(
            "0.5s", virtual_service="reviews", route_name="jason-to-v2", **NS
        ),
        {"virtual_service": "reviews"},
    ),
    "set_retries 0 (ratings)": (
        lambda: set_retries(0, virtual_service="ratings", **NS),
        {"virtual_service": "ratings"},
    ),
    "set_connection_pool (reviews v1)": (
        lambda: set_connection_pool(
            {"tcp": {"maxConnections": 1}, "http": {"http1MaxPendingRequests": 1}},
            destination_rule="reviews",
            subset="v1",
            **NS,
        ),
        {"destination_rule": "reviews"},
    ),
    "set_outlier_detection (reviews v1)": (
        lambda: set_outlier_detection(
            {"consecutive5xxErrors": 1, "interval": "1s", "maxEjectionPercent": 100},
            destination_rule="reviews",
            subset="v1",
            **NS,
        ),
        {"destination_rule": "reviews"},
    ),
}


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def shown(values: list[float]) -> str:
    return f"{1000 * statistics.median(values):>7.1f} {1000 * percentile(values, 0.95):>7.1f}"


def measure(mesh: LocalMesh, rounds: int) -> None:
    groups = "".join(f" {name:^15}" for name in ("action", "config", "restore config"))
    print(f"\npolicy edits over {rounds} rounds (ms)".ljust(39) + groups + "   API requests")
    print(" " * 39 + " median     p95" * 3)
    for label, (edit, target) in EDITS.items():
        wall, config, restored = [], [], []
        requests = 0
        for _ in range(rounds):
            mesh.api.request_log.clear()
            started = time.monotonic()
            report = edit()
            wall.append(time.monotonic() - started)
            config.append(report["effect"]["config_s"])
            (entry,) = restore_policies(**target, **NS)["restored"]
            restored.append(entry["effect"]["config_s"])
            requests += len(mesh.api.request_log)
        print(
            f"  {label:<36} {shown(wall)} {shown(config)} {shown(restored)}   "
            f"{requests / rounds:.1f} per edit + restore"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        mesh = LocalMesh(Path(directory), default_crds(), DEFAULT_MANIFESTS, free_ports())
        mesh.start()
        try:
            os.environ.update(
                KUBECONFIG=str(Path(directory) / "no-kubeconfig"),
                KUBERNETES_HOST=mesh.api.url,
                KUBERNETES_API_KEY=mesh.credentials.token,
                KUBERNETES_CA_CERT_FILE=str(mesh.credentials.ca_file),
                CHAOSMESH_LEDGER_DIR=str(Path(directory) / "ledgers"),
            )
            measure(mesh, arguments.rounds)
        finally:
            mesh.stop()


if __name__ == "__main__":
    main()
