"""What the server's sidecar costs on the local mesh: wrk through caller sidecar -> server sidecar
-> app against caller sidecar -> app.

    python bench/inbound_hop.py [--seconds 5] [--rounds 3] [--connections 10]

One local mesh. The bench adds to its Envoy, in its own configuration only (the mesh's
translation never makes these), two copies of the ``sleep`` workload's outbound listener, each
routing every request as httpbin's route does (Istio's default retry policy, no timeout) to one
cluster of its own:

- ``via-inbound``: the cluster's endpoint is httpbin-v1's pod address, its inbound listener (the
  path every mesh call takes since the mesh has inbound sidecars);
- ``app-direct``: the cluster's endpoint is httpbin-v1's app port (the path before them).

The two differ only in that endpoint (checked: the server's inbound counts every request of the
first and none of the second). ``wrk -t1 --latency`` GETs ``/get`` on each, alternating,
``--rounds`` times, at one connection (the hop's own cost: nothing queues) and at
``--connections`` (under load, where the Python app is the bottleneck and how many connections
reach it matters as much as the hop); printed: requests/s, p50 and p99 of each round, and the
medians' ratios (via-inbound / app-direct). One Envoy serves both hops here (one worker thread),
where a cluster has two Envoys on two pods: the local cost is the upper bound of a hop's CPU on
one core. Needs wrk (Debian: apt-get install wrk).
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.load_probe import (  # noqa: E402
    medians,
    print_comparison,
    wrk,
    wrk_comparison_options,
)
from bench.local_mesh import running_mesh  # noqa: E402
from chaosmesh_py.localmesh.envoy import EnvoyConfig  # noqa: E402
from chaosmesh_py.localmesh.kube_proxy import load_assignment  # noqa: E402
from chaosmesh_py.localmesh.topology import free_ports  # noqa: E402
from chaosmesh_py.localmesh.translate import (  # noqa: E402
    sidecar_listener_name,
    sidecar_route_config_name,
)

CALLER = "sleep"
SERVER = "httpbin-v1"
SERVICE = "httpbin"


def bench_config(mesh: Any, ports: dict[str, int]) -> EnvoyConfig:
    """The mesh's own configuration plus the two bench listeners, routes and clusters."""
    # The mesh's translation of its current resources (what its control loop last applied).
    config = mesh._translate(mesh._resources())
    # The pods that run now (one replica each here), as the mesh's translation takes them.
    workloads = {w.name: w for w in mesh.controller.workloads()}
    caller, server = workloads[CALLER], workloads[SERVER]
    listener = next(
        item for item in config.listeners if item["name"] == sidecar_listener_name(caller)
    )
    route_config = config.route_configs[sidecar_route_config_name(caller)]
    host = mesh.info()["services"][SERVICE]["host"]
    virtual_host = next(
        vhost for vhost in route_config["virtual_hosts"] if host in vhost["domains"]
    )
    service_cluster = next(
        cluster
        for cluster in config.clusters
        if cluster["name"].endswith(f"|{SERVICE}.bookinfo.svc.cluster.local")
        and cluster["name"].startswith("outbound|")
        and "||" in cluster["name"]
    )
    listeners, clusters, routes = (
        list(config.listeners),
        list(config.clusters),
        dict(config.route_configs),
    )
    endpoints = {"via-inbound": server.pod_port, "app-direct": server.port}
    for name, endpoint in endpoints.items():
        cluster = copy.deepcopy(service_cluster)
        if name == "app-direct":  # the app speaks plain text: no sidecar's mutual TLS
            cluster.pop("transport_socket_matches", None)
            cluster.pop("transport_socket_matcher", None)
        cluster["name"] = f"bench|{name}"
        cluster["load_assignment"] = load_assignment(cluster["name"], [endpoint])
        clusters.append(cluster)
        vhost = copy.deepcopy(virtual_host)
        vhost["domains"] = ["*"]
        for route in vhost["routes"]:
            route["route"]["cluster"] = cluster["name"]
        routes[f"bench~{name}"] = {
            **route_config,
            "name": f"bench~{name}",
            "virtual_hosts": [vhost],
        }
        copied = copy.deepcopy(listener)
        copied["name"] = f"bench~{name}"
        copied["address"]["socket_address"]["port_value"] = ports[name]
        (manager,) = [
            f["typed_config"]
            for f in copied["filter_chains"][0]["filters"]
            if f["name"] == "envoy.filters.network.http_connection_manager"
        ]
        manager["rds"]["route_config_name"] = f"bench~{name}"
        manager["rds"]["config_source"] = mesh.envoy.rds_config_source(f"bench~{name}")
        listeners.append(copied)
    return EnvoyConfig(tuple(listeners), tuple(clusters), routes)


def main() -> int:
    options = wrk_comparison_options(__doc__ or "")
    if options is None:
        return 0
    with running_mesh() as mesh:
        spare = free_ports()
        ports = {"via-inbound": next(spare), "app-direct": next(spare)}
        mesh.envoy.apply(bench_config(mesh, ports))
        for port in ports.values():  # warm up: connections, Envoy's first requests
            wrk(f"http://127.0.0.1:{port}/get", options.connections, 1)
        tables = [
            (connections, measure(mesh, ports, connections, options))
            for connections in sorted({1, options.connections})
        ]
    print_comparison(tables, "path", ("via-inbound", "app-direct"), options.rounds, options.seconds)
    return 0


def measure(
    mesh: Any, ports: dict[str, int], connections: int, options: argparse.Namespace
) -> dict[str, dict[str, float]]:
    """Medians per path of ``options.rounds`` alternating wrk rounds at ``connections``."""
    server = mesh.info()["workloads"][SERVER]
    inbound = f"http.{server['inbound_stat_prefix']}.downstream_rq_total"
    results: dict[str, list[dict[str, float]]] = {name: [] for name in ports}
    for round_number in range(options.rounds):
        for name, port in ports.items():
            before = mesh.envoy.stats().get(inbound, 0)
            row = wrk(f"http://127.0.0.1:{port}/get", connections, options.seconds)
            through_inbound = mesh.envoy.stats().get(inbound, 0) - before
            # Each path is what it says: every request via the inbound, none straight.
            expected = row["requests"] if name == "via-inbound" else 0
            assert abs(through_inbound - expected) <= connections, (name, row, through_inbound)
            results[name].append(row)
            print(
                f"-c{connections} round {round_number + 1} {name:12} {row['rps']:8.0f} req/s"
                f"  p50 {row['p50_ms']:6.2f} ms  p99 {row['p99_ms']:6.2f} ms",
                flush=True,
            )
    return medians(results)


if __name__ == "__main__":
    sys.exit(main())
