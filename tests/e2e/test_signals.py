"""SIGTERM and SIGINT where Chaos Toolkit alone gets them wrong: during a python activity, and
during the rollback."""

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chaosmesh_py.localmesh.apiserver import ApiFault
from tests.conftest import abort_action, leftover_faults, python_activity
from tests.e2e.test_chaos_run import CHAOS, ROOT, delay_action, environment, write_experiment

pytestmark = pytest.mark.slow

WAIT = python_activity("wait", "tests.e2e.slow", "wait", seconds=30)


@pytest.fixture
def start(api, tmp_path):
    """Start `chaos run` of ``method`` in the background; killed at teardown if still running."""
    started = []

    def run(method):
        started.append(_popen(api, tmp_path, method))
        return started[-1]

    yield run
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


def _popen(api, tmp_path, method):
    env = {**environment(api, tmp_path), "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [
            CHAOS,
            "--no-version-check",
            "--log-file",
            tmp_path / "chaos.log",
            "run",
            "--journal-path",
            tmp_path / "journal.json",
            write_experiment(tmp_path, method),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait_for(predicate, timeout_s=20.0):
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def log_has(tmp_path, text):
    path = tmp_path / "chaos.log"
    return path.exists() and text in path.read_text()


def test_sigterm_during_a_python_activity_stops_the_run_and_rolls_back(api, tmp_path, start):
    process = start([delay_action(), WAIT, abort_action("abort-reviews", "reviews")])
    wait_for(lambda: log_has(tmp_path, "Action: wait"))
    assert len(leftover_faults(api)) == 2  # ratings' route and annotation
    sent = time.monotonic()
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 1
    assert time.monotonic() - sent < 10  # not the 30 s the activity would take
    journal = json.loads((tmp_path / "journal.json").read_text())
    assert journal["status"] == "interrupted"
    # Chaos Toolkit alone would fail "wait" and go on to inject the abort on reviews.
    assert "abort-reviews" not in [r["activity"]["name"] for r in journal["run"]]
    assert journal["chaosmesh"]["rollback_complete"] is True
    assert leftover_faults(api) == []


def test_ctrl_c_twice_during_the_rollback_does_not_stop_it(api, tmp_path, start):
    method = [
        abort_action("abort-ratings", "ratings"),
        abort_action("abort-reviews", "reviews"),
        abort_action("abort-details", "details"),
    ]
    process = start([*method, WAIT])
    wait_for(lambda: log_has(tmp_path, "Action: wait"))
    assert len(leftover_faults(api)) == 7  # 4 routes (reviews has 2), 3 annotations
    # Every rollback write now takes 0.5 s: about 1.5 s of rollback to interrupt.
    api.inject(ApiFault(method="PATCH", delay_s=0.5, times=100))
    process.send_signal(signal.SIGINT)
    wait_for(lambda: log_has(tmp_path, "Experiment ended with status: interrupted"))
    time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=30) == 1
    log = (tmp_path / "chaos.log").read_text()
    assert "SIGINT received during the rollback; finishing the rollback first" in log
    assert leftover_faults(api) == []
    journal = json.loads((tmp_path / "journal.json").read_text())
    assert journal["chaosmesh"]["rollback_complete"] is True
    assert sum(len(r["removed"]) for r in journal["chaosmesh"]["rollback"]) == 4


def test_rollback_from_another_shell_while_the_run_goes_on(api, tmp_path, start):
    process = start([delay_action(), abort_action("abort-reviews", "reviews"), WAIT])
    wait_for(lambda: log_has(tmp_path, "Action: wait"))
    run_id = re.search(r"chaosmesh: run id (\w+)", (tmp_path / "chaos.log").read_text())[1]
    assert len(leftover_faults(api)) == 5
    other_shell = subprocess.run(
        [Path(sys.executable).parent / "chaosmesh", "rollback", "--run", run_id],
        env=environment(api, tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert other_shell.returncode == 0, other_shell.stdout + other_shell.stderr
    assert "removed 3 route(s) from 2 resource(s)" in other_shell.stdout
    assert leftover_faults(api) == []
    assert process.poll() is None  # the run goes on, and later finds nothing left to remove
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=20) == 1
    journal = json.loads((tmp_path / "journal.json").read_text())
    assert journal["chaosmesh"]["rollback_complete"] is True
    assert [r["removed"] for r in journal["chaosmesh"]["rollback"]] == [[], []]
