"""`chaosmesh halt` and `chaosmesh rollback` for 200 owned faults across 20 namespaces, as a
ratio to injecting them.

    python bench/halt_rollback.py [--faults 200] [--rounds 3]

On the Kubernetes API double, in one run: inject one delay on each of N VirtualServices spread
over 20 namespaces through the real action (``inject_delay``, one experiment's worth of
sequential activities, ledger included), then remove them all with ``halt`` (list everything,
then one patch per resource, in parallel). Inject again, then ``rollback`` from the ledger alone,
as after ``kill -9`` (one patch per resource, in parallel, preceded by a fence where the ledger
does not know how the last write ended). Also the control's own rollback at the end of a run
(sequential, as Chaos Toolkit calls it). Prints medians of ``--rounds`` and the ratios; compare
ratios, not absolute times, on a shared machine. Every round checks that nothing is left.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.inject_rollback import CRDS, inject_delays, seed  # noqa: E402
from chaosmesh_py import control  # noqa: E402
from chaosmesh_py.engine import cleanup  # noqa: E402
from chaosmesh_py.engine.run import run_for  # noqa: E402
from chaosmesh_py.kube import Kube  # noqa: E402
from chaosmesh_py.localmesh.apiserver import ApiServer  # noqa: E402


def inject_all(targets: list[tuple[str, str]], run_id: str) -> float:
    started = time.perf_counter()
    inject_delays(targets, {"chaosmesh_run_id": run_id, "chaosmesh_verify_timeout_s": 0})
    return time.perf_counter() - started


def owned_left(server: ApiServer) -> int:
    return sum(
        1
        for resource in server.list("networking.istio.io/v1", "VirtualService")
        for route in resource["spec"]["http"]
        if route["name"].startswith("chaosmesh-")
    )


def one_round(server: ApiServer, count: int, ledger_dir: Path, number: int) -> dict[str, float]:
    targets = seed(server, count)
    kube = Kube.at(server.url)
    times = {"inject": inject_all(targets, f"h{number}")}
    assert owned_left(server) == count
    started = time.perf_counter()
    report = cleanup.halt(kube)
    times["halt"] = time.perf_counter() - started
    assert report.complete and report.route_count == count and owned_left(server) == 0

    inject_all(targets, f"r{number}")
    started = time.perf_counter()
    report = cleanup.roll_back_run(kube, ledger_dir, f"r{number}")
    times["rollback"] = time.perf_counter() - started
    assert report.complete and report.route_count == count and owned_left(server) == 0

    inject_all(targets, f"c{number}")
    run = run_for({"chaosmesh_run_id": f"c{number}"})
    started = time.perf_counter()
    summary = control.roll_back(run)
    times["control"] = time.perf_counter() - started
    assert summary["rollback_complete"] and owned_left(server) == 0
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--faults", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as ledger_dir, ApiServer(crd_paths=[CRDS]) as server:
        # The actions find the API the chaosk8s way: no kubeconfig, KUBERNETES_HOST.
        os.environ.update(
            CHAOSMESH_LEDGER_DIR=ledger_dir,
            KUBECONFIG=str(Path(ledger_dir) / "no-kubeconfig"),
            KUBERNETES_HOST=server.url,
        )
        rounds = [
            one_round(server, options.faults, Path(ledger_dir), n) for n in range(options.rounds)
        ]
    median = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
    print(f"{options.faults} faults across 20 namespaces, median of {options.rounds} rounds")
    print(f"  inject (sequential actions)   {median['inject']:7.2f} s")
    for key, label in (
        ("halt", "halt (list + parallel patches)"),
        ("rollback", "rollback from the ledger"),
        ("control", "control's rollback (in-run)"),
    ):
        ratio = median[key] / median["inject"]
        print(f"  {label:<30}{median[key]:7.2f} s   ratio to inject {ratio:.2f}")


if __name__ == "__main__":
    main()
