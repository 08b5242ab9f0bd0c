"""The load probe through the real local mesh: what it reports for faults Envoy really injects."""

import time
from contextlib import contextmanager

import pytest

from chaosmesh_py.faults.actions import inject_abort, inject_delay
from chaosmesh_py.faults.rollbacks import remove_faults
from chaosmesh_py.observe.load import LoadSpec, run_load, slo_met
from tests.local.conftest import httpbin_route, through_sidecar


@pytest.fixture
def httpbin(mesh):
    """httpbin's URL through the mesh, with a VirtualService that faults can be put on."""
    httpbin_route(mesh)
    return mesh.info()["services"]["httpbin"]["url"]


@contextmanager
def fault_on_httpbin(action, configuration, **arguments):
    action(
        virtual_service="httpbin", namespace="bookinfo", configuration=configuration, **arguments
    )
    try:
        yield
    finally:
        remove_faults(virtual_service="httpbin", namespace="bookinfo", configuration=configuration)


def test_an_injected_30_percent_abort_is_the_error_ratio_within_3_points(httpbin, configuration):
    from chaoslib.hypothesis import within_tolerance

    with fault_on_httpbin(inject_abort, configuration, http_status=503, percentage=30):
        # 3,000 requests: the binomial spread at 30% is 0.84 points, so 3 points is 3.6 sigma.
        measured = run_load(LoadSpec(httpbin + "/get", requests=3000, concurrency=10))
    assert measured.requests == 3000
    assert set(measured.statuses) == {"200", "503"}
    assert measured.errors == measured.statuses["503"]
    assert 0.27 <= measured.error_ratio <= 0.33, measured.error_ratio
    # What an experiment's steady-state probe would declare, checked by Chaos Toolkit itself.
    tolerance = {"type": "range", "range": [0, 0.05], "target": "error_ratio"}
    assert not within_tolerance(tolerance, measured.to_json())
    after = run_load(LoadSpec(httpbin + "/get", requests=300))
    assert after.statuses == {"200": 300}
    assert within_tolerance(tolerance, after.to_json())


def test_headers_reach_the_mesh_so_a_probe_can_act_as_jason_or_as_everyone_else(
    mesh, httpbin, configuration
):
    # Through the sleep workload's sidecar: the Host header given picks the service.
    url, host = through_sidecar(mesh, "httpbin", "/get")
    with fault_on_httpbin(
        inject_abort,
        configuration,
        http_status=500,
        percentage=100,
        headers={"end-user": "jason"},
    ):
        jason = run_load(LoadSpec(url, requests=200, headers={**host, "end-user": "jason"}))
        others = run_load(LoadSpec(url, requests=200, headers={**host, "end-user": "mary"}))
    assert jason.statuses == {"500": 200}
    assert jason.error_ratio == 1.0
    assert others.statuses == {"200": 200}
    assert slo_met(others, max_error_ratio=0) and not slo_met(jason, max_error_ratio=0.5)


def test_a_fixed_rate_is_achieved_within_3_percent(httpbin):
    measured = run_load(LoadSpec(httpbin + "/get", duration_s=2.0, rate_per_s=300))
    assert abs(measured.requests - 600) <= 1, measured.requests
    assert measured.throughput_per_s == pytest.approx(300, rel=0.03)
    assert measured.statuses == {"200": measured.requests}


def test_a_200ms_delay_shows_in_p50(httpbin, configuration):
    before = run_load(LoadSpec(httpbin + "/get", requests=200))
    with fault_on_httpbin(inject_delay, configuration, fixed_delay="200ms", percentage=100):
        delayed = run_load(LoadSpec(httpbin + "/get", requests=50, concurrency=10))
    assert before.latency_ms["p50"] < 20, before.latency_ms
    # 197: a histogram bucket here is 0.8 ms wide (p50 is its midpoint), and Envoy's timers run on
    # libevent's coarse monotonic clock, so a delay may end up to a tick early (CI saw 198.66).
    assert 197 <= delayed.latency_ms["p50"] <= 215, delayed.latency_ms
    assert delayed.latency_ms["p99"] < 260, delayed.latency_ms
    assert delayed.error_ratio == 0.0
    assert slo_met(before, max_p50_ms=100) and not slo_met(delayed, max_p50_ms=100)


def test_requests_past_the_timeout_are_errors(httpbin):
    started = time.monotonic()
    measured = run_load(LoadSpec(httpbin + "/delay/2", requests=6, concurrency=6, timeout_s=0.25))
    assert time.monotonic() - started < 1.0
    assert measured.statuses == {"error": 6}
    assert measured.error_ratio == 1.0
    assert 250 <= measured.latency_ms["p50"] <= 320, measured.latency_ms


def test_the_duration_bounds_the_run_even_when_answers_are_slow(httpbin, configuration):
    started = time.monotonic()
    fast = run_load(LoadSpec(httpbin + "/get", duration_s=1.0))
    elapsed = time.monotonic() - started
    assert 1.0 <= elapsed < 1.2, elapsed
    assert fast.requests > 200
    with fault_on_httpbin(inject_delay, configuration, fixed_delay="300ms", percentage=100):
        started = time.monotonic()
        slow = run_load(LoadSpec(httpbin + "/get", duration_s=1.0, concurrency=5))
        elapsed = time.monotonic() - started
    # Nothing starts after 1 s; what is in flight then ends 300 ms later.
    assert 1.0 <= elapsed < 1.0 + 0.3 + 0.2, elapsed
    assert 15 <= slow.requests <= 20, slow.requests
