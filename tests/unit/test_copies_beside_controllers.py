"""A run's copies of one route told apart while a rollout controller edits the original's
weights (chaosmesh_py.istio.route_copy): a retried write finds its own copy and no other."""

import copy
from datetime import UTC, datetime, timedelta

from chaosmesh_py.istio import route_copy
from chaosmesh_py.istio.fault import Abort
from chaosmesh_py.istio.routing import Destinations

EXPIRES = datetime.now(UTC) + timedelta(hours=1)


def canary(v1, v3):
    return {
        "metadata": {"name": "reviews", "namespace": "bookinfo", "resourceVersion": "1"},
        "spec": {
            "hosts": ["reviews"],
            "http": [
                {
                    "name": "everyone-to-v1",
                    "route": [
                        {"destination": {"host": "reviews", "subset": "v1"}, "weight": v1},
                        {"destination": {"host": "reviews", "subset": "v3"}, "weight": v3},
                    ],
                }
            ],
        },
    }


def applied(resource, injection):
    patch = route_copy.plan_injection(resource, injection)
    written = copy.deepcopy(resource)
    written["spec"]["http"] = patch["spec"]["http"]
    written["metadata"]["annotations"] = patch["metadata"]["annotations"]
    return written


def injection(change):
    return route_copy.Injection("r1", change, EXPIRES, route_name="everyone-to-v1")


ABORT = injection(Abort(percentage=100.0, http_status=503))
STEP = injection(Destinations((("v1", 80), ("v3", 20))))


def test_a_canary_step_is_not_taken_for_a_fault_copy_with_the_same_destinations():
    # The controller had the route at 80/20 when the fault was copied.
    with_fault = applied(canary(80, 20), ABORT)
    assert route_copy.plan_injection(with_fault, STEP) is not None


def test_a_fault_copy_is_found_again_after_the_controller_changed_the_weights():
    with_fault = applied(canary(80, 20), ABORT)
    original = with_fault["spec"]["http"][-1]
    original["route"][0]["weight"], original["route"][1]["weight"] = 60, 40
    assert route_copy.plan_injection(with_fault, ABORT) is None
