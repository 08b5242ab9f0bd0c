"""A fault must be seen taking effect; one that never does fails the action and is removed."""

import time

import pytest
from chaoslib.exceptions import ActivityFailed

from chaosmesh_py.faults.actions import inject_abort, inject_delay
from chaosmesh_py.faults.rollbacks import remove_faults
from tests.integration.test_inject_rollback import exact

V1 = "networking.istio.io/v1"


def ratings(mesh):
    return mesh.api.get(V1, "VirtualService", "bookinfo", "ratings")


def test_checked_with_requests_to_a_url_as_on_a_cluster(mesh, configuration):
    url = mesh.info()["services"]["ratings"]["url"] + "/ratings/0"
    report = inject_abort(
        virtual_service="ratings",
        namespace="bookinfo",
        http_status=503,
        percentage=100,
        headers={"end-user": "jason"},
        verify_url=url,
        configuration=configuration,
    )
    assert report["effect"]["checked"] == f"requests to {url}"
    assert report["effect"]["traffic_s"] < 5
    removed = remove_faults(configuration=configuration)
    assert removed[0]["effect"]["checked"] == f"requests to {url}"


def test_a_delay_checked_with_requests_is_waited_out(mesh, configuration):
    url = mesh.info()["services"]["ratings"]["url"] + "/ratings/0"
    report = inject_delay(
        virtual_service="ratings",
        namespace="bookinfo",
        fixed_delay="300ms",
        percentage=100,
        verify_url=url,
        configuration=configuration,
    )
    assert report["effect"]["traffic_s"] >= 0.285
    remove_faults(configuration=configuration)


@pytest.mark.parametrize(
    "condition",
    [{"prefix": "test"}, {"regex": "(tester|qa)-[0-9]+"}, {"exact": "jason"}],
    ids=["prefix", "regex", "exact"],
)
def test_a_narrowing_by_prefix_or_regex_is_seen_on_real_traffic(mesh, configuration, condition):
    # A delay: only a request held by it shows it (the page never sends such a header).
    report = inject_delay(
        virtual_service="ratings",
        namespace="bookinfo",
        fixed_delay="5s",
        percentage=100,
        headers={"end-user": condition},
        configuration=configuration,
    )
    remove_faults(configuration=configuration)
    effect = report["effect"]
    assert effect["traffic"].endswith("'s sidecar"), effect
    assert effect["traffic_s"] < 5  # seen when Envoy starts holding it


def test_the_same_narrowing_is_seen_by_requests_to_a_url(mesh, configuration):
    url = mesh.info()["services"]["ratings"]["url"] + "/ratings/0"
    report = inject_abort(
        virtual_service="ratings",
        namespace="bookinfo",
        http_status=503,
        percentage=100,
        headers={"end-user": {"regex": "qa-[0-9]{2}"}},
        verify_url=url,
        configuration=configuration,
    )
    removed = remove_faults(configuration=configuration)
    assert report["effect"]["checked"] == f"requests to {url}"
    assert report["effect"]["fault_shown"] == 1
    assert removed[0]["effect"]["checked"] == f"requests to {url}"


def test_a_regex_no_header_value_can_show_falls_back_to_the_config_and_says_why(
    mesh, configuration
):
    report = inject_abort(
        virtual_service="ratings",
        namespace="bookinfo",
        http_status=503,
        percentage=100,
        headers={"end-user": {"regex": "\\s+"}},
        configuration=configuration,
    )
    remove_faults(configuration=configuration)
    assert report["effect"]["traffic"] == (
        "header end-user: regex '\\\\s+' needs characters a header value cannot carry; "
        "config check only"
    )
    assert "config_s" in report["effect"] and "traffic_s" not in report["effect"]


def test_a_fault_never_seen_fails_the_action_and_is_removed(mesh, configuration):
    before = ratings(mesh)
    # The app itself, not through the mesh: no request there can show the fault.
    bypass = mesh.info()["workloads"]["ratings-v1"]["app_url"] + "/ratings/0"
    configuration["chaosmesh_verify_timeout_s"] = 1
    started = time.monotonic()
    with pytest.raises(ActivityFailed, match=r"FaultNotObserved: .* never showed the fault"):
        inject_abort(
            virtual_service="ratings",
            namespace="bookinfo",
            http_status=503,
            percentage=100,
            verify_url=bypass,
            configuration=configuration,
        )
    assert 1 <= time.monotonic() - started < 5
    assert exact(ratings(mesh)) == exact(before)


def test_a_fault_for_callers_that_do_not_exist_fails(mesh, configuration):
    before = ratings(mesh)
    with pytest.raises(ActivityFailed, match="no workload of the mesh has the labels"):
        inject_abort(
            virtual_service="ratings",
            namespace="bookinfo",
            http_status=503,
            percentage=100,
            source_labels={"app": "nobody"},
            configuration=configuration,
        )
    assert exact(ratings(mesh)) == exact(before)


def test_verification_can_be_turned_off(mesh, configuration):
    configuration["chaosmesh_verify_timeout_s"] = 0
    report = inject_abort(
        virtual_service="ratings",
        namespace="bookinfo",
        http_status=503,
        percentage=100,
        configuration=configuration,
    )
    assert "effect" not in report
    remove_faults(configuration=configuration)


def test_a_failed_check_removes_only_the_fault_it_checked(mesh, configuration):
    first = inject_delay(
        virtual_service="ratings",
        namespace="bookinfo",
        fixed_delay="1s",
        percentage=100,
        headers={"end-user": "jason"},
        configuration=configuration,
    )
    bypass = mesh.info()["workloads"]["ratings-v1"]["app_url"] + "/ratings/0"
    configuration["chaosmesh_verify_timeout_s"] = 0.5
    with pytest.raises(ActivityFailed, match="FaultNotObserved"):
        inject_abort(
            virtual_service="ratings",
            namespace="bookinfo",
            http_status=503,
            percentage=100,
            verify_url=bypass,
            configuration=configuration,
        )
    routes = [r["name"] for r in ratings(mesh)["spec"]["http"]]
    assert routes == [*first["routes"], "ratings-v1"]
    remove_faults(configuration=configuration)
