"""Targeting every route (no route_name / route_index) when some route's own match contradicts
the narrowing (issue 8 item 12): that route is skipped and said so; the action fails only when
no route is left."""

import pytest
from chaoslib.exceptions import ActivityFailed

from chaosmesh_py.faults.actions import inject_abort
from chaosmesh_py.faults.rollbacks import remove_faults
from chaosmesh_py.localmesh.apiserver import ApiFault
from tests.conftest import NAMESPACE
from tests.integration.test_inject_rollback import V1, exact, read


def abort_reviews(configuration, user):
    return inject_abort(
        virtual_service="reviews",
        namespace=NAMESPACE,
        http_status=503,
        percentage=100,
        headers={"end-user": user},
        configuration=configuration,
    )


def test_a_route_for_another_user_is_skipped_and_reported(api, configuration):
    # Bookinfo's reviews: jason-to-v2 (end-user exact jason), then everyone-to-v1.
    before = read(api, "reviews")
    report = abort_reviews(configuration, "tester")
    assert report["skipped_routes"] == [
        {
            "route": "jason-to-v2",
            "reason": "route jason-to-v2 already requires end-user=jason, "
            "so end-user=tester would match nothing",
        }
    ]
    (copy_name,) = report["routes"]
    copy_ = next(r for r in read(api, "reviews")["spec"]["http"] if r["name"] == copy_name)
    assert copy_["route"][0]["destination"]["subset"] == "v1"
    assert copy_["match"] == [{"headers": {"end-user": {"exact": "tester"}}}]
    remove_faults(virtual_service="reviews", namespace=NAMESPACE, configuration=configuration)
    assert exact(read(api, "reviews")) == exact(before)


def test_a_route_another_writer_adds_mid_injection_is_skipped_on_the_re_plan(api, configuration):
    def add_a_tester_route(server):
        reviews = server.get(V1, "VirtualService", NAMESPACE, "reviews")
        tester = {
            "name": "tester-to-v3",
            "match": [{"headers": {"end-user": {"exact": "tester"}}}],
            "route": [{"destination": {"host": "reviews", "subset": "v3"}}],
        }
        reviews["spec"]["http"].insert(0, tester)
        server.replace(reviews)

    api.inject(ApiFault(method="PATCH", path="reviews", concurrent_write=add_a_tester_route))
    report = abort_reviews(configuration, "jason")
    assert report["api_attempts"] == 2  # a 409, then the plan made again
    assert [s["route"] for s in report["skipped_routes"]] == ["tester-to-v3"]
    assert len(report["routes"]) == 2  # jason-to-v2 and everyone-to-v1
    remove_faults(virtual_service="reviews", namespace=NAMESPACE, configuration=configuration)
    names = [r["name"] for r in read(api, "reviews")["spec"]["http"]]
    assert names == ["tester-to-v3", "jason-to-v2", "everyone-to-v1"]


def test_the_action_fails_only_when_no_route_is_left(api, configuration):
    reviews = read(api, "reviews")
    reviews["spec"]["http"][1]["match"] = [{"headers": {"end-user": {"exact": "mary"}}}]
    api.replace(reviews)
    before = exact(read(api, "reviews"))
    with pytest.raises(ActivityFailed, match="no route of VirtualService bookinfo/reviews can"):
        abort_reviews(configuration, "tester")
    assert exact(read(api, "reviews")) == before
