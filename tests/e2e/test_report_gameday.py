"""`chaosmesh report` on what `chaosmesh gameday run` really writes: two runs of a game day on
the API double (real `chaos run`s under the runner), then the report of its results directory."""

import json
import subprocess

import pytest

from tests import gameday_cluster
from tests.e2e.test_chaos_run import delay_action
from tests.e2e.test_gameday import CHAOSMESH, finish, gameday_file, start
from tests.gameday_cluster import write_experiment

pytestmark = pytest.mark.slow

cluster = gameday_cluster.cluster


def test_the_report_of_a_game_days_runs_shows_each_verdict_and_the_trend(cluster, tmp_path):
    path = gameday_file(
        tmp_path,
        [
            write_experiment(tmp_path, "delay-ratings", [delay_action()]),
            # A method that injects nothing: the gate fails it ("tested nothing").
            write_experiment(tmp_path, "nothing", []),
        ],
    )
    for _ in range(2):
        code, out, err = finish(start(cluster, tmp_path, path))
        assert code == 1, out + err  # the second experiment fails
    results = tmp_path / "chaosmesh-results"
    runs = sorted((results / "bookinfo-weekly").iterdir())
    assert len(runs) == 2
    summary = json.loads((runs[-1] / "gameday.json").read_text())

    report = tmp_path / "report.html"
    made = subprocess.run(
        [CHAOSMESH, "report", results, "-o", report],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    page = report.read_text()
    assert "Game day bookinfo-weekly" in page
    assert "0 of 2 runs that ran (0%)" in page
    assert f"Run {summary['slot_id']}" in page
    # Each experiment of the latest run with the gate's verdict and reasons, as gameday.json has.
    for row in summary["experiments"]:
        assert f'<span class="badge {row["outcome"]}">{row["outcome"]}</span>' in page
        for reason in row["reasons"]:
            assert reason.replace("'", "&#x27;") in page
    assert page.count('<section class="experiment">') == 2
    # The delay's rollback evidence, recorded by the control under the runner.
    assert '<span class="equal">equal</span>' in page
    assert "VirtualService bookinfo/ratings" in page
