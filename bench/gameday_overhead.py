"""`chaosmesh gameday run`'s overhead per experiment, as a ratio to a bare `chaos run` of the
same experiment files.

    python bench/gameday_overhead.py [--experiments 5] [--rounds 3]

On the Kubernetes API double, in one run: N experiments, each injecting a
delay on Bookinfo's ratings and rolling it back through the chaosmesh control, run (a) one after
the other by bare ``chaos run --rollback-strategy always`` subprocesses, and (b) as one game day
by the runner: its Lease, its state ConfigMap and slot history, its pause watch, each
experiment's ledger check, the run directory, gameday.json and junit.xml. Rounds alternate which
goes first. Prints the medians of ``--rounds``, the runner's overhead per experiment and the
ratio; compare ratios, not absolute times, on a shared machine. Every round checks that the
game day passed and nothing is left on the route.
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
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from chaosmesh_py.gameday import runner  # noqa: E402
from chaosmesh_py.gameday.suite import GameDay, Step  # noqa: E402
from chaosmesh_py.localmesh.apiserver import ApiServer  # noqa: E402
from tests.conftest import BOOKINFO_MESH, ISTIO_CRDS, NAMESPACE  # noqa: E402
from tests.e2e.test_chaos_run import delay_action  # noqa: E402
from tests.gameday_cluster import write_experiment  # noqa: E402

CHAOS = str(Path(sys.executable).parent / "chaos")


class Silent:
    """No notifications configured: the runner's announcements cost nothing to compare."""

    def __init__(self, *_: object) -> None:
        pass

    def event(self, *_: object) -> None:
        pass

    def region_started(self, *_: object) -> None:
        pass

    def region_ended(self, *_: object) -> None:
        pass

    def close(self) -> list[dict[str, object]]:
        return []


def bare(experiments: list[Path], directory: Path) -> float:
    started = time.perf_counter()
    for index, path in enumerate(experiments):
        subprocess.run(
            [
                CHAOS,
                "--no-version-check",
                "--log-file",
                str(directory / f"{index}.log"),
                "run",
                "--journal-path",
                str(directory / f"{index}.journal.json"),
                "--rollback-strategy",
                "always",
                str(path),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    return time.perf_counter() - started


def gameday_run(experiments: list[Path], directory: Path, number: int) -> float:
    day = GameDay(
        name=f"bench-{number}",
        namespace=NAMESPACE,
        experiments=tuple(Step(path) for path in experiments),
        source=directory / "gameday.yaml",
    )
    options = runner.Options(
        results_dir=directory / "results",
        waivers=runner.gate.Waivers(allow_unverified=True),
        announcer=Silent,
    )
    started = time.perf_counter()
    stderr = sys.stderr
    with open(os.devnull, "w") as quiet:  # the runs' relayed output
        sys.stdout, sys.stderr = quiet, quiet
        try:
            game = runner.run_gameday(day, options)
        finally:
            sys.stdout, sys.stderr = sys.__stdout__, stderr
    elapsed = time.perf_counter() - started
    assert game.summary["outcome"] == "pass", game.summary["reasons"]
    return elapsed


def ratings(server: ApiServer) -> dict[str, object]:
    found = server.get("networking.istio.io/v1", "VirtualService", NAMESPACE, "ratings")
    assert found is not None
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--experiments", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-gameday-") as scratch:
        work = Path(scratch)
        with ApiServer(crd_paths=[ISTIO_CRDS]) as server:
            server.create_namespace(NAMESPACE)
            for document in yaml.safe_load_all(BOOKINFO_MESH.read_text()):
                document["metadata"]["namespace"] = NAMESPACE
                server.create(document)
            os.environ.update(
                KUBECONFIG=str(work / "no-kubeconfig"),
                KUBERNETES_HOST=server.url,
                CHAOSMESH_LEDGER_DIR=str(work / "ledger"),
            )
            before = json.dumps(ratings(server)["spec"])
            experiments = [
                write_experiment(work, f"delay-{i}", [delay_action()])
                for i in range(arguments.experiments)
            ]
            times: dict[str, list[float]] = {"bare": [], "gameday": []}
            for number in range(arguments.rounds):
                directory = work / f"round-{number}"
                directory.mkdir()
                order = ["bare", "gameday"] if number % 2 == 0 else ["gameday", "bare"]
                for which in order:
                    if which == "bare":
                        times["bare"].append(bare(experiments, directory))
                    else:
                        times["gameday"].append(gameday_run(experiments, directory, number))
                assert json.dumps(ratings(server)["spec"]) == before, "a fault left on ratings"
    count = arguments.experiments
    bare_s = statistics.median(times["bare"])
    gameday_s = statistics.median(times["gameday"])
    print(f"{count} experiments, median of {arguments.rounds} rounds:")
    for label, seconds in (
        ("bare chaos run, one after the other", bare_s),
        ("chaosmesh gameday run", gameday_s),
    ):
        print(f"  {label:<37} {seconds:6.2f} s  ({seconds / count:.2f} s each)")
    print(f"  runner overhead per experiment        {(gameday_s - bare_s) / count * 1000:6.0f} ms")
    print(f"  ratio gameday / bare                  {gameday_s / bare_s:6.2f}")


if __name__ == "__main__":
    main()
