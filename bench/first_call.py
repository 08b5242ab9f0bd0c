"""The first inject + rollback of a fresh process against warm ones, and against a plain client.

    python bench/first_call.py [--processes 7] [--warm 8] [--gap 0.2]

Chaos Toolkit imports an experiment's activity modules while it validates the experiment, then
runs the activities: so each fresh child process imports the modules (timed apart), then times
one ``inject_abort`` + ``remove_faults`` pair (first) and ``--warm`` more with new run ids
(warm), each after a ``--gap`` pause, as the first one follows the imports (an API server left
idle answers a few ms slower). Effect verification is off (``chaosmesh_verify_timeout_s: 0``):
this measures the activities' own work, not Envoy's.

The reference, in the same run against the same API double: what chaostoolkit-istio does, a
plain kubernetes client imported with its module (``CustomObjectsApi`` included, as client 29,
which chaostoolkit-istio pins, loads it), GET the VirtualService then merge-PATCH an abort onto
its route, and the same to remove it: no ledger, no validation, no owner records.

Prints medians over ``--processes`` of import, first and warm milliseconds and of first/warm;
exits 1 when chaosmesh's first pair takes more than twice a warm one.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CRDS = Path(
    os.environ.get("CHAOSMESH_ISTIO_CRDS") or ROOT.parent / "shared/istio/crds-1.30.3.gen.yaml"
)
RATINGS = ("networking.istio.io", "v1", "bookinfo", "virtualservices", "ratings")
MAX_FIRST_OVER_WARM = 2.0


def chaosmesh_pair(ledger_dir: str) -> Callable[[int], None]:
    from chaosmesh_py.faults.actions import inject_abort
    from chaosmesh_py.faults.rollbacks import remove_faults

    def pair(index: int) -> None:
        configuration = {
            "chaosmesh_run_id": f"p{os.getpid()}n{index}",
            "chaosmesh_verify_timeout_s": 0,
            "chaosmesh_ledger_dir": ledger_dir,
        }
        inject_abort(
            percentage=100,
            http_status=500,
            virtual_service="ratings",
            namespace="bookinfo",
            headers={"end-user": "jason"},
            configuration=configuration,
        )
        remove_faults(configuration=configuration)

    return pair


def plain_client_pair(ledger_dir: str) -> Callable[[int], None]:
    from kubernetes import client

    client.CustomObjectsApi  # noqa: B018 (loaded on first use by client 37, at import by 29)

    def patch(fault: dict[str, Any] | None) -> None:
        configuration = client.Configuration(host=os.environ["KUBERNETES_HOST"])
        api = client.CustomObjectsApi(client.ApiClient(configuration))
        routes = api.get_namespaced_custom_object(*RATINGS)["spec"]["http"]
        routes[0]["fault"] = fault
        api.patch_namespaced_custom_object(
            *RATINGS, {"spec": {"http": routes}}, _content_type="application/merge-patch+json"
        )

    def pair(index: int) -> None:
        patch({"abort": {"httpStatus": 500, "percentage": {"value": 100}}})
        patch(None)

    return pair


CLIENTS = {"chaosmesh": chaosmesh_pair, "plain client": plain_client_pair}


def child(kind: str, warm: int, gap_s: float, ledger_dir: str) -> dict[str, float]:
    """In a fresh process: milliseconds to import, for the first pair, for a warm pair."""
    # What `chaos run` has loaded before it imports any extension.
    import chaoslib.exceptions
    import chaoslib.experiment  # noqa: F401

    started = time.perf_counter()
    pair = CLIENTS[kind](ledger_dir)
    imported = time.perf_counter()
    time.sleep(gap_s)
    begin = time.perf_counter()
    pair(0)
    first = time.perf_counter() - begin
    warm_s = []
    for index in range(1, warm + 1):
        time.sleep(gap_s)
        begin = time.perf_counter()
        pair(index)
        warm_s.append(time.perf_counter() - begin)
    return {
        "import": 1e3 * (imported - started),
        "first": 1e3 * first,
        "warm": 1e3 * statistics.median(warm_s),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=7)
    parser.add_argument("--warm", type=int, default=8)
    parser.add_argument("--gap", type=float, default=0.2, help="seconds before each pair")
    parser.add_argument("--child", choices=list(CLIENTS), help=argparse.SUPPRESS)
    parser.add_argument("--ledger-dir", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        print(json.dumps(child(options.child, options.warm, options.gap, options.ledger_dir)))
        return 0

    import yaml

    from chaosmesh_py import packaged
    from chaosmesh_py.localmesh.apiserver import ApiServer

    (routing, _gateway) = packaged.bookinfo_manifests()
    with (
        ApiServer(crd_paths=[CRDS] if CRDS.exists() else []) as server,
        tempfile.TemporaryDirectory() as ledger_dir,
    ):
        server.create_namespace("bookinfo")
        for document in yaml.safe_load_all(routing.read_text()):
            document["metadata"]["namespace"] = "bookinfo"
            server.create(document)
        # Credentials from KUBERNETES_HOST, never a kubeconfig of this machine.
        environment = {
            **os.environ,
            "KUBECONFIG": f"{ledger_dir}/no-kubeconfig",
            "KUBERNETES_HOST": server.url,
        }
        print(f"{'':14}{'import ms':>10}{'first ms':>10}{'warm ms':>10}{'first/warm':>12}")
        ratios = {}
        for kind in CLIENTS:
            command = [sys.executable, __file__, "--child", kind, "--ledger-dir", ledger_dir]
            command += ["--warm", str(options.warm), "--gap", str(options.gap)]
            runs = [
                json.loads(
                    subprocess.run(command, env=environment, capture_output=True, check=True).stdout
                )
                for _ in range(options.processes)
            ]
            median = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
            ratios[kind] = statistics.median(run["first"] / run["warm"] for run in runs)
            print(
                f"{kind:<14}{median['import']:>10.1f}{median['first']:>10.1f}"
                f"{median['warm']:>10.1f}{ratios[kind]:>12.2f}"
            )
    held = ratios["chaosmesh"] <= MAX_FIRST_OVER_WARM
    print(
        f"chaosmesh first/warm {ratios['chaosmesh']:.2f} "
        f"({'within' if held else 'OVER'} {MAX_FIRST_OVER_WARM:.0f}x; "
        f"plain client {ratios['plain client']:.2f})"
    )
    return 0 if held else 1


if __name__ == "__main__":
    sys.exit(main())
