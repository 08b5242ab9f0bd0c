"""Owned routing edits on N VirtualServices against the Kubernetes API double, and beside a rollout
controller.

    python bench/traffic_edits.py [--sizes 50,100,200] [--rounds 3] [--cycles 30]

Part 1, for each size N, in one run and on the same server (as bench/inject_rollback.py does
for faults):
- owned: ``shift_traffic`` (a canary step v1 90 / v2 10, a route copy with its owner record,
  resourceVersion precondition, ledger intent before and outcome after, the subsets checked
  against the DestinationRule) on every VirtualService, then the control's rollback;
- naive: GET, set the route's destinations to the weights, PUT; then GET, put the original
  destinations back, PUT: no record, no ledger, no check, and it writes stale weights back if
  anyone changed them meanwhile. The least work a client can do: the reference.
Prints total seconds, API requests per VirtualService, the owned/naive time ratio, and ms per
VirtualService at each size (flat means linear). Times are medians of ``--rounds``.

Part 2: ``--cycles`` canary steps and rollbacks on one VirtualService while an Argo-like writer
(tests/rollout_writers.py) changes its route's weights every 100-200 ms: the 409s each side
met and the re-reads ours made, per write, and whether the controller's latest weights were in
force after every rollback.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import tempfile
import time
from pathlib import Path

from kubernetes import client

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # bench.inject_rollback, tests.rollout_writers

from bench.inject_rollback import CRDS, GROUP, PLURAL, VERSION, compare, seed  # noqa: E402
from chaosmesh_py import control  # noqa: E402
from chaosmesh_py.localmesh.apiserver import ApiServer  # noqa: E402
from chaosmesh_py.traffic.actions import shift_traffic  # noqa: E402

WEIGHTS = {"v1": 90, "v2": 10}


def with_subsets(server: ApiServer, count: int) -> list[tuple[str, str]]:
    """``seed``'s VirtualServices, each host with a DestinationRule defining v1 and v2."""
    targets = seed(server, count)
    for namespace, name in targets:
        server.create(
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "DestinationRule",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {
                    "host": name,
                    "subsets": [
                        {"name": "v1", "labels": {"version": "v1"}},
                        {"name": "v2", "labels": {"version": "v2"}},
                    ],
                },
            }
        )
    server.request_log.clear()
    return targets


_runs = itertools.count(1)


def owned(server: ApiServer, targets: list[tuple[str, str]]) -> None:
    # A run of its own each time, as each `chaos run` has: one run's ledger is read whole by
    # its rollback, and rounds sharing one would make it grow from round to round.
    configuration: dict[str, object] = {"chaosmesh_run_id": f"bench{next(_runs)}"}
    control.configure_control(configuration=configuration)
    for namespace, name in targets:
        shift_traffic(
            weights=WEIGHTS,
            virtual_service=name,
            namespace=namespace,
            route_name="main",
            configuration=configuration,
        )
    control.after_experiment_control(context={}, state={}, configuration=configuration)
    control.cleanup_control()


def naive(server: ApiServer, targets: list[tuple[str, str]]) -> None:
    api = client.CustomObjectsApi(client.ApiClient(client.Configuration(host=server.url)))
    originals = {}
    for namespace, name in targets:
        resource = api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        route = resource["spec"]["http"][0]
        originals[(namespace, name)] = route["route"]
        route["route"] = [
            {"destination": {"host": name, "subset": subset}, "weight": weight}
            for subset, weight in WEIGHTS.items()
        ]
        api.replace_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name, resource)
    for namespace, name in targets:
        resource = api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        resource["spec"]["http"][0]["route"] = originals[(namespace, name)]
        api.replace_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name, resource)


def beside_argo(server: ApiServer, cycles: int) -> None:
    """Canary steps of ours beside Argo's weight writes: conflicts, re-reads, weights kept."""
    from tests.rollout_writers import ArgoLikeWriter

    (namespace, name), *_ = with_subsets(server, 1)
    current = server.get(f"{GROUP}/{VERSION}", "VirtualService", namespace, name)
    current["spec"]["http"][0]["route"] = [
        {"destination": {"host": name, "subset": "v1"}, "weight": 100},
        {"destination": {"host": name, "subset": "v2"}, "weight": 0},
    ]
    server.replace(current)
    ours = {"writes": 0, "conflicts": 0, "rereads": 0}
    kept = 0
    with ArgoLikeWriter(
        server.url, namespace, name, routes=("main",), canary_subset="v2", seed=1
    ) as argo:
        for cycle in range(cycles):
            configuration: dict[str, object] = {"chaosmesh_run_id": f"beside{cycle}"}
            control.configure_control(configuration=configuration)
            report = shift_traffic(
                weights=WEIGHTS,
                virtual_service=name,
                namespace=namespace,
                route_name="main",
                configuration=configuration,
            )
            time.sleep(0.1)
            journal: dict[str, object] = {}
            control.after_experiment_control(context={}, state=journal, configuration=configuration)
            control.cleanup_control()
            (removal,) = journal["chaosmesh"]["rollback"]  # type: ignore[index]
            for done in (report, removal):
                ours["writes"] += 1
                ours["conflicts"] += done.get("api_conflicts", 0)
                ours["rereads"] += done.get("api_rereads", 0)
            # After our rollback the route holds the weights of the controller's latest write
            # before this read (the double's resourceVersions count up), never ours.
            now = server.get(f"{GROUP}/{VERSION}", "VirtualService", namespace, name)
            version = int(now["metadata"]["resourceVersion"])
            before = [w.weights for w in argo.writes if int(w.resource_version) <= version]
            latest = before[-1] if before else {"v1": 100, "v2": 0}  # none yet: as set up
            kept += argo.weights_in(now) == {"main": latest}
    print(
        f"beside an Argo-like writer ({len(argo.writes)} weight writes, one every 100-200 ms): "
        f"{cycles} canary steps + rollbacks = {ours['writes']} owned writes, "
        f"{ours['conflicts']} met a 409 ({ours['conflicts'] / ours['writes']:.2f} per write), "
        f"{ours['rereads']} re-reads; the writer met {argo.conflicts} 409s "
        f"({argo.conflicts / max(1, len(argo.writes)):.2f} per write); its latest weights in "
        f"force after {kept} of {cycles} rollbacks"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="50,100,200")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cycles", type=int, default=30)
    options = parser.parse_args()
    sizes = [int(size) for size in options.sizes.split(",")]

    os.environ["KUBECONFIG"] = str(ROOT / ".no-kubeconfig")  # credentials from KUBERNETES_HOST
    with (
        tempfile.TemporaryDirectory() as ledgers,
        ApiServer(crd_paths=[CRDS] if CRDS.exists() else []) as server,
    ):
        os.environ["CHAOSMESH_LEDGER_DIR"] = ledgers  # never the user's, nor the repository
        os.environ["KUBERNETES_HOST"] = server.url

        compare(server, sizes, options.rounds, owned, naive, prepare=with_subsets)
        beside_argo(server, options.cycles)
    return 0


if __name__ == "__main__":
    sys.exit(main())
