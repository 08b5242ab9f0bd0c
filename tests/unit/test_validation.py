"""The product's own checks of what it writes, rule by rule (Istio's cases: test_istio_cases.py)."""

import pytest

from chaosmesh_py.istio.validation import admission_errors


def vs(*routes, hosts=("ratings",)):
    return {"kind": "VirtualService", "spec": {"hosts": list(hosts), "http": list(routes)}}


OK_ROUTE = {"route": [{"destination": {"host": "ratings", "subset": "v1"}}]}


def with_route(**fields):
    return vs({**OK_ROUTE, **fields})


def test_bookinfo_fault_injection_is_admitted():
    fault = {"delay": {"fixedDelay": "7s", "percentage": {"value": 100}}}
    route = {**OK_ROUTE, "match": [{"headers": {"end-user": {"exact": "jason"}}}], "fault": fault}
    assert admission_errors("VirtualService", vs(route, OK_ROUTE)) == []


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"fault": {}}, "abort and/or a delay"),
        ({"fault": {"abort": {"httpStatus": 700, "percentage": {"value": 1}}}}, "httpStatus"),
        ({"fault": {"abort": {"httpStatus": 199, "percentage": {"value": 1}}}}, "httpStatus"),
        ({"fault": {"abort": {"grpcStatus": "NOPE", "percentage": {"value": 1}}}}, "grpcStatus"),
        ({"fault": {"abort": {"http2Error": "x", "percentage": {"value": 1}}}}, "http2Error"),
        ({"fault": {"abort": {"httpStatus": 500, "percentage": {"value": 101}}}}, "percentage"),
        ({"fault": {"abort": {"httpStatus": 500, "percentage": {"value": 0.00001}}}}, "percentage"),
        ({"fault": {"delay": {"fixedDelay": "0.5ms", "percentage": {"value": 1}}}}, "fixedDelay"),
        ({"fault": {"delay": {"fixedDelay": "5", "percentage": {"value": 1}}}}, "fixedDelay"),
        ({"fault": {"delay": {"exponentialDelay": "1s"}}}, "exponentialDelay"),
        ({"timeout": "0s"}, "timeout"),
        ({"retries": {"attempts": -1}}, "attempts"),
        ({"retries": {"attempts": 0, "perTryTimeout": "1s"}}, "perTryTimeout"),
        ({"retries": {"attempts": 2, "retryOn": "5xx,sometimes"}}, "retryOn"),
        ({"route": [{"destination": {"host": "r", "subset": "V_1"}}]}, "subset"),
        ({"route": [{"destination": {"host": "r", "port": {"number": 70000}}}]}, "port"),
        (
            {
                "route": [
                    {"destination": {"host": "a"}, "weight": 0},
                    {"destination": {"host": "b"}, "weight": 0},
                ]
            },
            "must not total 0",
        ),
        ({"route": [{"destination": {}}]}, "host: '' must have 1 to 255 characters"),
    ],
)
def test_each_rule_denies(fields, reason):
    errors = admission_errors("VirtualService", with_route(**fields))
    assert any(reason in error for error in errors), errors


def test_fault_with_redirect_and_routes_without_action_are_denied():
    errors = admission_errors(
        "VirtualService",
        vs({"redirect": {"uri": "/x"}, "fault": {"abort": {"httpStatus": 500}}}, {"name": "bare"}),
    )
    assert any("a redirect cannot be combined with fault" in e for e in errors)
    assert any("http[1]: needs route destinations" in e for e in errors)


def test_zero_percentage_is_legal_to_istio():
    fault = {"abort": {"httpStatus": 500, "percentage": {"value": 0}}}
    assert admission_errors("VirtualService", with_route(fault=fault)) == []


def test_wrong_types_are_denied_not_crashing():
    fault = {"abort": {"httpStatus": "500", "percentage": {"value": "50"}}}
    errors = admission_errors("VirtualService", with_route(fault=fault))
    assert len(errors) == 2


def test_destination_rule_rules():
    rule = {
        "kind": "DestinationRule",
        "spec": {
            "host": "httpbin",
            "trafficPolicy": {"outlierDetection": {"maxEjectionPercent": 120, "interval": "1"}},
            "subsets": [{"name": "v1"}, {"name": "v1"}],
        },
    }
    errors = admission_errors("DestinationRule", rule)
    assert len(errors) == 3, errors


def test_other_kinds_are_admitted():
    assert admission_errors("Gateway", {"spec": {}}) == []
