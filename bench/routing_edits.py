"""Routing edits on the local mesh: time to effect, requests the verification sends, and API
requests per edit.

    python bench/routing_edits.py [--rounds 20]

For each action (route_to_version for jason, shift_traffic 90/10, mirror_traffic 25 %) on
Bookinfo's reviews, ``--rounds`` times, with effect verification on: seconds from the end of the
API write to the copy in Envoy's configuration (config) and to the first verifying request
counted on the new subset or mirror (effect); the verifying requests sent; and the API requests
one edit and its removal make (reads before the write included). Median and p95. Compare on a
quiet machine; on a shared one, read the ratios.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from chaosmesh_py.localmesh.lifecycle import DEFAULT_MANIFESTS, default_crds  # noqa: E402
from chaosmesh_py.localmesh.mesh import LocalMesh  # noqa: E402
from chaosmesh_py.localmesh.topology import free_ports  # noqa: E402
from chaosmesh_py.traffic.actions import (  # noqa: E402
    mirror_traffic,
    route_to_version,
    shift_traffic,
)
from chaosmesh_py.traffic.rollbacks import remove_routing  # noqa: E402

RUN = {"chaosmesh_run_id": "benchrouting"}
REVIEWS = {"virtual_service": "reviews", "namespace": "bookinfo", "configuration": RUN}
EDITS = {
    "route_to_version v2 for jason": lambda: route_to_version(
        "v2", headers={"end-user": "jason"}, **REVIEWS
    ),
    "shift_traffic v1 90 / v3 10": lambda: shift_traffic(
        {"v1": 90, "v3": 10}, route_name="everyone-to-v1", **REVIEWS
    ),
    "mirror_traffic 25% to v3": lambda: mirror_traffic(
        25, subset="v3", route_name="everyone-to-v1", **REVIEWS
    ),
}


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _kind_of(entry: Any) -> str:
    """``GET virtualservices``: the method and the resource of one logged API request."""
    method, path = entry[0], str(entry[1]).split("?")[0]
    parts = path.strip("/").split("/")
    plural = next((p for p in reversed(parts) if p.endswith("s") and not p.startswith("v")), path)
    return f"{method} {plural}"


def measure(mesh: LocalMesh, rounds: int) -> None:
    print(
        f"\nrouting edits over {rounds} rounds       config ms      effect ms   "
        "verifying requests   API requests (edit + removal)"
    )
    print(
        f"  {'':<30} {'median':>6} {'p95':>6}  {'median':>6} {'p95':>6}  {'median':>6} {'max':>5}"
    )
    for label, edit in EDITS.items():
        config, effect, sent = [], [], []
        api_requests: Counter[str] = Counter()
        for _ in range(rounds):
            mesh.api.request_log.clear()
            report: dict[str, Any] = edit()
            checked = report["verification"]
            config.append(checked["config_s"])
            effect.append(report["time_to_effect_s"])
            sent.append(checked["requests_sent"])
            remove_routing(configuration=RUN)
            api_requests.update(_kind_of(entry) for entry in mesh.api.request_log)
        per_edit = sum(api_requests.values()) / rounds
        print(
            f"  {label:<30} {1000 * statistics.median(config):>6.1f} "
            f"{1000 * percentile(config, 0.95):>6.1f}  {1000 * statistics.median(effect):>6.1f} "
            f"{1000 * percentile(effect, 0.95):>6.1f}  {statistics.median(sent):>6.0f} "
            f"{max(sent):>5}   {per_edit:.1f}: "
            + ", ".join(f"{k} x{v / rounds:g}" for k, v in sorted(api_requests.items()))
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
            )
            measure(mesh, arguments.rounds)
        finally:
            mesh.stop()


if __name__ == "__main__":
    main()
