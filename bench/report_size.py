"""`chaosmesh report` for a 20-experiment game day: how long it takes and how big the file is.

    python bench/report_size.py [--experiments 20] [--runs 10] [--repeat 5]

Builds a game day's results as ``chaosmesh gameday run`` writes them (tests/report_data.py:
journals in the shape the control writes, each with two steady-state probes before, one after,
a fault, its rollback and rollback evidence): ``--runs`` runs of ``--experiments`` experiments
each, one a week. Then times the ``chaosmesh`` command itself (a fresh process: imports
included), ``--repeat`` times, for:

    latest     the results directory: the trend over every run, the latest run in detail
    all-runs   the same with --all-runs: every run's experiments in detail

and prints the medians (wall and CPU time), the file sizes, and the size per plot. Exits 1 when
the 20-experiment report takes more than 30 s or weighs more than 5 MiB (a report people mail
around).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.report_data import T0, gameday_run, journal  # noqa: E402

CHAOSMESH = str(Path(sys.executable).parent / "chaosmesh")
MAX_SECONDS = 30.0
MAX_BYTES = 5 * 1024 * 1024


def results(directory: Path, experiments: int, runs: int) -> Path:
    for week in range(runs):
        start = T0 + timedelta(days=7 * week)
        journals = [
            journal(
                f"experiment {index + 1} of the game day",
                origin=start + timedelta(minutes=index),
                after_met=index % 5 != 4,
                verdict="pass" if index % 5 != 4 else "fail",
                reasons=() if index % 5 != 4 else ("steady state deviated after the method",),
                guardrail_checks=6,
            )
            for index in range(experiments)
        ]
        slot_id = start.strftime("%Y%m%dT%H%M%SZ")
        outcome = "fail" if experiments >= 5 else "pass"
        gameday_run(directory, "bookinfo", slot_id, outcome, journals, slot=start.isoformat())
    return directory / "bookinfo"


def time_report(path: Path, output: Path, repeat: int, *options: str) -> tuple[float, float, int]:
    """Median wall and CPU seconds (user + system: what a busy machine does not inflate) of the
    command, and the file's size."""
    seconds = []
    cpu = []
    for _ in range(repeat):
        used = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        subprocess.run(
            [CHAOSMESH, "report", path, "-o", output, *options], check=True, capture_output=True
        )
        seconds.append(time.perf_counter() - started)
        now = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(now.ru_utime + now.ru_stime - used.ru_utime - used.ru_stime)
    return statistics.median(seconds), statistics.median(cpu), output.stat().st_size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", type=int, default=20)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=5)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="report-bench-") as work:
        tree = results(Path(work) / "results", options.experiments, options.runs)
        output = Path(work) / "report.html"
        latest_s, latest_cpu_s, latest_bytes = time_report(tree, output, options.repeat)
        plots = output.read_text().count("<svg")
        all_s, all_cpu_s, all_bytes = time_report(
            tree, output, max(1, options.repeat // 2), "--all-runs"
        )
        all_plots = output.read_text().count("<svg")
    print(
        f"game day of {options.experiments} experiments, {options.runs} runs "
        f"(median of {options.repeat}, the chaosmesh command, imports included):"
    )
    print("                        wall s   CPU s       KiB  plots")
    print(
        f"  latest run in detail  {latest_s:6.2f}  {latest_cpu_s:6.2f}  {latest_bytes / 1024:8.0f}"
        f"  {plots} ({latest_bytes / plots / 1024:.0f} KiB each)"
    )
    print(
        f"  --all-runs            {all_s:6.2f}  {all_cpu_s:6.2f}  {all_bytes / 1024:8.0f}"
        f"  {all_plots} ({all_bytes / all_plots / 1024:.0f} KiB each)"
    )
    if latest_s > MAX_SECONDS or latest_bytes > MAX_BYTES:
        print(f"FAIL: more than {MAX_SECONDS:g} s or {MAX_BYTES // 1024 // 1024} MiB")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
