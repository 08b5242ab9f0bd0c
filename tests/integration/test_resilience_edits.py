"""Policy edits through the API double, end to end: a route's timeout and retries, a
DestinationRule's connection pool and outlier detection, set for the run and restored exactly
(by the control, restore_policies, `chaosmesh rollback`, reap, halt), with another writer changing
the same fields (theirs kept, the conflict reported) or other fields (both kept)."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from chaoslib.exceptions import ActivityFailed

from chaosmesh_py.control import roll_back
from chaosmesh_py.engine import cleanup
from chaosmesh_py.engine.run import run_for
from chaosmesh_py.faults.actions import inject_abort
from chaosmesh_py.kube import Kube
from chaosmesh_py.localmesh.apiserver import ApiFault
from chaosmesh_py.resilience.actions import (
    set_connection_pool,
    set_outlier_detection,
    set_retries,
    set_route_timeout,
)
from chaosmesh_py.resilience.rollbacks import restore_policies
from tests.conftest import NAMESPACE
from tests.integration.test_cleanup import chaosmesh
from tests.integration.test_inject_rollback import exact, writes

V1 = "networking.istio.io/v1"
TIGHT = {"tcp": {"maxConnections": 1}, "http": {"http1MaxPendingRequests": 1}}
EJECT = {"consecutive5xxErrors": 1, "interval": "1s", "baseEjectionTime": "3m"}
# Istio's reviews routing for the request-timeouts task: unnamed routes.
UNNAMED_REVIEWS = {
    "apiVersion": V1,
    "kind": "VirtualService",
    "metadata": {"name": "reviews", "namespace": NAMESPACE},
    "spec": {
        "hosts": ["reviews"],
        "http": [
            {
                "match": [{"headers": {"end-user": {"exact": "jason"}}}],
                "route": [{"destination": {"host": "reviews", "subset": "v2"}}],
            },
            {"route": [{"destination": {"host": "reviews", "subset": "v3"}}]},
        ],
    },
}


def vs(api, name="reviews"):
    return api.get(V1, "VirtualService", NAMESPACE, name)


def dr(api, name="reviews"):
    return api.get(V1, "DestinationRule", NAMESPACE, name)


def unnamed_reviews(api):
    current = vs(api)
    api.replace({**UNNAMED_REVIEWS, "metadata": current["metadata"]})


def reviews(**arguments):
    return {"virtual_service": "reviews", "namespace": NAMESPACE, **arguments}


def rule(**arguments):
    return {"destination_rule": "reviews", "namespace": NAMESPACE, **arguments}


def test_a_timeout_on_every_forwarding_route_is_recorded_and_restored_exactly(api, configuration):
    before = exact(vs(api))
    report = set_route_timeout("0.5s", **reviews(), configuration=configuration)
    assert report["resource"] == f"{NAMESPACE}/reviews"
    assert report["routes"] == ["jason-to-v2", "everyone-to-v1"]
    assert [f["field"] for f in report["fields"]] == [
        "spec.http[name=jason-to-v2].timeout",
        "spec.http[name=everyone-to-v1].timeout",
    ]
    assert all(f["wrote"] == "0.5s" and f["replaced"] is None for f in report["fields"])
    assert "checked" in report["effect"]  # no local mesh: says what it checked
    assert [r.get("timeout") for r in vs(api)["spec"]["http"]] == ["0.5s", "0.5s"]
    # Asked again (a retried activity): nothing new is written.
    count = len(writes(api))
    set_route_timeout("0.5s", **reviews(), configuration=configuration)
    assert len(writes(api)) == count

    summary = roll_back(run_for(configuration))
    assert summary["rollback_complete"], summary
    assert exact(vs(api)) == before


def test_unnamed_routes_are_picked_by_their_match_and_never_confused_with_copies(
    api, configuration
):
    unnamed_reviews(api)
    before = exact(vs(api))
    # A fault of the same run first: its copy of the catch-all route has the same (no) match.
    inject_abort(http_status=503, percentage=100, **reviews(), configuration=configuration)
    report = set_route_timeout("0.5s", **reviews(route_index=1), configuration=configuration)
    assert report["routes"] == ["#1"]
    assert report["fields"][0]["field"] == "spec.http[name=(none),match=(none)].timeout"
    routes = vs(api)["spec"]["http"]
    timed = [r for r in routes if r.get("timeout")]
    assert len(timed) == 1 and "name" not in timed[0] and "match" not in timed[0]
    jason = set_retries(0, **reviews(route_index=0), configuration=configuration)
    assert jason["fields"][0]["field"] == (
        "spec.http[name=(none),match=[headers.end-user]].retries"  # header values never shown
    )
    # Restoring the policies keeps the run's fault copies.
    restored = restore_policies(
        virtual_service="reviews", namespace=NAMESPACE, configuration=configuration
    )
    (entry,) = restored["restored"]
    assert len(entry["restored"]) == 2 and entry["conflicts"] == []
    after = vs(api)
    assert not any(r.get("timeout") or r.get("retries") for r in after["spec"]["http"])
    assert len(after["spec"]["http"]) > 2  # the copies are still there
    assert roll_back(run_for(configuration))["rollback_complete"]
    assert exact(vs(api)) == before


def test_retries_off_replace_the_whole_retry_policy_and_come_back(api, configuration):
    api.patch(
        V1,
        "VirtualService",
        NAMESPACE,
        "reviews",
        {
            "spec": {
                "http": [
                    {**vs(api)["spec"]["http"][0], "retries": {"attempts": 3, "retryOn": "5xx"}},
                    vs(api)["spec"]["http"][1],
                ]
            }
        },
    )
    before = exact(vs(api))
    report = set_retries(0, **reviews(route_name="jason-to-v2"), configuration=configuration)
    assert report["fields"][0]["replaced"] == {"attempts": 3, "retryOn": "5xx"}
    assert vs(api)["spec"]["http"][0]["retries"] == {"attempts": 0}
    done = chaosmesh("rollback", "--run", configuration["chaosmesh_run_id"])
    assert done.returncode == 0, done.stdout
    assert (
        'restored spec.http[name=jason-to-v2].retries (the run had set it to {"attempts":0}; '
        'back to {"attempts":3,"retryOn":"5xx"})' in done.stdout
    )
    assert exact(vs(api)) == before


def test_another_writer_s_value_of_the_same_field_wins_and_is_reported(api, configuration, caplog):
    set_route_timeout("0.5s", **reviews(route_name="everyone-to-v1"), configuration=configuration)
    set_connection_pool(TIGHT, **rule(), configuration=configuration)
    current = vs(api)
    current["spec"]["http"][1]["timeout"] = "2s"  # theirs, mid-run
    api.replace(current)
    api.patch(
        V1,
        "DestinationRule",
        NAMESPACE,
        "reviews",
        {"spec": {"trafficPolicy": {"connectionPool": {"tcp": {"maxConnections": 50}}}}},
    )
    summary = roll_back(run_for(configuration))
    assert summary["rollback_complete"], summary
    conflicts = {c["field"]: c for r in summary["rollback"] for c in r.get("conflicts", [])}
    assert conflicts["spec.http[name=everyone-to-v1].timeout"]["now"] == "2s"
    assert conflicts["spec.http[name=everyone-to-v1].timeout"]["wrote"] == "0.5s"
    assert conflicts["spec.trafficPolicy.connectionPool"]["replaced"] == "(absent)"
    assert vs(api)["spec"]["http"][1]["timeout"] == "2s"
    assert dr(api)["spec"]["trafficPolicy"]["connectionPool"]["tcp"] == {"maxConnections": 50}
    assert not vs(api)["metadata"].get("annotations")
    assert not dr(api)["metadata"].get("annotations")
    # Also in the run's log, in chaosmesh rollback's words.
    assert (
        f"chaosmesh: kept VirtualService {NAMESPACE}/reviews: spec.http[name=everyone-to-v1]"
        ".timeout was changed by another writer after run "
        f"{configuration['chaosmesh_run_id']} set it; their value stays (before the run: "
    ) in caplog.text


def test_the_conflict_is_reported_by_chaosmesh_rollback_too(api, configuration):
    set_route_timeout("0.5s", **reviews(route_name="everyone-to-v1"), configuration=configuration)
    current = vs(api)
    current["spec"]["http"][1]["timeout"] = "2s"
    api.replace(current)
    run_id = configuration["chaosmesh_run_id"]
    done = chaosmesh("rollback", "--run", run_id)
    assert done.returncode == 0, done.stdout
    assert (
        f"kept     VirtualService {NAMESPACE}/reviews: spec.http[name=everyone-to-v1].timeout "
        f"was changed by another writer after run {run_id} set it; their value stays"
    ) in done.stdout
    assert vs(api)["spec"]["http"][1]["timeout"] == "2s"


def test_another_writer_s_other_fields_are_kept_beside_the_restore(api, configuration):
    before_rule = dr(api)
    set_route_timeout("0.5s", **reviews(route_name="everyone-to-v1"), configuration=configuration)
    set_outlier_detection(EJECT, **rule(subset="v1"), configuration=configuration)
    # Another writer: retries on the same route, a new route, a load balancer on the rule.
    current = vs(api)
    current["spec"]["http"][1]["retries"] = {"attempts": 5}
    current["spec"]["http"].insert(
        0,
        {
            "name": "theirs",
            "route": [{"destination": {"host": "reviews", "subset": "v3"}}],
            "match": [{"uri": {"prefix": "/x"}}],
        },
    )
    api.replace(current)
    api.patch(
        V1,
        "DestinationRule",
        NAMESPACE,
        "reviews",
        {"spec": {"trafficPolicy": {"loadBalancer": {"simple": "ROUND_ROBIN"}}}},
    )
    summary = roll_back(run_for(configuration))
    assert summary["rollback_complete"], summary
    assert not any(r.get("conflicts") for r in summary["rollback"]), json.dumps(summary["rollback"])
    after = vs(api)["spec"]["http"]
    assert [r["name"] for r in after] == ["theirs", "jason-to-v2", "everyone-to-v1"]
    assert after[2] == {
        "name": "everyone-to-v1",
        "route": [{"destination": {"host": "reviews", "subset": "v1"}}],
        "retries": {"attempts": 5},
    }
    assert dr(api)["spec"] == {
        **before_rule["spec"],
        "trafficPolicy": {"loadBalancer": {"simple": "ROUND_ROBIN"}},
    }


def test_a_409_is_re_read_and_re_planned_keeping_the_other_write(api, configuration):
    before = dr(api)

    def other_writer(server):
        server.patch(
            V1, "DestinationRule", NAMESPACE, "reviews", {"metadata": {"labels": {"team": "x"}}}
        )

    api.inject(
        ApiFault(method="PATCH", path="/destinationrules/reviews$", concurrent_write=other_writer)
    )
    report = set_connection_pool(
        TIGHT, host="reviews", namespace=NAMESPACE, subset="v2", configuration=configuration
    )
    assert report["api_attempts"] == 2
    during = dr(api)
    assert during["metadata"]["labels"] == {"team": "x"}
    assert during["spec"]["subsets"][1]["trafficPolicy"] == {"connectionPool": TIGHT}
    assert roll_back(run_for(configuration))["rollback_complete"]
    assert dr(api)["spec"] == before["spec"]


def test_reap_restores_expired_policy_edits_and_halt_every_one(api):
    before = {name: exact(dr(api, name)) for name in ("reviews", "ratings")}
    before_vs = exact(vs(api))
    set_connection_pool(
        TIGHT, **rule(), configuration={"chaosmesh_run_id": "short", "chaosmesh_ttl_s": 60}
    )
    set_outlier_detection(
        EJECT,
        destination_rule="ratings",
        namespace=NAMESPACE,
        configuration={"chaosmesh_run_id": "long"},
    )
    set_route_timeout("1s", **reviews(), configuration={"chaosmesh_run_id": "long"})
    report = cleanup.reap(Kube.connect(), now=datetime.now(UTC) + timedelta(minutes=2))
    assert report.complete
    assert [r["resource"] for r in report.removed] == [f"DestinationRule {NAMESPACE}/reviews"]
    assert exact(dr(api)) == before["reviews"]
    assert dr(api, "ratings")["spec"]["trafficPolicy"] == {"outlierDetection": EJECT}
    done = chaosmesh("halt", "--json")
    assert done.returncode == 0, done.stdout
    halted = json.loads(done.stdout)["halt"]
    assert halted["complete"]
    assert exact(dr(api, "ratings")) == before["ratings"] and exact(vs(api)) == before_vs


def test_two_runs_never_hold_the_same_field(api, configuration):
    set_route_timeout("0.5s", **reviews(), configuration=configuration)
    with pytest.raises(ActivityFailed, match="carries edits of run"):
        set_retries(0, **reviews(), configuration={"chaosmesh_run_id": "other"})
    with pytest.raises(ActivityFailed, match="is overridden by run"):
        set_route_timeout(
            "2s", **reviews(), allow_other_runs=True, configuration={"chaosmesh_run_id": "other"}
        )
    other = set_retries(
        0, **reviews(), allow_other_runs=True, configuration={"chaosmesh_run_id": "other"}
    )
    assert len(other["fields"]) == 2
    assert roll_back(run_for(configuration))["rollback_complete"]
    assert all(
        "timeout" not in r and r["retries"] == {"attempts": 0} for r in vs(api)["spec"]["http"]
    )
    assert roll_back(run_for({"chaosmesh_run_id": "other"}))["rollback_complete"]
