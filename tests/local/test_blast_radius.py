"""A guardrail through the real Envoy: the fault is meant for jason only; when a later action
leaks it to everyone, the load probe for other users breaches, and the run is stopped and
rolled back within one interval."""

import json
import subprocess
import time
from datetime import datetime

import pytest
import requests

from tests.conftest import ROOT, abort_action
from tests.e2e.test_chaos_run import CHAOS, environment

pytestmark = pytest.mark.slow

INTERVAL_S = 0.25


def abort_ratings(name, **narrowing):
    return {**abort_action(name, "ratings", **narrowing), "pauses": {"after": 2}}


def test_a_leaked_fault_trips_the_load_guardrail_and_is_rolled_back(mesh, tmp_path):
    ratings = mesh.info()["services"]["ratings"]["url"] + "/ratings/0"
    others_fine = {
        "type": "probe",
        "name": "others-fine",
        "tolerance": True,
        "provider": {
            "type": "python",
            "module": "chaosmesh_py.observe.probes",
            "func": "http_slo_is_met",
            "arguments": {
                "url": ratings,
                "headers": {"end-user": "mary"},
                "requests": 20,
                "max_error_ratio": 0.0,
            },
        },
    }
    experiment = {
        "title": "blast radius",
        "description": "jason only, then a leak",
        "controls": [
            {
                "name": "chaosmesh",
                "provider": {
                    "type": "python",
                    "module": "chaosmesh_py.control",
                    "arguments": {"guardrails": [others_fine], "guardrail_interval_s": INTERVAL_S},
                },
            }
        ],
        "method": [
            abort_ratings("jason-only", headers={"end-user": "jason"}),
            abort_ratings("leak-to-everyone"),
            abort_ratings("never-reached", headers={"end-user": "ann"}),
        ],
    }
    path = tmp_path / "experiment.json"
    path.write_text(json.dumps(experiment))
    started = time.monotonic()
    done = subprocess.run(
        [CHAOS, "--no-version-check", "run", "--journal-path", tmp_path / "journal.json", path],
        cwd=ROOT,
        env=environment(mesh.api, tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    elapsed = time.monotonic() - started
    journal = json.loads((tmp_path / "journal.json").read_text())
    summary = journal["chaosmesh"]
    assert journal["status"] == "interrupted", done.stderr[-2000:]
    assert summary["aborted_by_guardrail"]["probe"] == "others-fine"
    # The jason-only fault held for its 2 s pause without a breach: the guardrail looked.
    assert summary["guardrail_checks"] >= 3
    names = [r["activity"]["name"] for r in journal["run"]]
    assert names[:2] == ["jason-only", "leak-to-everyone"] and "never-reached" not in names
    leaked_at = datetime.fromisoformat(journal["run"][1]["end"])
    breached_at = datetime.fromisoformat(summary["aborted_by_guardrail"]["at"])
    # One interval, plus one probe's 20 requests, plus scheduling slack on a shared machine.
    assert (breached_at - leaked_at).total_seconds() <= INTERVAL_S + 1.0
    assert elapsed < 15
    assert summary["rollback_complete"] is True
    assert sorted(len(r["removed"]) for r in summary["rollback"]) == [2]
    for user in ("jason", "mary"):
        answer = requests.get(ratings, headers={"end-user": user}, timeout=5)
        assert answer.status_code == 200, user
