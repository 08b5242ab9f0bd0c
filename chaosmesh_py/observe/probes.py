"""Chaos Toolkit probes for the steady state: real load, Istio's metrics, Envoy's counters.

They measure what users get, on a cluster and on the local mesh alike (except
``envoy_counters``, which reads the local mesh's Envoy).
"""

from collections.abc import Mapping
from typing import Any

from chaosmesh_py.engine.access import Access, needs, nothing
from chaosmesh_py.engine.activity import boundary
from chaosmesh_py.engine.envoy_admin import EnvoyAdmin
from chaosmesh_py.errors import InvalidInput, NotFound
from chaosmesh_py.kube import Kube
from chaosmesh_py.observe import envoy_stats, prometheus, prometheus_source
from chaosmesh_py.observe.load import LoadSpec, run_load, slo_met

__all__ = [
    "bookinfo_page",
    "envoy_counters",
    "http_slo_is_met",
    "istio_error_ratio",
    "istio_latency_p99_ms",
    "istio_request_rate",
    "measure_http_load",
    "prometheus_query",
]


def _local_mesh_only(arguments: Mapping[str, Any]) -> list[Access]:
    raise InvalidInput(
        "envoy_counters",
        "reads the local mesh's Envoy, which a cluster has not",
        "on a cluster, ask Prometheus (istio_error_ratio, prometheus_query)",
    )


@needs(_local_mesh_only)
def envoy_counters(workload: str = None, service: str = None, secrets: dict = None) -> dict:
    """Local mesh only: Envoy's counters for a calling `workload`'s sidecar (requests,
    responses_5xx, aborts_injected, delays_injected) and/or for a destination `service`, all
    its subsets summed (requests, responses_5xx, retries, timeouts, pending_overflows,
    connection_overflows, ejections). Counters only grow: compare two readings, e.g. with a
    jsonpath tolerance on `service.retries`. On a cluster, ask Prometheus instead.
    """
    with boundary():
        if workload is None and service is None:
            raise InvalidInput("workload/service", "give at least one of them")
        mesh = Kube.connect(secrets).local_mesh()
        if mesh is None:
            raise NotFound("envoy_counters reads the local mesh's Envoy; this API is a cluster's")
        counters: dict = {}
        with EnvoyAdmin(mesh["envoy_admin_socket"]) as admin:
            if workload is not None:
                if workload not in mesh["workloads"]:
                    raise InvalidInput(
                        "workload",
                        f"no workload {workload!r}",
                        f"one of {sorted(mesh['workloads'])}",
                    )
                stat_prefix = mesh["workloads"][workload]["stat_prefix"]
                counters["workload"] = envoy_stats.sidecar_counters(admin, stat_prefix)
            if service is not None:
                if service not in mesh["services"]:
                    raise InvalidInput(
                        "service", f"no service {service!r}", f"one of {sorted(mesh['services'])}"
                    )
                fqdn = mesh["services"][service]["fqdn"]
                counters["service"] = envoy_stats.service_counters(admin, fqdn)
        return counters


@needs(nothing)  # HTTP and Prometheus only
def bookinfo_page(
    url: str,
    user: str = None,
    pages: int = 20,
    concurrency: int = 20,
    timeout_s: float = 15.0,
) -> dict:
    """Bookinfo's product page as `user` gets it (logged in, so the page sends `end-user: <user>`
    downstream; anonymous when not given): `pages` loads of `url` + /productpage, `concurrency`
    at a time, each whole when HTTP 200 without the errors Bookinfo prints when reviews,
    ratings or details fail. `url` is Bookinfo's base URL, e.g. http://localhost:9080. Reports
    pages, whole, whole_share, errors (per dependency), statuses and seconds (median, max).
    Check it with {"type": "range", "range": [1, 1], "target": "whole_share"}: one load alone
    would pass a 50 % fault half the time.
    """
    with boundary():
        from chaosmesh_py.observe.bookinfo_page import check_page

        return check_page(url, user, pages, concurrency, timeout_s).to_json()


@needs(nothing)  # HTTP and Prometheus only
def measure_http_load(
    url: str,
    method: str = "GET",
    headers: dict = None,
    requests: int = None,
    duration_s: float = None,
    rate_per_s: float = None,
    concurrency: int = 10,
    timeout_s: float = 10.0,
    error_if_status_at_least: int = 500,
) -> dict:
    """Drive `url` with real requests and report what users saw: requests, errors,
    error_ratio, statuses (a histogram, "error" for connection errors and timeouts),
    latency_ms (p50, p90, p99, max, mean) and throughput_per_s.

    Stops after `requests` or `duration_s` (at least one). With `rate_per_s`, requests start
    on a fixed schedule and latency counts from when each was due; otherwise `concurrency`
    workers send back to back. `headers` let the probe act as one user (e.g.
    {"end-user": "jason"}) or as everyone else. A status at or above
    `error_if_status_at_least` counts as an error. Check it with a tolerance such as
    {"type": "range", "range": [0, 0.01], "target": "error_ratio"}.
    """
    with boundary():
        spec = LoadSpec(
            url,
            method,
            headers or {},
            requests,
            duration_s,
            rate_per_s,
            concurrency,
            timeout_s,
            error_if_status_at_least,
        )
        return run_load(spec).to_json()


@needs(nothing)  # HTTP and Prometheus only
def http_slo_is_met(
    url: str,
    max_error_ratio: float = None,
    max_p50_ms: float = None,
    max_p90_ms: float = None,
    max_p99_ms: float = None,
    method: str = "GET",
    headers: dict = None,
    requests: int = None,
    duration_s: float = None,
    rate_per_s: float = None,
    concurrency: int = 10,
    timeout_s: float = 10.0,
    error_if_status_at_least: int = 500,
) -> bool:
    """The same load as measure_http_load, judged: True when the error ratio and the latency
    percentiles are within the given maxima (those not given are not checked). Use it with
    tolerance true, in a steady-state hypothesis or as a guardrail."""
    with boundary():
        spec = LoadSpec(
            url,
            method,
            headers or {},
            requests,
            duration_s,
            rate_per_s,
            concurrency,
            timeout_s,
            error_if_status_at_least,
        )
        return slo_met(run_load(spec), max_error_ratio, max_p50_ms, max_p90_ms, max_p99_ms)


@needs(prometheus_source.needs)
def prometheus_query(prometheus_url: str, promql: str, secrets: dict = None) -> list:
    """Evaluate `promql` now against the Prometheus at `prometheus_url`: a list of
    {"metric": {labels}, "value": number}. For one number, use the Istio probes below or a
    jsonpath tolerance on `[0].value`. An empty `prometheus_url` means the local mesh's own
    Prometheus (`chaosmesh local up` starts one when it is installed)."""
    with boundary():
        return prometheus.query(prometheus_source.url(prometheus_url, secrets), promql)


@needs(prometheus_source.needs)
def istio_error_ratio(
    prometheus_url: str,
    service: str,
    namespace: str = "default",
    window: str = "1m",
    reporter: str = "source",
    secrets: dict = None,
) -> float:
    """Share (0 to 1) of requests to `service` answered 5xx over the last `window`, from
    Istio's `istio_requests_total`; 0.0 without traffic. The same query works on a cluster and
    on the local mesh, whose own Prometheus an empty `prometheus_url` means (`chaosmesh local
    status --json` gives its URL)."""
    with boundary():
        url = prometheus_source.url(prometheus_url, secrets)
        return prometheus.error_ratio(url, service, namespace, window=window, reporter=reporter)


@needs(prometheus_source.needs)
def istio_latency_p99_ms(
    prometheus_url: str,
    service: str,
    namespace: str = "default",
    window: str = "1m",
    reporter: str = "source",
    secrets: dict = None,
) -> float:
    """99th percentile (ms) of request durations to `service` over `window`, from Istio's
    `istio_request_duration_milliseconds` histogram (so within its buckets: a true 200 ms
    reads as a value in (100, 250]); 0.0 without traffic."""
    with boundary():
        url = prometheus_source.url(prometheus_url, secrets)
        return prometheus.latency_p99_ms(url, service, namespace, window=window, reporter=reporter)


@needs(prometheus_source.needs)
def istio_request_rate(
    prometheus_url: str,
    service: str,
    namespace: str = "default",
    window: str = "1m",
    reporter: str = "source",
    secrets: dict = None,
) -> float:
    """Requests per second to `service` over `window`, from `istio_requests_total`: check it
    beside the error ratio when no traffic at all would be a failure."""
    with boundary():
        url = prometheus_source.url(prometheus_url, secrets)
        return prometheus.request_rate(url, service, namespace, window=window, reporter=reporter)
