"""Chaos Toolkit probes for traffic: what users get, measured, not what the configuration says.

Three families, each a thin surface over its own module:
- the observed share of requests per version (``chaosmesh_py.traffic.share``);
- the dark-launch leak check (``chaosmesh_py.traffic.leaks``);
- canary analysis, canary against baseline (``chaosmesh_py.traffic.canary``).
"""

import logging
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
def _canary(
    service: str,
    canary_version: str,
    baseline_version: str,
    reporter: str,
    namespace: str,
    window: str,
    prometheus_url: str | None,
    criteria: dict[str, Any],
    calls_to: str | None,
    secrets: dict | None,
) -> canary.Analysis:
    if reporter not in ("source", "destination"):
        raise InvalidInput(
            "reporter",
            f"{reporter!r} is neither 'source' nor 'destination'",
            "'source': the caller's proxy, which also sees what it failed itself (an injected "
            "abort, a timeout it gave up on); 'destination': the workload's own proxy, which "
            "sees only requests that reached it (Flagger's built-in checks)",
        )
    checked = canary.Criteria(**criteria)  # checked before Prometheus is asked anything
    return canary.analyse_canary(
        _prometheus(prometheus_url or "", secrets),
        service,
        canary_version,
        baseline_version,
        namespace=namespace,
        reporter=reporter,
        window=window,
        criteria=checked,
        calls_to=calls_to,
    )


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
        criteria = {
            "min_requests": min_requests,
            "max_error_ratio_delta": max_error_ratio_delta,
            "max_latency_ratio": max_latency_ratio,
            "confidence": confidence,
        }
        if expect not in (None, "pass", "fail"):
            raise InvalidInput(
                "expect", f"{expect!r} is neither 'pass' nor 'fail'", "or leave it out"
            )
        analysis = _canary(
            service,
            canary_version,
            baseline_version,
            reporter,
            namespace,
            window,
            prometheus_url,
            criteria,
            calls_to,
            secrets,
        )
        for reason in analysis.reasons:
            logger.info("canary %s of %s: %s", canary_version, service, reason)
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
        criteria = {
            "min_requests": min_requests,
            "max_error_ratio_delta": max_error_ratio_delta,
            "max_latency_ratio": max_latency_ratio,
            "confidence": confidence,
        }
        analysis = _canary(
            service,
            canary_version,
            baseline_version,
            reporter,
            namespace,
            window,
            prometheus_url,
            criteria,
            calls_to,
            secrets,
        )
        for reason in analysis.reasons:
            logger.info("canary %s of %s: %s", canary_version, service, reason)
        if analysis.verdict == "insufficient":
            raise canary.InsufficientData(
                "too few requests to judge the canary: " + "; ".join(analysis.reasons)
            )
        return analysis.verdict == "pass"
