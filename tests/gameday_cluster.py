"""Game days for tests: experiments that really run (``chaos run`` subprocesses) against the API
double, which serves the Lease and the state ConfigMap as a cluster does."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from chaosmesh_py.gameday import runner
from chaosmesh_py.gameday.suite import GameDay, Step
from tests.conftest import NAMESPACE, ROOT
from tests.conftest import python_activity as activity
from tests.e2e.test_chaos_run import LENIENT_CONTROL, delay_action

SYSTEM_OK = {
    "type": "probe",
    "name": "system-ok",
    "tolerance": 0,
    "provider": {"type": "process", "path": "true"},
}


@pytest.fixture
def cluster(api, monkeypatch):
    """The double (serving Leases and ConfigMaps as a cluster does), Bookinfo's routing in
    ``bookinfo``, credentials from the environment (chaosk8s' path 3) as the runner's
    ``chaos run``s read them; no fault left behind at the end (``api`` checks)."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # tests.e2e.slow's activity
    return api


def wait_activity(seconds: float) -> dict[str, Any]:
    return activity("wait", "tests.e2e.slow", "wait", seconds=seconds)


def write_experiment(directory: Path, name: str, method: list[dict[str, Any]]) -> Path:
    document = {
        "title": name,
        "description": name,
        "configuration": {"namespace": NAMESPACE},
        "controls": [LENIENT_CONTROL],
        "steady-state-hypothesis": {"title": "the system is fine", "probes": [SYSTEM_OK]},
        "method": method,
        "rollbacks": [],
    }
    path = directory / f"{name}.json"
    path.write_text(json.dumps(document))
    return path


def delay_then_wait(directory: Path, name: str, seconds: float) -> Path:
    """An experiment that delays ratings for Jason, then holds the fault ``seconds``."""
    return write_experiment(directory, name, [delay_action(), wait_activity(seconds)])


def gameday(tmp_path: Path, experiments: list[Path], **fields: Any) -> GameDay:
    pauses = fields.pop("pauses", [0.0] * len(experiments))
    return GameDay(
        name="bookinfo-weekly",
        namespace=NAMESPACE,
        experiments=tuple(Step(p, pause) for p, pause in zip(experiments, pauses, strict=True)),
        source=tmp_path / "gameday.yaml",
        **fields,
    )


class Announcements:
    """A recording Announcer: what the runner told, in order."""

    def __init__(self, *_: Any) -> None:
        self.told: list[tuple[str, Any]] = []

    def event(self, name: str, summary: Any) -> None:
        self.told.append((name, dict(summary)))

    def region_started(self, at: datetime, text: str) -> None:
        self.told.append(("region-started", at))

    def region_ended(self, at: datetime, text: str) -> None:
        self.told.append(("region-ended", at))

    def close(self) -> list[dict[str, Any]]:
        return [{"target": "recorder", "event": name, "ok": True} for name, _ in self.told]


def options(tmp_path: Path, **overrides: Any) -> runner.Options:
    """Lenient as ``gate --allow-unverified``: the double has no data plane to count hits in."""
    announcements = overrides.pop("announcements", Announcements())
    overrides.setdefault("announcer", lambda *_: announcements)
    return runner.Options(
        results_dir=tmp_path / "results",
        waivers=runner.gate.Waivers(allow_unverified=True),
        **overrides,
    )


def fixed_clock(start: datetime):
    """A clock that starts at ``start`` and runs at the real pace."""
    real_start = datetime.now(UTC)
    return lambda: start + (datetime.now(UTC) - real_start)
