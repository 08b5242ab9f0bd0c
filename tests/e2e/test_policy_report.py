"""`chaosmesh policy report` and the policy-report probes as users run them, as processes,
against the Kubernetes API double: the command's table and JSON and exit statuses, and `chaos
run` with the probes in a steady-state hypothesis giving the same numbers."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import NAMESPACE, ROOT
from tests.e2e.test_chaos_run import LENIENT_CONTROL, SYSTEM_OK, chaos, environment

pytestmark = pytest.mark.slow

CHAOSMESH = str(Path(sys.executable).parent / "chaosmesh")
EDGES = [
    {"source": "productpage", "destination": "details"},
    {"source": "productpage", "destination": "reviews"},
    {"source": "reviews", "destination": "ratings"},
]
PROBES = "chaosmesh_py.resilience.probes"


def chaosmesh(api, tmp_path, *arguments):
    return subprocess.run(
        [CHAOSMESH, *map(str, arguments)],
        cwd=ROOT,
        env=environment(api, tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_command_prints_the_report_and_says_findings_by_its_exit_status(api, tmp_path):
    edges = tmp_path / "edges.json"
    edges.write_text(json.dumps(EDGES))
    table = chaosmesh(api, tmp_path, "policy", "report", "-n", NAMESPACE, "--edges", edges)
    assert table.returncode == 1, table.stderr
    assert "productpage.bookinfo -> reviews.bookinfo -> ratings.bookinfo  3 x 3     9" in (
        table.stdout
    )
    as_json = chaosmesh(
        api, tmp_path, "policy", "report", "-n", NAMESPACE, "--edges", edges, "--json"
    )
    report = json.loads(as_json.stdout)
    assert report["max_amplification"] == 9
    assert {f["kind"] for f in report["findings"]} == {"no_circuit_breaker", "no_outlier_detection"}
    bad = chaosmesh(api, tmp_path, "policy", "report", "-n", NAMESPACE, "--window", "soon")
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr


def probe(name, func, tolerance, **arguments):
    return {
        "type": "probe",
        "name": name,
        "tolerance": tolerance,
        "provider": {
            "type": "python",
            "module": PROBES,
            "func": func,
            "arguments": {"namespaces": [NAMESPACE], "edges": EDGES, **arguments},
        },
    }


def test_chaos_run_asserts_the_prediction_in_a_steady_state_hypothesis(api, tmp_path):
    experiment = {
        "title": "Bookinfo's retries multiply to 9 at ratings, and nothing is inverted",
        "description": "the policy report's predictions as a steady-state hypothesis",
        "controls": [LENIENT_CONTROL],
        "steady-state-hypothesis": {
            "title": "predictions",
            "probes": [
                probe(
                    "nine-attempts-at-ratings",
                    "max_amplification",
                    {"type": "range", "range": [9, 9]},
                    entry="productpage",
                    leaf="ratings",
                ),
                # Chaos Toolkit's list tolerance: the output is one of its items, here [].
                probe("no-inversion", "policy_findings", [[]], kind="timeout_inversion"),
            ],
        },
        "method": [SYSTEM_OK],
    }
    path = tmp_path / "experiment.json"
    path.write_text(json.dumps(experiment))
    result = chaos(api, tmp_path, "run", "--journal-path", str(tmp_path / "journal.json"), path)
    journal = json.loads((tmp_path / "journal.json").read_text())
    assert journal["steady_states"]["before"]["steady_state_met"], result.stderr
    outputs = [p["output"] for p in journal["steady_states"]["before"]["probes"]]
    assert outputs == [9, []]
