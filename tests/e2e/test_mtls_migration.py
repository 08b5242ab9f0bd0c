"""Istio's mTLS-migration rehearsal (experiments/bookinfo-mtls-migration.json) run by `chaosmesh
gate` on a mesh `chaosmesh local up` started, as a user runs it: the page whole under STRICT,
the outside client measured refused at every pod, and let in again after the rollback. A pass
alone could hide a probe that measured nothing, so the journal is read for what was measured."""

import json

import pytest

from tests.conftest import ROOT
from tests.e2e.localmesh import running_mesh
from tests.e2e.test_resilience_experiments import gate, kubectl

pytestmark = pytest.mark.slow

EXPERIMENT = ROOT / "experiments/bookinfo-mtls-migration.json"


@pytest.fixture(scope="module")
def environment(tmp_path_factory):
    with running_mesh(tmp_path_factory.mktemp("mtls-migration-mesh")) as (environment, _):
        yield environment


def peer_authentications(environment):
    return json.loads(kubectl(environment, "get", "peerauthentications", "-A", "-o", "json"))[
        "items"
    ]


def outputs(entries):
    return {entry["activity"]["name"]: entry["output"] for entry in entries}


def test_the_migration_rehearsal_passes_and_measures_each_step(environment, tmp_path):
    done, verdict, journal = gate(environment, tmp_path, EXPERIMENT)
    assert done.returncode == 0 and verdict["outcome"] == "pass", verdict["reasons"]
    run = outputs(journal["run"])
    (before,) = run["outside-client-answered-before"]
    assert before["where"] == "productpage-v1" and before["measured"] is True, before
    assert "HTTP 200" in before["evidence"], before
    assert run["outside-client-refused-everywhere"] == []
    # The page was whole under STRICT: the steady state after the method held.
    after = journal["steady_states"]["after"]
    assert after["steady_state_met"] is True
    (again,) = outputs(journal["rollbacks"])["outside-client-answered-again"]
    assert again["measured"] is True and "HTTP 200" in again["evidence"], again
    assert journal["chaosmesh"]["rollback_complete"] is True
    assert peer_authentications(environment) == []


def test_a_client_left_outside_the_mesh_fails_the_rehearsal(environment, tmp_path):
    # A migration that forgot STRICT (the action removed): the outside client still gets in,
    # and the probe that expected none fails the gate.
    experiment = json.loads(EXPERIMENT.read_text())
    experiment["method"] = [
        step for step in experiment["method"] if step["name"] != "strict-mtls-for-the-namespace"
    ]
    path = tmp_path / "no-strict.json"
    path.write_text(json.dumps(experiment))
    done, verdict, _ = gate(environment, tmp_path, path)
    assert done.returncode != 0 and verdict["outcome"] == "fail", verdict
    reasons = json.dumps(verdict["reasons"])
    assert "outside-client-refused-everywhere" in reasons and "productpage-v1" in reasons, reasons
