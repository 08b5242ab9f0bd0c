"""The local mesh: time-to-effect, fault fidelity, and Envoy's overhead against wrk.

    python bench/local_mesh.py [--rounds 30] [--wrk-seconds 5]

In one run, on one local mesh:
1. time-to-effect: ``inject_abort`` then ``remove_faults`` on httpbin, ``--rounds`` times, with
   effect verification on: seconds from the API write to the fault in Envoy's configuration
   (config), to a request showing it (traffic), and to the fault gone from Envoy (rollback);
   median and p95;
2. fidelity: what real requests through a sidecar see for the faults Istio's tasks use;
3. overhead: ``wrk`` (Debian's) against httpbin directly and through the mesh (its entry
   listener, one Envoy hop), same connections and duration: requests/s and latency, as ratios.
Compare ratios, not absolute numbers, on a shared machine.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from chaosmesh_py.faults.actions import inject_abort, inject_delay  # noqa: E402
from chaosmesh_py.faults.rollbacks import remove_faults  # noqa: E402
from chaosmesh_py.localmesh.lifecycle import DEFAULT_MANIFESTS, default_crds  # noqa: E402
from chaosmesh_py.localmesh.mesh import LocalMesh  # noqa: E402
from chaosmesh_py.localmesh.topology import free_ports  # noqa: E402
from tests.local.conftest import httpbin_route  # noqa: E402
from tests.local.load import burst  # noqa: E402

RUN = {"chaosmesh_run_id": "bench"}


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def time_to_effect(rounds: int) -> None:
    inject, traffic, rollback = [], [], []
    for _ in range(rounds):
        report = inject_abort(
            virtual_service="httpbin",
            namespace="bookinfo",
            http_status=503,
            percentage=100,
            headers={"x-bench": "yes"},
            configuration=RUN,
        )
        inject.append(report["effect"]["config_s"])
        assert "traffic_s" in report["effect"], report["effect"]
        traffic.append(report["effect"]["traffic_s"])
        removed = remove_faults(virtual_service="httpbin", namespace="bookinfo", configuration=RUN)
        rollback.append(removed[0]["effect"]["config_s"])
    print(f"\ntime-to-effect over {rounds} rounds (ms)      median      p95")
    for label, values in (
        ("inject: API write -> Envoy config", inject),
        ("inject: API write -> a faulted request", traffic),
        ("rollback: API write -> gone from Envoy", rollback),
    ):
        print(
            f"  {label:<40} {1000 * statistics.median(values):>7.1f} "
            f"{1000 * percentile(values, 0.95):>8.1f}"
        )


def fidelity(mesh: LocalMesh) -> None:
    sleep = mesh.info()["workloads"]["sleep"]["sidecar_url"]
    host = {"Host": "httpbin:8000"}
    print("\nfidelity (requests through the sleep sidecar to httpbin)")
    print(f"  {'fault':<34} {'requests':>8}  observed")
    inject_abort(
        virtual_service="httpbin",
        namespace="bookinfo",
        http_status=503,
        percentage=30,
        configuration=RUN,
    )
    results = burst(f"{sleep}/get", 3000, concurrency=30, headers=host)
    share = sum(r.status == 503 for r in results) / len(results)
    print(f"  {'abort 503 at 30%':<34} {len(results):>8}  {100 * share:.2f}% aborted")
    remove_faults(configuration=RUN)

    inject_delay(
        virtual_service="httpbin",
        namespace="bookinfo",
        fixed_delay="200ms",
        percentage=50,
        configuration=RUN,
    )
    results = burst(f"{sleep}/get", 1000, concurrency=50, headers=host)
    delayed = [r.latency_s for r in results if r.latency_s >= 0.15]
    others = [r.latency_s for r in results if r.latency_s < 0.15]
    share = len(delayed) / len(results)
    print(
        f"  {'delay 200ms at 50%':<34} {len(results):>8}  {100 * share:.1f}% delayed, their p50 "
        f"{1000 * statistics.median(delayed):.1f} ms; others' p50 "
        f"{1000 * statistics.median(others):.1f} ms"
    )
    remove_faults(configuration=RUN)

    inject_abort(
        virtual_service="httpbin",
        namespace="bookinfo",
        http_status=500,
        percentage=100,
        headers={"end-user": "jason"},
        configuration=RUN,
    )
    jason = burst(f"{sleep}/get", 500, headers={**host, "end-user": "jason"})
    others_ = burst(f"{sleep}/get", 500, headers={**host, "end-user": "mary"})
    print(
        f"  {'abort 500 for end-user: jason':<34} {1000:>8}  jason "
        f"{sum(r.status == 500 for r in jason)}/500 aborted, others "
        f"{sum(r.status == 500 for r in others_)}/500"
    )
    remove_faults(configuration=RUN)


def wrk(url: str, seconds: int) -> dict[str, float]:
    done = subprocess.run(
        ["wrk", "-t1", "-c10", f"-d{seconds}s", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
    )
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", done.stdout).group(1))  # type: ignore[union-attr]
    latencies = {}
    for label in ("50%", "99%"):
        value, unit = re.search(rf"{label}\s+([\d.]+)(us|ms|s)", done.stdout).groups()  # type: ignore[union-attr]
        latencies[label] = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    return {"rps": rate, "p50_ms": latencies["50%"], "p99_ms": latencies["99%"]}


def overhead(mesh: LocalMesh, seconds: int) -> None:
    if shutil.which("wrk") is None:
        print("\noverhead: skipped, wrk is not installed (apt-get install wrk)")
        return
    info: dict[str, Any] = mesh.info()
    direct_url = info["workloads"]["httpbin-v1"]["app_url"] + "/get"
    # One endpoint behind the mesh too, so both sides measure the same httpbin.
    mesh.api.create(
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "DestinationRule",
            "metadata": {"name": "httpbin", "namespace": "bookinfo"},
            "spec": {"host": "httpbin", "subsets": [{"name": "v1", "labels": {"version": "v1"}}]},
        }
    )
    route = mesh.api.get("networking.istio.io/v1", "VirtualService", "bookinfo", "httpbin")
    assert route is not None
    route["spec"]["http"][0]["route"][0]["destination"]["subset"] = "v1"
    mesh.api.replace(route)
    mesh.sync()
    mesh_url = info["services"]["httpbin"]["url"] + "/get"
    direct = wrk(direct_url, seconds)
    through = wrk(mesh_url, seconds)
    print(f"\noverhead: wrk -t1 -c10 -d{seconds}s, httpbin direct vs through Envoy")
    print(f"  {'':<10} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for label, row in (("direct", direct), ("mesh", through)):
        print(f"  {label:<10} {row['rps']:>9.0f} {row['p50_ms']:>8.2f} {row['p99_ms']:>8.2f}")
    ratios = {key: through[key] / direct[key] for key in direct}
    print(
        f"  mesh/direct: throughput {ratios['rps']:.2f}x, p50 {ratios['p50_ms']:.2f}x, "
        f"p99 {ratios['p99_ms']:.2f}x"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--wrk-seconds", type=int, default=5)
    options = parser.parse_args()
    with running_mesh() as mesh:
        httpbin_route(mesh)
        time_to_effect(options.rounds)
        fidelity(mesh)
        overhead(mesh, options.wrk_seconds)
    return 0


@contextlib.contextmanager
def running_mesh() -> Iterator[LocalMesh]:
    """A local mesh in a temporary directory, this process's Kubernetes client pointed at it
    the chaosk8s way (no kubeconfig), as the actions under measure would find it."""
    with tempfile.TemporaryDirectory() as work:
        mesh = LocalMesh(Path(work), default_crds(), DEFAULT_MANIFESTS, free_ports())
        mesh.start()
        try:
            os.environ["KUBECONFIG"] = str(Path(work) / "none")
            os.environ["KUBERNETES_HOST"] = mesh.api.url
            os.environ["KUBERNETES_API_KEY"] = mesh.credentials.token
            os.environ["KUBERNETES_CA_CERT_FILE"] = str(mesh.credentials.ca_file)
            yield mesh
        finally:
            mesh.stop()


if __name__ == "__main__":
    sys.exit(main())
