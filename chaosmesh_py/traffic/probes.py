"""Chaos Toolkit probes for traffic: what users get, measured, not what the configuration says.

Three families, each a thin surface over its own module:
- the observed share of requests per version (``chaosmesh_py.traffic.share``);
- the dark-launch leak check (``chaosmesh_py.traffic.leaks``);
- canary analysis, canary against baseline (``chaosmesh_py.traffic.canary``).
"""

import inspect
import logging
from collections.abc import Mapping
from typing import Any

from chaosmesh_py.engine.access import needs
from chaosmesh_py.engine.activity import boundary
from chaosmesh_py.errors import InvalidInput
from chaosmesh_py.observe.probes import _prometheus, _prometheus_needs
from chaosmesh_py.traffic import canary

__all__ = ["canary_analysis", "canary_is_healthy"]

logger = logging.getLogger("chaostoolkit")

# ---------------------------------------------------------------- observed share (share.py)


# ---------------------------------------------------------------- dark-launch leaks (leaks.py)


# ---------------------------------------------------------------- canary analysis (canary.py)

_CANARY_PROBES = ("canary_analysis", "canary_is_healthy")
_EXPECTED = (None, "pass", "fail")


def _comparison(arguments: Mapping[str, Any]) -> canary.Comparison:
    """The canary probes' arguments, checked: nothing is asked of anyone."""
    if arguments.get("expect") not in _EXPECTED:
        raise InvalidInput(
            "expect", f"{arguments['expect']!r} is neither 'pass' nor 'fail'", "or leave it out"
        )
    criteria = canary.Criteria(
        arguments["min_requests"],
        arguments["max_error_ratio_delta"],
        arguments["max_latency_ratio"],
        arguments["confidence"],
    )
    return canary.Comparison(
        arguments["service"],
        arguments["canary_version"],
        arguments["baseline_version"],
        arguments["namespace"],
        arguments["reporter"],
        arguments["window"],
        criteria,
        arguments["calls_to"],
    )


def _analysis(arguments: Mapping[str, Any]) -> canary.Analysis:
    comparison = _comparison(arguments)
    url = _prometheus(arguments["prometheus_url"] or "", arguments["secrets"])
    analysis = canary.analyse_canary(url, comparison)
    for reason in analysis.reasons:
        logger.info("canary %s of %s: %s", comparison.canary_version, comparison.service, reason)
    return analysis


def check_arguments(
    probe: str, arguments: dict[str, Any], configuration: dict[str, Any] | None
) -> None:
    """Raise InvalidInput if ``probe`` would refuse ``arguments`` before asking anything: the
    chaosmesh control checks every activity before the run (exit 2, nothing written)."""
    if probe in _CANARY_PROBES:
        bound = inspect.signature(globals()[probe]).bind(**arguments)
        bound.apply_defaults()
        _comparison(bound.arguments)


@needs(_prometheus_needs)
def canary_analysis(
    service: str,
    canary_version: str,
    baseline_version: str,
    reporter: str,
    namespace: str = "default",
    window: str = "1m",
    prometheus_url: str = None,
    min_requests: int = 100,
    max_error_ratio_delta: float = 0.01,
    max_latency_ratio: float = 1.5,
    confidence: float = 0.95,
    calls_to: str = None,
    expect: str = None,
    secrets: dict = None,
) -> dict:
    """Canary analysis: `canary_version` of `service` against `baseline_version` over the last
    `window`, from Istio's metrics in the Prometheus at `prometheus_url` (empty: the local
    mesh's). `reporter` must be chosen: "source" (the caller's proxy, which also counts what it
    failed itself: injected aborts, timeouts it gave up on) or "destination" (the workload's
    proxy: only requests that reached it, as Flagger's checks see them).

    Errors (5xx, and 0: no answer) by a two-proportion z-test; latency by a Mann-Whitney U test
    on the histogram buckets. The canary fails when a test is significant at `confidence` and
    the difference exceeds `max_error_ratio_delta` (error ratio, absolute) or
    `max_latency_ratio` (p50 or p99, canary over baseline). Fewer than `min_requests` requests
    for either version: "insufficient", never "pass". With `calls_to` (e.g. "ratings"), the
    versions' calls to that service are compared instead (by source_version): a version that
    hides its dependency's failures behind a 200 shows them there.

    Returns {"verdict": "pass" | "fail" | "insufficient", "reasons", "canary" and "baseline"
    (requests, errors, error_ratio, error_ratio_interval, latency_ms p50/p99), "tests" (each
    test, its statistic and p_value), "unattributed" (source only: requests the caller failed
    before a version was chosen), ...}.

    `expect` ("pass" or "fail"), for an experiment's method, where Chaos Toolkit checks no
    tolerance: the probe fails, and the run's verdict with it, when the verdict is another
    ("insufficient" always is), e.g. "fail" to assert that the analysis flags a broken canary.
    """
    with boundary():
        analysis = _analysis(locals())
        if expect is not None and analysis.verdict != expect:
            raise canary.UnexpectedVerdict(
                f"the canary analysis of {service} {canary_version} against {baseline_version} "
                f"({analysis.compared}) says {analysis.verdict}, not {expect}: "
                + ("; ".join(analysis.reasons) or "no test flagged the canary")
            )
        return analysis.to_json()


@needs(_prometheus_needs)
def canary_is_healthy(
    service: str,
    canary_version: str,
    baseline_version: str,
    reporter: str,
    namespace: str = "default",
    window: str = "1m",
    prometheus_url: str = None,
    min_requests: int = 100,
    max_error_ratio_delta: float = 0.01,
    max_latency_ratio: float = 1.5,
    confidence: float = 0.95,
    calls_to: str = None,
    secrets: dict = None,
) -> bool:
    """canary_analysis, judged: True when the canary passes, False when the analysis flags it.
    Too few requests to judge is neither: the probe fails (naming the counts), so neither
    tolerance true nor false can be met by a canary nobody measured. In a steady-state
    hypothesis, tolerance true is the canary gate; tolerance false asserts that the analysis
    flags the canary."""
    with boundary():
        analysis = _analysis({**locals(), "expect": None})
        if analysis.verdict == "insufficient":
            raise canary.InsufficientData(
                "too few requests to judge the canary: " + "; ".join(analysis.reasons)
            )
        return analysis.verdict == "pass"
