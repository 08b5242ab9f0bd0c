"""`chaosmesh gameday run` as a CronJob's pod runs it: a subprocess, a game-day file, the API
double as the cluster; real `chaos run`s under it."""

import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from tests import gameday_cluster
from tests.conftest import NAMESPACE, ROOT
from tests.e2e.test_chaos_run import delay_action
from tests.gameday_cluster import delay_then_wait, write_experiment
from tests.integration.test_gameday_runner import history, wait_for_fault
from tests.integration.test_inject_rollback import exact, read

pytestmark = pytest.mark.slow

CHAOSMESH = str(Path(sys.executable).parent / "chaosmesh")
cluster = gameday_cluster.cluster


def gameday_file(tmp_path, experiments, **fields):
    document = {
        "name": "bookinfo-weekly",
        "namespace": NAMESPACE,
        "experiments": [{"path": path.name} for path in experiments],
        **fields,
    }
    path = tmp_path / "gameday.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def environment(cluster, tmp_path, runner_id):
    return {
        **os.environ,
        "KUBECONFIG": str(tmp_path / "no-kubeconfig"),
        "KUBERNETES_HOST": cluster.url,
        "PYTHONPATH": str(ROOT),
        "CHAOSMESH_RUNNER_ID": runner_id,
    }


def start(cluster, tmp_path, path, *options, runner_id="pod-a"):
    return subprocess.Popen(
        [CHAOSMESH, "gameday", "run", str(path), "--allow-unverified", *options],
        cwd=tmp_path,
        env=environment(cluster, tmp_path, runner_id),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process, timeout_s=90):
    out, err = process.communicate(timeout=timeout_s)
    return process.returncode, out, err


def test_a_game_day_passes_and_writes_its_reports(cluster, tmp_path):
    before = exact(read(cluster))
    path = gameday_file(tmp_path, [write_experiment(tmp_path, "delay-ratings", [delay_action()])])
    code, out, err = finish(
        start(cluster, tmp_path, path, "--json", "copy.json", "--junit", "copy.xml")
    )
    assert code == 0, out + err
    assert "Traceback" not in err
    last = out.strip().splitlines()[-1]
    assert last.startswith("gameday bookinfo-weekly (adhoc-") and last.endswith("): PASS")
    summary = json.loads((tmp_path / "copy.json").read_text())
    directory = tmp_path / "chaosmesh-results/bookinfo-weekly" / summary["slot_id"]
    assert json.loads((directory / "gameday.json").read_text()) == summary
    assert summary["runner"] == "pod-a"
    assert (tmp_path / "copy.xml").read_bytes() == (directory / "junit.xml").read_bytes()
    assert len(list(ET.parse(tmp_path / "copy.xml").getroot().iter("testcase"))) == 1
    assert exact(read(cluster)) == before


def test_two_runners_started_for_one_slot_one_runs_one_says_already_running(cluster, tmp_path):
    before = exact(read(cluster))
    path = gameday_file(
        tmp_path,
        [delay_then_wait(tmp_path, "hold", 3)],
        schedule={"cron": "* * * * *", "timezone": "Europe/Berlin", "startingDeadline": "10m"},
    )
    first = start(cluster, tmp_path, path, runner_id="pod-a")
    wait_for_fault(cluster)
    assert "  running: pod-a (since " in status(cluster, tmp_path).stdout
    second = start(cluster, tmp_path, path, runner_id="pod-b")
    code_b, out_b, err_b = finish(second)
    code_a, out_a, err_a = finish(first)
    assert code_a == 0, out_a + err_a
    assert code_b == 0, out_b + err_b
    assert (
        out_b.strip()
        .splitlines()[-1]
        .startswith("skipped: already running: the game day's Lease is held by pod-a (since ")
    )
    assert out_a.strip().splitlines()[-1].endswith("): PASS")
    outcomes = {r.runner: r.outcome for r in history().slots}
    assert outcomes == {"pod-a": "pass", "pod-b": "already-running"}
    assert exact(read(cluster)) == before
    # What the cluster recorded, as a user asks for it.
    shown = status(cluster, tmp_path).stdout
    assert "not paused" in shown and "not running (nobody holds its Lease)" in shown
    assert "latest 2 of 2 slot record(s):" in shown
    recorded = json.loads(status(cluster, tmp_path, "--json").stdout)
    assert recorded["lease"] is None and recorded["pause"] is None
    by_runner = {r["runner"]: r for r in recorded["slots"]}
    assert {n: r["outcome"] for n, r in by_runner.items()} == outcomes
    assert "held by pod-a" in by_runner["pod-b"]["reason"]


def status(cluster, tmp_path, *options):
    return on_the_game_day(cluster, tmp_path, "status", *options)


def on_the_game_day(cluster, tmp_path, command, *options):
    """``chaosmesh gameday COMMAND bookinfo-weekly -n NAMESPACE OPTIONS``, which must succeed."""
    done = subprocess.run(
        [CHAOSMESH, "gameday", command, "bookinfo-weekly", "-n", NAMESPACE, *options],
        cwd=tmp_path,
        env=environment(cluster, tmp_path, "someone"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


@pytest.mark.parametrize(
    ("signum", "said"),
    [
        (signal.SIGTERM, "aborted: the runner got SIGTERM"),
        (signal.SIGINT, "aborted: the runner got SIGINT (Ctrl-C)"),
    ],
)
def test_a_signal_to_the_runner_rolls_back_before_it_exits(cluster, tmp_path, signum, said):
    before = exact(read(cluster))
    path = gameday_file(
        tmp_path,
        [delay_then_wait(tmp_path, "hold-30s", 30), delay_then_wait(tmp_path, "next", 0)],
    )
    process = start(cluster, tmp_path, path)
    wait_for_fault(cluster)
    process.send_signal(signum)  # SIGTERM: what Kubernetes sends a pod's first process
    sent = time.monotonic()
    code, out, err = finish(process, timeout_s=30)
    assert time.monotonic() - sent < 20
    assert code == 1, out + err
    assert said in out.strip().splitlines()[-1]
    assert exact(read(cluster)) == before
    (record,) = history().slots
    assert record.outcome == "aborted"


def test_a_bad_game_day_file_exits_2_naming_the_field_and_writes_nothing(cluster, tmp_path):
    path = gameday_file(
        tmp_path,
        [write_experiment(tmp_path, "delay", [delay_action()])],
        schedule={"cron": "61 * * * *", "timezone": "Europe/Berlin"},
    )
    code, out, err = finish(start(cluster, tmp_path, path))
    assert code == 2, out + err
    assert "schedule.cron" in err
    assert "Traceback" not in err
    assert not (tmp_path / "chaosmesh-results").exists()
    assert history().slots == ()
    lease = "chaosmesh-gameday-bookinfo-weekly"
    assert cluster.get("coordination.k8s.io/v1", "Lease", NAMESPACE, lease) is None


def test_status_shows_the_pause_switch_as_pause_and_resume_leave_it(cluster, tmp_path):
    assert "not paused" in status(cluster, tmp_path).stdout
    on_the_game_day(cluster, tmp_path, "pause", "--reason", "incident 42")
    shown = status(cluster, tmp_path).stdout
    assert "  paused by " in shown and "(incident 42)" in shown
    assert "no slot recorded yet" in shown
    on_the_game_day(cluster, tmp_path, "resume")
    assert "not paused" in status(cluster, tmp_path).stdout
