"""Owned edits beside rollout controllers writing the same VirtualService (the doubles in
tests/rollout_writers.py), through the control's lifecycle as Chaos Toolkit calls it, against
the API double.

Argo Rollouts changes the weights of its named route every 100-200 ms: our edits are copies, so
its writes and ours only meet as 409s (each side re-reads), its weights are never lost and our
rollback never writes a weight back. Flagger rewrites the whole object: the run notices, says
"removed by another writer at T" in the results that follow, the probe, the rollback and the
journal, and never claims the fault is live.
"""

import logging
import threading
import time
from datetime import datetime, timedelta

import pytest

from chaosmesh_py import control
from chaosmesh_py.engine import cleanup, vanished
from chaosmesh_py.faults.actions import inject_abort
from chaosmesh_py.faults.probes import fault_is_injected
from chaosmesh_py.istio.owner_record import owner_key
from chaosmesh_py.kube import Kube
from chaosmesh_py.localmesh.apiserver import ApiFault
from chaosmesh_py.traffic.actions import mirror_traffic, shift_traffic
from tests.conftest import NAMESPACE
from tests.integration.test_inject_rollback import read
from tests.rollout_writers import ArgoLikeWriter, FlaggerLikeWriter


def slow_patch():
    """Our next write reaches the server 0.5 s late: Argo (a write every 0.1-0.2 s) writes
    meanwhile, even on a busy machine, so that write meets a 409 for sure (its retry, on
    time, lands)."""
    return ApiFault(method="PATCH", path="/virtualservices/reviews$", delay_s=0.5, times=1)


def canary_route(api):
    """Bookinfo's reviews with the stable and canary destinations Argo's route needs."""
    current = read(api, "reviews")
    route = next(r for r in current["spec"]["http"] if r["name"] == "everyone-to-v1")
    route["route"] = [
        {"destination": {"host": "reviews", "subset": "v1"}, "weight": 100},
        {"destination": {"host": "reviews", "subset": "v3"}, "weight": 0},
    ]
    api.replace(current)


def abort_for_jason(configuration, route_name="everyone-to-v1", virtual_service="reviews"):
    """A fault for jason on one route of reviews (None: on every route), or of another
    VirtualService."""
    return inject_abort(
        virtual_service=virtual_service,
        namespace=NAMESPACE,
        route_name=route_name,
        http_status=503,
        percentage=100,
        headers={"end-user": "jason"},
        configuration=configuration,
    )


def started_run():
    configuration = {}
    control.configure_control(configuration=configuration)
    control.before_method_control(context={}, configuration=configuration)
    return configuration


def wait_for_loss(run_id, timeout_s=10.0):
    deadline = time.monotonic() + timeout_s
    while not vanished.seen(run_id) and time.monotonic() < deadline:
        time.sleep(0.05)
    return vanished.seen(run_id)


def test_argo_weights_are_never_lost_nor_restored_stale(api):
    canary_route(api)
    configuration = started_run()
    with ArgoLikeWriter(api.url, NAMESPACE, "reviews", seed=7) as argo:
        time.sleep(0.3)
        api.inject(slow_patch())
        report = abort_for_jason(configuration)
        after_inject = {}
        control.after_activity_control(context={}, state=after_inject, configuration=configuration)
        # Live through Argo's writes: the copy and its record stay.
        for _ in range(8):
            assert fault_is_injected(
                virtual_service="reviews", namespace=NAMESPACE, configuration=configuration
            )
            time.sleep(0.1)
        control.after_method_control(configuration=configuration)
        journal = {"status": "completed"}
        api.inject(slow_patch())
        control.after_experiment_control(context={}, state=journal, configuration=configuration)
        time.sleep(0.3)  # Argo goes on after our rollback
    summary = journal["chaosmesh"]
    (removal,) = summary["rollback"]
    assert removal["removed"] == report["routes"]
    assert summary["removed_by_another_writer"] == []
    assert control.ACTIVITY_KEY not in after_inject

    # Argo's latest weights are in force; none of ours, no copy, no record.
    now = read(api, "reviews")
    last = argo.last_weights
    assert argo.weights_in(now) == {"everyone-to-v1": last}
    assert [r["name"] for r in now["spec"]["http"]] == ["jason-to-v2", "everyone-to-v1"]
    assert owner_key(configuration["chaosmesh_run_id"]) not in (
        now["metadata"].get("annotations") or {}
    )
    # Our writes met Argo's (a 409 each), re-read and re-planned: counted, in the outputs.
    print(
        f"\nbeside Argo: {len(argo.writes)} weight writes, {argo.conflicts} of its writes got "
        f"409; our inject {report['api_conflicts']} conflict(s) / {report['api_rereads']} "
        f"re-read(s), our rollback {removal['api_conflicts']} / {removal['api_rereads']}"
    )
    assert report["api_conflicts"] >= 1 and removal["api_conflicts"] >= 1
    assert report["api_rereads"] >= report["api_conflicts"]
    assert len(argo.writes) >= 8 and not argo.errors


def test_routing_edits_beside_argo_never_write_a_weight_back(api):
    """A canary step and a mirror of ours on Argo's route: while live, our copies carry our
    weights and Argo's original goes on changing; after the rollback only Argo's are left."""
    canary_route(api)
    configuration = started_run()
    with ArgoLikeWriter(api.url, NAMESPACE, "reviews", seed=11) as argo:
        time.sleep(0.3)
        api.inject(slow_patch())
        shifted = shift_traffic(
            weights={"v1": 90, "v3": 10},
            virtual_service="reviews",
            namespace=NAMESPACE,
            route_name="everyone-to-v1",
            headers={"end-user": "jason"},
            configuration=configuration,
        )
        mirrored = mirror_traffic(
            percentage=50,
            subset="v2",
            virtual_service="reviews",
            namespace=NAMESPACE,
            route_name="everyone-to-v1",
            configuration=configuration,
        )
        control.after_activity_control(context={}, state={}, configuration=configuration)
        writes_before = len(argo.writes)
        time.sleep(0.6)
        live = read(api, "reviews")
        control.after_method_control(configuration=configuration)
        journal = {"status": "completed"}
        control.after_experiment_control(context={}, state=journal, configuration=configuration)
        time.sleep(0.3)
    ours = {*shifted["routes"], *mirrored["routes"]}
    copies = {r["name"]: r for r in live["spec"]["http"] if r["name"] in ours}
    (shift_copy,) = (copies[name] for name in shifted["routes"])
    assert {d["destination"]["subset"]: d["weight"] for d in shift_copy["route"]} == {
        "v1": 90,
        "v3": 10,
    }
    assert len(argo.writes) > writes_before, "Argo kept writing while our copies were live"
    assert shifted["api_conflicts"] >= 1
    summary = journal["chaosmesh"]
    assert summary["removed_by_another_writer"] == []
    (removal,) = summary["rollback"]
    assert set(removal["removed"]) == ours
    now = read(api, "reviews")
    assert argo.weights_in(now) == {"everyone-to-v1": argo.last_weights}
    assert [r["name"] for r in now["spec"]["http"]] == ["jason-to-v2", "everyone-to-v1"]
    assert not any("mirror" in r for r in now["spec"]["http"])


def test_a_whole_object_rewrite_is_noticed_and_reported_never_claimed_live(api, caplog):
    caplog.set_level(logging.WARNING, logger="chaostoolkit")
    flagger = FlaggerLikeWriter(api.url, NAMESPACE, "reviews")
    assert flagger.reconcile()  # Flagger takes the VirtualService over
    configuration = started_run()
    run_id = configuration["chaosmesh_run_id"]
    report = abort_for_jason(configuration, route_name=None)
    control.after_activity_control(context={}, state={}, configuration=configuration)
    time.sleep(0.2)
    assert flagger.reconcile(), "our copy is drift to Flagger: it rewrites"
    rewrite = flagger.rewrites[-1]

    (loss,) = wait_for_loss(run_id)
    assert (loss.routes, loss.record, loss.deleted) == (tuple(report["routes"]), True, False)
    assert loss.by.startswith("flagger, Update at ")  # the manager of the change
    seen_at = datetime.fromisoformat(loss.at)
    assert rewrite.sent_at <= seen_at <= rewrite.answered_at + timedelta(seconds=2)

    # What follows says so: the probe (False, and why in the log), the next activity's result.
    assert not fault_is_injected(
        virtual_service="reviews", namespace=NAMESPACE, configuration=configuration
    )
    assert f"removed by another writer ({loss.by}) at {loss.at}" in caplog.text
    probe_result = {"status": "succeeded", "output": False}
    control.after_activity_control(context={}, state=probe_result, configuration=configuration)
    (said,) = probe_result[control.ACTIVITY_KEY]
    assert said["routes"] == report["routes"] and said["at"] == loss.at

    control.after_method_control(configuration=configuration)
    flaggers = read(api, "reviews")
    journal = {"status": "completed"}
    control.after_experiment_control(context={}, state=journal, configuration=configuration)
    summary = journal["chaosmesh"]
    (removal,) = summary["rollback"]
    assert removal["removed"] == []
    assert removal["note"] == (
        f"route {report['routes'][0]}, the run's owner record on VirtualService "
        f"bookinfo/reviews removed by another writer ({loss.by}) at {loss.at}; nothing to remove"
    )
    (journaled,) = summary["removed_by_another_writer"]
    assert journaled["at"] == loss.at and journaled["during_method"] is True
    # Our rollback wrote nothing: Flagger's object (and weights) stand as Flagger wrote them.
    assert read(api, "reviews") == flaggers


def test_a_rewrite_of_the_routes_only_keeps_the_record_and_is_reported(api):
    flagger = FlaggerLikeWriter(api.url, NAMESPACE, "reviews")
    flagger.reconcile()
    configuration = started_run()
    report = abort_for_jason(configuration, route_name=None)
    control.after_activity_control(context={}, state={}, configuration=configuration)
    time.sleep(0.2)
    assert flagger.set_routes(20)  # SetRoutes: spec.http replaced, metadata kept
    (loss,) = wait_for_loss(configuration["chaosmesh_run_id"])
    assert (loss.routes, loss.record) == (tuple(report["routes"]), False)
    journal = {"status": "completed"}
    control.after_experiment_control(context={}, state=journal, configuration=configuration)
    (removal,) = journal["chaosmesh"]["rollback"]
    # The record left behind is removed (ours); the weights Flagger set stay.
    assert removal["removed"] == [] and removal["note"].endswith("nothing to remove")
    now = read(api, "reviews")
    assert owner_key(configuration["chaosmesh_run_id"]) not in (
        now["metadata"].get("annotations") or {}
    )
    assert now["spec"]["http"] == flagger.desired_spec(80, 20)["http"]


def test_a_loss_nothing_saw_is_found_by_the_rollback(api):
    """Without the control's watch (no activity control ran): the ledger says what the run
    held, the rollback finds it gone and says so, when unknown."""
    flagger = FlaggerLikeWriter(api.url, NAMESPACE, "reviews")
    flagger.reconcile()
    configuration = {}
    control.configure_control(configuration=configuration)
    report = abort_for_jason(configuration, route_name=None)
    assert flagger.reconcile()
    journal = {"status": "completed"}
    control.after_experiment_control(context={}, state=journal, configuration=configuration)
    (lost,) = journal["chaosmesh"]["removed_by_another_writer"]
    assert (lost["routes"], lost["at"], lost["during_method"]) == (report["routes"], None, None)
    (removal,) = journal["chaosmesh"]["rollback"]
    assert "removed by another writer before the rollback (when: not seen)" in removal["note"]


@pytest.fixture(autouse=True)
def _no_run_left():
    yield
    control.cleanup_control()


def test_chaosmesh_rollback_of_a_killed_run_says_what_another_writer_removed(api, ledger_dir):
    """The run died (kill -9) with its fault in place; Flagger rewrote the object since. The
    rollback from the ledger removes nothing of Flagger's and says what was gone."""
    flagger = FlaggerLikeWriter(api.url, NAMESPACE, "reviews")
    flagger.reconcile()
    report = abort_for_jason({"chaosmesh_run_id": "killed"}, route_name=None)
    assert flagger.reconcile()
    flaggers = read(api, "reviews")
    done = cleanup.roll_back_run(Kube.connect(), ledger_dir, "killed")
    assert done.complete and done.removed == []
    (lost,) = done.to_json()["removed_by_another_writer"]
    assert (lost["routes"], lost["at"]) == (report["routes"], None)
    assert (
        f"gone     VirtualService bookinfo/reviews: {report['routes'][0]} removed by another "
        "writer before this rollback"
    ) in cleanup.format_report("rollback", done)
    assert read(api, "reviews") == flaggers


def test_objects_beyond_the_watch_slots_are_followed_by_reading_them(api, monkeypatch):
    """Only so many watches are held open; the run's other objects are read now and then, and
    a rewrite of one of them is noticed all the same."""
    monkeypatch.setattr(vanished, "_watch_slots", threading.BoundedSemaphore(1))
    monkeypatch.setattr(vanished, "SLOW_POLL_S", 0.2)
    flagger = FlaggerLikeWriter(api.url, NAMESPACE, "details", hosts=("details",))
    flagger.reconcile()
    configuration = started_run()
    for name in ("ratings", "details"):
        abort_for_jason(configuration, route_name=None, virtual_service=name)
        control.after_activity_control(context={}, state={}, configuration=configuration)
    time.sleep(0.3)
    assert flagger.reconcile()
    (loss,) = wait_for_loss(configuration["chaosmesh_run_id"])
    assert loss.resource == "VirtualService bookinfo/details"
    seen_at = datetime.fromisoformat(loss.at)
    assert seen_at <= flagger.rewrites[-1].answered_at + timedelta(seconds=3)
    control.after_experiment_control(context={}, state={}, configuration=configuration)
