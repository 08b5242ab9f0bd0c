"""Injection and rollback against the Kubernetes API double, over HTTP, with the real client."""

import copy
import json

import pytest
from chaoslib.exceptions import ActivityFailed

from chaosmesh_py.faults.actions import inject_abort, inject_delay
from chaosmesh_py.faults.probes import fault_is_injected, list_owned_faults
from chaosmesh_py.faults.rollbacks import remove_faults
from chaosmesh_py.localmesh.apiserver import ApiFault
from chaosmesh_py.observe.probes import envoy_counters
from tests.conftest import NAMESPACE

V1 = "networking.istio.io/v1"
JASON = {"end-user": "jason"}


def read(api, name="ratings", namespace=NAMESPACE):
    return api.get(V1, "VirtualService", namespace, name)


def exact(resource):
    """What must come back byte for byte: the spec and the annotations."""
    return json.dumps(
        {"spec": resource["spec"], "annotations": resource["metadata"].get("annotations")},
        sort_keys=True,
    )


def writes(api):
    return [entry for entry in api.request_log if entry[0] in ("POST", "PUT", "PATCH", "DELETE")]


def delay_jason(configuration, **extra):
    arguments = {
        "virtual_service": "ratings",
        "namespace": NAMESPACE,
        "fixed_delay": "7s",
        "percentage": 100,
        "headers": JASON,
        **extra,
    }
    return inject_delay(configuration=configuration, **arguments)


def rollback(configuration, name="ratings"):
    return remove_faults(virtual_service=name, namespace=NAMESPACE, configuration=configuration)


def test_injection_then_rollback_is_exact(api, configuration):
    before = read(api)
    report = delay_jason(configuration)
    during = read(api)
    assert len(during["spec"]["http"]) == 2
    assert during["spec"]["http"][0]["name"] == report["routes"][0]
    assert during["spec"]["http"][0]["fault"]["delay"]["fixedDelay"] == "7s"
    assert during["spec"]["http"][1] == before["spec"]["http"][0]
    assert fault_is_injected("ratings", namespace=NAMESPACE, configuration=configuration)

    removed = rollback(configuration)
    assert removed[0]["removed"] == report["routes"]
    after = read(api)
    assert exact(after) == exact(before)
    assert not fault_is_injected("ratings", namespace=NAMESPACE, configuration=configuration)


def test_a_concurrent_edit_during_the_experiment_survives(api, configuration):
    before = read(api)
    delay_jason(configuration)
    api.patch(
        V1,
        "VirtualService",
        NAMESPACE,
        "ratings",
        {
            "metadata": {"annotations": {"owner": "ratings-team"}},
        },
    )
    edited = read(api)
    edited["spec"]["http"].append(
        {"name": "canary", "route": [{"destination": {"host": "ratings", "subset": "v1"}}]}
    )
    api.replace(edited)

    rollback(configuration)
    after = read(api)
    assert after["spec"]["http"] == [*before["spec"]["http"], edited["spec"]["http"][-1]]
    assert after["metadata"]["annotations"] == {"owner": "ratings-team"}


def test_a_writer_between_our_read_and_our_write_costs_a_retry_not_its_edit(api, configuration):
    def other_writer(server):
        server.patch(
            V1, "VirtualService", NAMESPACE, "ratings", {"metadata": {"labels": {"touched": "yes"}}}
        )

    api.inject(
        ApiFault(method="PATCH", path="/virtualservices/ratings$", concurrent_write=other_writer)
    )
    report = delay_jason(configuration)
    assert report["api_attempts"] == 2
    during = read(api)
    assert during["metadata"]["labels"] == {"touched": "yes"}
    assert len(during["spec"]["http"]) == 2
    rollback(configuration)
    assert read(api)["metadata"]["labels"] == {"touched": "yes"}


def test_a_fault_that_was_there_before_survives(api, configuration):
    existing = read(api)
    existing["spec"]["http"][0]["fault"] = {
        "abort": {"httpStatus": 503, "percentage": {"value": 1}}
    }
    api.replace(existing)
    before = read(api)
    delay_jason(configuration)
    rollback(configuration)
    assert exact(read(api)) == exact(before)


def test_delay_then_abort_on_one_route_both_roll_back_and_a_second_rollback_is_a_noop(
    api, configuration
):
    before = read(api)
    delay_jason(configuration)
    inject_abort(
        virtual_service="ratings",
        namespace=NAMESPACE,
        http_status=500,
        percentage=100,
        headers=JASON,
        configuration=configuration,
    )
    # The abort composed onto the delay's copy (jason gets both), its own copy, the delay's.
    assert len(read(api)["spec"]["http"]) == 4
    first = rollback(configuration)
    assert len(first[0]["removed"]) == 3
    api.request_log.clear()
    second = rollback(configuration)
    assert second[0]["removed"] == []
    assert writes(api) == []
    assert exact(read(api)) == exact(before)


def test_repeating_an_injection_adds_no_second_route(api, configuration):
    before = read(api)
    first = delay_jason(configuration)
    api.request_log.clear()
    second = delay_jason(configuration)
    assert second["routes"] == first["routes"]
    assert writes(api) == []
    assert len(read(api)["spec"]["http"]) == 2
    rollback(configuration)
    assert exact(read(api)) == exact(before)


def test_rollback_without_target_visits_everything_the_run_touched(api, configuration):
    before = {name: read(api, name) for name in ("ratings", "reviews")}
    delay_jason(configuration)
    inject_abort(
        virtual_service="reviews",
        namespace=NAMESPACE,
        http_status=503,
        percentage=50,
        configuration=configuration,
    )
    reports = remove_faults(configuration=configuration)
    assert sorted(r["virtual_service"] for r in reports) == ["bookinfo/ratings", "bookinfo/reviews"]
    for name, resource in before.items():
        assert exact(read(api, name)) == exact(resource)


def test_target_by_host(api, configuration):
    report = inject_abort(
        host="reviews.bookinfo.svc.cluster.local",
        namespace=NAMESPACE,
        http_status=503,
        percentage=10,
        configuration=configuration,
    )
    assert report["virtual_service"] == "bookinfo/reviews"
    # Both routes of reviews forward traffic: both get a fault copy.
    assert len(report["routes"]) == 2
    removed = remove_faults(host="reviews", namespace=NAMESPACE, configuration=configuration)
    assert sorted(removed[0]["removed"]) == sorted(report["routes"])


def test_another_runs_faults_are_refused_unless_shared(api, configuration):
    delay_jason({"chaosmesh_run_id": "someoneelse"})
    before = read(api)
    api.request_log.clear()
    with pytest.raises(ActivityFailed, match=r"OwnedByAnotherRun.*someoneelse"):
        delay_jason(configuration)
    assert writes(api) == []
    delay_jason(configuration, allow_other_runs=True)
    rollback(configuration)
    assert exact(read(api)) == exact(before)
    rollback({"chaosmesh_run_id": "someoneelse"})


def test_owned_faults_are_listed_across_namespaces(api, configuration):
    api.create_namespace("shop")
    shop = copy.deepcopy(read(api))
    shop["metadata"] = {"name": "ratings", "namespace": "shop"}
    api.create(shop)
    delay_jason(configuration)
    inject_abort(
        virtual_service="ratings",
        namespace="shop",
        http_status=500,
        percentage=5,
        configuration=configuration,
    )
    owned = list_owned_faults()
    assert sorted(o["virtual_service"] for o in owned) == ["bookinfo/ratings", "shop/ratings"]
    assert all(o["run_id"] == configuration["chaosmesh_run_id"] and not o["expired"] for o in owned)
    remove_faults(configuration=configuration)
    assert list_owned_faults() == []


def test_envoy_counters_need_a_local_mesh(api):
    with pytest.raises(ActivityFailed, match="this API is a cluster's"):
        envoy_counters(service="ratings")
