"""Bad input gets a clear error naming the field and the fix, and nothing is changed."""

import pytest
from chaoslib.exceptions import ActivityFailed

from chaosmesh_py.actions import inject_abort, inject_delay
from tests.conftest import NAMESPACE
from tests.integration.test_inject_rollback import exact, read, writes

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


@pytest.mark.parametrize(
    ("action", "arguments", "expected"),
    [
        (inject_delay, {**DELAY, "percentage": 0}, "percentage: 0 is outside [0.0001, 100]"),
        (inject_delay, {**DELAY, "percentage": 101}, "percentage: 101 is outside"),
        (inject_delay, {**DELAY, "percentage": "50"}, "percentage: must be a number, got str"),
        (inject_delay, {**DELAY, "fixed_delay": "5"}, "fixed_delay: '5' is not a duration"),
        (inject_delay, {**DELAY, "fixed_delay": "0.5ms"}, "fixed_delay: '0.5ms' is shorter"),
        (inject_abort, {**ABORT, "http_status": 99}, "http_status: 99 is outside"),
        (inject_abort, {**ABORT, "http_status": 700}, "http_status: 700 is outside"),
        (
            inject_abort,
            {**{k: v for k, v in ABORT.items() if k != "http_status"}, "grpc_status": "BROKEN"},
            "grpc_status: 'BROKEN' is not a gRPC",
        ),
        (
            inject_delay,
            {**DELAY, "namespace": "kube-system"},
            "namespace: 'kube-system' is protected",
        ),
        (inject_delay, {**DELAY, "namespace": "istio-system"}, "chaosmesh_allow_namespaces"),
        (inject_delay, {**DELAY, "namespace": "Bad_NS"}, "namespace: 'Bad_NS' is not"),
        (inject_delay, {**DELAY, "host": "ratings"}, "virtual_service/host: give exactly one"),
        (inject_delay, {**DELAY, "route_index": -1}, "route_index: must be a whole number"),
        (inject_delay, {**DELAY, "headers": "jason"}, "headers: must be a mapping"),
        (inject_delay, {**DELAY, "allow_other_runs": "yes"}, "allow_other_runs: must be true"),
    ],
)
def test_refused_before_any_request(api, configuration, action, arguments, expected):
    with pytest.raises(ActivityFailed) as caught:
        action(configuration=configuration, **arguments)
    assert expected in str(caught.value)
    assert api.request_log == []


def test_missing_percentage_is_a_missing_argument():
    arguments = {k: v for k, v in DELAY.items() if k != "percentage"}
    with pytest.raises(TypeError, match="percentage"):
        inject_delay(**arguments)


def test_unknown_virtual_service_lists_what_exists(api, configuration):
    with pytest.raises(ActivityFailed) as caught:
        inject_delay(configuration=configuration, **{**DELAY, "virtual_service": "ratingz"})
    message = str(caught.value)
    assert "TargetNotFound: virtual_service: no VirtualService 'ratingz'" in message
    for existing in ("details", "productpage", "ratings", "reviews"):
        assert existing in message
    assert writes(api) == []


def test_unknown_route_and_host_list_what_exists(api, configuration):
    before = read(api)
    with pytest.raises(ActivityFailed, match=r"route_name: .*\[0\] ratings-v1 -> ratings"):
        inject_delay(configuration=configuration, route_name="nope", **DELAY)
    with pytest.raises(ActivityFailed, match=r"host: no VirtualService .* serves 'nope'"):
        inject_delay(
            configuration=configuration,
            **{**{k: v for k, v in DELAY.items() if k != "virtual_service"}, "host": "nope"},
        )
    assert writes(api) == []
    assert exact(read(api)) == exact(before)


def test_allowing_a_protected_namespace_is_explicit(api, configuration):
    configuration["chaosmesh_allow_namespaces"] = ["istio-system"]
    with pytest.raises(ActivityFailed, match="TargetNotFound"):
        inject_delay(configuration=configuration, **{**DELAY, "namespace": "istio-system"})
