"""A guardrail breach stops the run within one probe interval and leaves no fault behind."""

import json
import subprocess
import time
from datetime import datetime, timedelta

import pytest

from chaosmesh_py.report.model import experiment_view
from tests.conftest import NAMESPACE, ROOT
from tests.e2e.test_chaos_run import CHAOS, delay_action, environment
from tests.integration.test_inject_rollback import exact, read

pytestmark = pytest.mark.slow

INTERVAL_S = 0.25


FAULT_IN_PLACE = {
    "type": "probe",
    "name": "ratings-untouched",
    "tolerance": False,  # "no fault on ratings": the injection itself breaches it
    "provider": {
        "type": "python",
        "module": "chaosmesh_py.faults.probes",
        "func": "fault_is_injected",
        "arguments": {"virtual_service": "ratings", "namespace": NAMESPACE},
    },
}
ALWAYS_FINE = {
    "type": "probe",
    "name": "always-fine",
    "tolerance": 0,
    "provider": {"type": "process", "path": "true"},
}


def guarded_experiment(tmp_path, guardrail, pause_s=20):
    action = delay_action()
    action["pauses"] = {"after": pause_s}
    experiment = {
        "title": "guarded",
        "configuration": {"namespace": NAMESPACE},
        "description": "guarded",
        "controls": [
            {
                "name": "chaosmesh",
                "provider": {
                    "type": "python",
                    "module": "chaosmesh_py.control",
                    "arguments": {
                        "guardrails": [guardrail],
                        "guardrail_interval_s": INTERVAL_S,
                    },
                },
            }
        ],
        "method": [action],
    }
    path = tmp_path / "experiment.json"
    path.write_text(json.dumps(experiment))
    return path


def run(api, tmp_path, path):
    journal = tmp_path / "journal.json"
    started = time.monotonic()
    done = subprocess.run(
        [CHAOS, "--no-version-check", "run", "--journal-path", str(journal), str(path)],
        cwd=ROOT,
        env=environment(api, tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done, json.loads(journal.read_text()), time.monotonic() - started


def test_a_breach_rolls_back_and_stops_the_run_at_once(api, tmp_path):
    before = read(api)
    done, journal, elapsed = run(api, tmp_path, guarded_experiment(tmp_path, FAULT_IN_PLACE))
    assert elapsed < 10, done.stderr  # the method would have paused 20 s
    assert journal["status"] == "interrupted"
    summary = journal["chaosmesh"]
    assert summary["aborted_by_guardrail"]["probe"] == "ratings-untouched"
    assert "outside False" in summary["aborted_by_guardrail"]["reason"]
    assert summary["rollback_complete"] is True
    assert summary["rollback"][0]["removed"]
    injected_at = journal["run"][0]["end"]
    breached_at = summary["aborted_by_guardrail"]["at"]

    gap = datetime.fromisoformat(breached_at) - datetime.fromisoformat(injected_at)
    assert gap.total_seconds() <= INTERVAL_S + 0.5, gap
    assert exact(read(api)) == exact(before)

    # What chaosmesh report draws of it: the fault's window ends at the guardrail's rollback,
    # not at the end of the run; every check, and the breach.
    view = experiment_view(journal, "journal.json")
    (fault,) = view.faults
    assert fault.end - datetime.fromisoformat(breached_at) < timedelta(seconds=1)
    assert len(view.guardrail_checks) == summary["guardrail_checks"] >= 1
    assert view.guardrail_breach.startswith("ratings-untouched: ")


def test_a_guardrail_that_holds_lets_the_method_finish(api, tmp_path):
    before = read(api)
    done, journal, _ = run(api, tmp_path, guarded_experiment(tmp_path, ALWAYS_FINE, pause_s=1))
    assert journal["status"] == "completed", done.stderr
    assert "aborted_by_guardrail" not in journal["chaosmesh"]
    assert journal["chaosmesh"]["guardrail_checks"] >= 2
    assert exact(read(api)) == exact(before)


def test_a_guardrail_without_tolerance_is_refused_before_anything(api, tmp_path):
    path = guarded_experiment(tmp_path, FAULT_IN_PLACE)
    experiment = json.loads(path.read_text())
    del experiment["controls"][0]["provider"]["arguments"]["guardrails"][0]["tolerance"]
    path.write_text(json.dumps(experiment))
    api.request_log.clear()
    done, journal, _ = run(api, tmp_path, path)
    assert "guardrails[0].tolerance: is missing" in done.stderr
    assert journal["run"] == []
    assert [r for r in api.request_log if r.method == "PATCH"] == []
