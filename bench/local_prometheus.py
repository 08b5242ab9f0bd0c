"""What Prometheus beside the local mesh costs: `chaosmesh local up` time, first scrape, memory.

    python bench/local_prometheus.py [--rounds 3]

Each round runs `chaosmesh local up` (its own state directory and kubeconfig) with
`--no-prometheus` and then with Prometheus, timing each until it returns, reads the first-scrape
time `status --json` records and Prometheus's resident memory, then `down`. Medians over the
rounds, and the ratio of the two `up` times. Needs Debian's prometheus (or CHAOSMESH_PROMETHEUS).
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

ROOT = Path(__file__).resolve().parents[1]
CHAOSMESH = str(Path(sys.executable).parent / "chaosmesh")
CRDS = ROOT.parent / "shared/istio/crds-1.30.3.gen.yaml"


def local(work: Path, *arguments: str) -> str:
    files = ["--state-dir", str(work / "state")]
    if arguments[0] in ("up", "down"):
        files += ["--kubeconfig", str(work / "kubeconfig")]
    environment = {
        **os.environ,
        "CHAOSMESH_ISTIO_CRDS": os.environ.get("CHAOSMESH_ISTIO_CRDS", str(CRDS)),
    }
    done = subprocess.run(
        [CHAOSMESH, "local", *arguments, *files],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env=environment,
    )
    return done.stdout


def resident_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def prometheus_pid(daemon: int) -> int:
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            command = (stat.parent / "cmdline").read_bytes().split(b"\0")[0]
        except (OSError, IndexError, ValueError):
            continue
        if parent == daemon and command.endswith(b"prometheus"):
            return int(stat.parent.name)
    raise SystemExit("no prometheus child of the mesh daemon")


def one_up(flag: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-prometheus-") as directory:
        work = Path(directory)
        started = time.monotonic()
        local(work, "up", flag)
        seconds = time.monotonic() - started
        try:
            status = json.loads(local(work, "status", "--json"))
            result = {"up_s": seconds}
            if status["prometheus"]["url"]:
                time.sleep(5)  # a few scrapes in: its memory once it holds the mesh's series
                result["first_scrape_s"] = status["prometheus"]["first_scrape_s"]
                result["rss_mb"] = resident_mb(prometheus_pid(status["pid"]))
            return result
        finally:
            local(work, "down")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    without, with_ = [], []
    for _ in range(options.rounds):
        without.append(one_up("--no-prometheus"))
        with_.append(one_up("--prometheus"))

    def median(rows: list[dict[str, float]], key: str) -> float:
        return statistics.median(row[key] for row in rows)

    plain, full = median(without, "up_s"), median(with_, "up_s")
    print(f"local up, {options.rounds} rounds (medians)")
    print(f"  --no-prometheus         {plain:6.2f} s")
    print(f"  with Prometheus         {full:6.2f} s   (x{full / plain:.2f})")
    print(f"  first scrape after      {median(with_, 'first_scrape_s'):6.2f} s from its start")
    print(f"  Prometheus resident     {median(with_, 'rss_mb'):6.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
