"""A game day of the shipped Bookinfo experiments on the local mesh (real Envoy, real Bookinfo
pages, the verdict's full rules: faults seen live and counted): the runner grades every
experiment exactly as `chaosmesh gate` grades the same files."""

import re

from chaosmesh_py.gameday import runner
from chaosmesh_py.gameday.suite import GameDay, Step
from chaosmesh_py.verdict import gate
from tests.conftest import NAMESPACE, ROOT
from tests.gameday_cluster import Announcements
from tests.integration.test_inject_rollback import exact, read


def shape(reasons):
    return [re.sub(r"[0-9.]+ s\b", "N s", reason) for reason in reasons]


EXPERIMENTS = [ROOT / "experiments/bookinfo-ratings-abort.json"]


def test_a_game_day_grades_each_experiment_as_the_gate_does(mesh, monkeypatch, tmp_path):
    monkeypatch.setenv("PRODUCTPAGE_URL", mesh.info()["ingress_url"])
    monkeypatch.setenv("BOOKINFO_NAMESPACE", NAMESPACE)
    before = exact(read(mesh.api))
    day = GameDay(
        name="bookinfo-local",
        namespace=NAMESPACE,
        experiments=tuple(Step(path) for path in EXPERIMENTS),
        source=tmp_path / "gameday.yaml",
    )
    game = runner.run_gameday(
        day,
        runner.Options(results_dir=tmp_path / "results", announcer=Announcements),
    )
    gated = gate.gate(EXPERIMENTS, tmp_path / "gate")
    # Same verdict, same reasons (but for the latencies each run measured).
    assert [(r["outcome"], shape(r["reasons"])) for r in game.summary["experiments"]] == [
        (r.outcome, shape(r.reasons)) for r in gated
    ]
    # Its hypothesis counts "Ratings service is currently unavailable" as a deviation: graded fail.
    assert game.summary["outcome"] == "fail"
    assert runner.EXIT_CODES[game.summary["outcome"]] == 1
    (row,) = game.summary["experiments"]
    assert row["faults"][0]["hits"] > 0  # counted in Envoy: the fault hit real requests
    assert exact(read(mesh.api)) == before
