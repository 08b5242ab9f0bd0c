"""Time from the API write of a traffic split to the split seen by requests, on the local mesh.

    python bench/split_latency.py [--trials 30] [--workers 8]

Steady traffic (``--workers`` back-to-back GETs of /reviews/0 through reviews' entry listener,
each answer's ``podname`` telling which version served it) runs while, ``--trials`` times, the
reviews VirtualService is PATCHed through the API (the real ``kubernetes`` client) from all-v1 to
v1 90 / v3 10 and back. Nothing calls ``mesh.sync()``: the mesh's own watch, translation and
Envoy update are what is measured, as a user would meet them. Per trial:

- applied: from the PATCH accepted (its answer received) to the first answer from v3;
- removed: from the PATCH back to all-v1 accepted to the start of the last request v3 answered
  (0 when none started after it);
and, once all trials are done, v3's share of the requests started between the first v3 answer and
the removal (should be 10 %, within its interval).
Median and p95 of each; the PATCH's own round trip too. Compare on a quiet machine.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import threading
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.local_mesh import running_mesh  # noqa: E402
from chaosmesh_py.observe.statistics import wilson_interval  # noqa: E402
from tests.local.reviews_routes import to_subset, weighted, write_reviews  # noqa: E402

SPLIT = {"v1": 90, "v3": 10}
WAIT_LIMIT_S = 10.0
QUIET_S = 0.5  # after the split is removed: this long without a v3 answer ends the trial


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


class Traffic:
    """Back-to-back GETs from a thread; ``answers``: (started, ended, podname) per request."""

    def __init__(self, url: str, workers: int) -> None:
        self.url, self.workers = url, workers
        self.answers: list[tuple[float, float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(10)

    async def _run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=10)
        connector = aiohttp.TCPConnector(limit=self.workers)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:

            async def worker() -> None:
                while not self._stop.is_set():
                    started = time.monotonic()
                    async with session.get(self.url) as answer:
                        body = await answer.json(content_type=None)
                    self.answers.append((started, time.monotonic(), str(body.get("podname"))))

            await asyncio.gather(*(worker() for _ in range(self.workers)))

    def first_end(self, podname: str, after: float) -> float | None:
        ends = [end for start, end, pod in list(self.answers) if pod == podname and end > after]
        return min(ends) if ends else None

    def last_start(self, podname: str) -> float:
        starts = [start for start, _end, pod in list(self.answers) if pod == podname]
        return max(starts) if starts else 0.0


def wait_for(condition, limit_s: float = WAIT_LIMIT_S):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.002)
    raise TimeoutError("the data plane did not follow the write within the limit")


def trials(traffic: Traffic, count: int) -> None:
    applied, removed, patch_s = [], [], []
    under_split: list[str] = []
    for _ in range(count):
        before = time.monotonic()
        write_reviews(weighted(SPLIT))
        written = time.monotonic()
        patch_s.append(written - before)
        first = wait_for(lambda at=written: traffic.first_end("reviews-v3", at))
        applied.append(first - written)
        time.sleep(0.3)  # some traffic under the split, for its share
        before = time.monotonic()
        write_reviews(to_subset("v1"))
        unsplit = time.monotonic()
        patch_s.append(unsplit - before)
        # Requests started once the split was seen (before that, Envoy may not have it yet).
        under_split += [
            pod for start, end, pod in list(traffic.answers) if first < start and end < before
        ]
        # Ended: QUIET_S without any request started then answered by v3.
        wait_for(
            lambda at=unsplit: (
                time.monotonic() - max(at, traffic.last_start("reviews-v3")) > QUIET_S
            )
        )
        removed.append(max(0.0, traffic.last_start("reviews-v3") - unsplit))
        traffic.answers.clear()
    print(
        f"\nsplit latency over {count} trials, {traffic.workers} workers of traffic (ms)"
        f"{'median':>14} {'p95':>8}"
    )
    for label, values in (
        ("PATCH round trip", patch_s),
        ("applied: PATCH accepted -> first v3 answer", applied),
        ("removed: PATCH accepted -> last v3 request start", removed),
    ):
        print(
            f"  {label:<52} {1000 * statistics.median(values):>7.1f}"
            f" {1000 * percentile(values, 0.95):>8.1f}"
        )
    v3 = sum(pod == "reviews-v3" for pod in under_split)
    low, high = wilson_interval(v3, len(under_split))
    print(
        f"  v3 under the split: {v3}/{len(under_split)} = {100 * v3 / len(under_split):.2f} % "
        f"(95 % Wilson {100 * low:.2f}-{100 * high:.2f} %)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--workers", type=int, default=8)
    options = parser.parse_args()
    with running_mesh() as mesh:
        write_reviews(to_subset("v1"))
        url = mesh.info()["services"]["reviews"]["url"] + "/reviews/0"
        with Traffic(url, options.workers) as traffic:
            wait_for(lambda: traffic.first_end("reviews-v1", 0.0))
            trials(traffic, options.trials)
    return 0


if __name__ == "__main__":
    sys.exit(main())
