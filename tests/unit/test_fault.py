"""The fault catalog: strict parsing, Istio's bounds, the Istio fragment produced."""

import pytest

from chaosmesh_py.errors import InvalidInput
from chaosmesh_py.istio import fault


@pytest.mark.parametrize(
    ("text", "milliseconds"),
    [
        ("7s", 7000),
        ("200ms", 200),
        ("1m30s", 90_000),
        ("1.5s", 1500),
        ("1h", 3_600_000),
        ("1000us", 1),
        ("2000000ns", 2),
    ],
)
def test_durations_parse_to_whole_milliseconds(text, milliseconds):
    assert fault.parse_duration_ms(text, "fixed_delay") == milliseconds


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("5", "not a duration"),
        ("0.5ms", "shorter than 1ms"),
        ("1.5ms", "whole number"),
        ("", "duration string"),
        (7, "duration string"),
        ("7 s", "not a duration"),
        ("s", "not a duration"),
        ("7sec", "not a duration"),
    ],
)
def test_bad_durations_name_the_field(value, problem):
    with pytest.raises(InvalidInput) as caught:
        fault.parse_duration_ms(value, "fixed_delay")
    assert caught.value.field == "fixed_delay"
    assert problem in str(caught.value)


@pytest.mark.parametrize("milliseconds", [1, 250, 1000, 7000, 1500, 60_000])
def test_duration_formatting_round_trips(milliseconds):
    assert fault.parse_duration_ms(fault.format_duration_ms(milliseconds), "x") == milliseconds


@pytest.mark.parametrize("value", [0.0001, 1, 50, 99.9999, 100])
def test_percentage_accepts_istio_range(value):
    assert fault.parse_percentage(value) == value


@pytest.mark.parametrize("value", [0, 0.00001, 101, -1, "50", None, True])
def test_percentage_refuses_the_rest(value):
    with pytest.raises(InvalidInput, match="percentage"):
        fault.parse_percentage(value)


def test_abort_needs_exactly_one_status():
    with pytest.raises(InvalidInput, match="exactly one"):
        fault.parse_abort(10)
    with pytest.raises(InvalidInput, match="exactly one"):
        fault.parse_abort(10, http_status=500, grpc_status="UNAVAILABLE")


@pytest.mark.parametrize("status", [99, 199, 600, 601, 700, "500", 500.0])
def test_http_status_outside_envoy_s_bounds_is_refused(status):
    with pytest.raises(InvalidInput, match="http_status"):
        fault.parse_abort(10, http_status=status)


def test_unknown_grpc_code_lists_the_valid_ones():
    with pytest.raises(InvalidInput, match="UNAVAILABLE") as caught:
        fault.parse_abort(10, grpc_status="BROKEN")
    assert caught.value.field == "grpc_status"


def test_istio_fragments():
    assert fault.parse_delay("7s", 100).to_istio() == {
        "delay": {"fixedDelay": "7s", "percentage": {"value": 100.0}}
    }
    assert fault.parse_abort(30, http_status=500).to_istio() == {
        "abort": {"httpStatus": 500, "percentage": {"value": 30.0}}
    }
    assert fault.parse_abort(5, grpc_status="UNAVAILABLE").to_istio() == {
        "abort": {"grpcStatus": "UNAVAILABLE", "percentage": {"value": 5.0}}
    }
