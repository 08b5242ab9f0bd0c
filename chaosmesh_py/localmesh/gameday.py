"""The Bookinfo game day, end to end, on the local mesh: ``make gameday``.

    python -m chaosmesh_py.localmesh.gameday [GAMEDAY_FILE] [--results DIR]

What a user would type, in order: ``chaosmesh local up`` (a temporary state directory and
kubeconfig; Prometheus beside the mesh, which the game day's preflight checks, abort conditions
and ``istio_*`` probes read), ``chaosmesh gameday run`` with the variables the experiments'
configuration reads (``PROMETHEUS_URL`` among them, as on a cluster), printed in full and run
exactly as printed, ``chaosmesh report`` on its results (``RESULTS/report.html``), then
``chaosmesh local down``. The results stay in ``--results``. Exit status: the game day's.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from chaosmesh_py import packaged
from chaosmesh_py.localmesh import lifecycle
from chaosmesh_py.localmesh.demo import run_as_printed, throwaway_mesh

GAMEDAY = "bookinfo-gameday.yaml"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "gameday",
        type=Path,
        nargs="?",
        default=packaged.examples_dir() / GAMEDAY,
        help=f"the game-day file (default: the packaged {GAMEDAY})",
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=Path("gameday-results"),
        help="where the run directory goes (default: gameday-results)",
    )
    options = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="chaosmesh-gameday-") as work:
        mesh = throwaway_mesh(Path(work))
        print("$ chaosmesh local up", flush=True)
        status = lifecycle.up(mesh)
        try:
            prometheus = status["prometheus"]
            if not prometheus["url"]:
                print(f"! no Prometheus: {prometheus['reason']}")
                print("  the game day's preflight checks, abort conditions and probes need one")
                return 1
            print(
                f"  Prometheus {prometheus['url']}: first scrape {prometheus['first_scrape_s']} s"
            )
            variables = lifecycle.experiment_environment(status, mesh.kubeconfig)
            return _run(options.gameday, options.results, variables)
        finally:
            print("$ chaosmesh local down", flush=True)
            lifecycle.down(mesh)


def _run(gameday: Path, results: Path, variables: dict[str, str]) -> int:
    results.mkdir(parents=True, exist_ok=True)
    # Now, by hand: no waiting for a slot's jitter (the schedule's is up to minutes), and the
    # blackouts, which protect the cluster the file is written for, not this throwaway mesh.
    command = ["chaosmesh", "gameday", "run", str(gameday), "--results", str(results)]
    command += ["--no-jitter", "--ignore-blackouts"]
    status = run_as_printed(variables, command)
    # The report while the mesh's Prometheus still answers: its plots ask it.
    report = results / "report.html"
    if run_as_printed(variables, ["chaosmesh", "report", str(results), "-o", str(report)]) == 0:
        print(f"  the report: {report.resolve()}")
    return status


if __name__ == "__main__":
    sys.exit(main())
