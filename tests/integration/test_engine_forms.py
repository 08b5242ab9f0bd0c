"""Field overrides and owned objects through the API double, end to end: the control's rollback,
reap at expiry, halt, `chaosmesh rollback --run` after a kill, other writers, conflicts."""

import json
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
import yaml
from chaoslib.exceptions import ActivityFailed

from chaosmesh_py.control import roll_back
from chaosmesh_py.engine import cleanup, ledger
from chaosmesh_py.engine.run import run_for
from chaosmesh_py.kube import Kube
from chaosmesh_py.localmesh.apiserver import ApiFault, ApiServer
from tests.conftest import ISTIO_CRDS, NAMESPACE, ROOT, leftover_faults
from tests.engine_activities import create_object, override_field
from tests.integration.test_cleanup import chaosmesh, chaosmesh_process
from tests.integration.test_inject_rollback import exact

V1 = "networking.istio.io/v1"
SECURITY = "security.istio.io/v1"
POOL = "spec.trafficPolicy.connectionPool"
TIGHT = {"tcp": {"maxConnections": 1}, "http": {"http1MaxPendingRequests": 1}}
DENY = {
    "selector": {"matchLabels": {"app": "ratings"}},
    "action": "DENY",
    "rules": [{"to": [{"operation": {"paths": ["/ratings/*"]}}]}],
}


def rule(api, name="reviews"):
    return api.get(V1, "DestinationRule", NAMESPACE, name)


def policies(api):
    return api.list(SECURITY, "AuthorizationPolicy", NAMESPACE)


def tighten(configuration, name="reviews"):
    return override_field("DestinationRule", name, NAMESPACE, POOL, TIGHT, configuration)


def deny(configuration, spec=DENY):
    return create_object("AuthorizationPolicy", NAMESPACE, spec, configuration)


def test_override_and_object_are_rolled_back_exactly_by_the_control(api, configuration):
    before = exact(rule(api))
    overridden = tighten(configuration)
    assert overridden["in_place"] and overridden["replaced"] is None
    assert rule(api)["spec"]["trafficPolicy"] == {"connectionPool": TIGHT}
    created = deny(configuration)
    (policy,) = policies(api)
    assert policy["metadata"]["uid"] == created["uid"]
    assert policy["spec"] == DENY
    # Asked again (a retried activity): nothing new.
    assert tighten(configuration)["api_attempts"] == 1
    assert deny(configuration)["created"] is False
    assert len(policies(api)) == 1

    summary = roll_back(run_for(configuration))
    assert summary["rollback_complete"], summary
    assert exact(rule(api)) == before
    assert policies(api) == []
    deleted = [r for r in summary["rollback"] if r.get("deleted")]
    assert [r["resource"] for r in deleted] == [created["resource"]]


def test_reap_restores_expired_fields_and_deletes_expired_objects_without_a_ledger(api, ledger_dir):
    before = {name: exact(rule(api, name)) for name in ("reviews", "ratings")}
    short = {"chaosmesh_run_id": "shortlived", "chaosmesh_ttl_s": 60}
    long = {"chaosmesh_run_id": "longlived", "chaosmesh_ttl_s": 3600}
    tighten(short)
    deny(short)
    tighten(long, "ratings")
    for path in ledger_dir.iterdir():
        path.unlink()
    kube = Kube.connect()
    report = cleanup.reap(kube, now=datetime.now(UTC) + timedelta(minutes=2))
    assert report.complete, report
    removed = {r["resource"].split()[0]: r for r in report.removed}
    assert sorted(removed) == ["AuthorizationPolicy", "DestinationRule"]
    assert removed["DestinationRule"]["fields"] == ["spec.trafficPolicy.connectionPool"]
    assert removed["AuthorizationPolicy"]["deleted"] is True
    assert all(r["run_ids"] == ["shortlived"] for r in report.removed)
    assert exact(rule(api)) == before["reviews"]
    assert policies(api) == []
    assert [f.split(":")[0] for f in leftover_faults(api)] == [f"{NAMESPACE}/ratings"] * 2
    assert cleanup.reap(kube).removed == []  # "longlived" has an hour to go
    cleanup.reap(kube, now=datetime.now(UTC) + timedelta(hours=2))
    assert exact(rule(api, "ratings")) == before["ratings"]


def policies_named(api):
    return [p["metadata"]["name"] for p in policies(api)]


def test_halt_removes_every_form_of_every_run_and_says_so(api):
    before = exact(rule(api))
    tighten({"chaosmesh_run_id": "halta"})
    deny({"chaosmesh_run_id": "haltb"})
    done = chaosmesh("halt", "--json")
    assert done.returncode == 0, done.stdout
    report = json.loads(done.stdout)["halt"]
    assert report["complete"] and report["kinds_not_served"] == []
    by_resource = {r["resource"]: r for r in report["removed"]}
    assert by_resource[f"DestinationRule {NAMESPACE}/reviews"]["fields"] == [
        "spec.trafficPolicy.connectionPool"
    ]
    assert next(r for r in report["removed"] if r.get("deleted"))["run_ids"] == ["haltb"]
    assert exact(rule(api)) == before and policies(api) == []
    human = chaosmesh("halt")
    assert "already clean" in human.stdout


def test_rollback_from_the_ledger_after_a_kill_restores_fields_and_deletes_objects(
    api, ledger_dir, tmp_path
):
    before = exact(rule(api))
    program = (
        "import os, signal\n"
        "from tests.engine_activities import create_object, override_field\n"
        "configuration = {'chaosmesh_run_id': 'killed'}\n"
        f"override_field('DestinationRule', 'reviews', {NAMESPACE!r}, {POOL!r}, {TIGHT!r},"
        " configuration)\n"
        f"create_object('AuthorizationPolicy', {NAMESPACE!r}, {DENY!r}, configuration)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "KUBECONFIG": str(tmp_path / "none"),
        "KUBERNETES_HOST": api.url,
    }
    killed = subprocess.run(
        [sys.executable, "-c", program],
        env=env,
        cwd=ROOT,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert len(leftover_faults(api)) == 4  # field + record, object + its record

    done = chaosmesh_process("rollback", "--run", "killed", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)["killed"]
    assert report["complete"] and report["closed"] == "rolled back completely"
    assert exact(rule(api)) == before and policies(api) == []
    assert ledger.is_closed(ledger.Ledger(ledger_dir, "killed").entries())


def test_other_writers_edits_to_the_same_objects_are_kept(api, configuration):
    before = rule(api)
    tighten(configuration)
    created = deny(configuration)
    # Another writer, mid-run: a load balancer on the rule, a label on each object.
    api.patch(
        V1,
        "DestinationRule",
        NAMESPACE,
        "reviews",
        {
            "metadata": {"labels": {"team": "reviews"}},
            "spec": {"trafficPolicy": {"loadBalancer": {"simple": "ROUND_ROBIN"}}},
        },
    )
    summary = roll_back(run_for(configuration))
    assert summary["rollback_complete"]
    after = rule(api)
    assert after["spec"] == {
        **before["spec"],
        "trafficPolicy": {"loadBalancer": {"simple": "ROUND_ROBIN"}},
    }
    assert after["metadata"]["labels"] == {"team": "reviews"}
    assert not after["metadata"].get("annotations")
    assert created["name"] not in policies_named(api)


def test_a_field_another_writer_changed_is_kept_and_the_conflict_reported(api, configuration):
    tighten(configuration)
    theirs = {"tcp": {"maxConnections": 50}}
    api.patch(
        V1,
        "DestinationRule",
        NAMESPACE,
        "reviews",
        {"spec": {"trafficPolicy": {"connectionPool": theirs}}},
    )
    run_id = configuration["chaosmesh_run_id"]
    done = chaosmesh("rollback", "--run", run_id)
    assert done.returncode == 0, done.stdout
    assert (
        f"kept     DestinationRule {NAMESPACE}/reviews: spec.trafficPolicy.connectionPool was "
        f"changed by another writer after run {run_id} set it; their value stays" in done.stdout
    )
    after = rule(api)
    # Their merge patch kept our http settings beside their tcp ones: the field is theirs now.
    assert after["spec"]["trafficPolicy"]["connectionPool"] == {**TIGHT, **theirs}
    assert not after["metadata"].get("annotations")
    as_json = chaosmesh("rollback", "--run", run_id, "--json")
    assert json.loads(as_json.stdout)[run_id]["conflicts"] == []  # reported once, then done


def test_an_object_someone_replaced_before_our_delete_is_left(api, configuration):
    created = deny(configuration)
    name = created["name"]

    def replace_it(server):
        server.delete(SECURITY, "AuthorizationPolicy", NAMESPACE, name)
        server.create(
            {
                "apiVersion": SECURITY,
                "kind": "AuthorizationPolicy",
                "metadata": {"name": name, "namespace": NAMESPACE},
                "spec": {"action": "ALLOW"},
            }
        )

    api.inject(ApiFault(method="DELETE", path=name, concurrent_write=replace_it))
    summary = roll_back(run_for(configuration))
    assert summary["rollback_complete"]
    (left,) = policies(api)
    assert left["spec"] == {"action": "ALLOW"} and left["metadata"]["uid"] != created["uid"]
    deletes = [r for r in api.request_log if r.method == "DELETE"]
    assert [r.status for r in deletes] == [409]  # the uid precondition held
    api.delete(SECURITY, "AuthorizationPolicy", NAMESPACE, name)


def test_objects_chaosmesh_did_not_create_are_never_touched(api, configuration):
    for name, spec in (
        ("deny-all", {}),
        ("chaosmesh-dash-policy", {"action": "ALLOW"}),
        ("chaosmesh-ci-0123456789ab", {"action": "ALLOW"}),  # shaped like ours
    ):
        api.create(
            {
                "apiVersion": SECURITY,
                "kind": "AuthorizationPolicy",
                "metadata": {"name": name, "namespace": NAMESPACE},
                "spec": spec,
            }
        )
    before = sorted(json.dumps(p["spec"]) + p["metadata"]["uid"] for p in policies(api))
    for command in (["halt", "--json"], ["reap", "--json"]):
        done = chaosmesh(*command)
        assert done.returncode == 0, done.stdout
        unproven = json.loads(done.stdout)[command[0]]["unproven"]
        assert [u.get("object") for u in unproven] == ["chaosmesh-ci-0123456789ab"]
    assert sorted(json.dumps(p["spec"]) + p["metadata"]["uid"] for p in policies(api)) == before
    for name in ("deny-all", "chaosmesh-dash-policy", "chaosmesh-ci-0123456789ab"):
        api.delete(SECURITY, "AuthorizationPolicy", NAMESPACE, name)


def test_an_object_of_our_name_that_is_not_ours_is_refused_and_left(api, configuration):
    name = deny(configuration)["name"]
    ours = next(p for p in policies(api) if p["metadata"]["name"] == name)
    api.delete(SECURITY, "AuthorizationPolicy", NAMESPACE, name)
    # Someone else's object under that name: not our record, not our content.
    impostor = {**ours, "metadata": {"name": name, "namespace": NAMESPACE}}
    impostor["spec"] = {**DENY, "action": "AUDIT"}
    api.create(impostor)
    with pytest.raises(ActivityFailed, match="not this run's"):
        deny(configuration)
    assert roll_back(run_for(configuration))["rollback_complete"]
    assert name in policies_named(api)  # not ours by record: left, even with our name
    api.delete(SECURITY, "AuthorizationPolicy", NAMESPACE, name)


def test_kinds_the_server_does_not_serve_are_skipped(tmp_path, monkeypatch):
    only_virtual_services = [
        d
        for d in yaml.safe_load_all(ISTIO_CRDS.read_text())
        if d and d.get("metadata", {}).get("name") == "virtualservices.networking.istio.io"
    ]
    crds = tmp_path / "crds.yaml"
    crds.write_text(yaml.safe_dump_all(only_virtual_services))
    with ApiServer(crd_paths=[crds]) as small:
        monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))
        monkeypatch.setenv("KUBERNETES_HOST", small.url)
        done = chaosmesh("halt", "--json")
    assert done.returncode == 0, done.stdout
    report = json.loads(done.stdout)["halt"]
    assert report["complete"]
    assert "destinationrules.networking.istio.io" in report["kinds_not_served"]
    assert "authorizationpolicies.security.istio.io" in report["kinds_not_served"]


def test_what_a_tool_stripped_the_records_from_is_removed_by_the_run_s_ledger_alone(
    api, configuration
):
    before = exact(rule(api))
    tighten(configuration)
    created = deny(configuration)
    # A tool drops every annotation it does not know, and edits the policy: no record is left
    # on either object, and the policy's content no longer proves it ours.
    for kind, version, name in (
        ("DestinationRule", V1, "reviews"),
        ("AuthorizationPolicy", SECURITY, created["name"]),
    ):
        current = api.get(version, kind, NAMESPACE, name)
        current["metadata"].pop("annotations")
        if kind == "AuthorizationPolicy":
            current["spec"]["action"] = "AUDIT"
        api.replace(current)
    # Without records, halt and reap leave both alone (the policy is reported as unproven).
    halted = json.loads(chaosmesh("halt", "--json").stdout)["halt"]
    assert halted["removed"] == [] and [u.get("object") for u in halted["unproven"]] == [
        created["name"]
    ]
    # The run's ledger names the field and the object's uid: its rollback removes both.
    run_id = configuration["chaosmesh_run_id"]
    done = chaosmesh("rollback", "--run", run_id, "--json")
    report = json.loads(done.stdout)[run_id]
    assert done.returncode == 0 and report["complete"], done.stdout
    assert exact(rule(api)) == before
    assert policies(api) == []


def test_runs_whose_ids_share_a_prefix_keep_their_own_fields_and_objects(api):
    before = {name: exact(rule(api, name)) for name in ("reviews", "ratings")}
    ci, nightly = {"chaosmesh_run_id": "ci"}, {"chaosmesh_run_id": "cinightly"}
    tighten(ci, "ratings")
    ci_policy = deny(ci)["name"]
    tighten(nightly, "reviews")
    nightly_policy = deny(nightly, {**DENY, "rules": [{"to": [{"operation": {"paths": ["/"]}}]}]})
    nightly_policy = nightly_policy["name"]

    done = chaosmesh_process("rollback", "--run", "ci", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert exact(rule(api, "ratings")) == before["ratings"]
    assert rule(api, "reviews")["spec"]["trafficPolicy"] == {"connectionPool": TIGHT}
    assert policies_named(api) == [nightly_policy] and ci_policy != nightly_policy

    assert roll_back(run_for(nightly))["rollback_complete"]
    assert exact(rule(api, "reviews")) == before["reviews"]
    assert policies(api) == []
