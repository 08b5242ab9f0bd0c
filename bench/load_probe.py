"""The load probe against wrk, on one route of the local mesh, in one run.

    python bench/load_probe.py [--seconds 5] [--rounds 3]

On httpbin's /get through the mesh (its entry listener: one Envoy hop):
1. throughput, 10 connections, closed loop: ``wrk -t1 -c10`` against ``run_load`` (the
   default loop: uvloop when installed), and the alternatives the design was chosen over: the
   same client on the stdlib asyncio loop, and aiohttp. Rounds alternate so that drift on a
   shared machine hits every client alike; the ratio to wrk is the median of the rounds. The
   client's own CPU time per request is the steadier measure when the target is the bottleneck.
2. latency at one connection, closed loop (wrk 4 has no fixed-rate mode; wrk2 is not packaged):
   p50 and p99 of ``wrk -t1 -c1 --latency`` against ``run_load(concurrency=1)``.
3. a fixed rate (1,000/s): what run_load achieves and measures (latency from the due time).
4. memory: tracemalloc's peak for a 10k- and a 100k-request run.

The mesh runs in its own process (``chaosmesh local up``'s daemon), as a cluster would: in this
one its Python httpbin would share the load generator's GIL, which wrk does not have to.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.util
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from chaosmesh_py.localmesh import lifecycle  # noqa: E402
from chaosmesh_py.observe.load import LoadSpec, measure_load, run_load  # noqa: E402

UVLOOP = importlib.util.find_spec("uvloop") is not None


def wrk(
    url: str, connections: int, seconds: float, headers: Mapping[str, str] | None = None
) -> dict[str, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    extra = [f"-H{name}: {value}" for name, value in (headers or {}).items()]
    done = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", *extra, url],
        capture_output=True,
        text=True,
        check=True,
    )
    found = re.search(r"Requests/sec:\s+([\d.]+)", done.stdout)
    assert found is not None, done.stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    count = re.search(r"(\d+) requests in", done.stdout)
    assert count is not None, done.stdout
    row = {
        "rps": float(found.group(1)),
        "cpu_us": 1e6 * cpu_s / int(count.group(1)),
        "requests": int(count.group(1)),
    }
    for label in ("50", "99"):
        latency = re.search(rf"{label}%\s+([\d.]+)(us|ms|s)\b", done.stdout)
        assert latency is not None, done.stdout
        value, unit = latency.groups()
        row[f"p{label}_ms"] = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", done.stdout)
    assert errors is None, f"wrk saw errors: {errors.group(0)}"
    return row


def wrk_comparison_options(doc: str) -> argparse.Namespace | None:
    """The options of a bench comparing variants with wrk (``--seconds``, ``--rounds``,
    ``--connections``); None, said why, when wrk is not installed."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=10)
    options = parser.parse_args()
    if shutil.which("wrk") is None:
        print("skipped: wrk is not installed (Debian: apt-get install wrk)")
        return None
    return options


WRK_MEDIANS = ("rps", "p50_ms", "p99_ms")


def medians(results: dict[str, list[dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Per variant, the median of each wrk figure over its rounds."""
    return {
        name: {key: statistics.median(r[key] for r in rows) for key in WRK_MEDIANS}
        for name, rows in results.items()
    }


def print_comparison(
    tables: list[tuple[int, dict[str, dict[str, float]]]],
    column: str,
    compared: tuple[str, str],
    rounds: int,
    seconds: float,
) -> None:
    """Per connection count, a markdown table of each variant's medians and the ratios of
    ``compared[0]`` to ``compared[1]``."""
    for connections, found in tables:
        print(f"\nwrk -t1 -c{connections}\n")
        print(f"| {column} | req/s | p50 ms | p99 ms |")
        print("| --- | --- | --- | --- |")
        for name, median in found.items():
            print(
                f"| {name} | {median['rps']:.0f} | {median['p50_ms']:.2f} "
                f"| {median['p99_ms']:.2f} |"
            )
        first, second = (found[name] for name in compared)
        ratios = {key: first[key] / second[key] for key in WRK_MEDIANS}
        print(
            f"\n{compared[0]} / {compared[1]} at -c{connections}: throughput "
            f"{ratios['rps']:.2f}x, p50 {ratios['p50_ms']:.2f}x, p99 {ratios['p99_ms']:.2f}x "
            f"(medians of {rounds} rounds of {seconds:g} s)"
        )


def load(url: str, concurrency: int, seconds: float) -> dict[str, float]:
    cpu_s = time.process_time()
    measured = run_load(LoadSpec(url, duration_s=seconds, concurrency=concurrency))
    cpu_s = time.process_time() - cpu_s
    assert measured.errors == 0, measured.statuses
    return {
        "rps": measured.throughput_per_s,
        "cpu_us": 1e6 * cpu_s / measured.requests,
        "p50_ms": measured.latency_ms["p50"],
        "p99_ms": measured.latency_ms["p99"],
    }


def load_on_stdlib_loop(url: str, concurrency: int, seconds: float) -> dict[str, float]:
    # asyncio.run's loop is the stdlib one, whatever is installed.
    cpu_s = time.process_time()
    measured = asyncio.run(measure_load(LoadSpec(url, duration_s=seconds, concurrency=concurrency)))
    cpu_s = time.process_time() - cpu_s
    return {"rps": measured.throughput_per_s, "cpu_us": 1e6 * cpu_s / measured.requests}


def aiohttp_client(url: str, concurrency: int, seconds: float) -> dict[str, float]:
    import aiohttp

    count = 0

    async def drive() -> float:
        nonlocal count
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:
            started = time.perf_counter()
            deadline = started + seconds

            async def worker() -> None:
                nonlocal count
                while time.perf_counter() < deadline:
                    async with session.get(url) as answer:
                        await answer.read()
                    count += 1

            await asyncio.gather(*(worker() for _ in range(concurrency)))
            return count / (time.perf_counter() - started)

    factory = importlib.import_module("uvloop").new_event_loop if UVLOOP else None
    cpu_s = time.process_time()
    with asyncio.Runner(loop_factory=factory) as runner:
        rate = runner.run(drive())
    cpu_s = time.process_time() - cpu_s
    return {"rps": rate, "cpu_us": 1e6 * cpu_s / count}


def throughput(url: str, seconds: float, rounds: int) -> None:
    loop_name = "uvloop" if UVLOOP else "stdlib loop"
    clients: dict[str, Callable[[], dict[str, float]]] = {
        "wrk -t1 -c10": lambda: wrk(url, 10, seconds),
        f"run_load, c=10 ({loop_name})": lambda: load(url, 10, seconds),
        "run_load, c=10 (stdlib loop)": lambda: load_on_stdlib_loop(url, 10, seconds),
        f"aiohttp, 10 workers ({loop_name})": lambda: aiohttp_client(url, 10, seconds),
    }
    if not UVLOOP:
        del clients["run_load, c=10 (stdlib loop)"]  # the same as the default then
    seen: dict[str, list[dict[str, float]]] = {name: [] for name in clients}
    for _ in range(rounds):
        for name, client in clients.items():
            seen[name].append(client())
    wrk_rates = [row["rps"] for row in seen["wrk -t1 -c10"]]
    print(f"\n1. throughput: {seconds:g} s per client per round, {rounds} rounds alternating")
    print(
        f"  {'client':<32} {'req/s per round':<24} {'median':>7} {'x wrk':>6}"
        f" {'client CPU us/req':>18}"
    )
    for name, rows in seen.items():
        rates = [row["rps"] for row in rows]
        ratios = [rate / w for rate, w in zip(rates, wrk_rates, strict=True)]
        per_round = " ".join(f"{rate:>7.0f}" for rate in rates)
        cpu_us = statistics.median(row["cpu_us"] for row in rows)
        print(
            f"  {name:<32} {per_round:<24} {statistics.median(rates):>7.0f} "
            f"{statistics.median(ratios):>5.2f}x {cpu_us:>18.1f}"
        )


def latency(url: str, seconds: float, rounds: int) -> None:
    rows: dict[str, list[dict[str, float]]] = {"wrk -t1 -c1": [], "run_load, c=1": []}
    for _ in range(rounds):
        rows["wrk -t1 -c1"].append(wrk(url, 1, seconds))
        rows["run_load, c=1"].append(load(url, 1, seconds))
    median = {
        name: {key: statistics.median(r[key] for r in runs) for key in runs[0]}
        for name, runs in rows.items()
    }
    print(f"\n2. latency at one connection, closed loop: medians of {rounds} rounds")
    print(f"  {'client':<32} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for name, row in median.items():
        print(f"  {name:<32} {row['rps']:>8.0f} {row['p50_ms']:>8.3f} {row['p99_ms']:>8.3f}")
    ours, theirs = median["run_load, c=1"], median["wrk -t1 -c1"]
    print(
        f"  {'run_load - wrk':<32} {'':>8} {ours['p50_ms'] - theirs['p50_ms']:>+8.3f} "
        f"{ours['p99_ms'] - theirs['p99_ms']:>+8.3f}"
    )


def fixed_rate(url: str, seconds: float) -> None:
    measured = run_load(LoadSpec(url, duration_s=seconds, rate_per_s=1000))
    print(f"\n3. fixed rate, 1,000/s for {seconds:g} s (latency from each request's due time)")
    print(
        f"  requests {measured.requests}, achieved {measured.throughput_per_s:.1f}/s, "
        f"errors {measured.errors}; p50 {measured.latency_ms['p50']:.3f} ms, "
        f"p90 {measured.latency_ms['p90']:.3f} ms, p99 {measured.latency_ms['p99']:.3f} ms"
    )


def memory(url: str) -> None:
    run_load(LoadSpec(url, requests=100))  # imports and caches, once, outside the measure
    print("\n4. memory: tracemalloc peak of one run (tracing slows it)")
    print(f"  {'requests':>9} {'peak kB':>9} {'req/s':>8}")
    for count in (10_000, 100_000):
        tracemalloc.start()
        try:
            measured = run_load(LoadSpec(url, requests=count, concurrency=10))
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert measured.requests == count
        print(f"  {count:>9,} {peak / 1000:>9.0f} {measured.throughput_per_s:>8.0f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed (Debian: apt-get install wrk)")
        return 1
    with tempfile.TemporaryDirectory() as work:
        mesh = lifecycle.Options(
            state_dir=Path(work) / "mesh",
            kubeconfig=Path(work) / "kubeconfig",
            crds=lifecycle.default_crds(),
        )
        started = lifecycle.up(mesh)
        try:
            url = started["services"]["httpbin"]["url"] + "/get"
            print(
                f"target: {url} (httpbin through Envoy); load generator on "
                + ("uvloop" if UVLOOP else "the stdlib asyncio loop (uvloop is not installed)")
            )
            throughput(url, options.seconds, options.rounds)
            latency(url, options.seconds, options.rounds)
            fixed_rate(url, options.seconds)
            memory(url)
        finally:
            lifecycle.down(mesh)
    return 0


if __name__ == "__main__":
    sys.exit(main())
