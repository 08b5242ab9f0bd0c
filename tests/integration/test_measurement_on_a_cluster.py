"""The measurement probes where no local mesh is: a cluster's API (the API double without the
local mesh's ConfigMap) and an httpbin reached directly. The answers are measured; Envoy's
counters are null, said so, and an expectation on one fails instead of passing unmeasured."""

import pytest
from chaoslib.exceptions import ActivityFailed

from chaosmesh_py.localmesh.httpbin import Httpbin
from chaosmesh_py.localmesh.topology import free_ports
from chaosmesh_py.resilience.probes import measure_ejection, measure_overflow, measure_retries


@pytest.fixture
def httpbin():
    port = next(free_ports())
    server = Httpbin(port, "httpbin-cluster").start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def test_answers_are_measured_and_counters_are_null(api, httpbin):
    seen = measure_retries(f"{httpbin}/status/200:0.5,503:0.5", "httpbin", requests=200)
    assert seen["requests"] == 200 and 0.35 < seen["error_ratio"] < 0.65
    assert set(seen["statuses"]) == {"200", "503"}
    low, high = seen["error_ratio_interval"]
    assert low < seen["error_ratio"] < high
    assert seen["attempts_per_request"] is None and seen["retries"] is None
    assert seen["counters"].startswith("answers only")
    assert seen["answered_on_attempt"] == {}  # no sidecar sent x-envoy-attempt-count


def test_an_expectation_on_a_counter_fails_where_it_cannot_be_read(api, httpbin):
    with pytest.raises(ActivityFailed, match="attempts_per_request is None, expected"):
        measure_retries(
            f"{httpbin}/status/503", "httpbin", requests=5, expect={"attempts_per_request": 1}
        )
    # What the answers show can be expected anywhere.
    assert (
        measure_retries(
            f"{httpbin}/status/503", "httpbin", requests=5, expect={"error_ratio": 1.0}
        )["errors"]
        == 5
    )


def test_overflow_and_ejection_from_answers_alone(api, httpbin):
    overflow = measure_overflow(f"{httpbin}/get", "httpbin", concurrency=3, waves=3)
    assert overflow["requests"] == 9 and overflow["overloaded_answers"] == 0
    assert overflow["pending_overflows"] is None
    ejection = measure_ejection(f"{httpbin}/status/503", "httpbin", requests=5, pace_s=0.01)
    assert ejection["errors_before_ejection"] == 5 and ejection["ejections"] is None
    assert ejection["errors_after_ejection"] == 0 and ejection["requests_after_ejection"] == 0


def test_a_target_that_does_not_answer_is_counted_as_errors(api):
    port = next(free_ports())  # nothing listens there
    seen = measure_retries(f"http://127.0.0.1:{port}/get", "httpbin", requests=3, timeout_s=2)
    assert seen["statuses"] == {"error": 3} and seen["error_ratio"] == 1.0
