"""The ledger, and clean-up from outside a run: `chaosmesh rollback`, `halt`, `reap`."""

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from chaoslib.exceptions import ActivityFailed
from click.testing import CliRunner

from chaosmesh_py.cli import main
from chaosmesh_py.control import roll_back as control_roll_back
from chaosmesh_py.engine import cleanup, ledger
from chaosmesh_py.engine.run import run_for
from chaosmesh_py.errors import ConflictPersisted
from chaosmesh_py.faults import injection
from chaosmesh_py.faults.actions import inject_abort, inject_delay
from chaosmesh_py.istio.fault import Delay
from chaosmesh_py.istio.route_copy import Injection, plan_injection
from chaosmesh_py.kube import Kube, ResourceRef, virtual_service_kind
from chaosmesh_py.localmesh.apiserver import ApiFault
from tests.conftest import NAMESPACE, leftover_faults
from tests.integration.test_inject_rollback import delay_jason, exact, read

V1 = "networking.istio.io/v1"
KIND = virtual_service_kind()


def chaosmesh(*arguments, env=None):
    """The CLI in this process (output and exit status as a user sees them)."""
    result = CliRunner().invoke(main, list(arguments), env=env)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return subprocess.CompletedProcess(arguments, result.exit_code, result.stdout, result.stderr)


def chaosmesh_process(*arguments):
    """The CLI as another process, as from another shell."""
    script = Path(sys.executable).parent / "chaosmesh"
    return subprocess.run(
        [script, *arguments], check=False, capture_output=True, text=True, timeout=60
    )


def entries(ledger_dir, run_id):
    return ledger.Ledger(ledger_dir, run_id).entries()


def test_the_ledger_records_intent_with_the_prior_state_then_the_outcome(
    api, configuration, ledger_dir
):
    before = read(api)
    report = delay_jason(configuration)
    run_id = configuration["chaosmesh_run_id"]
    intent, outcome = entries(ledger_dir, run_id)
    assert (intent.event, intent.op, intent.api) == ("intent", "inject", api.url)
    assert (intent.ref.namespace, intent.ref.name) == (NAMESPACE, "ratings")
    assert intent.detail["prior"]["spec"] == before["spec"]
    assert intent.detail["patch"]["spec"]["http"][0]["name"] == report["routes"][0]
    assert (outcome.event, outcome.detail["result"]) == ("outcome", "applied")
    assert outcome.detail["routes"] == report["routes"]
    assert oct((ledger_dir / f"{run_id}.jsonl").stat().st_mode & 0o777) == "0o600"
    cleanup.roll_back_run(Kube.connect(), ledger_dir, run_id)


def test_a_secret_an_action_was_given_stays_out_of_the_ledger_and_rollback_still_works(
    api, configuration, ledger_dir
):
    """No control declared: the action's own secrets are hidden from the ledger it writes."""
    secret = "header-secret-5f0c1e"
    before = read(api)
    report = delay_jason(
        configuration, headers={"x-tester": secret}, secrets={"tester_token": secret}
    )
    run_id = configuration["chaosmesh_run_id"]
    assert secret in json.dumps(read(api)["spec"])  # the fault narrows on it
    text = (ledger_dir / f"{run_id}.jsonl").read_text()
    assert secret not in text
    intent = entries(ledger_dir, run_id)[0]
    assert intent.detail["patch"]["spec"]["http"][0]["match"] == [
        {"headers": {"x-tester": {"exact": "***"}}}
    ]
    done = chaosmesh_process("rollback", "--run", run_id, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)[run_id]["removed"][0]["routes"] == report["routes"]
    assert exact(read(api)) == exact(before)


def test_rollback_from_the_ledger_alone_restores_the_resource_exactly(
    api, configuration, ledger_dir
):
    before = {name: read(api, name) for name in ("ratings", "reviews")}
    delay_jason(configuration)
    inject_abort(
        virtual_service="reviews",
        namespace=NAMESPACE,
        http_status=503,
        percentage=50,
        configuration=configuration,
    )
    run_id = configuration["chaosmesh_run_id"]
    # Another process: the CLI with nothing but the ledger and the credentials.
    done = chaosmesh_process("rollback", "--run", run_id, "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)[run_id]
    assert sorted(r["resource"] for r in report["removed"]) == [
        f"VirtualService {NAMESPACE}/ratings",
        f"VirtualService {NAMESPACE}/reviews",
    ]
    assert report["routes_removed"] == 3 and report["complete"]  # reviews has two routes
    for name, resource in before.items():
        assert exact(read(api, name)) == exact(resource)
    assert ledger.is_closed(entries(ledger_dir, run_id))
    again = chaosmesh("rollback", "--run", run_id)
    assert again.returncode == 0, again.stderr
    assert "removed 0 route(s) from 0 resource(s), 2 already clean" in again.stdout


def test_a_write_whose_answer_was_lost_is_still_rolled_back(api, configuration, ledger_dir):
    before = read(api)

    def reads_fail_from_now_on(server):
        server.inject(ApiFault(method="GET", status=503, retry_after_s=0, times=99))

    # The write lands, its answer is lost, and the API stays down: the run cannot know.
    api.inject(
        ApiFault(
            method="PATCH", path="ratings", drop="after", concurrent_write=reads_fail_from_now_on
        )
    )
    with pytest.raises(ActivityFailed, match="unavailable"):
        delay_jason(configuration)
    api.clear_faults()
    run_id = configuration["chaosmesh_run_id"]
    assert leftover_faults(api), "the dropped answer hid a write that landed"
    assert entries(ledger_dir, run_id)[-1].detail["result"] == "unknown"
    api.request_log.clear()
    report = cleanup.roll_back_run(Kube.connect(), ledger_dir, run_id)
    assert report.complete and report.route_count == 1
    assert exact(read(api)) == exact(before)
    # The outcome was unknown: a fence write first, so a straggler of the run cannot land.
    assert [r.method for r in api.request_log if r.method == "PATCH"] == ["PATCH", "PATCH"]


def test_a_fence_makes_a_write_still_in_flight_fail_instead_of_landing(
    api, configuration, ledger_dir
):
    kube = Kube.connect()
    ref = ResourceRef(KIND, NAMESPACE, "ratings")
    run = run_for(configuration)
    stale = kube.get(ref)
    before = exact(stale)
    # The rollback runs while the run's write (planned from `stale`) has not reached the server.
    injection.remove(kube, ref, run.run_id, fence=True)
    assert exact(read(api)) == before
    request = Injection(run.run_id, Delay(5000, 100.0), datetime.now(UTC) + timedelta(minutes=5))
    with pytest.raises(ConflictPersisted):
        kube.patch(ref, plan_injection(stale, request, False))
    assert exact(read(api)) == before


def test_a_line_torn_by_a_crash_is_skipped(api, configuration, ledger_dir):
    delay_jason(configuration)
    run_id = configuration["chaosmesh_run_id"]
    with (ledger_dir / f"{run_id}.jsonl").open("ab") as torn:
        torn.write(b'{"at": "2026-11-25T12:00:00", "event": "inte')
    report = cleanup.roll_back_run(Kube.connect(), ledger_dir, run_id)
    assert report.complete and report.route_count == 1


def test_rollback_of_an_unknown_run_names_the_runs_there_are(api, configuration, ledger_dir):
    delay_jason(configuration)
    run_id = configuration["chaosmesh_run_id"]
    done = chaosmesh("rollback", "--run", "nosuchrun")
    assert done.returncode == 2
    assert "--run" in done.stderr and run_id in done.stderr
    assert "Traceback" not in done.stderr
    assert chaosmesh("rollback", "--all").returncode == 0


def test_rollback_all_skips_runs_already_rolled_back(api, configuration, ledger_dir):
    delay_jason(configuration)
    done = chaosmesh("rollback", "--all", "--json")
    assert done.returncode == 0, done.stderr
    assert list(json.loads(done.stdout)) == [configuration["chaosmesh_run_id"]]
    assert json.loads(chaosmesh("rollback", "--all", "--json").stdout) == {}


def test_entries_for_another_api_are_reported_not_silently_dropped(api, configuration, ledger_dir):
    delay_jason(configuration)
    run_id = configuration["chaosmesh_run_id"]
    elsewhere = chaosmesh(
        "rollback", "--run", run_id, env={"KUBERNETES_HOST": "http://127.0.0.2:9"}
    )
    assert elsewhere.returncode == 3
    assert f"recorded for the API at {api.url}" in elsewhere.stdout
    assert not ledger.is_closed(entries(ledger_dir, run_id))
    assert chaosmesh("rollback", "--run", run_id).returncode == 0


def spread_faults(api, namespaces, configuration):
    """One delay on ratings in each namespace (a copy of Bookinfo's ratings VS)."""
    ratings = read(api)
    for namespace in namespaces:
        if namespace != NAMESPACE:
            api.create_namespace(namespace)
            api.create(
                {
                    "apiVersion": V1,
                    "kind": "VirtualService",
                    "metadata": {"name": "ratings", "namespace": namespace},
                    "spec": ratings["spec"],
                }
            )
        inject_delay(
            virtual_service="ratings",
            namespace=namespace,
            fixed_delay="1s",
            percentage=10,
            configuration=configuration,
        )


def test_halt_removes_every_run_s_faults_everywhere_and_nothing_else(api):
    user_edit = read(api, "reviews")
    user_edit["spec"]["http"][0]["timeout"] = "3s"
    api.replace(user_edit)
    originals = {}
    for index, namespace in enumerate(["team-a", "team-b", NAMESPACE]):
        spread_faults(api, [namespace], {"chaosmesh_run_id": f"halt{index}"})
    for namespace in ["team-a", "team-b", NAMESPACE]:
        originals[namespace] = json.loads(exact(read(api, namespace=namespace)))
    assert len(leftover_faults(api)) == 6  # a route and an annotation each
    done = chaosmesh("halt", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)["halt"]
    assert report["routes_removed"] == 3 and report["complete"]
    assert sorted(r["run_ids"][0] for r in report["removed"]) == ["halt0", "halt1", "halt2"]
    assert leftover_faults(api) == []
    assert read(api, "reviews")["spec"] == user_edit["spec"]
    for namespace, during in originals.items():
        after = read(api, namespace=namespace)
        assert after["spec"]["http"] == during["spec"]["http"][1:]
    assert "already clean" in chaosmesh("halt").stdout


def test_halt_in_one_namespace_leaves_the_others(api):
    spread_faults(api, ["team-a", NAMESPACE], {"chaosmesh_run_id": "halt9"})
    done = chaosmesh("halt", "-n", "team-a", "-n", "no-such-namespace")
    assert done.returncode == 0, done.stderr
    assert [f.split(":")[0] for f in leftover_faults(api)] == [f"{NAMESPACE}/ratings"] * 2
    cleanup.halt(Kube.connect())


def test_reap_removes_expired_edits_and_orphans_without_any_ledger(api, ledger_dir):
    spread_faults(api, ["team-a"], {"chaosmesh_run_id": "short", "chaosmesh_ttl_s": 60})
    spread_faults(api, [NAMESPACE], {"chaosmesh_run_id": "long", "chaosmesh_ttl_s": 3600})
    # A GitOps tool dropped run "orphan"'s annotation but kept its route copy.
    spread_faults(api, ["team-b"], {"chaosmesh_run_id": "orphan"})
    orphaned = read(api, namespace="team-b")
    orphaned["metadata"]["annotations"] = {}
    api.replace(orphaned)
    for path in ledger_dir.iterdir():
        path.unlink()
    kube = Kube.connect()
    in_two_minutes = datetime.now(UTC) + timedelta(minutes=2)
    report = cleanup.reap(kube, now=in_two_minutes)
    assert sorted(r["resource"] for r in report.removed) == [
        "VirtualService team-a/ratings",
        "VirtualService team-b/ratings",
    ]
    assert [f.split(":")[0] for f in leftover_faults(api)] == [f"{NAMESPACE}/ratings"] * 2
    assert cleanup.reap(kube).route_count == 0  # "long" has an hour to go
    done = chaosmesh("reap")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("reap: removed 0 route(s)")
    cleanup.reap(kube, now=datetime.now(UTC) + timedelta(hours=2))
    assert leftover_faults(api) == []


def test_halt_that_cannot_write_says_what_is_left_and_exits_3(api):
    spread_faults(api, [NAMESPACE], {"chaosmesh_run_id": "stuck"})
    api.inject(ApiFault(method="PATCH", path="ratings", status=403, times=99))
    done = chaosmesh("halt")
    assert done.returncode == 3
    assert f"LEFT     VirtualService {NAMESPACE}/ratings: forbidden: needs patch" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr
    api.clear_faults()
    assert chaosmesh("halt").returncode == 0


def test_no_injection_without_a_ledger_but_removal_goes_on(api, configuration, tmp_path):
    before = read(api)
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    configuration["chaosmesh_ledger_dir"] = str(blocked / "ledger")  # a file is in the way
    with pytest.raises(ActivityFailed, match=r"LedgerUnwritable: cannot write the ledger .*"):
        delay_jason(configuration)
    assert [r for r in api.request_log if r.method == "PATCH"] == []
    assert exact(read(api)) == exact(before)
    # The ledger breaks after the injection: the rollback must still happen.
    configuration["chaosmesh_run_id"] += "b"
    del configuration["chaosmesh_ledger_dir"]
    delay_jason(configuration)
    run_for(configuration).ledger.directory = blocked / "ledger"
    run_for(configuration).ledger.path = blocked / "ledger" / "x.jsonl"
    summary = control_roll_back(run_for(configuration))
    assert summary["rollback_complete"] is True
    assert exact(read(api)) == exact(before)


def test_closed_ledgers_are_pruned_after_30_days_open_ones_never(api, configuration, ledger_dir):
    month_ago = time.time() - 31 * 24 * 3600
    for run_id, closed in (("oldclosed", True), ("oldopen", False), ("newclosed", True)):
        old = ledger.Ledger(ledger_dir, run_id)
        old.intent("inject", api.url, ResourceRef(KIND, NAMESPACE, "ratings"), {})
        if closed:
            old.close(api.url)
        if run_id.startswith("old"):
            os.utime(old.path, (month_ago, month_ago))
    delay_jason(configuration)
    assert control_roll_back(run_for(configuration))["rollback_complete"]
    assert sorted(ledger.run_ids(ledger_dir)) == sorted(
        ["oldopen", "newclosed", configuration["chaosmesh_run_id"]]
    )
