"""Inject and roll back a fault on N VirtualServices against the Kubernetes API double.

    python bench/inject_rollback.py [--sizes 50,100,200] [--rounds 3]

For each size N, in one run and on the same server:
- owned: ``inject_delay`` (header-narrowed copy + owner annotation, resourceVersion precondition)
  then ``remove_faults`` on every VirtualService, through the real actions;
- naive: the read-modify-write loop other tools use: GET, set ``fault`` on the first route, PUT;
  then GET, delete it, PUT. It loses concurrent edits and pre-existing faults, but it is the
  least work a client can do, so it is the reference.
Prints total seconds, API requests per VirtualService for each, the owned/naive time ratio, and
seconds per VirtualService at each size (flat means cost grows linearly). Times are medians of
``--rounds``; compare ratios, not absolute times, on a shared machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from kubernetes import client

from chaosmesh_py.faults.actions import inject_delay
from chaosmesh_py.faults.rollbacks import remove_faults
from chaosmesh_py.localmesh.apiserver import ApiServer

ROOT = Path(__file__).resolve().parents[1]
CRDS = ROOT.parent / "shared/istio/crds-1.30.3.gen.yaml"
GROUP, VERSION, PLURAL = "networking.istio.io", "v1", "virtualservices"
NAMESPACES = 20


def virtual_service(namespace: str, index: int) -> dict[str, object]:
    host = f"svc-{index}"
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "VirtualService",
        "metadata": {"name": host, "namespace": namespace},
        "spec": {
            "hosts": [host],
            "http": [{"name": "main", "route": [{"destination": {"host": host, "subset": "v1"}}]}],
        },
    }


def seed(server: ApiServer, count: int) -> list[tuple[str, str]]:
    server.reset()
    targets = []
    for index in range(count):
        namespace = f"team-{index % NAMESPACES}"
        if index < NAMESPACES:
            server.create_namespace(namespace)
        server.create(virtual_service(namespace, index))
        targets.append((namespace, f"svc-{index}"))
    return targets


def inject_delays(targets: list[tuple[str, str]], configuration: dict[str, object]) -> None:
    """One header-narrowed delay on each target, through the real action."""
    for namespace, name in targets:
        inject_delay(
            fixed_delay="100ms",
            percentage=100,
            virtual_service=name,
            namespace=namespace,
            headers={"end-user": "jason"},
            configuration=configuration,
        )


def owned(server: ApiServer, targets: list[tuple[str, str]]) -> None:
    configuration = {"chaosmesh_run_id": "bench"}
    inject_delays(targets, configuration)
    remove_faults(configuration=configuration)


def naive(server: ApiServer, targets: list[tuple[str, str]]) -> None:
    api = client.CustomObjectsApi(client.ApiClient(client.Configuration(host=server.url)))
    fault = {"delay": {"fixedDelay": "100ms", "percentage": {"value": 100}}}
    for namespace, name in targets:
        resource = api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        resource["spec"]["http"][0]["fault"] = fault
        api.replace_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name, resource)
    for namespace, name in targets:
        resource = api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        del resource["spec"]["http"][0]["fault"]
        api.replace_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name, resource)


def measure(
    server: ApiServer,
    count: int,
    rounds: int,
    work: Callable[[ApiServer, list[tuple[str, str]]], None],
    prepare: Callable[[ApiServer, int], list[tuple[str, str]]] = seed,
) -> tuple[float, float]:
    """Median seconds and API requests per VirtualService for one approach, on ``count``
    VirtualServices that ``prepare`` makes."""
    seconds = []
    requests = 0
    for _ in range(rounds):
        targets = prepare(server, count)
        server.request_log.clear()
        started = time.perf_counter()
        work(server, targets)
        seconds.append(time.perf_counter() - started)
        requests = len(server.request_log)
        assert all(
            len(server.get(f"{GROUP}/{VERSION}", "VirtualService", ns, name)["spec"]["http"]) == 1
            for ns, name in targets
        ), "a fault was left behind"
    return statistics.median(seconds), requests / count


def compare(
    server: ApiServer,
    sizes: list[int],
    rounds: int,
    owned: Callable[[ApiServer, list[tuple[str, str]]], None],
    naive: Callable[[ApiServer, list[tuple[str, str]]], None],
    *,
    prepare: Callable[[ApiServer, int], list[tuple[str, str]]] = seed,
) -> None:
    """Print, per size, both approaches' seconds and requests per VirtualService, their ratio
    and the owned ms per VirtualService; then how far from linear the owned cost grows."""
    print(
        f"{'VSs':>5} {'owned s':>8} {'req/VS':>7} {'naive s':>8} {'req/VS':>7} "
        f"{'ratio':>6} {'owned ms/VS':>12}"
    )
    per_vs = []
    for count in sizes:
        owned_s, owned_requests = measure(server, count, rounds, owned, prepare)
        naive_s, naive_requests = measure(server, count, rounds, naive, prepare)
        per_vs.append(owned_s / count)
        print(
            f"{count:>5} {owned_s:>8.3f} {owned_requests:>7.1f} {naive_s:>8.3f} "
            f"{naive_requests:>7.1f} {owned_s / naive_s:>6.2f} {1000 * owned_s / count:>12.2f}"
        )
    print(
        f"linearity: ms/VS at {sizes[-1]} / ms/VS at {sizes[0]} = {per_vs[-1] / per_vs[0]:.2f}"
        " (1.0 = linear)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="50,100,200")
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    sizes = [int(size) for size in options.sizes.split(",")]

    import os

    os.environ["KUBECONFIG"] = str(ROOT / ".no-kubeconfig")  # credentials from KUBERNETES_HOST
    with ApiServer(crd_paths=[CRDS] if CRDS.exists() else []) as server:
        os.environ["KUBERNETES_HOST"] = server.url
        compare(server, sizes, options.rounds, owned, naive)
    return 0


if __name__ == "__main__":
    sys.exit(main())
