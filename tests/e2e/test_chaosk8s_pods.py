"""chaostoolkit-kubernetes as it ships, against the local mesh: `chaosmesh local up`, then
`chaos run` of the shipped pod-kill experiment with the variables `up` prints.

terminate_pods deletes a ratings pod through the mesh's API; the page jason sees (reviews v2
calls ratings) loses its ratings while no ratings pod is ready; the Deployment's replacement is
Running after the mesh's start delay and the steady state holds again. Then the cluster-style
experiment a new user would try first (chaosk8s deployment and pod probes beside a chaosmesh
fault), which failed with a 404 before the mesh served pods, runs too.
"""

import contextlib
import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import requests

from tests.conftest import ROOT
from tests.e2e.localmesh import running_mesh

pytestmark = pytest.mark.slow

CHAOS = str(Path(sys.executable).parent / "chaos")
POD_KILLED = ROOT / "experiments" / "bookinfo-ratings-pod-killed.json"
CLUSTER = ROOT / "experiments" / "bookinfo-ratings-half-abort-cluster.json"
# Long enough that the page read right after the kill finds ratings down on a busy machine.
START_DELAY_S = 4
# After the kill, this pause replaces the experiment's 20 s (a cluster's image start).
PAUSE_S = START_DELAY_S + 4


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    work = tmp_path_factory.mktemp("pods-mesh")
    with running_mesh(work, "--no-prometheus", f"--pod-start-delay={START_DELAY_S}") as running:
        yield running


def chaos_run(environment, tmp_path, experiment):
    journal = tmp_path / "journal.json"
    done = subprocess.run(
        [
            *(CHAOS, "--no-version-check", "--log-file", str(tmp_path / "chaos.log")),
            *("run", "--journal-path", str(journal), str(experiment)),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env=environment,
    )
    return done, json.loads(journal.read_text())


def test_terminate_pods_and_pod_probes_run_unchanged_on_the_local_mesh(mesh, tmp_path):
    environment, status = mesh
    before = {p["name"] for p in status["pods"] if p["labels"].get("app") == "ratings"}
    assert len(before) == 1
    experiment = json.loads(POD_KILLED.read_text())
    # A page read as jason (reviews v2 calls ratings), counting which dependency failed.
    experiment["method"][2] = {
        "type": "probe",
        "name": "jason-page-right-after",
        "provider": {
            "type": "python",
            "module": "chaosmesh_py.observe.probes",
            "func": "bookinfo_page",
            "arguments": {"url": "${productpage_url}", "user": "jason", "pages": 4},
        },
        "pauses": {"after": PAUSE_S},
    }
    path = tmp_path / POD_KILLED.name
    path.write_text(json.dumps(experiment))

    done, journal = chaos_run(environment, tmp_path, path)

    assert done.returncode == 0, done.stderr[-3000:]
    assert journal["status"] == "completed", journal["status"]
    assert journal["steady_states"]["before"]["steady_state_met"] is True
    assert journal["steady_states"]["after"]["steady_state_met"] is True
    run = {entry["activity"]["name"]: entry for entry in journal["run"]}
    killed = run["kill-a-ratings-pod"]["output"]
    assert killed == sorted(before)  # chaosk8s returns the names it deleted
    assert run["ratings-pods-right-after"]["output"] == 1  # the replacement, already created
    page = run["jason-page-right-after"]["output"]
    assert page["whole"] == 0, page  # no ratings pod ready: every page lost its ratings
    assert page["errors"]["ratings"] == page["pages"], page
    # The replacement is another pod of the same ReplicaSet, Running and Ready now.
    core_pods = _ratings_pods(environment)
    assert len(core_pods) == 1 and core_pods[0]["name"] not in before
    assert core_pods[0]["phase"] == "Running" and core_pods[0]["ready"]


def test_the_cluster_experiment_a_new_user_tries_first_now_runs_locally(mesh, tmp_path):
    environment, status = mesh
    # As its description asks: a URL whose traffic reaches ratings through the mesh
    # (`chaosmesh local status` lists each service's).
    environment = {
        **environment,
        "RATINGS_URL": status["services"]["ratings"]["url"] + "/ratings/0",
    }
    experiment = json.loads(CLUSTER.read_text())
    experiment["method"][0]["pauses"]["after"] = 2  # its 30 s are for a cluster's metrics
    path = tmp_path / CLUSTER.name
    path.write_text(json.dumps(experiment))
    # A cluster's live traffic to ratings, which the fault must hit for the run to pass.
    stop = threading.Event()
    statuses: list[int] = []

    def traffic() -> None:
        while not stop.wait(0.05) and len(statuses) < 2000:
            with contextlib.suppress(requests.RequestException):
                statuses.append(requests.get(environment["RATINGS_URL"], timeout=5).status_code)

    caller = threading.Thread(target=traffic, daemon=True)
    caller.start()
    try:
        done, journal = chaos_run(environment, tmp_path, path)
    finally:
        stop.set()
        caller.join(timeout=10)
    assert done.returncode == 0, done.stderr[-3000:]
    assert 503 in statuses and 200 in statuses
    probes = {p["activity"]["name"]: p for p in journal["steady_states"]["before"]["probes"]}
    # chaosk8s's probes answered (they failed with a 404 before the mesh served pods).
    assert probes["reviews-v2-available"]["output"] is True
    assert probes["ratings-pods-running"]["output"] is True
    assert journal["status"] == "completed", journal["status"]


def _ratings_pods(environment):
    """The ratings pods now, read with the kubernetes client as chaosk8s reads them."""
    script = (
        "import json, os, kubernetes\n"
        "kubernetes.config.load_kube_config(context=os.environ['KUBERNETES_CONTEXT'])\n"
        "pods = kubernetes.client.CoreV1Api().list_namespaced_pod("
        "os.environ['BOOKINFO_NAMESPACE'], label_selector='app=ratings').items\n"
        "print(json.dumps([{'name': p.metadata.name, 'phase': p.status.phase, 'ready': any("
        "c.type == 'Ready' and c.status == 'True' for c in p.status.conditions)} for p in pods]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env=environment,
    )
    return json.loads(done.stdout)
