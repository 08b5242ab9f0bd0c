"""Istio's request-routing task as a chaos experiment, run by `chaos run` on the local mesh:
experiments/bookinfo-dark-launch-reviews-v2.json, "no one but jason sees reviews v2".

The mesh is started as users start it (`chaosmesh local up`), prepared with kubectl as the
experiment's description says (reviews on v1, as Istio's virtual-service-all-v1.yaml leaves it;
STRICT mutual TLS from experiments/bookinfo/strict-mtls.yaml), and the experiment run with the
variables `up` prints.
"""

import json
import subprocess

import pytest
import yaml

from tests.conftest import ROOT
from tests.e2e.localmesh import BIN, running_mesh

pytestmark = pytest.mark.slow

EXPERIMENT = ROOT / "experiments/bookinfo-dark-launch-reviews-v2.json"
STRICT_MTLS = ROOT / "experiments/bookinfo/strict-mtls.yaml"
# Istio's samples/bookinfo/networking/virtual-service-all-v1.yaml, its reviews part.
REVIEWS_ALL_V1 = {
    "apiVersion": "networking.istio.io/v1",
    "kind": "VirtualService",
    "metadata": {"name": "reviews"},
    "spec": {
        "hosts": ["reviews"],
        "http": [{"route": [{"destination": {"host": "reviews", "subset": "v1"}}]}],
    },
}


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    with running_mesh(tmp_path_factory.mktemp("dark-launch-mesh"), "--no-prometheus") as (
        environment,
        _,
    ):
        yield environment


def kubectl(environment, *arguments, stdin=None):
    done = subprocess.run(
        ["kubectl", "--context", environment["KUBERNETES_CONTEXT"], "-n", "bookinfo", *arguments],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env=environment,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def reviews_spec(environment):
    return json.loads(kubectl(environment, "get", "virtualservice", "reviews", "-o", "json"))[
        "spec"
    ]


def run_experiment(environment, tmp_path):
    journal_path = tmp_path / "journal.json"
    done = subprocess.run(
        [BIN / "chaos", "--no-version-check", "run", "--journal-path", journal_path, EXPERIMENT],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        cwd=tmp_path,
        env={**environment, "CHAOSMESH_LEDGER_DIR": str(tmp_path / "ledger")},
    )
    return done, json.loads(journal_path.read_text())


def probe_outputs(journal, phase):
    return {p["activity"]["name"]: p["output"] for p in journal["steady_states"][phase]["probes"]}


@pytest.fixture
def reviews_on_v1(mesh):
    kubectl(mesh, "apply", "-f", "-", stdin=yaml.safe_dump(REVIEWS_ALL_V1))
    return reviews_spec(mesh)


def test_the_dark_launch_hides_v2_from_everyone_but_jason_and_is_rolled_back(
    mesh, reviews_on_v1, tmp_path
):
    kubectl(mesh, "apply", "-f", str(STRICT_MTLS))
    done, journal = run_experiment(mesh, tmp_path)

    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert journal["status"] == "completed" and not journal["deviated"]
    before, after = probe_outputs(journal, "before"), probe_outputs(journal, "after")
    # Before: nobody sees v2, jason included (reported, not required).
    assert before["no-one-but-jason-sees-v2"]["leaks"] == []
    assert before["no-one-but-jason-sees-v2"]["tester_gaps"]
    assert after["no-one-but-jason-sees-v2"]["hidden"]
    (launch, reach) = journal["run"]
    assert launch["output"]["edit"]["description"] == ["routes reviews to v2 for header end-user"]
    # During: jason reaches v2 through the ingress and from every caller, no one else does.
    assert reach["output"]["hidden"], reach["output"]
    ingress = next(e for e in reach["output"]["entries"] if e["kind"] == "ingress")
    assert ingress["testers"]["served_by"] == {"reviews-v2": 20}
    assert ingress["others"]["served_by"] == {"reviews-v1": 20}
    # The control removed the dark launch: the routing is byte for byte as applied.
    assert journal["chaosmesh"]["rollback_complete"] is True
    assert reviews_spec(mesh) == reviews_on_v1


def test_without_strict_mtls_the_experiment_names_the_no_sidecar_leak(
    mesh, reviews_on_v1, tmp_path
):
    kubectl(mesh, "delete", "peerauthentication", "default", "--ignore-not-found")
    done, journal = run_experiment(mesh, tmp_path)

    assert done.returncode == 1
    assert journal["steady_states"]["before"]["steady_state_met"] is False
    leaks = probe_outputs(journal, "before")["no-one-but-jason-sees-v2"]["leaks"]
    assert len(leaks) == 1
    assert leaks[0].startswith("no-sidecar client via Service reviews -> reviews-v2: ")
    assert journal["run"] == []  # the method never ran: nothing was written
    assert reviews_spec(mesh) == reviews_on_v1


CANARY_SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "reviews-canary"},
    "spec": {
        "selector": {"app": "reviews", "version": "v2"},
        "ports": [{"name": "http", "port": 9080}],
    },
}


def test_a_canary_service_applied_with_kubectl_is_named_as_the_leak(mesh, reviews_on_v1, tmp_path):
    # Flagger's "<app>-canary" Service: every sidecar routes to it, past the VirtualService.
    kubectl(mesh, "apply", "-f", str(STRICT_MTLS))
    kubectl(mesh, "apply", "-f", "-", stdin=yaml.safe_dump(CANARY_SERVICE))
    try:
        done, journal = run_experiment(mesh, tmp_path)
    finally:
        kubectl(mesh, "delete", "service", "reviews-canary")

    assert done.returncode == 1
    before = probe_outputs(journal, "before")["no-one-but-jason-sees-v2"]
    assert before["leaks"] == [
        "in-mesh caller sleep via Service reviews-canary -> reviews-v2: 20 of 20 requests"
    ]
    assert journal["run"] == []
