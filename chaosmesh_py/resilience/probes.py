"""Chaos Toolkit probes for resilience policies (``chaosmesh_py.resilience.probes``): the policy
report's predictions, and what the data plane measured."""

# No `from __future__ import annotations`: `chaos discover` reads the activities' annotations
# as types (a string annotation would be shown to users as "object").

from collections.abc import Callable, Mapping
from typing import Any

from chaosmesh_py.engine.access import needs
from chaosmesh_py.engine.activity import boundary
from chaosmesh_py.errors import InvalidInput
from chaosmesh_py.resilience import policy_request, report

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

__all__ += []  # this section's Chaos Toolkit functions, by name
