"""A killed pod on the local mesh: how soon it stops serving, leaves Envoy, and is replaced.

    python bench/pod_replacement.py [--trials 10] [--start-delay 1.5]

On one local mesh, ``--trials`` times: delete the ratings pod through the API (as
chaostoolkit-kubernetes' terminate_pods does, grace period 0) and time, from the DELETE's answer,
its port refusing connections, its Endpoints address gone, Envoy's ratings cluster empty
(``/clusters``), the replacement pod Ready, and Envoy's cluster holding it again; then
``--replicas`` reviews-v1 replicas scaled up and Envoy seeing all of them. Median and max, in
ms. The replacement's time is the start delay plus the controller's round; the rest is what
the delay does not hide.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from chaosmesh_py.localmesh.lifecycle import DEFAULT_MANIFESTS, default_crds  # noqa: E402
from chaosmesh_py.localmesh.mesh import LocalMesh  # noqa: E402
from chaosmesh_py.localmesh.topology import free_ports  # noqa: E402

NAMESPACE = "bookinfo"
RATINGS = "outbound|9080||ratings.bookinfo.svc.cluster.local"
REVIEWS_V1 = "outbound|9080|v1|reviews.bookinfo.svc.cluster.local"


def hosts(mesh: LocalMesh, cluster: str) -> int:
    text = mesh.envoy.admin.get("/clusters").decode()
    return len(
        {
            line.split("::")[1]
            for line in text.splitlines()
            if line.startswith(f"{cluster}::") and "::cx_active::" in line
        }
    )


def refuses(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) != 0


def ready_pods(mesh: LocalMesh, service: str) -> list[str]:
    endpoints = mesh.api.get("v1", "Endpoints", NAMESPACE, service) or {}
    return [
        str(address["targetRef"]["name"])
        for subset in endpoints.get("subsets") or ()
        for address in subset.get("addresses") or ()
    ]


def until(check: Callable[[], bool], started: float, limit_s: float = 30.0) -> float:
    while not check():
        if time.monotonic() - started > limit_s:
            raise TimeoutError("not within the limit")
        time.sleep(0.002)
    return time.monotonic() - started


def trial(mesh: LocalMesh, port: int) -> dict[str, float]:
    (pod,) = [
        p
        for p in mesh.api.list("v1", "Pod", NAMESPACE)
        if p["metadata"]["labels"]["app"] == "ratings"
    ]
    name = pod["metadata"]["name"]
    mesh.api.delete("v1", "Pod", NAMESPACE, name)
    started = time.monotonic()
    found = {
        "port refuses": until(lambda: refuses(port), started),
        "Endpoints drop it": until(lambda: name not in ready_pods(mesh, "ratings"), started),
        "Envoy's cluster drops it": until(lambda: hosts(mesh, RATINGS) == 0, started),
    }
    found["replacement Ready (Endpoints)"] = until(
        lambda: bool(ready_pods(mesh, "ratings")), started
    )
    found["Envoy's cluster has it"] = until(lambda: hosts(mesh, RATINGS) == 1, started)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--start-delay", type=float, default=1.5)
    parser.add_argument("--replicas", type=int, default=3)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        mesh = LocalMesh(
            Path(work),
            default_crds(),
            DEFAULT_MANIFESTS,
            free_ports(),
            pod_start_delay_s=options.start_delay,
        )
        mesh.start()
        try:
            port = int(mesh.info()["workloads"]["ratings-v1"]["app_url"].rsplit(":", 1)[1])
            results: dict[str, list[float]] = {}
            for _ in range(options.trials):
                for label, seconds in trial(mesh, port).items():
                    results.setdefault(label, []).append(seconds)
            print(
                f"\nratings pod deleted, {options.trials} trials, start delay"
                f" {options.start_delay} s (ms after the DELETE)   median      max"
            )
            for label, values in results.items():
                print(
                    f"  {label:<40} {1000 * statistics.median(values):>9.1f}"
                    f" {1000 * max(values):>9.1f}"
                )
            mesh.api.patch(
                "apps/v1",
                "Deployment",
                NAMESPACE,
                "reviews-v1",
                {"spec": {"replicas": options.replicas}},
            )
            started = time.monotonic()
            seconds = until(lambda: hosts(mesh, REVIEWS_V1) == options.replicas, started)
            print(
                f"  reviews-v1 scaled 1 -> {options.replicas}:"
                f" Envoy has all {1000 * seconds:.0f} ms after the patch"
            )
        finally:
            mesh.stop()


if __name__ == "__main__":
    main()
