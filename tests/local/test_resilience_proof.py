"""Proof on the data plane: the local mesh's real Envoy does what the policies predict.

The scenarios (``tests.local.resilience_scenarios``) set a policy straight through the API,
send counted requests and return predicted-vs-measured rows with the tolerance each derives;
``bench/resilience_proof.py`` prints the same rows as tables.
"""

import pytest
from chaoslib.exceptions import ActivityFailed

from chaosmesh_py.errors import InvalidInput
from chaosmesh_py.resilience.prediction import table
from chaosmesh_py.resilience.probes import check_arguments, measure_overflow, measure_retries
from tests.local import resilience_scenarios as scenarios


def held(rows):
    assert rows and all(row.passed for row in rows), "\n" + table(rows)


def test_every_try_of_an_always_failing_upstream_is_counted_as_predicted(mesh):
    held(scenarios.amplification(mesh))


def test_half_the_upstream_failing_under_three_retries_reaches_users_as_predicted(mesh):
    held(scenarios.absorbed_errors(mesh))


def test_a_tightened_circuit_breaker_overflows_as_the_limits_predict(mesh):
    held(scenarios.overflow(mesh, concurrencies=(1, 3)))


def test_a_failing_replica_is_ejected_and_the_error_ratio_returns_to_baseline(mesh):
    held(scenarios.ejection(mesh))


def test_tries_multiply_along_a_call_path_as_predicted(mesh):
    held(scenarios.multi_hop_amplification(mesh))


def test_the_measurement_probes_report_what_envoy_counted(mesh):
    scenarios.httpbin_virtual_service(mesh, retries={"attempts": 2, "retryOn": "5xx"})
    url, headers = scenarios.from_sleep(mesh, "httpbin", "/status/503")
    seen = measure_retries(url, "httpbin", requests=20, concurrency=2, headers=headers)
    assert seen["attempts_per_request"] == 3.0 and seen["retries"] == 40
    assert seen["error_ratio"] == 1.0 and seen["counters"] == "local mesh Envoy"
    assert seen["answered_on_attempt"] == {"3": 20}
    with pytest.raises(ActivityFailed, match="service: no service 'nobody'"):
        measure_retries(url, "nobody", requests=1)


def test_the_measurement_probes_refuse_bad_arguments_before_any_request(mesh):
    for arguments, message in (
        ({"url": "ftp://x", "service": "httpbin"}, "url: must be an http:// URL"),
        ({"url": "http://127.0.0.1:1/", "service": ""}, "service: must be a non-empty string"),
        ({"url": "http://127.0.0.1:1/", "service": "h", "requests": 0}, "requests: must be"),
        ({"url": "http://127.0.0.1:1/", "service": "h", "concurrency": 1000}, "concurrency"),
        ({"url": "http://127.0.0.1:1/", "service": "h", "headers": {"a": 1}}, "headers: must"),
    ):
        with pytest.raises(InvalidInput, match=message):
            check_arguments("measure_retries", arguments, None)


def test_a_measurement_outside_expect_fails_the_probe_naming_the_field(mesh):
    scenarios.httpbin_destination_rule(mesh, connectionPool=scenarios.CIRCUIT_BREAKER)
    url, headers = scenarios.from_sleep(mesh, "httpbin", "/delay/0.05")
    seen = measure_overflow(url, "httpbin", concurrency=3, waves=10, headers=headers)
    assert seen["overloaded_answers"] == seen["pending_overflows"] > 0
    with pytest.raises(
        ActivityFailed, match=r"NotAsExpected: overflow_ratio = [\d.]+, expected \[0, 0\]"
    ):
        measure_overflow(
            url, "httpbin", concurrency=3, waves=10, headers=headers, expect={"overflow_ratio": 0}
        )
