"""The mirroring experiment, run by `chaos run` on the local mesh as a user runs it.

experiments/bookinfo-reviews-mirror-v3.json copies reviews' traffic to v3 and aborts v3's calls
to ratings: users must see no change, and the mirror must be shown exercised. The mesh is started
by `chaosmesh local up` (with Prometheus) and the experiment gets the variables `up` prints.
A second run mirrors to v2 instead: v3 then receives nothing, the abort on its calls meets no
request, and the run must not pass.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.e2e.test_bookinfo_gameday import mesh_environment  # noqa: F401 (a fixture)

pytestmark = pytest.mark.slow

CHAOS = str(Path(sys.executable).parent / "chaos")
EXPERIMENT = ROOT / "experiments/bookinfo-reviews-mirror-v3.json"


def chaos_run(environment, tmp_path, experiment_path):
    journal_path = tmp_path / "journal.json"
    done = subprocess.run(
        [
            *(CHAOS, "--no-version-check", "--log-file", str(tmp_path / "chaos.log")),
            *("run", "--journal-path", str(journal_path), str(experiment_path)),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env={**environment, "CHAOSMESH_LEDGER_DIR": str(tmp_path / "ledger")},
    )
    return done, json.loads(journal_path.read_text())


def outputs(journal):
    return {entry["activity"]["name"]: entry["output"] for entry in journal["run"]}


def hypothesis(journal, phase):
    return {
        probe["activity"]["name"]: probe["output"]
        for probe in journal["steady_states"][phase]["probes"]
    }


def test_users_see_no_change_while_v3_shadows_their_traffic(mesh_environment, tmp_path):  # noqa: F811
    done, journal = chaos_run(mesh_environment, tmp_path, EXPERIMENT)
    assert done.returncode == 0, done.stderr[-3000:]
    assert journal["status"] == "completed" and not journal["deviated"]
    assert journal["chaosmesh"]["verdict"] == {"outcome": "pass", "reasons": []}
    assert journal["chaosmesh"]["rollback_complete"] is True

    run = outputs(journal)
    assert run["mirror-reviews-to-v3"]["routes"]  # route copies carrying the mirror
    share = run["reviews-share-under-the-mirror"]
    # 200 product pages: each asked reviews once, answered by v1; each call copied to v3.
    assert share["versions"]["v1"]["requests"] == 200 and share["total"] == 200
    assert share["versions"]["v3"]["requests"] == 0
    assert share["versions"]["v3"]["mirrored"] >= 200
    # v3's ratings calls met the abort: the copies were really handled by v3.
    (fault,) = journal["chaosmesh"]["faults"]
    assert fault["hits"] >= 200

    for phase in ("before", "after"):
        seen = hypothesis(journal, phase)
        assert seen["page-whole-for-users"]["whole_share"] == 1.0
        assert seen["users-answered-by-reviews-v1-alone"] is True
        assert seen["reviews-error-ratio-zero"] == 0.0


def test_a_mirror_that_never_reaches_v3_does_not_pass(mesh_environment, tmp_path):  # noqa: F811
    experiment = json.loads(EXPERIMENT.read_text())
    (mirror,) = [a for a in experiment["method"] if a["name"] == "mirror-reviews-to-v3"]
    mirror["provider"]["arguments"]["subset"] = "v2"
    path = tmp_path / "mirror-to-v2.json"
    path.write_text(json.dumps(experiment))

    done, journal = chaos_run(mesh_environment, tmp_path, path)
    assert done.returncode == 1
    verdict = journal["chaosmesh"]["verdict"]
    assert verdict["outcome"] == "fail"
    assert any(
        "the fault of 'abort-v3-calls-to-ratings' tested nothing" in reason
        for reason in verdict["reasons"]
    ), verdict
    assert outputs(journal)["reviews-share-under-the-mirror"]["versions"]["v2"]["mirrored"] >= 200
    assert journal["chaosmesh"]["rollback_complete"] is True
