"""The torture harness: `chaos run` killed at random moments, then nothing of it may be left.

A trial starts a real `chaos run` of an experiment that injects three faults (with the
chaosmesh control and a `remove_faults` rollback), while another writer keeps editing the same
VirtualServices the way an operator would (labels, a user route's timeout: JSON patches that
touch nothing of ours). At a random moment the run gets SIGKILL, SIGTERM or SIGINT. After it
exits (and, for SIGKILL, after `chaosmesh rollback --run ID`), no owned route or annotation may
be left, and every VirtualService must equal its original plus the other writer's last edits.

Random moments come from a seeded generator: CHAOSMESH_TORTURE_SEED replays a failing series.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from chaosmesh_py.localmesh.apiserver.patch import PatchType
from tests.conftest import NAMESPACE, ROOT, abort_action, leftover_faults, python_activity

BIN = Path(sys.executable).parent
V1 = "networking.istio.io/v1"
TARGETS = ("ratings", "reviews", "details")
SIGNALS = {"SIGKILL": signal.SIGKILL, "SIGTERM": signal.SIGTERM, "SIGINT": signal.SIGINT}
SEED = int(os.environ.get("CHAOSMESH_TORTURE_SEED") or time.time_ns() % 100_000)
CONTROL = {"name": "chaosmesh", "provider": {"type": "python", "module": "chaosmesh_py.control"}}


def experiment(run_id: str) -> dict:
    def delay(name, virtual_service, fixed_delay, **arguments):
        return python_activity(
            name,
            "chaosmesh_py.faults.actions",
            "inject_delay",
            virtual_service=virtual_service,
            namespace=NAMESPACE,
            fixed_delay=fixed_delay,
            percentage=100,
            **arguments,
        )

    return {
        "title": "torture",
        "description": "injects three faults; killed at a random moment",
        "configuration": {"chaosmesh_run_id": run_id},
        "controls": [CONTROL],
        "method": [
            delay("delay-ratings", "ratings", "5s", headers={"end-user": "jason"}),
            abort_action("abort-reviews", "reviews"),
            {
                "type": "action",
                "name": "hold",
                "provider": {"type": "process", "path": "true"},
                "pauses": {"after": 0.5},
            },
            delay("delay-details", "details", "1s"),
        ],
        "rollbacks": [python_activity("remove", "chaosmesh_py.faults.rollbacks", "remove_faults")],
    }


@dataclass
class OtherWriter:
    """Edits the targets as an operator would while the run goes on; remembers its last edit."""

    api: object
    edits: int = 0
    last_timeout: dict[str, str] = field(default_factory=dict)
    edited_route: dict[str, str] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> OtherWriter:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _loop(self) -> None:
        # One edit every 0.1 s, in turn: busy enough to race the run's writes now and then.
        turn = 0
        while not self._stop.wait(0.1):
            self._edit(TARGETS[turn % len(TARGETS)])
            turn += 1

    def _edit(self, name: str) -> None:
        current = self.api.get(V1, "VirtualService", NAMESPACE, name)
        routes = current["spec"]["http"]
        index = next(i for i, r in enumerate(routes) if not r["name"].startswith("chaosmesh-"))
        timeout = f"{self.edits % 50 + 1}s"
        patch = [
            # Fails (and is retried) if a write moved the route since this read.
            {"op": "test", "path": f"/spec/http/{index}/name", "value": routes[index]["name"]},
            {"op": "add", "path": f"/spec/http/{index}/timeout", "value": timeout},
            {"op": "add", "path": "/metadata/labels", "value": {"ops-edit": str(self.edits)}},
        ]
        try:
            self.api.patch(
                V1, "VirtualService", NAMESPACE, name, patch, content_type=PatchType.JSON.value
            )
        except Exception:  # a conflict with the run's write: try again next round
            return
        self.last_timeout[name] = timeout
        self.edited_route[name] = routes[index]["name"]
        self.edits += 1


@dataclass
class Trial:
    signal_name: str
    delay_s: float
    faults_at_kill: int
    exit_code: int
    leftovers: list[str]
    mismatches: list[str]


@dataclass(frozen=True)
class Kill:
    run_id: str
    signal_name: str
    delay_s: float


def run_trial(api, env: dict, tmp_path: Path, kill: Kill) -> Trial:
    """One `chaos run`, signalled after ``kill.delay_s``; the state it leaves, compared."""
    run_id, signal_name = kill.run_id, kill.signal_name
    originals = {name: api.get(V1, "VirtualService", NAMESPACE, name) for name in TARGETS}
    path = tmp_path / f"{run_id}.json"
    path.write_text(json.dumps(experiment(run_id)))
    with OtherWriter(api) as writer:
        process = subprocess.Popen(
            [
                BIN / "chaos",
                "--no-version-check",
                "--log-file",
                tmp_path / f"{run_id}.log",
                "run",
                "--journal-path",
                tmp_path / f"{run_id}.journal.json",
                path,
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(kill.delay_s)
        faults_at_kill = len(leftover_faults(api)) // 2
        process.send_signal(SIGNALS[signal_name])
        exit_code = process.wait(timeout=90)
        if signal_name == "SIGKILL":
            rollback = subprocess.run(
                [BIN / "chaosmesh", "rollback", "--run", run_id],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert rollback.returncode in (0, 2), rollback.stderr  # 2: killed before any write
    mismatches = []
    for name, original in originals.items():
        now = api.get(V1, "VirtualService", NAMESPACE, name)
        expected = json.loads(json.dumps(original["spec"]))
        if name in writer.last_timeout:
            route = next(r for r in expected["http"] if r["name"] == writer.edited_route[name])
            route["timeout"] = writer.last_timeout[name]
        if now["spec"] != expected:
            mismatches.append(f"{name}: spec {now['spec']} != {expected}")
        ours = {k for k in now["metadata"].get("annotations") or {} if "chaosmesh" in k}
        if ours:
            mismatches.append(f"{name}: annotations {ours}")
    return Trial(
        signal_name, kill.delay_s, faults_at_kill, exit_code, leftover_faults(api), mismatches
    )


def torture(api, env: dict, tmp_path: Path, trials_per_signal: int) -> list[Trial]:
    rng = random.Random(SEED)
    first_write_s, last_write_s = _write_window(api, env, tmp_path)
    results = []
    for number in range(trials_per_signal):
        for signal_name in SIGNALS:
            # From just before the first write to just after the last: before anything is
            # injected, mid-write, mid-pause, mid-rollback.
            delay_s = rng.uniform(first_write_s - 0.1, last_write_s - 0.05)
            run_id = f"t{SEED}-{signal_name[3:].lower()}-{number}"
            results.append(run_trial(api, env, tmp_path, Kill(run_id, signal_name, delay_s)))
    return results


def _write_window(api, env: dict, tmp_path: Path) -> tuple[float, float]:
    """From an undisturbed run's start: when it first writes a fault, and when it ends."""
    first_write: list[float] = []

    def owned_write(event) -> None:
        annotations = event.object["metadata"].get("annotations") or {}
        if not first_write and any(k.startswith("fault.chaosmesh.io/") for k in annotations):
            first_write.append(time.monotonic())

    path = tmp_path / "calibrate.json"
    path.write_text(json.dumps(experiment("calibrate")))
    unsubscribe = api.subscribe(owned_write)
    started = time.monotonic()
    try:
        with OtherWriter(api):
            subprocess.run(
                [
                    BIN / "chaos",
                    "--no-version-check",
                    "run",
                    "--journal-path",
                    tmp_path / "c.json",
                    path,
                ],
                cwd=ROOT,
                env=env,
                capture_output=True,
                timeout=90,
                # Exit 1: the control's verdict fails a run with no steady state that hit
                # nothing. What calibration needs is a run that went to its end.
                check=False,
            )
    finally:
        unsubscribe()
    assert json.loads((tmp_path / "c.json").read_text())["status"] == "completed"
    assert not leftover_faults(api)
    assert first_write, "the undisturbed run wrote no fault"
    return first_write[0] - started, time.monotonic() - started


def summary(results: list[Trial]) -> str:
    lines = [f"torture seed {SEED}: {len(results)} trials"]
    for name in SIGNALS:
        mine = [t for t in results if t.signal_name == name]
        live = sum(1 for t in mine if t.faults_at_kill)
        left = sum(len(t.leftovers) for t in mine)
        lines.append(f"  {name}: {len(mine)} trials, {live} killed with faults live, {left} left")
    return "\n".join(lines)
