"""The policy report on a generated mesh: 50, 100 and 200 services with 3 edges per service (600
edges at 200), each service with a VirtualService and a DestinationRule of mixed timeouts,
retries, connection pools and outlier detection (a third of the services with none: Istio's
defaults), layered so paths are up to 5 hops deep.

    python bench/policy_report.py [--rounds 7]

Per size: the analysis alone (effective policies, paths, findings; median of --rounds) and the
whole `policy_report` probe against the Kubernetes API double over HTTP (listing the objects
included), each in ms and in ms per edge. Times are this process's CPU time (the client and the
in-process API double's threads): wall time on a machine shared with other work swings by 2x.
Linear growth shows as a ms-per-edge ratio near 1 between 200 and 50 services.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from chaosmesh_py.localmesh.apiserver import ApiServer  # noqa: E402
from chaosmesh_py.localmesh.lifecycle import default_crds  # noqa: E402
from chaosmesh_py.resilience import call_graph, report  # noqa: E402
from chaosmesh_py.resilience.probes import policy_report  # noqa: E402

NAMESPACE = "mesh"
LAYERS = 5
EDGES_PER_SERVICE = 3
V1 = "networking.istio.io/v1"


def generate(services: int, seed: int = 11) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Istio objects and declared edges for ``services`` services."""
    rng = random.Random(seed)
    names = [f"svc{i:03d}" for i in range(services)]
    layer = {name: i * LAYERS // services for i, name in enumerate(names)}
    objects: list[dict[str, Any]] = []
    for index, name in enumerate(names):
        rule: dict[str, Any] = {"route": [{"destination": {"host": name, "subset": "v1"}}]}
        kind = index % 3
        if kind == 1:
            rule["timeout"] = f"{rng.randint(1, 10)}s"
            rule["retries"] = {"attempts": rng.randint(0, 4)}
            if rule["retries"]["attempts"]:
                rule["retries"]["perTryTimeout"] = f"{rng.randint(200, 3000)}ms"
        elif kind == 2:
            rule["retries"] = {"attempts": rng.randint(1, 3), "retryOn": "5xx,connect-failure"}
        if kind:
            objects.append(
                {
                    "apiVersion": V1,
                    "kind": "VirtualService",
                    "metadata": {"name": name, "namespace": NAMESPACE},
                    "spec": {"hosts": [name], "http": [{"name": "all", **rule}]},
                }
            )
        policy: dict[str, Any] = {}
        if index % 2:
            policy["connectionPool"] = {"http": {"http1MaxPendingRequests": rng.randint(1, 100)}}
        if index % 3 == 0:
            policy["outlierDetection"] = {"consecutive5xxErrors": rng.randint(1, 10)}
        spec: dict[str, Any] = {"host": name, "subsets": [{"name": "v1", "labels": {"v": "1"}}]}
        if policy:
            spec["trafficPolicy"] = policy
        objects.append(
            {
                "apiVersion": V1,
                "kind": "DestinationRule",
                "metadata": {"name": name, "namespace": NAMESPACE},
                "spec": spec,
            }
        )
    pairs: set[tuple[str, str]] = set()
    callers = [n for n in names if layer[n] < LAYERS - 1]
    while len(pairs) < EDGES_PER_SERVICE * services:
        source = rng.choice(callers)
        later = [n for n in names if layer[n] == layer[source] + 1 or rng.random() < 0.02]
        destination = rng.choice([n for n in later if layer[n] > layer[source]])
        pairs.add((source, destination))
    edges = [{"source": s, "destination": d} for s, d in sorted(pairs)]
    return objects, edges


def analysis_ms(objects: list[dict[str, Any]], edges: list[dict[str, str]], rounds: int) -> float:
    istio = call_graph.IstioObjects(
        tuple(o for o in objects if o["kind"] == "VirtualService"),
        tuple(o for o in objects if o["kind"] == "DestinationRule"),
        {},
    )
    parsed = call_graph.parse_edges(edges, "edges", NAMESPACE)
    times = []
    for _ in range(rounds):
        started = time.process_time()
        report.build_report(parsed, istio, max_amplification=10**9)
        times.append((time.process_time() - started) * 1000)
    return statistics.median(times)


def probe_ms(server: ApiServer, objects: list[dict[str, Any]], edges: list, rounds: int) -> float:
    server.reset()
    server.create_namespace(NAMESPACE)
    for obj in objects:
        server.create(obj)
    times = []
    for _ in range(rounds):
        started = time.process_time()
        result = policy_report(namespaces=[NAMESPACE], edges=edges, max_amplification=10**9)
        times.append((time.process_time() - started) * 1000)
    assert result["summary"]["edges"] == len(edges)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    options = parser.parse_args()
    print(f"policy report, median of {options.rounds} rounds")
    print(
        f"{'services':>8} {'edges':>6} {'paths':>6} {'analysis ms':>12} {'ms/edge':>8} "
        f"{'probe ms':>9} {'ms/edge':>8}"
    )
    per_edge: dict[int, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory() as home, ApiServer(crd_paths=default_crds()) as server:
        os.environ.update({"KUBECONFIG": str(Path(home) / "none"), "KUBERNETES_HOST": server.url})
        for services in (50, 100, 200):
            objects, edges = generate(services)
            analysis = analysis_ms(objects, edges, options.rounds)
            probe = probe_ms(server, objects, edges, options.rounds)
            built = policy_report(namespaces=[NAMESPACE], edges=edges, max_amplification=10**9)
            per_edge[services] = (analysis / len(edges), probe / len(edges))
            print(
                f"{services:>8} {len(edges):>6} {built['paths_total']:>6} {analysis:>12.1f} "
                f"{analysis / len(edges):>8.3f} {probe:>9.1f} {probe / len(edges):>8.3f}"
            )
    analysis_ratio = per_edge[200][0] / per_edge[50][0]
    probe_ratio = per_edge[200][1] / per_edge[50][1]
    print(
        f"ms per edge, 200 vs 50 services: analysis x{analysis_ratio:.2f}, probe x{probe_ratio:.2f}"
        " (1.0 = linear)"
    )


if __name__ == "__main__":
    main()
