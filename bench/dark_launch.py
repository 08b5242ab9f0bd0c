"""The dark-launch leak check on the local mesh: what it costs, and what it catches.

    python bench/dark_launch.py [--rounds 5]

On one local mesh, Bookinfo's reviews v2 hidden from all but jason:
1. cost: the whole check (every way in, 20 and 100 requests per entry) with STRICT mutual TLS,
   ``--rounds`` times: seconds (median, max) and requests per second;
2. sensitivity: without STRICT (clients without a sidecar reach reviews through kube-proxy),
   the leak share the check measures at 20 and 100 requests per entry, with its Wilson 95 %
   interval, against the 1 in 3 kube-proxy's round robin gives v2;
3. per-request identity: the share of answers that named their server (a check that cannot
   read who answered cannot pass).
Compare ratios, not absolute numbers, on a shared machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.local_mesh import running_mesh  # noqa: E402
from chaosmesh_py.localmesh.mesh import LocalMesh  # noqa: E402
from chaosmesh_py.traffic.probes import dark_launch_leaks  # noqa: E402

NO_SIDECAR = "no-sidecar client via Service reviews"


def check(requests: int) -> dict[str, Any]:
    return dark_launch_leaks(
        service="reviews",
        hidden_version="v2",
        testers={"headers": {"end-user": "jason", "cookie": "user=jason"}},
        namespace="bookinfo",
        path="/reviews/0",
        ingress_path="/api/v1/products/0/reviews",
        via=["productpage"],
        requests_per_entry=requests,
    )


def strict_mtls(mesh: LocalMesh, on: bool) -> None:
    if on:
        mesh.api.create(
            {
                "apiVersion": "security.istio.io/v1",
                "kind": "PeerAuthentication",
                "metadata": {"name": "default", "namespace": "bookinfo"},
                "spec": {"mtls": {"mode": "STRICT"}},
            }
        )
    else:
        mesh.api.delete("security.istio.io/v1", "PeerAuthentication", "bookinfo", "default")
    mesh.sync()


def cost(mesh: LocalMesh, rounds: int) -> None:
    strict_mtls(mesh, on=True)
    print("1. cost of the whole check (STRICT mTLS: it passes)")
    for requests in (20, 100):
        seconds = []
        for _ in range(rounds):
            started = time.perf_counter()
            result = check(requests)
            seconds.append(time.perf_counter() - started)
            assert result["hidden"], result
        sent = result["requests"]
        median = statistics.median(seconds)
        print(
            f"  {requests:>3} per entry: {len(result['entries'])} entries, {sent} requests, "
            f"median {median:.2f} s (max {max(seconds):.2f} s), {sent / median:.0f} requests/s"
        )
    strict_mtls(mesh, on=False)


def sensitivity() -> None:
    print("2. sensitivity: the no-sidecar leak (kube-proxy gives v2 1 in 3 connections)")
    for requests in (20, 100):
        result = check(requests)
        entry = next(e for e in result["entries"] if e["name"] == NO_SIDECAR)["others"]
        low, high = entry["hidden_share_95"]
        print(
            f"  {requests:>3} per entry: {entry['hidden_hits']} of {entry['requests']} reached "
            f"v2, share {entry['hidden_hits'] / entry['requests']:.3f} (95 %: {low:.3f}-{high:.3f})"
            f"; findings {result['findings']}: {result['leaks']}"
        )
        answered = sum(
            s["requests"] - s["closed"] - s["unreachable"] - s["unidentified"]
            for e in result["entries"]
            for s in (e["others"], e["testers"])
            if s
        )
        print(
            f"  3. answers naming their server: {answered} of {result['requests']} "
            f"({answered / result['requests']:.1%})"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()
    with running_mesh() as mesh:
        cost(mesh, options.rounds)
        sensitivity()
    return 0


if __name__ == "__main__":
    sys.exit(main())
