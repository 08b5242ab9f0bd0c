"""The Bookinfo canary experiment, as a user runs it: `chaosmesh local up` (Prometheus beside
the mesh), the canary setup applied with kubectl, `chaosmesh gate` running the shipped file.

It passes only if the canary analysis flags v3 (its `expect: fail`), and the journal must show
why: v3 slower than v2 by the destination's metrics while users saw no error, and v3's calls to
ratings. Then the same experiment with the analysis told to expect a pass must fail the gate,
naming the verdict: a passing run means the flag was real.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from chaosmesh_py.localmesh import lifecycle
from tests.conftest import ISTIO_CRDS, ROOT

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
EXPERIMENT = ROOT / "experiments" / "bookinfo-canary-v3-ratings-fault.json"
SETUP = ROOT / "experiments" / "bookinfo" / "canary-reviews-v3.yaml"


@pytest.fixture(scope="module")
def mesh_environment(tmp_path_factory):
    work = tmp_path_factory.mktemp("canary-mesh")
    mesh = ["--state-dir", work / "state", "--kubeconfig", work / "kubeconfig"]
    environment = {**os.environ, "CHAOSMESH_ISTIO_CRDS": str(ISTIO_CRDS)}
    up = subprocess.run(
        [BIN / "chaosmesh", "local", "up", *mesh],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env=environment,
    )
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        status = lifecycle.status(work / "state")
        assert status["prometheus"]["url"], status["prometheus"]
        variables = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("KUBE", "PROMETHEUS"))},
            **lifecycle.experiment_environment(status, work / "kubeconfig"),
        }
        applied = subprocess.run(
            [
                "kubectl",
                "--context",
                status["context"],
                "apply",
                "-n",
                status["namespace"],
                "-f",
                SETUP,
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
            env=variables,
        )
        assert applied.returncode == 0, applied.stdout + applied.stderr
        yield variables
    finally:
        subprocess.run(
            [BIN / "chaosmesh", "local", "down", *mesh], check=False, timeout=120, env=environment
        )


def gate(environment, tmp_path, experiment):
    done = subprocess.run(
        [
            *(BIN / "chaosmesh", "gate", "--journal-dir", tmp_path),
            *("--json", tmp_path / "gate.json", experiment),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=400,
        env={**environment, "CHAOSMESH_LEDGER_DIR": str(tmp_path / "ledger")},
    )
    (verdict,) = json.loads((tmp_path / "gate.json").read_text())
    journal = json.loads((tmp_path / f"{Path(experiment).stem}.journal.json").read_text())
    return done, verdict, journal


def outputs(journal):
    return {entry["activity"]["name"]: entry for entry in journal["run"]}


def test_the_canary_analysis_flags_v3_whose_ratings_calls_hang(mesh_environment, tmp_path):
    done, verdict, journal = gate(mesh_environment, tmp_path, EXPERIMENT)
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


def test_a_canary_analysis_that_passes_a_broken_canary_fails_the_run(mesh_environment, tmp_path):
    experiment = json.loads(EXPERIMENT.read_text())
    (analysis,) = [a for a in experiment["method"] if a["name"] == "canary-analysis-flags-v3"]
    analysis["provider"]["arguments"]["expect"] = "pass"
    path = tmp_path / "expect-pass.json"
    path.write_text(json.dumps(experiment))
    done, verdict, journal = gate(mesh_environment, tmp_path, path)
    assert done.returncode != 0
    assert verdict["outcome"] == "fail"
    assert journal["chaosmesh"]["rollback_complete"] is True
    failed = outputs(journal)["canary-analysis-flags-v3"]
    assert failed["status"] == "failed"
    assert "says fail, not pass: v3 is slower than v2" in failed["exception"][-1]
