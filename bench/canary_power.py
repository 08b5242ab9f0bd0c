"""How much traffic the canary analysis needs: its false alarms and its power, by simulation.

    python bench/canary_power.py [--trials 200] [--seed 1]

A canary at 10 % of a service's traffic, the baseline at 90 %, over windows of N requests. Each
trial draws what Istio's metrics would hold for one window: errors as binomial counts, latencies
as log-normal samples (median 20 ms, sigma 0.6) counted into Istio's histogram buckets, as
Prometheus keeps them. The verdict is ``chaosmesh_py.traffic.canary.judge``'s, with the probe's
default criteria (min_requests 100, max_error_ratio_delta 0.01, max_latency_ratio 1.5,
confidence 0.95). Scenarios, the baseline at 0.5 % errors throughout:

    same            the canary is the baseline: every "fail" is a false alarm
    errors 2 %      the canary's error ratio 2 % (+1.5 points)
    errors 5 %      5 % (+4.5 points)
    latency x1.5    every canary request 1.5 times slower (p50 30 ms against 20 ms)
    latency x3      3 times slower

Printed: for each N, the share of trials judged fail / pass / insufficient.
"""

from __future__ import annotations

import argparse
import bisect
import math
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from chaosmesh_py.traffic.canary import Comparison, Histogram, Version, judge  # noqa: E402

# Istio's default duration buckets (ms), +Inf last.
BUCKETS = (0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, math.inf)
TOTALS = (500, 1000, 2000, 5000, 10000)
CANARY_SHARE = 0.10
BASELINE_ERRORS = 0.005
MEDIAN_MS, SIGMA = 20.0, 0.6
SCENARIOS = {
    "same": (BASELINE_ERRORS, 1.0),
    "errors 2 %": (0.02, 1.0),
    "errors 5 %": (0.05, 1.0),
    "latency x1.5": (BASELINE_ERRORS, 1.5),
    "latency x3": (BASELINE_ERRORS, 3.0),
}
COMPARISON = Comparison("reviews", "v3", "v2", "bookinfo", "destination")


def version(
    name: str, requests: int, error_ratio: float, slower: float, rng: random.Random
) -> Version:
    errors = sum(rng.random() < error_ratio for _ in range(requests))
    counts = [0] * len(BUCKETS)
    mu = math.log(MEDIAN_MS * slower)
    for _ in range(requests):
        counts[bisect.bisect_left(BUCKETS, rng.lognormvariate(mu, SIGMA))] += 1
    cumulative, running = [], 0
    for bound, count in zip(BUCKETS, counts, strict=True):
        running += count
        cumulative.append((bound, float(running)))
    return Version(name, requests, errors, Histogram(tuple(cumulative)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    options = parser.parse_args()
    rng = random.Random(options.seed)
    started = time.perf_counter()
    cell = "fail / pass / insufficient"
    print(f"canary at {CANARY_SHARE:.0%}, {options.trials} trials per cell: {cell}")
    print(
        f"{'scenario':14}"
        + "".join(f"{f'N={n} (canary {round(n * CANARY_SHARE)})':>26}" for n in TOTALS)
    )
    for scenario, (error_ratio, slower) in SCENARIOS.items():
        cells = []
        for total in TOTALS:
            canary_n = round(total * CANARY_SHARE)
            verdicts = {"fail": 0, "pass": 0, "insufficient": 0}
            for _ in range(options.trials):
                canary = version("v3", canary_n, error_ratio, slower, rng)
                baseline = version("v2", total - canary_n, BASELINE_ERRORS, 1.0, rng)
                verdicts[judge(COMPARISON, canary, baseline).verdict] += 1
            shares = [verdicts[v] / options.trials for v in ("fail", "pass", "insufficient")]
            cells.append(" / ".join(f"{share:4.0%}" for share in shares))
        print(f"{scenario:14}" + "".join(f"{cell:>26}" for cell in cells))
    print(f"({time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    main()
