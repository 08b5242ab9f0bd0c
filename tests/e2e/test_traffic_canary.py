"""The Bookinfo canary experiment, as a user runs it: `chaosmesh local up` (Prometheus beside
the mesh), the canary setup applied with kubectl, `chaosmesh gate` running the shipped file.

It passes only if the canary analysis flags v3 (its `expect: fail`), and the journal must show
why: v3 slower than v2 by the destination's metrics while users saw no error, and v3's calls to
ratings. Then the same experiment with the analysis told to expect a pass must fail the gate,
naming the verdict: a passing run means the flag was real.
"""

import json
import subprocess

import pytest

from tests.conftest import ROOT
from tests.e2e.test_bookinfo_gameday import mesh_environment, run_gate  # noqa: F401 (a fixture)

pytestmark = pytest.mark.slow

EXPERIMENT = ROOT / "experiments" / "bookinfo-canary-v3-ratings-fault.json"
SETUP = ROOT / "experiments" / "bookinfo" / "canary-reviews-v3.yaml"


@pytest.fixture(scope="module")
def canary_environment(mesh_environment):  # noqa: F811
    """The mesh as `chaosmesh local up` starts it, with Bookinfo's canary setup applied as a
    user applies it."""
    applied = subprocess.run(
        [
            *("kubectl", "--context", mesh_environment["KUBERNETES_CONTEXT"], "apply"),
            *("-n", mesh_environment["BOOKINFO_NAMESPACE"], "-f", SETUP),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env=mesh_environment,
    )
    assert applied.returncode == 0, applied.stdout + applied.stderr
    return mesh_environment


def outputs(journal):
    return {entry["activity"]["name"]: entry for entry in journal["run"]}


def test_the_canary_analysis_flags_v3_whose_ratings_calls_hang(canary_environment, tmp_path):
    done, verdict, journal = run_gate(canary_environment, tmp_path, EXPERIMENT)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert verdict["outcome"] == "pass", verdict
    assert journal["chaosmesh"]["rollback_complete"] is True
    run = outputs(journal)

    users = run["users-under-the-canary"]["output"]
    assert users["error_ratio"] == 0.0  # v3 hid ratings' failure from every user
    assert users["latency_ms"]["max"] >= 2400  # but made some of them wait its 2.5 s

    flagged = run["canary-analysis-flags-v3"]["output"]
    assert flagged["verdict"] == "fail" and flagged["reporter"] == "destination"
    assert flagged["tests"]["latency"]["regressed"]
    assert not flagged["tests"]["error_ratio"]["regressed"]
    assert flagged["canary"]["errors"] == 0
    assert flagged["canary"]["latency_ms"]["p50"] >= 1000
    assert flagged["baseline"]["latency_ms"]["p99"] < 1000

    # v3's calls to ratings, by v3's own proxy: each ran into the 4 s delay and was cut off by
    # v3 after 2.5 s (response code 0: no answer), against v2's immediate answers.
    calls = run["v3-calls-to-ratings"]["output"]
    assert calls["verdict"] == "fail", calls
    assert calls["canary"]["error_ratio"] == 1.0 and calls["baseline"]["error_ratio"] == 0.0


def test_a_canary_analysis_that_passes_a_broken_canary_fails_the_run(canary_environment, tmp_path):
    experiment = json.loads(EXPERIMENT.read_text())
    (analysis,) = [a for a in experiment["method"] if a["name"] == "canary-analysis-flags-v3"]
    analysis["provider"]["arguments"]["expect"] = "pass"
    path = tmp_path / "expect-pass.json"
    path.write_text(json.dumps(experiment))
    done, verdict, journal = run_gate(canary_environment, tmp_path, path)
    assert done.returncode != 0
    assert verdict["outcome"] == "fail"
    assert journal["chaosmesh"]["rollback_complete"] is True
    failed = outputs(journal)["canary-analysis-flags-v3"]
    assert failed["status"] == "failed"
    assert "says fail, not pass: v3 is slower than v2" in failed["exception"][-1]
