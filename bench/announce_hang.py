"""Notifications and Grafana annotations never hold up a game day longer than their timeout,
shown against servers that hang.

    python bench/announce_hang.py [--timeout 2] [--experiments 5] [--rounds 3]

A game day of N experiments is played as the runner plays it: each experiment is announced
(started, completed) around a step of fixed work (grading a journal-sized document), with the
Grafana region opened before the first and closed after the last. Every target is a real server
on 127.0.0.1 that never answers: the webhook's accepts and stays silent, Slack's trickles one
header byte every 0.1 s (so no single read ever times out), Grafana's accepts and stays silent.
The same game day is played with no targets. Printed: how long the announcing calls took, how
much longer the steps took (ratio to the silent run), and how long close() waited against the
timeout (ratio). For contrast, how long ``requests`` with the same timeout waits on the trickling
server (its timeout is per read): it is cut off at 4x the timeout here.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import statistics
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

from chaosmesh_py.engine.redaction import Redactor  # noqa: E402
from chaosmesh_py.gameday.announce import Announcer  # noqa: E402
from chaosmesh_py.gameday.suite import GameDay, Grafana, Notification, Step  # noqa: E402
from tests.http_doubles import SilentServer  # noqa: E402

JOURNAL = {
    "run": [
        {"activity": {"name": f"probe-{n}", "provider": {"arguments": {"n": n}}}, "output": n}
        for n in range(300)
    ]
}


def step() -> float:
    """An experiment-sized piece of the runner's own work: CPU, as grading a journal is."""
    started = time.perf_counter()
    for _ in range(60):
        json.loads(json.dumps(JOURNAL))
    return time.perf_counter() - started


def play(gameday: GameDay, environ: dict[str, str], steps: list[float]) -> dict[str, float]:
    """One game day; each step's time appended to ``steps``."""
    announce = Announcer(gameday, Redactor([]), environ)
    calls = 0.0

    def call(function: object, *args: object) -> None:
        nonlocal calls
        started = time.perf_counter()
        function(*args)  # type: ignore[operator]
        calls = max(calls, time.perf_counter() - started)

    call(announce.event, "gameday-started", {"slot": None})
    call(announce.region_started, datetime.now(UTC), "running")
    for index, experiment in enumerate(gameday.experiments, 1):
        summary = {"experiment": experiment.path.stem, "index": index}
        call(announce.event, "experiment-started", summary)
        steps.append(step())
        call(announce.event, "experiment-completed", {**summary, "outcome": "pass"})
    call(announce.region_ended, datetime.now(UTC), "done")
    call(announce.event, "gameday-completed", {"outcome": "pass"})
    started = time.perf_counter()
    records = announce.close()
    closing = time.perf_counter() - started
    assert not any(record["ok"] for record in records), "a silent server answered?"
    return {"calls": calls, "close": closing, "records": len(records)}


def requests_wait(url: str, timeout_s: float) -> float:
    """How long ``requests.post(timeout=timeout_s)`` waits on a trickling server, up to 4x."""
    finished = threading.Event()

    def post() -> None:
        with contextlib.suppress(requests.RequestException):
            requests.post(url, json={}, timeout=timeout_s)
        finished.set()

    started = time.perf_counter()
    threading.Thread(target=post, daemon=True).start()
    finished.wait(4 * timeout_s)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--timeout", type=float, default=2.0)
    parser.add_argument("--experiments", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()
    # Every delivery fails here, by design: the records say so; the warnings would drown the table.
    logging.getLogger("chaosmesh_py.gameday").addHandler(logging.NullHandler())
    logging.getLogger("chaosmesh_py.gameday").propagate = False
    timeout_s = options.timeout
    steps = tuple(Step(Path(f"experiment-{n}.json")) for n in range(options.experiments))
    quiet = GameDay("bench", "bench", steps, Path("bench.yaml"))
    with (
        SilentServer() as hook,
        SilentServer(trickle_interval_s=0.1, max_s=8 * timeout_s) as slack,
        SilentServer() as grafana,
    ):
        loud = GameDay(
            "bench",
            "bench",
            steps,
            Path("bench.yaml"),
            notifications=(
                Notification("http", hook.url, timeout_s=timeout_s),
                Notification("slack", slack.url, timeout_s=timeout_s),
            ),
            grafana=Grafana(grafana.url, "TOKEN", timeout_s=timeout_s),
        )
        silent, hanging = [], []
        silent_steps: list[float] = []
        hanging_steps: list[float] = []
        for _ in range(options.rounds):
            silent.append(play(quiet, {}, silent_steps))
            hanging.append(play(loud, {"TOKEN": "bench-token"}, hanging_steps))
        waited = requests_wait(slack.url, timeout_s)

    def median(runs: list[dict[str, float]], key: str) -> float:
        return statistics.median(run[key] for run in runs)

    print(
        f"{options.experiments} experiments, 3 targets that never answer, timeout {timeout_s:g} s,"
        f" median of {options.rounds} rounds ({int(median(hanging, 'records'))} deliveries each)"
    )
    print(f"  slowest announcing call        {median(hanging, 'calls') * 1000:8.2f} ms")
    # Per step, not per game day. The fastest step is what the work costs (other processes on a
    # shared machine can only slow a step down); the median shows what the noise did.
    for label, pick in (("fastest", min), ("median", statistics.median)):
        alone, beside = pick(silent_steps), pick(hanging_steps)
        print(
            f"  one experiment step ({label}): no targets {alone * 1000:6.1f} ms,"
            f" hanging {beside * 1000:6.1f} ms   ratio {beside / alone:.2f}"
        )
    close_ratio = median(hanging, "close") / timeout_s
    print(
        f"  close()                        {median(hanging, 'close'):8.3f} s   ratio to timeout"
        f" {close_ratio:.2f}"
    )
    capped = " (still waiting: cut off)" if waited >= 4 * timeout_s else ""
    print(
        f"  requests, timeout={timeout_s:g}, trickle  {waited:8.3f} s   ratio to timeout"
        f" {waited / timeout_s:.2f}{capped}"
    )


if __name__ == "__main__":
    main()
