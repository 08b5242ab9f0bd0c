"""Upstream faults on the local mesh: time to effect and to removal, and the retry arithmetic.

    python bench/upstream_fault.py [--rounds 10] [--requests 200]

1. time: ``inject_upstream_fault`` (an EnvoyFilter: a listener change on the pods' inbound, not
   a route swap) then ``remove_upstream_faults``, ``--rounds`` times, on httpbin's two pods:
   seconds from the call to a verified effect (Envoy's configuration, then each pod's inbound
   counters moved), and from the removal call to the fault gone from every inbound listener;
   median and p95;
2. retries: a 50 % inbound abort on both httpbin pods, the caller's route with 2 retries on 5xx,
   ``--requests`` requests through a sidecar: the user's error ratio against 0.5^3 = 0.125, and
   the attempts per request (Envoy's counters) against the 1 + 0.5 + 0.25 = 1.75 expected.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.local_mesh import percentile, running_mesh  # noqa: E402
from chaosmesh_py.localmesh.mesh import LocalMesh  # noqa: E402
from chaosmesh_py.resilience.actions import inject_upstream_fault  # noqa: E402
from chaosmesh_py.resilience.rollbacks import remove_upstream_faults  # noqa: E402
from tests.local.conftest import httpbin_route, through_sidecar  # noqa: E402
from tests.local.test_inbound import get, inbound_listener  # noqa: E402

RUN = {"chaosmesh_run_id": "benchupstream1"}
HTTPBIN = {"app": "httpbin"}
CLUSTER = "outbound|8000||httpbin.bookinfo.svc.cluster.local"


def fault_gone(mesh: LocalMesh) -> bool:
    for pod in ("httpbin-v1", "httpbin-v2"):
        chain = inbound_listener(mesh, pod)["filter_chains"][0]["filters"][0]["typed_config"]
        if "abort" in chain["http_filters"][0]["typed_config"]:
            return False
    return True


def timing(mesh: LocalMesh, rounds: int) -> None:
    effect, removal = [], []
    for _ in range(rounds):
        started = time.monotonic()
        inject_upstream_fault(
            workload_labels=HTTPBIN, namespace="bookinfo", abort_http_status=503, configuration=RUN
        )
        effect.append(time.monotonic() - started)
        started = time.monotonic()
        remove_upstream_faults(namespace="bookinfo", configuration=RUN)
        while not fault_gone(mesh):
            time.sleep(0.002)
        removal.append(time.monotonic() - started)
    print(f"\nupstream fault over {rounds} rounds (ms)          median      p95")
    for label, values in (
        ("inject: call -> verified on both pods", effect),
        ("remove: call -> gone from both inbounds", removal),
    ):
        print(
            f"  {label:<44} {1000 * statistics.median(values):>7.1f} "
            f"{1000 * percentile(values, 0.95):>8.1f}"
        )


def retries(mesh: LocalMesh, requests: int) -> None:
    httpbin_route(mesh, retries={"attempts": 2, "retryOn": "5xx"})
    inject_upstream_fault(
        workload_labels=HTTPBIN,
        namespace="bookinfo",
        abort_http_status=503,
        abort_percentage=50,
        configuration=RUN,
    )
    stats = mesh.envoy.stats
    before = stats().get(f"cluster.{CLUSTER}.upstream_rq_total", 0)
    url, headers = through_sidecar(mesh, "httpbin", "/status/200")
    failed = sum(get(url, headers)[0] != 200 for _ in range(requests))
    attempts = stats().get(f"cluster.{CLUSTER}.upstream_rq_total", 0) - before
    remove_upstream_faults(namespace="bookinfo", configuration=RUN)
    print(f"\n50 % inbound abort, 2 retries on 5xx, {requests} requests   measured   predicted")
    for label, measured, predicted in (
        ("user error ratio", failed / requests, 0.5**3),
        ("attempts per request", attempts / requests, 1 + 0.5 + 0.25),
    ):
        print(f"  {label:<46} {measured:>8.3f} {predicted:>10.3f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--requests", type=int, default=200)
    options = parser.parse_args()
    with running_mesh() as mesh:
        timing(mesh, options.rounds)
        retries(mesh, options.requests)
    return 0


if __name__ == "__main__":
    sys.exit(main())
