"""What a fault hit, counted by the real Envoy, as a user meets it: `chaos run` with the control
on Bookinfo, then `chaosmesh gate` on the journal.

A fault can be injected and seen live and still meet none of the experiment's traffic. The
journal says how many of the experiment's requests each fault hit; a fault that hit nothing
fails the gate, and `chaos run` itself exits 1.
"""

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.conftest import NAMESPACE, ROOT, python_activity
from tests.e2e.test_chaos_run import CHAOS, CONTROL, environment

pytestmark = pytest.mark.slow

CHAOSMESH = str(Path(sys.executable).parent / "chaosmesh")


def page_probe(name, user=None, pages=5, timeout_s=15.0):
    """The Bookinfo experiments' steady-state probe: ``pages`` loads of the product page, as
    ``user``; every one must render whole."""
    arguments = {"url": "${productpage_url}", "pages": pages, "timeout_s": timeout_s}
    return {
        "type": "probe",
        "name": name,
        "tolerance": {"type": "range", "range": [1.0, 1.0], "target": "whole_share"},
        "provider": {
            "type": "python",
            "module": "chaosmesh_py.observe.probes",
            "func": "bookinfo_page",
            "arguments": {**arguments, **({"user": user} if user else {})},
        },
    }


def bookinfo_experiment(tmp_path, probes, method):
    path = tmp_path / "experiment.json"
    path.write_text(
        json.dumps(
            {
                "title": "what the fault hit",
                "description": "Bookinfo on the local mesh",
                "configuration": {
                    "productpage_url": {"type": "env", "key": "PRODUCTPAGE_URL"},
                },
                "controls": [CONTROL],
                "steady-state-hypothesis": {"title": "the page renders", "probes": probes},
                "method": method,
            }
        )
    )
    return path


def chaos_run(mesh, tmp_path, experiment):
    return subprocess.run(
        [
            *(CHAOS, "--no-version-check", "--log-file", tmp_path / "chaostoolkit.log"),
            *("run", "--journal-path", tmp_path / "journal.json", experiment),
        ],
        cwd=ROOT,
        env={**environment(mesh.api, tmp_path), "PRODUCTPAGE_URL": mesh.info()["ingress_url"]},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def gate(mesh, tmp_path, *paths):
    done = subprocess.run(
        [
            *(CHAOSMESH, "gate", "--journal-dir", tmp_path / "journals"),
            *("--json", tmp_path / "report.json", "--junit", tmp_path / "report.xml", *paths),
        ],
        cwd=tmp_path,
        env=environment(mesh.api, tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    (row,) = json.loads((tmp_path / "report.json").read_text())
    return done, row


def test_a_delay_on_a_route_the_page_never_takes_tested_nothing(mesh, tmp_path):
    # The delay is narrowed to testers; the page is loaded as jason, whose requests to ratings
    # carry end-user: jason. Injected, seen live, and never met by the experiment's traffic.
    delay = python_activity(
        "delay-ratings-for-testers",
        "chaosmesh_py.faults.actions",
        "inject_delay",
        virtual_service="ratings",
        namespace=NAMESPACE,
        fixed_delay="2s",
        percentage=100,
        headers={"end-user": {"prefix": "test"}},
    )
    experiment = bookinfo_experiment(
        tmp_path, [page_probe("page-whole-for-jason", user="jason")], [delay]
    )

    done = chaos_run(mesh, tmp_path, experiment)
    assert done.returncode == 1, done.stderr[-3000:]
    journal = json.loads((tmp_path / "journal.json").read_text())
    (injection,) = journal["run"]
    # Seen on real traffic with a header the prefix matches, not by configuration only.
    assert injection["output"]["effect"]["traffic"].endswith("sidecar"), injection["output"]
    assert "traffic_s" in injection["output"]["effect"]
    (route,) = injection["output"]["fault_routes"]
    (fault,) = journal["chaosmesh"]["faults"]
    assert (fault["activity"], fault["hits"], fault["requests"]) == (
        "delay-ratings-for-testers",
        0,
        0,
    )
    assert fault["by_route"] == {route: 0}
    assert fault["counted"].startswith("local mesh: Envoy's request counters")
    # chaos run's own output says why it exits 1.
    assert "chaosmesh: verdict FAIL" in done.stderr
    assert "tested nothing" in done.stderr

    graded, row = gate(mesh, tmp_path, tmp_path / "journal.json")
    assert graded.returncode == 1, graded.stdout
    assert row["outcome"] == "fail"
    assert row["reasons"] == [
        f"the fault of 'delay-ratings-for-testers' tested nothing: it hit 0 requests on {route} "
        "of bookinfo/ratings during the run; 0 request(s) took those routes (does the "
        "experiment's traffic match the fault's route and narrowing?)"
    ]
    assert row["faults"][0]["hits"] == 0


def test_an_abort_for_jason_counts_the_pages_loaded_as_jason(mesh, tmp_path):
    abort = python_activity(
        "abort-ratings-for-jason",
        "chaosmesh_py.faults.actions",
        "inject_abort",
        virtual_service="ratings",
        namespace=NAMESPACE,
        http_status=500,
        percentage=100,
        headers={"end-user": "jason"},
    )
    pages = 7
    experiment = bookinfo_experiment(
        tmp_path,
        [page_probe("page-whole-for-others")],
        # Each page jason loads asks ratings once: one hit each. Method probes have no
        # tolerance; the gate asks only that they ran.
        [abort, page_probe("pages-as-jason", user="jason", pages=pages)],
    )

    done = chaos_run(mesh, tmp_path, experiment)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "chaosmesh: verdict pass" in done.stderr
    journal = json.loads((tmp_path / "journal.json").read_text())
    route = journal["run"][0]["output"]["fault_routes"][0]
    (fault,) = journal["chaosmesh"]["faults"]
    # Exactly the experiment's requests: the effect check's own request is not among them.
    assert (fault["hits"], fault["requests"], fault["by_route"]) == (pages, pages, {route: pages})
    assert journal["run"][1]["output"]["errors"] == {"ratings": pages}

    graded, row = gate(mesh, tmp_path, tmp_path / "journal.json")
    assert graded.returncode == 0, graded.stdout
    assert row["outcome"] == "pass"
    assert row["faults"][0]["hits"] == pages
    (case,) = ET.parse(tmp_path / "report.xml").getroot()[0].findall("testcase")
    (hits,) = case.find("properties").findall("property")
    assert (hits.get("name"), hits.get("value")) == ("hits:abort-ratings-for-jason", str(pages))
    assert f"hit {pages} request(s)" in case.find("system-out").text


def test_a_delay_still_holding_the_page_when_the_run_ends_is_counted(mesh, tmp_path):
    # The page probe gives up after 1 s; the delay holds jason's request to ratings for 3 s.
    # Envoy counts a request when it ends: the count waits for it instead of missing it.
    delay = python_activity(
        "delay-ratings-for-jason",
        "chaosmesh_py.faults.actions",
        "inject_delay",
        virtual_service="ratings",
        namespace=NAMESPACE,
        fixed_delay="3s",
        percentage=100,
        headers={"end-user": "jason"},
    )
    experiment = bookinfo_experiment(
        tmp_path,
        [page_probe("page-whole-for-others")],
        [delay, page_probe("impatient-jason", user="jason", pages=1, timeout_s=1)],
    )
    chaos_run(mesh, tmp_path, experiment)
    journal = json.loads((tmp_path / "journal.json").read_text())
    # It gave up (the probe fails: the verdict says so), and the fault did hit its request.
    assert "PageUnreachable" in journal["run"][1]["exception"][-1]
    (fault,) = journal["chaosmesh"]["faults"]
    assert (fault["hits"], fault["requests"]) == (1, 1)
    assert not any("tested nothing" in r for r in journal["chaosmesh"]["verdict"]["reasons"])


def test_an_abort_then_a_routing_edit_of_its_route_counts_the_hits_on_the_composed_copy(
    mesh, tmp_path
):
    # After the abort, the run mirrors ratings for everyone: jason's requests now take the copy
    # composed onto the abort's (jason, aborted, mirrored), which the fault's count follows.
    abort = python_activity(
        "abort-ratings-for-jason",
        "chaosmesh_py.faults.actions",
        "inject_abort",
        virtual_service="ratings",
        namespace=NAMESPACE,
        http_status=500,
        percentage=100,
        headers={"end-user": "jason"},
    )
    mirror = python_activity(
        "mirror-ratings",
        "chaosmesh_py.traffic.actions",
        "mirror_traffic",
        virtual_service="ratings",
        namespace=NAMESPACE,
        percentage=100,
        subset="v1",
    )
    pages = 4
    experiment = bookinfo_experiment(
        tmp_path,
        [page_probe("page-whole-for-others")],
        [abort, mirror, page_probe("pages-as-jason", user="jason", pages=pages)],
    )

    done = chaos_run(mesh, tmp_path, experiment)
    assert done.returncode == 0, done.stderr[-3000:]
    journal = json.loads((tmp_path / "journal.json").read_text())
    (abort_copy,) = journal["run"][0]["output"]["fault_routes"]
    composed = journal["run"][1]["output"]["composed"]
    ((on_top, base),) = composed.items()
    assert base == abort_copy
    (fault,) = journal["chaosmesh"]["faults"]
    assert (fault["hits"], fault["by_route"]) == (pages, {abort_copy: 0, on_top: pages})
    assert (fault["routes"], fault["composed_routes"]) == ([abort_copy], [on_top])
    assert "chaosmesh: verdict pass" in done.stderr
    assert journal["run"][2]["output"]["errors"] == {"ratings": pages}
