"""The Bookinfo game day's experiments pass `chaosmesh gate` on the local mesh, for the reasons
they give.

The mesh is started as `make gameday` starts it (`chaosmesh local up`, Prometheus beside it)
and each experiment is run by `chaosmesh gate` as a subprocess, with the variables `up` prints
(the same files run on a cluster with that cluster's values). A pass alone could hide a fault
that did nothing, so each test also reads the journal for the effect the experiment is about.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from chaosmesh_py.gameday import suite
from tests.conftest import ROOT
from tests.e2e.localmesh import running_mesh

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
GAMEDAY = ROOT / "experiments/bookinfo-gameday.yaml"
EXPERIMENTS = [step["path"] for step in yaml.safe_load(GAMEDAY.read_text())["experiments"]]


@pytest.fixture(scope="module")
def mesh_environment(tmp_path_factory):
    with running_mesh(tmp_path_factory.mktemp("gameday-mesh")) as (environment, status):
        assert status["prometheus"]["url"], status["prometheus"]
        yield environment


def run_gate(environment, tmp_path, experiment):
    """`chaosmesh gate` on ``experiment`` (a path): its process, its verdict, the journal."""
    done = subprocess.run(
        [
            *(BIN / "chaosmesh", "gate", "--journal-dir", tmp_path),
            *("--json", tmp_path / "gate.json", experiment),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env={**environment, "CHAOSMESH_LEDGER_DIR": str(tmp_path / "ledger")},
    )
    (verdict,) = json.loads((tmp_path / "gate.json").read_text())
    journal = json.loads((tmp_path / f"{Path(experiment).stem}.journal.json").read_text())
    return done, verdict, journal


def gate(environment, tmp_path, name):
    done, verdict, journal = run_gate(environment, tmp_path, ROOT / "experiments" / name)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert verdict["outcome"] == "pass", verdict
    assert journal["chaosmesh"]["rollback_complete"] is True
    (fault,) = journal["chaosmesh"]["faults"]
    assert fault["hits"] > 0
    return journal


def outputs(journal, phase):
    if phase == "run":
        return {entry["activity"]["name"]: entry["output"] for entry in journal["run"]}
    return {p["activity"]["name"]: p["output"] for p in journal["steady_states"][phase]["probes"]}


def test_the_game_days_experiments_are_valid_and_ship_beside_it():
    assert EXPERIMENTS == [
        "bookinfo-ratings-delay-absorbed.json",
        "bookinfo-ratings-abort-contained.json",
        "bookinfo-reviews-errors-contained.json",
    ]
    paths = [GAMEDAY.parent / name for name in EXPERIMENTS]
    done = subprocess.run(
        [BIN / "chaosmesh", "validate", *paths], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count(": valid") == 3


def test_the_game_day_file_loads_with_its_abort_condition_blackouts_and_examples(tmp_path):
    gameday = suite.load(GAMEDAY)
    assert [step.path for step in gameday.experiments] == [
        GAMEDAY.parent / name for name in EXPERIMENTS
    ]
    assert gameday.prometheus_url == "${PROMETHEUS_URL}"  # the same file on a cluster
    (abort,) = gameday.abort
    assert (abort.above, abort.for_s, abort.interval_s) == (0.05, 10.0, 2.0)
    assert [b.reason for b in gameday.blackouts] == [
        "year-end change freeze",
        "no chaos on Friday afternoons, just before the weekend",
    ]
    assert gameday.schedule.timezone == "Europe/Berlin"
    # `validate` shows the freeze at work: Tuesdays at 10:30 Berlin time, but not in it.
    shown = subprocess.run(
        [
            *(BIN / "chaosmesh", "gameday", "validate", GAMEDAY),
            *("--next", "3", "--from", "2026-12-08T00:00:00+01:00"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert shown.returncode == 0, shown.stdout + shown.stderr
    runs = [line.split()[:3] for line in shown.stdout.splitlines() if line.startswith("  Tue ")]
    assert runs == [["Tue", f"2026-12-{day}", "10:30"] for day in ("08", "15", "22")]
    assert shown.stdout.splitlines()[-1].endswith("skipped: year-end change freeze")
    # The commented notification and Grafana examples are valid once uncommented.
    text = GAMEDAY.read_text()
    head, _, examples = text.partition("# notifications:")
    uncommented = tmp_path / GAMEDAY.name
    uncommented.write_text(
        head
        + "\n".join(
            line.removeprefix("# ") for line in ("# notifications:" + examples).splitlines()
        )
    )
    for name in EXPERIMENTS:
        (tmp_path / name).write_text((GAMEDAY.parent / name).read_text())
    with_examples = suite.load(uncommented)
    assert [n.kind for n in with_examples.notifications] == ["slack"]
    assert with_examples.grafana.token_env == "GRAFANA_TOKEN"


def test_a_one_second_delay_for_jason_is_absorbed_by_the_timeouts(mesh_environment, tmp_path):
    journal = gate(mesh_environment, tmp_path, "bookinfo-ratings-delay-absorbed.json")
    before, after = outputs(journal, "before"), outputs(journal, "after")
    jason = after["page-whole-for-jason"]
    assert jason["whole_share"] == 1.0
    # The delay was there: every load of jason's page waited for ratings' second.
    assert jason["seconds"]["median"] >= 1.0
    assert before["page-whole-for-jason"]["seconds"]["median"] < 1.0
    assert after["page-whole-for-others"]["seconds"]["median"] < 1.0


def test_a_ratings_abort_for_jason_reaches_no_one_else(mesh_environment, tmp_path):
    journal = gate(mesh_environment, tmp_path, "bookinfo-ratings-abort-contained.json")
    jason = outputs(journal, "run")["jasons-page-under-the-fault"]
    assert jason["errors"] == {"ratings": 10}  # every load of jason's page lost its stars
    assert outputs(journal, "after")["page-whole-for-others"]["whole_share"] == 1.0
    assert journal["chaosmesh"]["faults"][0]["hits"] == 10


def test_istio_counts_reviews_failing_and_productpage_error_free(mesh_environment, tmp_path):
    journal = gate(mesh_environment, tmp_path, "bookinfo-reviews-errors-contained.json")
    during, after = outputs(journal, "run"), outputs(journal, "after")
    # Istio's metrics through the local Prometheus: half of reviews' answers failed...
    assert 0.3 <= during["reviews-error-ratio-under-the-fault"] <= 0.7
    # ...while productpage answered every request, busy, without a 5xx, within its p99 bound.
    assert after["productpage-error-ratio"] == 0.0
    assert 15 <= after["productpage-request-rate"] <= 25  # the load probe's 20/s
    assert 0 < after["productpage-p99-ms"] < 1000
    assert after["product-page-traffic"]["statuses"] == {"200": 200}
    assert journal["chaosmesh"]["guardrail_checks"]
