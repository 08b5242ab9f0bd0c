"""The corpus, second layer: bad arguments given to the activities themselves, against the API.

Each call must fail with Chaos Toolkit's ActivityFailed naming the field (and, for a target
that does not exist, what does), and leave every VirtualService on the API server byte for
byte as it was: no write request at all.
"""

import json

import pytest
from chaoslib.exceptions import ActivityFailed

from chaosmesh_py.faults.actions import inject_abort, inject_delay
from chaosmesh_py.faults.probes import fault_is_injected
from chaosmesh_py.faults.rollbacks import remove_faults
from tests.conftest import NAMESPACE
from tests.integration.test_inject_rollback import writes

V1 = "networking.istio.io/v1"
BOOKINFO = "details (hosts details), productpage (hosts productpage), ratings (hosts ratings), "
ROUTES = "[0] ratings-v1 -> ratings"

DELAY = {
    "virtual_service": "ratings",
    "namespace": NAMESPACE,
    "fixed_delay": "7s",
    "percentage": 100,
}
ABORT = {
    "virtual_service": "ratings",
    "namespace": NAMESPACE,
    "http_status": 500,
    "percentage": 100,
}
TARGET = {"virtual_service": "ratings", "namespace": NAMESPACE}


def without(arguments, *names):
    return {k: v for k, v in arguments.items() if k not in names}


def _redirecting(api):
    api.create(
        {
            "apiVersion": V1,
            "kind": "VirtualService",
            "metadata": {"name": "moved", "namespace": NAMESPACE},
            "spec": {
                "hosts": ["moved"],
                "http": [{"name": "to-ratings", "redirect": {"authority": "ratings"}}],
            },
        }
    )


def _gateway_bound(api):
    api.create(
        {
            "apiVersion": V1,
            "kind": "VirtualService",
            "metadata": {"name": "frontend", "namespace": NAMESPACE},
            "spec": {
                "hosts": ["bookinfo.example.com"],
                "gateways": ["bookinfo-gateway"],
                "http": [{"name": "front", "route": [{"destination": {"host": "productpage"}}]}],
            },
        }
    )


def _second_ratings(api):
    api.create(
        {
            "apiVersion": V1,
            "kind": "VirtualService",
            "metadata": {"name": "ratings-canary", "namespace": NAMESPACE},
            "spec": {
                "hosts": ["ratings"],
                "http": [{"name": "canary", "route": [{"destination": {"host": "ratings"}}]}],
            },
        }
    )


def _empty_namespace(api):
    api.create_namespace("empty")


def refused(name, activity, arguments, expected):
    return pytest.param(activity, arguments, expected, id=name)


REFUSED_BEFORE_ANY_REQUEST = [
    refused(
        "percentage-0",
        inject_delay,
        {**DELAY, "percentage": 0},
        "percentage: 0 is outside [0.0001, 100]",
    ),
    refused(
        "percentage-101", inject_delay, {**DELAY, "percentage": 101}, "percentage: 101 is outside"
    ),
    refused(
        "percentage-string",
        inject_delay,
        {**DELAY, "percentage": "50"},
        "percentage: must be a number, got str",
    ),
    refused(
        "percentage-nan",
        inject_delay,
        {**DELAY, "percentage": float("nan")},
        "percentage: NaN is not a number",
    ),
    refused(
        "delay-without-unit",
        inject_delay,
        {**DELAY, "fixed_delay": "5"},
        "fixed_delay: '5' is not a duration",
    ),
    refused(
        "delay-sub-millisecond",
        inject_delay,
        {**DELAY, "fixed_delay": "0.5ms"},
        "fixed_delay: '0.5ms' is shorter",
    ),
    refused(
        "delay-negative",
        inject_delay,
        {**DELAY, "fixed_delay": "-7s"},
        "fixed_delay: '-7s' is negative",
    ),
    refused(
        "http-status-99", inject_abort, {**ABORT, "http_status": 99}, "http_status: 99 is outside"
    ),
    refused(
        "http-status-700",
        inject_abort,
        {**ABORT, "http_status": 700},
        "http_status: 700 is outside",
    ),
    refused(
        "grpc-status-unknown",
        inject_abort,
        {**without(ABORT, "http_status"), "grpc_status": "BROKEN"},
        "grpc_status: 'BROKEN' is not a gRPC",
    ),
    refused(
        "both-statuses",
        inject_abort,
        {**ABORT, "grpc_status": "UNAVAILABLE"},
        "http_status/grpc_status: exactly one",
    ),
    refused(
        "namespace-kube-system",
        inject_delay,
        {**DELAY, "namespace": "kube-system"},
        "namespace: 'kube-system' is protected",
    ),
    refused(
        "namespace-istio-system",
        inject_delay,
        {**DELAY, "namespace": "istio-system"},
        "chaosmesh_allow_namespaces",
    ),
    refused(
        "namespace-malformed",
        inject_delay,
        {**DELAY, "namespace": "Bad_NS"},
        "namespace: 'Bad_NS' is not",
    ),
    refused(
        "virtual-service-and-host",
        inject_delay,
        {**DELAY, "host": "ratings"},
        "virtual_service/host: give exactly one",
    ),
    refused(
        "route-index-negative",
        inject_delay,
        {**DELAY, "route_index": -1},
        "route_index: must be a whole number",
    ),
    refused(
        "headers-a-string",
        inject_delay,
        {**DELAY, "headers": "jason"},
        "headers: must be a mapping",
    ),
    refused(
        "header-bad-regex",
        inject_delay,
        {**DELAY, "headers": {"end-user": {"regex": "["}}},
        "headers.end-user.regex: '[' is not a regular expression",
    ),
    refused(
        "allow-other-runs-a-string",
        inject_delay,
        {**DELAY, "allow_other_runs": "yes"},
        "allow_other_runs: must be true",
    ),
    refused(
        "rollback-protected-namespace",
        remove_faults,
        {**TARGET, "namespace": "kube-system"},
        "namespace: 'kube-system' is protected",
    ),
    refused(
        "probe-malformed-namespace",
        fault_is_injected,
        {**TARGET, "namespace": "Bad_NS"},
        "namespace: 'Bad_NS' is not",
    ),
]


@pytest.mark.parametrize(("activity", "arguments", "expected"), REFUSED_BEFORE_ANY_REQUEST)
def test_refused_before_any_request(api, configuration, activity, arguments, expected):
    with pytest.raises(ActivityFailed) as caught:
        activity(configuration=configuration, **arguments)
    assert expected in str(caught.value)
    assert api.request_log == []


def test_refused_configuration_before_any_request(api, configuration):
    configuration["chaosmesh_ttl_s"] = 10**20
    with pytest.raises(ActivityFailed, match=r"chaosmesh_ttl_s: must be .* from 1 to 2592000"):
        inject_delay(configuration=configuration, **DELAY)
    assert api.request_log == []


def test_missing_percentage_is_a_missing_argument():
    arguments = without(DELAY, "percentage")
    with pytest.raises(TypeError, match="percentage"):
        inject_delay(**arguments)


def target_case(name, activity, arguments, setup, *expected, marks=()):
    """``setup`` adds resources to the API first; ``expected`` must all be in the message."""
    return pytest.param((activity, arguments, setup, expected), id=name, marks=marks)


UNKNOWN_TARGETS = [
    target_case(
        "unknown-virtual-service",
        inject_delay,
        {**DELAY, "virtual_service": "ratingz"},
        None,
        "TargetNotFound: virtual_service: no VirtualService 'ratingz' in namespace 'bookinfo'",
        BOOKINFO + "reviews (hosts reviews)",
    ),
    target_case(
        "unknown-virtual-service-abort",
        inject_abort,
        {**ABORT, "virtual_service": "rating"},
        None,
        "virtual_service: no VirtualService 'rating'",
        BOOKINFO,
    ),
    target_case(
        "unknown-route-name",
        inject_delay,
        {**DELAY, "route_name": "nope"},
        None,
        "TargetNotFound: route_name: VirtualService bookinfo/ratings has no route named 'nope'",
        ROUTES,
    ),
    target_case(
        "route-index-out-of-range",
        inject_delay,
        {**DELAY, "route_index": 1},
        None,
        "TargetNotFound: route_index: VirtualService bookinfo/ratings has no route 1",
        ROUTES,
    ),
    target_case(
        "route-index-out-of-range-reviews",
        inject_delay,
        {**DELAY, "virtual_service": "reviews", "route_index": 7},
        None,
        "route_index: VirtualService bookinfo/reviews has no route 7",
        "[0] jason-to-v2 -> reviews; [1] everyone-to-v1 -> reviews",
    ),
    target_case(
        "unknown-host",
        inject_delay,
        {**without(DELAY, "virtual_service"), "host": "nope"},
        None,
        "TargetNotFound: host: no VirtualService in namespace 'bookinfo' serves 'nope'",
        BOOKINFO,
    ),
    target_case(
        "host-of-another-namespace",
        inject_delay,
        {**without(DELAY, "virtual_service"), "host": "ratings.default.svc.cluster.local"},
        None,
        "host: no VirtualService in namespace 'bookinfo' serves 'ratings.default.svc.cluster",
        "ratings (hosts ratings)",
    ),
    target_case(
        "host-served-twice",
        inject_delay,
        {**without(DELAY, "virtual_service"), "host": "ratings"},
        _second_ratings,
        "host: 'ratings' is served by several VirtualServices (ratings, ratings-canary)",
        "name one with virtual_service",
    ),
    target_case(
        "namespace-does-not-exist",
        inject_delay,
        {**DELAY, "namespace": "nowhere"},
        None,
        "TargetNotFound: virtual_service: no VirtualService 'ratings' in namespace 'nowhere'",
        "existing: (none",
    ),
    target_case(
        "namespace-without-virtual-services",
        inject_delay,
        {**DELAY, "namespace": "empty"},
        _empty_namespace,
        "virtual_service: no VirtualService 'ratings' in namespace 'empty'",
        "existing: (none: does namespace 'empty' exist?)",
    ),
    target_case(
        "route-that-redirects",
        inject_delay,
        {**DELAY, "virtual_service": "moved", "route_index": 0},
        _redirecting,
        "route_index: the route redirects or answers directly",
        "[0] to-ratings -> (no route)",
    ),
    target_case(
        "virtual-service-without-forwarding-route",
        inject_delay,
        {**DELAY, "virtual_service": "moved"},
        _redirecting,
        "virtual_service: VirtualService bookinfo/moved has no HTTP route that forwards traffic",
    ),
    target_case(
        "headers-contradict-the-route",
        inject_delay,
        {
            **DELAY,
            "virtual_service": "reviews",
            "route_name": "jason-to-v2",
            "headers": {"end-user": "bob"},
        },
        None,
        "headers: route jason-to-v2 already requires end-user=jason",
        "would match nothing",
    ),
    target_case(
        "source-labels-on-a-gateway-route",
        inject_delay,
        {**DELAY, "virtual_service": "frontend", "source_labels": {"app": "productpage"}},
        _gateway_bound,
        "source_labels: VirtualService bookinfo/frontend is bound to gateways",
        "['bookinfo-gateway'] without 'mesh', so Istio would ignore the source labels",
        "narrow by headers instead",
    ),
    target_case(
        "probe-unknown-virtual-service",
        fault_is_injected,
        {**TARGET, "virtual_service": "ratingz"},
        None,
        "virtual_service: no VirtualService 'ratingz' in namespace 'bookinfo'",
        BOOKINFO,
    ),
    target_case(
        "rollback-unknown-host",
        remove_faults,
        {**without(TARGET, "virtual_service"), "host": "nope"},
        None,
        "host: no VirtualService in namespace 'bookinfo' serves 'nope'",
        BOOKINFO,
    ),
]


def snapshot(api):
    """Every VirtualService in every namespace, exactly as the API server holds it."""
    return json.dumps(api.list(V1, "VirtualService"), sort_keys=True)


@pytest.mark.parametrize("case", UNKNOWN_TARGETS)
def test_an_unknown_target_lists_what_exists(api, configuration, case):
    activity, arguments, setup, expected = case
    if setup is not None:
        setup(api)
    before = snapshot(api)
    api.request_log.clear()
    with pytest.raises(ActivityFailed) as caught:
        activity(configuration=configuration, **arguments)
    message = str(caught.value)
    for part in expected:
        assert part in message
    assert "Traceback" not in message
    assert len(message) < 1000
    assert api.request_log, "the target is only known to be missing by asking the API"
    assert writes(api) == []
    assert snapshot(api) == before


def test_allowing_a_protected_namespace_is_explicit(api, configuration):
    configuration["chaosmesh_allow_namespaces"] = ["istio-system"]
    before = snapshot(api)
    with pytest.raises(ActivityFailed, match="TargetNotFound"):
        inject_delay(configuration=configuration, **{**DELAY, "namespace": "istio-system"})
    assert writes(api) == []
    assert snapshot(api) == before


def test_another_runs_faults_are_not_shared_unless_asked(api, configuration):
    other = {"chaosmesh_run_id": configuration["chaosmesh_run_id"] + "other"}
    inject_delay(configuration=other, **DELAY)
    before = snapshot(api)
    api.request_log.clear()
    with pytest.raises(ActivityFailed) as caught:
        inject_abort(configuration=configuration, **ABORT)
    message = str(caught.value)
    assert (
        "OwnedByAnotherRun: VirtualService bookinfo/ratings carries faults of another run"
        in message
    )
    assert other["chaosmesh_run_id"] in message
    assert "allow_other_runs: true" in message
    assert writes(api) == []
    assert snapshot(api) == before
    remove_faults(configuration=other, **TARGET)


def test_the_corpus_is_big_enough():
    assert len(REFUSED_BEFORE_ANY_REQUEST) + len(UNKNOWN_TARGETS) >= 30
