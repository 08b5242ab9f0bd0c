"""Ownership is what a run recorded, never a name: the defects of issue 8 item 1, as users hit them.

A user's VirtualService whose routes happen to be named ``chaosmesh-…`` must survive every
clean-up; two runs whose ids share a prefix must not remove each other's faults; a run id or a
namespace that is not one is refused before anything is read or written.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from chaosmesh_py.engine import cleanup, ledger
from chaosmesh_py.errors import InvalidInput
from chaosmesh_py.faults.actions import inject_abort, inject_delay
from chaosmesh_py.kube import Kube
from tests.conftest import NAMESPACE, ROOT, leftover_faults
from tests.integration.test_cleanup import chaosmesh
from tests.integration.test_inject_rollback import V1, exact, read

REAPER_COMMAND = next(
    d
    for d in yaml.safe_load_all((ROOT / "deploy/reaper.yaml").read_text())
    if d["kind"] == "CronJob"
)["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["command"]


def dashboard(api):
    """A user's VirtualService whose routes are named like chaosmesh's, with a user annotation."""
    return api.create(
        {
            "apiVersion": V1,
            "kind": "VirtualService",
            "metadata": {
                "name": "dash",
                "namespace": NAMESPACE,
                "annotations": {"chaosmesh-dash/owner": "team-dash"},
            },
            "spec": {
                "hosts": ["ratings"],
                "http": [
                    {
                        "name": "chaosmesh-dash-canary",
                        "match": [{"headers": {"x-canary": {"exact": "1"}}}],
                        "route": [{"destination": {"host": "ratings", "subset": "v2"}}],
                    },
                    {
                        "name": "chaosmesh-dash-stable",
                        "route": [{"destination": {"host": "ratings", "subset": "v1"}}],
                    },
                ],
            },
        }
    )


@pytest.mark.parametrize(
    "command",
    [["reap"], ["halt"], ["halt", "-n", NAMESPACE], REAPER_COMMAND[1:]],
    ids=["reap", "halt", "halt-n", "deploy-reaper"],
)
def test_a_user_s_chaosmesh_named_routes_survive_every_clean_up(api, command):
    dashboard(api)
    before = exact(read(api, "dash"))
    done = chaosmesh(*command)
    assert done.returncode == 0, done.stdout + done.stderr
    assert exact(read(api, "dash")) == before


def test_the_deploy_reaper_command_in_its_own_process_leaves_user_routes(api):
    dashboard(api)
    before = exact(read(api, "dash"))
    script = Path(sys.executable).parent / REAPER_COMMAND[0]
    done = subprocess.run(
        [script, *REAPER_COMMAND[1:]], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert exact(read(api, "dash")) == before


def test_a_user_s_chaosmesh_named_routes_survive_a_run_on_the_same_resource(api):
    dashboard(api)
    configuration = {"chaosmesh_run_id": "dash"}  # even a run whose id is in their names
    report = inject_abort(
        virtual_service="dash",
        namespace=NAMESPACE,
        http_status=503,
        percentage=50,
        configuration=configuration,
    )
    # Both user routes forward traffic: both are targets, neither is mistaken for a copy.
    assert len(report["routes"]) == 2
    names = [r["name"] for r in read(api, "dash")["spec"]["http"]]
    assert names.count("chaosmesh-dash-canary") == names.count("chaosmesh-dash-stable") == 1
    assert chaosmesh("rollback", "--run", "dash").returncode == 0
    assert [r["name"] for r in read(api, "dash")["spec"]["http"]] == [
        "chaosmesh-dash-canary",
        "chaosmesh-dash-stable",
    ]


def legacy_fault(api, run_id, route_name):
    """A fault copy and owner record as the previous release wrote them (hyphens allowed)."""
    ratings = read(api)
    original = ratings["spec"]["http"][0]
    fault_copy = {
        **original,
        "name": route_name,
        "fault": {"abort": {"httpStatus": 503, "percentage": {"value": 100}}},
    }
    ratings["spec"]["http"] = [fault_copy, *ratings["spec"]["http"]]
    ratings["metadata"].setdefault("annotations", {})[f"fault.chaosmesh.io/{run_id}"] = json.dumps(
        {"expires": "2099-01-01T00:00:00+00:00", "routes": [route_name]}
    )
    api.replace(ratings)


def test_rolling_back_run_ci_leaves_run_ci_nightly_s_faults(api, ledger_dir):
    # Run "ci-nightly" of the previous release still has a live fault on ratings.
    legacy_fault(api, "ci-nightly", "chaosmesh-ci-nightly-0a1b2c3d4e")
    inject_delay(
        virtual_service="ratings",
        namespace=NAMESPACE,
        fixed_delay="1s",
        percentage=10,
        allow_other_runs=True,
        configuration={"chaosmesh_run_id": "ci"},
    )
    done = chaosmesh("rollback", "--run", "ci", "--json")
    assert done.returncode == 0, done.stderr
    names = [r["name"] for r in read(api)["spec"]["http"]]
    assert "chaosmesh-ci-nightly-0a1b2c3d4e" in names
    assert not [n for n in names if n.startswith("chaosmesh-ci-") and "nightly" not in n]
    # Its own record still names it: halt removes it, by that record.
    assert chaosmesh("halt").returncode == 0
    assert "chaosmesh-ci-nightly-0a1b2c3d4e" not in [r["name"] for r in read(api)["spec"]["http"]]


def test_runs_whose_ids_share_a_prefix_keep_their_own_faults(api):
    for run_id in ("ci", "cinightly"):
        inject_delay(
            virtual_service="ratings",
            namespace=NAMESPACE,
            fixed_delay="1s",
            percentage=10,
            headers={"end-user": run_id},
            allow_other_runs=True,
            configuration={"chaosmesh_run_id": run_id},
        )
    assert chaosmesh("rollback", "--run", "ci").returncode == 0
    left = read(api)["metadata"]["annotations"]
    assert list(left) == ["fault.chaosmesh.io/cinightly"]
    assert len(read(api)["spec"]["http"]) == 2
    assert chaosmesh("rollback", "--run", "cinightly").returncode == 0


@pytest.mark.parametrize("run_id", ["ci-nightly", "CI", "a" * 25, "../../x", "ci.nightly"])
def test_a_run_id_that_could_collide_or_escape_is_refused(api, run_id):
    with pytest.raises(Exception, match="chaosmesh_run_id") as raised:
        inject_delay(
            virtual_service="ratings",
            namespace=NAMESPACE,
            fixed_delay="1s",
            percentage=10,
            configuration={"chaosmesh_run_id": run_id},
        )
    assert "InvalidInput" in str(raised.value) or isinstance(raised.value, InvalidInput)
    assert leftover_faults(api) == []


def test_a_run_id_from_the_environment_is_checked_too(api, monkeypatch):
    monkeypatch.setenv("CHAOSMESH_RUN_ID", "ci-nightly")
    with pytest.raises(Exception, match="CHAOSMESH_RUN_ID"):
        inject_delay(
            virtual_service="ratings",
            namespace=NAMESPACE,
            fixed_delay="1s",
            percentage=10,
            configuration={},
        )


def test_rollback_run_outside_the_ledger_directory_is_refused_and_nothing_is_touched(
    api, ledger_dir
):
    # A ledger planted two levels up: `--run ../../x` used to read it and append to it.
    outside = ledger_dir.parent.parent / "x.jsonl"
    planted = ledger.Ledger(ledger_dir.parent.parent, "x")
    planted.close(api.url)
    before = outside.read_bytes()
    try:
        done = chaosmesh("rollback", "--run", "../../x")
        assert done.returncode == 2, done.stdout
        assert "--run" in done.stderr and "Traceback" not in done.stderr
        assert outside.read_bytes() == before
    finally:
        outside.unlink()


def test_a_ledger_path_that_leads_outside_its_directory_is_refused(api, ledger_dir, tmp_path):
    elsewhere = tmp_path / "elsewhere.jsonl"
    elsewhere.write_text("")
    (ledger_dir / "abc.jsonl").symlink_to(elsewhere)
    done = chaosmesh("rollback", "--run", "abc")
    assert done.returncode == 2, done.stdout
    assert "outside" in done.stderr
    assert elsewhere.read_text() == ""


@pytest.mark.parametrize("command", ["halt", "reap"])
@pytest.mark.parametrize("namespace", ["../..", "Bookinfo", "a/b", "", "x" * 64])
def test_a_namespace_that_is_not_one_exits_2_naming_the_fix(api, command, namespace):
    inject_delay(
        virtual_service="ratings",
        namespace=NAMESPACE,
        fixed_delay="1s",
        percentage=10,
        configuration={"chaosmesh_run_id": "keep"},
    )
    done = chaosmesh(command, "-n", namespace)
    assert done.returncode == 2, done.stdout
    assert "-n" in done.stderr and "namespace name" in done.stderr
    assert "Traceback" not in done.stderr
    assert len(leftover_faults(api)) == 2  # nothing was removed
    cleanup.halt(Kube.connect())


@pytest.mark.parametrize("run_id", ["ci-nightly", "../../x", "X"])
def test_rollback_run_that_is_not_a_run_id_exits_2(api, run_id):
    done = chaosmesh("rollback", "--run", run_id)
    assert done.returncode == 2
    assert "--run" in done.stderr and "run id" in done.stderr
