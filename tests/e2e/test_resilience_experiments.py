"""The resilience experiments, run by `chaosmesh gate` on the local mesh as a user runs them.

The mesh is started by `chaosmesh local up`; each experiment gets the variables `up` prints
(and HTTPBIN_URL, httpbin through the mesh, which a cluster's user sets to theirs), so the same
files run on a cluster with its values. A pass alone could hide a policy that did nothing, so
each test also reads the journal for what was measured.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from chaosmesh_py.kube.client import LOCAL_MESH_CONFIG_MAP
from tests.conftest import ROOT
from tests.e2e.localmesh import running_mesh

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
MESH_INFO = (
    *("get", "configmap", "-n", LOCAL_MESH_CONFIG_MAP[0], LOCAL_MESH_CONFIG_MAP[1]),
    *("-o", "jsonpath={.data.mesh\\.json}"),
)


@pytest.fixture(scope="module")
def environment(tmp_path_factory):
    with running_mesh(tmp_path_factory.mktemp("resilience-mesh")) as (environment, _):
        mesh = json.loads(kubectl(environment, *MESH_INFO))
        # What a cluster's user sets to a URL reaching httpbin through a sidecar.
        yield {**environment, "HTTPBIN_URL": mesh["services"]["httpbin"]["url"]}


def kubectl(environment, *arguments):
    done = subprocess.run(
        ["kubectl", "--context", environment["KUBERNETES_CONTEXT"], *arguments],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env=environment,
    )
    return done.stdout


@pytest.fixture
def httpbin_rule(environment):
    """httpbin's DestinationRule, as the circuit-breaking task has the user apply it first."""
    kubectl(
        environment,
        "apply",
        "-n",
        "bookinfo",
        "-f",
        ROOT / "experiments/httpbin/destination-rule.yaml",
    )
    yield
    kubectl(environment, "delete", "-n", "bookinfo", "destinationrule", "httpbin")


def gate(environment, tmp_path, name):
    """`chaosmesh gate` on experiments/``name``: its process, its verdict, the journal."""
    done = subprocess.run(
        [
            *(BIN / "chaosmesh", "gate", "--journal-dir", tmp_path),
            *("--json", tmp_path / "gate.json", ROOT / "experiments" / name),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env={**environment, "CHAOSMESH_LEDGER_DIR": str(tmp_path / "ledger")},
    )
    (verdict,) = json.loads((tmp_path / "gate.json").read_text())
    journal = json.loads((tmp_path / f"{Path(name).stem}.journal.json").read_text())
    return done, verdict, journal


def outputs(journal):
    return {entry["activity"]["name"]: entry["output"] for entry in journal["run"]}


def test_request_timeouts_task_keeps_the_page_fast(environment, tmp_path):
    done, verdict, journal = gate(environment, tmp_path, "bookinfo-request-timeouts.json")
    assert done.returncode == 0 and verdict["outcome"] == "pass", verdict["reasons"]
    assert journal["chaosmesh"]["rollback_complete"] is True
    page = outputs(journal)["page-without-reviews-for-jason"]
    # productpage's two tries of reviews, each cut at 0.5 s: about 1 s, not ratings' 2 s.
    assert 0.9 <= page["latency_p50_s"] <= 1.8, page
    assert page["attempts_per_request"] == 2.0, page


def test_without_the_timeout_the_same_experiment_fails(environment, tmp_path):
    experiment = json.loads((ROOT / "experiments/bookinfo-request-timeouts.json").read_text())
    experiment["method"] = [
        step for step in experiment["method"] if step["name"] != "reviews-timeout-half-a-second"
    ]
    experiment["rollbacks"] = [
        step for step in experiment["rollbacks"] if step["name"] != "restore-reviews-timeout"
    ]
    path = tmp_path / "no-timeout.json"
    path.write_text(json.dumps(experiment))
    done, verdict, _ = gate(environment, tmp_path, path)
    assert done.returncode != 0 and verdict["outcome"] == "fail", verdict
    # ratings' 2 s reach jason: the page is slow, and the probe says so.
    assert "page-fast-for-jason" in json.dumps(verdict["reasons"]), verdict


def test_circuit_breaking_task_overflows_three_at_once(environment, tmp_path, httpbin_rule):
    done, verdict, journal = gate(environment, tmp_path, "httpbin/circuit-breaking.json")
    assert done.returncode == 0 and verdict["outcome"] == "pass", verdict["reasons"]
    overflow = outputs(journal)["three-at-once-overflow"]
    assert 1 / 3 <= overflow["overflow_ratio"] <= 2 / 3, overflow
    # Every refusal was a 503 UO answer, and Envoy counted each one.
    assert overflow["overloaded_answers"] == overflow["pending_overflows"] > 0, overflow
    assert overflow["statuses"]["503"] == overflow["overloaded_answers"], overflow
    # The rule is back as the user wrote it.
    rule = json.loads(kubectl(environment, "get", "-n", "bookinfo", "dr", "httpbin", "-o", "json"))
    assert "connectionPool" not in rule["spec"]["trafficPolicy"], rule["spec"]


def test_outlier_ejection_of_a_failing_replica(environment, tmp_path, httpbin_rule):
    from chaosmesh_py.resilience import actions

    if not hasattr(actions, "inject_upstream_fault"):
        pytest.skip("inject_upstream_fault (rs-inbound) is not here yet")
    done, verdict, journal = gate(environment, tmp_path, "httpbin/outlier-ejection.json")
    assert done.returncode == 0 and verdict["outcome"] == "pass", verdict["reasons"]
    ejection = outputs(journal)["v1-ejected-after-three-errors"]
    assert ejection["errors_before_ejection"] == 3 and ejection["ejections"] == 1, ejection
    assert ejection["requests_after_ejection"] > 100, ejection


def test_retry_storm_measured_as_the_report_predicts(environment, tmp_path):
    from chaosmesh_py.resilience import actions, probes

    if not hasattr(actions, "inject_upstream_fault") or not hasattr(probes, "max_amplification"):
        pytest.skip("inject_upstream_fault (rs-inbound) or max_amplification (rs-report) missing")
    done, verdict, journal = gate(environment, tmp_path, "bookinfo-ratings-retry-storm.json")
    assert done.returncode == 0 and verdict["outcome"] == "pass", verdict["reasons"]
    run = outputs(journal)
    predicted = run["report-predicts-reviews-to-ratings"]
    assert predicted == 4
    assert run["ratings-tries-per-page"]["attempts_per_request"] == predicted
    # The path's bound: productpage's implicit 3 times 4; reviews absorbs, so it is not reached.
    assert run["report-predicts-productpage-to-ratings"] == 12
