"""Chaos Toolkit probes for resilience policies (``chaosmesh_py.resilience.probes``): the policy
report's predictions, and what the data plane measured."""

# No `from __future__ import annotations`: `chaos discover` reads the activities' annotations
# as types (a string annotation would be shown to users as "object").

from collections.abc import Callable, Mapping
from typing import Any

from chaosmesh_py.engine.access import needs, nothing
from chaosmesh_py.engine.activity import boundary
from chaosmesh_py.errors import InvalidInput
from chaosmesh_py.resilience import measured_probes, policy_request, report

# Per probe: what refuses its arguments before it measures anything (no request, no API call).
_ARGUMENT_CHECKS: dict[str, Callable[[Mapping[str, Any]], object]] = {}


def check_arguments(
    probe: str, arguments: Mapping[str, Any], configuration: Mapping[str, Any] | None
) -> None:
    """Raise InvalidInput if ``probe`` would refuse ``arguments`` (bound, defaults applied)."""
    check = _ARGUMENT_CHECKS.get(probe)
    if check is not None:
        check(arguments)


__all__: list[str] = []

# ------------------------------------------------------------ policy report (predictions)
# What the mesh's timeouts and retries predict, before any experiment (docs/resilience.md, "The
# policy report"). Every probe here takes the same arguments as `chaosmesh policy report`:
# namespaces, edges (a list of {"source", "destination", ...}) and/or edges_file, or
# from_metrics with prometheus_url ("" : the local mesh's) and window; max_amplification is the
# threshold above which a path is a finding.

__all__ += ["max_amplification", "policy_findings", "policy_report"]


@needs(policy_request.needs)
def policy_report(
    namespaces: list = None,
    edges: list = None,
    edges_file: str = None,
    from_metrics: bool = False,
    prometheus_url: str = "",
    window: str = "10m",
    max_amplification: int = report.DEFAULT_MAX_AMPLIFICATION,
    max_paths: int = report.DEFAULT_MAX_PATHS,
    ignore: list = None,
    configuration: dict = None,
    secrets: dict = None,
) -> dict:
    """The policy report as JSON, the same as `chaosmesh policy report --json`: "edges" (per
    edge: source, destination, timeout_s, attempts, per_try_timeout_s, retry_on,
    implicit_default, retries_5xx, retries_gateway_errors, retries_connect_failure,
    worst_case_s, circuit_breaker, outlier_detection, worst_path_amplification, routes),
    "paths" (entry, leaf, nodes, attempts, max_attempts, max_attempts_on_503,
    max_attempts_leaf_unreachable, worst_case_s),
    "max_amplification", "findings" (kind, where, message, fix; those of the `ignore` kinds
    left out) and "summary"."""
    with boundary():
        request = _checked({**locals()})
        return policy_request.produce(request, secrets).report


@needs(policy_request.needs)
def max_amplification(
    entry: str = None,
    leaf: str = None,
    namespaces: list = None,
    edges: list = None,
    edges_file: str = None,
    from_metrics: bool = False,
    prometheus_url: str = "",
    window: str = "10m",
    configuration: dict = None,
    secrets: dict = None,
) -> int:
    """The most attempts one request entering at `entry` may cause at `leaf` (the product of
    the attempts along the worst path between them; any entry / any leaf when not given).
    Nodes are services, "name.namespace" (a bare name: in the first of `namespaces`)."""
    with boundary():
        request = _checked({**locals()})
        analysis = policy_request.produce(request, secrets)
        ends = [_node(value, request, analysis) for value in (entry, leaf)]
        amplification = analysis.graph.amplification(ends[0], ends[1])
        if amplification is None:
            raise InvalidInput("entry/leaf", f"no call path from {ends[0]} to {ends[1]}")
        return amplification


@needs(policy_request.needs)
def policy_findings(
    kind: str = None,
    namespaces: list = None,
    edges: list = None,
    edges_file: str = None,
    from_metrics: bool = False,
    prometheus_url: str = "",
    window: str = "10m",
    max_amplification: int = report.DEFAULT_MAX_AMPLIFICATION,
    configuration: dict = None,
    secrets: dict = None,
) -> list:
    """The report's findings (each: kind, where, message, fix), only those of `kind` when given
    (amplification, timeout_inversion, per_try_timeout, no_circuit_breaker,
    no_outlier_detection, cycle, retries_non_idempotent). A steady-state hypothesis asserts
    none with the tolerance [[]] (the output is one of its items: the empty list)."""
    with boundary():
        request = _checked({**locals()})
        findings = policy_request.produce(request, secrets).report["findings"]
        return [f for f in findings if kind is None or f["kind"] == kind]


def _node(
    value: str | None, request: policy_request.ReportRequest, analysis: report.Analysis
) -> str | None:
    if value is None:
        return None
    node = value if "." in value else f"{value}.{request.default_namespace}"
    if node not in analysis.graph.up:
        known = ", ".join(list(analysis.graph.order)[:20])
        raise InvalidInput(
            "entry/leaf", f"{value!r} is no node of the call graph", f"one of {known}"
        )
    return node


def _checked(arguments: Mapping[str, Any]) -> policy_request.ReportRequest:
    """Every argument checked (no request sent); the report request they make."""
    kind = arguments.get("kind")
    if kind is not None and kind not in report.FINDING_KINDS:
        raise InvalidInput(
            "kind", f"{kind!r} is not a finding kind", f"one of {list(report.FINDING_KINDS)}"
        )
    for end in ("entry", "leaf"):
        value = arguments.get(end)
        if value is not None and not (isinstance(value, str) and value):
            raise InvalidInput(end, f"must be a service name, got {value!r}", 'e.g. "productpage"')
    return policy_request.parse_request(arguments)


for _probe in ("policy_report", "max_amplification", "policy_findings"):
    _ARGUMENT_CHECKS[_probe] = _checked


# ------------------------------------------------------------ measured on the data plane
# Real requests, counted answers, and on the local mesh the destination's Envoy counters
# (chaosmesh_py.resilience.measure says which numbers a cluster has and where).


@needs(nothing)  # HTTP, and the local mesh's published info when there is one
def measure_retries(
    url: str,
    service: str,
    requests: int = 100,
    concurrency: int = 1,
    headers: dict = None,
    timeout_s: float = 10.0,
    expect: dict = None,
    secrets: dict = None,
) -> dict:
    """Send `requests` GETs to `url` (`concurrency` at a time) and report what the retry policy
    of the route to `service` did: requests, errors, error_ratio with its 95 % Wilson interval
    (error_ratio_interval), statuses, answered_on_attempt (which try answered, as the upstream
    saw it; the local httpbin tells it), and on the local mesh upstream_attempts,
    attempts_per_request and retries from Envoy's counters of `service` (null on a cluster;
    they count every caller's requests to `service` meanwhile, so measure where only this load
    reaches it).
    Check it with e.g. {"type": "range", "range": [3.99, 4.01], "target":
    "attempts_per_request"} in a steady state, or in the method with `expect`
    ({"attempts_per_request": 4}, {"latency_max_s": [0, 1.5]}: a number or a [low, high] per
    result field), which fails the probe, and so the run, when a field is outside it. Latency:
    latency_p50_s, latency_p99_s, latency_max_s.
    """
    with boundary():
        return measured_probes.held(
            measured_probes.retries(
                url,
                service=service,
                requests=requests,
                concurrency=concurrency,
                headers=headers or {},
                timeout_s=timeout_s,
                secrets=secrets,
            ),
            expect,
        )


@needs(nothing)
def measure_overflow(
    url: str,
    service: str,
    concurrency: int = 3,
    waves: int = 30,
    headers: dict = None,
    timeout_s: float = 10.0,
    expect: dict = None,
    secrets: dict = None,
) -> dict:
    """Send `waves` waves of `concurrency` simultaneous GETs to `url` and report how many a
    circuit breaker refused: overloaded_answers (503 with x-envoy-overloaded, flag UO),
    overflow_ratio, statuses, and on the local mesh Envoy's pending_overflows and
    connection_overflows for `service`. Istio's circuit-breaking task (maxConnections 1,
    http1MaxPendingRequests 1) at concurrency 3 refuses between 1/3 and 2/3.
    """
    with boundary():
        return measured_probes.held(
            measured_probes.overflow(
                url,
                service=service,
                concurrency=concurrency,
                waves=waves,
                headers=headers or {},
                timeout_s=timeout_s,
                secrets=secrets,
            ),
            expect,
        )


@needs(nothing)
def measure_ejection(
    url: str,
    service: str,
    requests: int = 200,
    pace_s: float = 0.02,
    headers: dict = None,
    timeout_s: float = 10.0,
    expect: dict = None,
    secrets: dict = None,
) -> dict:
    """Send `requests` GETs to `url` one at a time, one per `pace_s`, while an endpoint of
    `service` fails, and report when outlier detection stopped the errors:
    errors_before_ejection (with consecutive5xxErrors n and no retry of the error: n),
    time_to_ejection_s (first error to last), errors_after_ejection and
    error_ratio_after_ejection (the baseline again: 0), and on the local mesh Envoy's
    ejections. Keep requests x pace_s under baseEjectionTime, or the endpoint comes back.
    """
    with boundary():
        return measured_probes.held(
            measured_probes.ejection(
                url,
                service=service,
                requests=requests,
                pace_s=pace_s,
                headers=headers or {},
                timeout_s=timeout_s,
                secrets=secrets,
            ),
            expect,
        )


for _probe in ("measure_retries", "measure_overflow", "measure_ejection"):
    _ARGUMENT_CHECKS[_probe] = measured_probes.check_common

__all__ += ["measure_ejection", "measure_overflow", "measure_retries"]
