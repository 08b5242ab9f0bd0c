"""The Envoy counters probe on the local mesh: faults, retries, overflows, ejections."""

import pytest
from chaoslib.exceptions import ActivityFailed

from chaosmesh_py.faults.actions import inject_abort
from chaosmesh_py.faults.rollbacks import remove_faults
from chaosmesh_py.observe.probes import envoy_counters
from tests.local.conftest import httpbin_route, through_sidecar
from tests.local.load import burst
from tests.local.test_semantics import httpbin_policy


def test_aborts_injected_are_counted_at_the_callers_sidecar(mesh, configuration):
    httpbin_route(mesh)
    before = envoy_counters(workload="sleep", service="httpbin")
    inject_abort(
        virtual_service="httpbin",
        namespace="bookinfo",
        http_status=503,
        percentage=100,
        configuration=configuration,
    )
    url, headers = through_sidecar(mesh, "httpbin", "/get")
    burst(url, 40, headers=headers)
    after = envoy_counters(workload="sleep", service="httpbin")
    # Verification sent its own request(s) through some sidecar too: at least ours count.
    assert after["workload"]["aborts_injected"] - before["workload"]["aborts_injected"] >= 40
    assert after["workload"]["responses_5xx"] - before["workload"]["responses_5xx"] >= 40
    # Injected aborts never reach the destination's clusters.
    assert after["service"]["requests"] == before["service"]["requests"]
    remove_faults(virtual_service="httpbin", namespace="bookinfo", configuration=configuration)


def test_retries_and_overflows_are_counted_for_the_service(mesh):
    httpbin_route(mesh, retries={"attempts": 2, "retryOn": "5xx"})
    before = envoy_counters(service="httpbin")["service"]
    url, headers = through_sidecar(mesh, "httpbin", "/status/503")
    burst(url, 5, concurrency=1, headers=headers)
    assert envoy_counters(service="httpbin")["service"]["retries"] - before["retries"] == 10

    httpbin_policy(
        mesh,
        connectionPool={
            "tcp": {"maxConnections": 1},
            "http": {"http1MaxPendingRequests": 1, "maxRequestsPerConnection": 1},
        },
    )
    url, headers = through_sidecar(mesh, "httpbin", "/delay/0.2")
    burst(url, 20, concurrency=20, headers=headers)
    assert envoy_counters(service="httpbin")["service"]["pending_overflows"] >= 10


def test_unknown_names_are_refused(mesh):
    with pytest.raises(ActivityFailed, match="workload: no workload 'nobody'"):
        envoy_counters(workload="nobody")
    with pytest.raises(ActivityFailed, match="workload/service: give at least one"):
        envoy_counters()


def test_the_load_probes_see_a_fault_and_its_end(mesh, configuration):
    from chaosmesh_py.observe.probes import http_slo_is_met, measure_http_load

    url = mesh.info()["services"]["ratings"]["url"] + "/ratings/0"
    assert http_slo_is_met(url, max_error_ratio=0.0, requests=200)
    inject_abort(
        virtual_service="ratings",
        namespace="bookinfo",
        http_status=503,
        percentage=100,
        configuration=configuration,
    )
    seen = measure_http_load(url, requests=200)
    assert seen["error_ratio"] == 1.0 and seen["statuses"] == {"503": 200}
    assert not http_slo_is_met(url, max_error_ratio=0.01, requests=100)
    remove_faults(virtual_service="ratings", namespace="bookinfo", configuration=configuration)
    assert measure_http_load(url, requests=200)["error_ratio"] == 0.0
