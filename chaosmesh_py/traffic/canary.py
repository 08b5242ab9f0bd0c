"""Canary analysis: the canary version against the baseline, from Istio's metrics, judged.

What is compared, over the last ``window``, from Prometheus:

    errors    istio_requests_total by version: 5xx and 0 (no answer at all) against the rest,
              a two-proportion z-test (one-sided: is the canary's ratio higher?)
    latency   istio_request_duration_milliseconds_bucket by version: the two histograms compared
              whole with a Mann-Whitney U test on the bucket counts (one-sided: does a canary
              request tend to take longer than a baseline one?), and p50/p99 interpolated in
              the buckets as Prometheus's histogram_quantile does

Why these tests. Istio's metrics are counters, so the error ratio is a binomial proportion per
version, for which the z-test on two proportions is the textbook test (with each ratio's Wilson
interval beside it). Latency exists only as histogram buckets, not samples: a t-test would need
means and variances the buckets do not hold, and comparing two interpolated p99s has no known
sampling distribution. Mann-Whitney needs only the order of the observations, which buckets
give up to ties: every request in one bucket ties with every other there, which the tie
correction of the normal approximation accounts for (Kayenta, Spinnaker's canary judge, also
uses Mann-Whitney, on raw samples). Its effect size, the probability that a canary request is
slower than a baseline one (ties count half), is reported as ``slower_share``.

A test's significance is not enough: a thousandth more errors is significant with enough
traffic. The canary regresses when a test is significant at ``1 - confidence`` (halved per
test, Bonferroni, so that the two together raise a false alarm at most that often) AND the
difference matters: its error ratio exceeds the baseline's by more than
``max_error_ratio_delta``, or its p50 or p99 exceeds the baseline's by more than
``max_latency_ratio`` times (and by more than ``LATENCY_FLOOR_MS``: below that, Istio's
buckets cannot tell latencies apart). Fewer than ``min_requests`` requests for either version
(or in either histogram) is ``insufficient``, never ``pass``.

Whose view (``reporter``, required). ``source``: the caller's proxy, which also counts what it
answered itself (an injected abort, a circuit breaker's overflow, a timeout it gave up on).
``destination``: the workload's own proxy, which counts only the requests that reached it, as
Flagger's built-in checks do. A request failed by the caller before any version was chosen (an
abort Istio injects is one) carries ``destination_version="unknown"``: no version can be blamed
for it, in either view. With ``reporter="source"`` such requests are reported as
``unattributed``; the destination never sees them.

``calls_to`` compares the calls each version makes to another service (by ``source_version``)
instead of the calls it receives: in Bookinfo, reviews v3 answers 200 when ratings fails, so
its own requests show nothing, while its calls to ratings do.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from chaosmesh_py.errors import ChaosMeshError, InvalidInput
from chaosmesh_py.observe import prometheus
from chaosmesh_py.observe.statistics import mann_whitney_binned, two_proportion_z, wilson_interval

__all__ = [
    "Analysis",
    "Comparison",
    "Criteria",
    "Histogram",
    "InsufficientData",
    "UnexpectedVerdict",
    "Version",
    "analyse_canary",
    "judge",
]

# 5xx, or no answer at all (0: a reset, or a caller that gave up, as its destination reports
# it). Flagger's success rate counts 0 as success; a user who got nothing did not succeed.
ERROR_CODES = "5..|0"
# Below this, a difference in latency is within one of Istio's histogram buckets at the low
# end (0.5, 1, 5, 10 ms): noise, not a regression.
LATENCY_FLOOR_MS = 5.0
UNKNOWN = "unknown"
_VERSION = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?")


class InsufficientData(ChaosMeshError):
    """Too few requests in the window to judge the canary; neither healthy nor not."""


class UnexpectedVerdict(ChaosMeshError):
    """The analysis judged otherwise than the experiment expected (``expect``)."""


@dataclass(frozen=True)
class Criteria:
    """What the canary is held to; checked on construction (``InvalidInput`` names the field)."""

    min_requests: int = 100
    max_error_ratio_delta: float = 0.01
    max_latency_ratio: float = 1.5
    confidence: float = 0.95

    def __post_init__(self) -> None:
        if isinstance(self.min_requests, bool) or not isinstance(self.min_requests, int):
            raise InvalidInput("min_requests", f"must be a whole number, not {self.min_requests!r}")
        if self.min_requests < 10:
            raise InvalidInput(
                "min_requests",
                f"{self.min_requests} is too few for the tests' normal approximations",
                "use 10 or more (100 or more for an error ratio of a percent)",
            )
        _check_number("max_error_ratio_delta", self.max_error_ratio_delta, 0.0, 1.0)
        _check_number("max_latency_ratio", self.max_latency_ratio, 1.0, math.inf)
        _check_number("confidence", self.confidence, 0.5, 1.0, inclusive=False)

    @property
    def alpha_per_test(self) -> float:
        return (1.0 - self.confidence) / 2  # two tests, Bonferroni


@dataclass(frozen=True)
class Histogram:
    """Cumulative bucket counts by upper bound (ms), ``+Inf`` last, as Prometheus keeps them."""

    buckets: tuple[tuple[float, float], ...]

    @property
    def count(self) -> int:
        return round(self.buckets[-1][1]) if self.buckets else 0

    def quantile(self, q: float) -> float | None:
        """Prometheus's histogram_quantile: linear within the bucket holding the rank, from 0
        for the first; the highest finite bound when the rank falls in +Inf."""
        if not self.buckets or self.buckets[-1][1] <= 0:
            return None
        rank = q * self.buckets[-1][1]
        lower_bound, lower_count = 0.0, 0.0
        for bound, cumulative in self.buckets:
            if cumulative >= rank:
                if math.isinf(bound):
                    return lower_bound
                inside = cumulative - lower_count
                share = (rank - lower_count) / inside if inside else 1.0
                return lower_bound + (bound - lower_bound) * share
            lower_bound, lower_count = bound, cumulative
        return lower_bound

    def per_bucket(self, bounds: Sequence[float]) -> list[float]:
        """Counts in each of ``bounds``' buckets (not cumulative)."""
        cumulative = dict(self.buckets)
        counts, previous = [], 0.0
        for bound in bounds:
            now = cumulative.get(bound, previous)
            counts.append(max(now - previous, 0.0))
            previous = max(now, previous)
        return counts


@dataclass(frozen=True)
class Version:
    """What one version's requests were in the window."""

    version: str
    requests: int
    errors: int
    histogram: Histogram

    def to_json(self, confidence: float) -> dict[str, Any]:
        low, high = wilson_interval(self.errors, self.requests, confidence)
        return {
            "version": self.version,
            "requests": self.requests,
            "errors": self.errors,
            "error_ratio": self.errors / self.requests if self.requests else None,
            "error_ratio_interval": [low, high] if self.requests else None,
            "latency_ms": {
                "requests": self.histogram.count,
                "p50": self.histogram.quantile(0.5),
                "p99": self.histogram.quantile(0.99),
            },
        }


@dataclass(frozen=True)
class Analysis:
    """The judgement and everything it rests on; ``to_json`` is what the probe returns."""

    verdict: str  # pass | fail | insufficient
    reasons: tuple[str, ...]
    canary: Version
    baseline: Version
    tests: Mapping[str, Any]
    unattributed: Mapping[str, Any] | None
    compared: str
    reporter: str
    window: str
    criteria: Criteria

    def to_json(self) -> dict[str, Any]:
        confidence = self.criteria.confidence
        return {
            "verdict": self.verdict,
            "reasons": list(self.reasons),
            "compared": self.compared,
            "reporter": self.reporter,
            "window": self.window,
            "canary": self.canary.to_json(confidence),
            "baseline": self.baseline.to_json(confidence),
            "tests": dict(self.tests),
            "unattributed": dict(self.unattributed) if self.unattributed is not None else None,
            "criteria": {
                "min_requests": self.criteria.min_requests,
                "max_error_ratio_delta": self.criteria.max_error_ratio_delta,
                "max_latency_ratio": self.criteria.max_latency_ratio,
                "confidence": confidence,
            },
        }


@dataclass(frozen=True)
class Comparison:
    """What to compare, every field checked on construction (``InvalidInput`` names it), so a
    bad argument is refused before Prometheus, or anything else, is asked."""

    service: str
    canary_version: str
    baseline_version: str
    namespace: str
    reporter: str
    window: str = "1m"
    criteria: Criteria = field(default_factory=Criteria)
    calls_to: str | None = None

    def __post_init__(self) -> None:
        if self.reporter not in ("source", "destination"):
            raise InvalidInput(
                "reporter",
                f"{self.reporter!r} is neither 'source' nor 'destination'",
                "'source': the caller's proxy, which also sees what it failed itself (an "
                "injected abort, a timeout it gave up on); 'destination': the workload's own "
                "proxy, which sees only requests that reached it (Flagger's built-in checks)",
            )
        self.query()

    def query(self) -> _Query:
        return _Query.of(
            self.service,
            namespace=self.namespace,
            canary=self.canary_version,
            baseline=self.baseline_version,
            reporter=self.reporter,
            window=self.window,
            calls_to=self.calls_to,
        )


def analyse_canary(
    prometheus_url: str, comparison: Comparison, at: prometheus.Timestamp | None = None
) -> Analysis:
    """The canary against the baseline over the comparison's window, ending at ``at`` or now."""
    query = comparison.query()
    totals = query.counts(prometheus_url, "", at)
    errors = query.counts(prometheus_url, f',response_code=~"{ERROR_CODES}"', at)
    histograms = query.histograms(prometheus_url, at)
    canary, baseline = (
        Version(
            version,
            totals.get(version, 0),
            min(errors.get(version, 0), totals.get(version, 0)),
            histograms.get(version, Histogram(())),
        )
        for version in query.versions
    )
    # Only the source sees requests no version received, and only for requests to the service
    # (a version's own calls always carry its labels).
    seen = query.reporter == "source" and comparison.calls_to is None
    unattributed = query.unattributed(prometheus_url, at) if seen else None
    return judge(comparison, canary, baseline, unattributed)


def judge(
    comparison: Comparison,
    canary: Version,
    baseline: Version,
    unattributed: Mapping[str, Any] | None = None,
) -> Analysis:
    """The verdict on what each version's requests were (pure: ``bench/canary_power.py``
    feeds it simulated windows)."""
    query, criteria = comparison.query(), comparison.criteria
    reasons: list[str] = []
    short = [
        f"{v.version} has {n} {what} in the last {query.window}, fewer than {criteria.min_requests}"
        for v in (canary, baseline)
        for n, what in ((v.requests, "requests"), (v.histogram.count, "timed requests"))
        if n < criteria.min_requests
    ]
    tests: dict[str, Any] = {}
    if not short:
        tests["error_ratio"] = _error_test(canary, baseline, criteria)
        tests["latency"] = _latency_test(canary, baseline, criteria)
        reasons += [test["finding"] for test in tests.values() if test["regressed"]]
    if unattributed and unattributed["errors"]:
        reasons.append(
            f"{unattributed['errors']} of {unattributed['requests']} requests to "
            f"{query.service} failed in the caller's proxy before a version was chosen "
            f"(flags {', '.join(sorted(unattributed['flags']))}): Istio labels them "
            'destination_version="unknown", so neither version is blamed for them'
        )
    if short:
        verdict = "insufficient"
        reasons = [*short, *reasons]
    else:
        verdict = "fail" if any(test["regressed"] for test in tests.values()) else "pass"
    return Analysis(
        verdict,
        tuple(reasons),
        canary,
        baseline,
        tests,
        unattributed,
        query.compared,
        query.reporter,
        query.window,
        criteria,
    )


def _error_test(canary: Version, baseline: Version, criteria: Criteria) -> dict[str, Any]:
    z, p_value = two_proportion_z(
        canary.errors, canary.requests, baseline.errors, baseline.requests
    )
    delta = canary.errors / canary.requests - baseline.errors / baseline.requests
    regressed = p_value < criteria.alpha_per_test and delta > criteria.max_error_ratio_delta
    return {
        "test": "two-proportion z-test, one-sided (canary's error ratio higher)",
        "z": z,
        "p_value": p_value,
        "delta": delta,
        "regressed": regressed,
        "finding": (
            f"{canary.version}'s error ratio is {delta:+.2%} above {baseline.version}'s "
            f"({canary.errors}/{canary.requests} against {baseline.errors}/{baseline.requests},"
            f" {_p(p_value)})"
        ),
    }


def _latency_test(canary: Version, baseline: Version, criteria: Criteria) -> dict[str, Any]:
    bounds = sorted({bound for bound, _ in canary.histogram.buckets + baseline.histogram.buckets})
    mine, theirs = canary.histogram.per_bucket(bounds), baseline.histogram.per_bucket(bounds)
    u, z, p_value = mann_whitney_binned(mine, theirs)
    worse = []
    for name, q in (("p50", 0.5), ("p99", 0.99)):
        canary_ms, baseline_ms = canary.histogram.quantile(q), baseline.histogram.quantile(q)
        if canary_ms is None or baseline_ms is None:
            continue
        if (
            canary_ms > criteria.max_latency_ratio * baseline_ms
            and canary_ms - baseline_ms > LATENCY_FLOOR_MS
        ):
            worse.append(f"{name} {canary_ms:.0f} ms against {baseline_ms:.0f} ms")
    regressed = p_value < criteria.alpha_per_test and bool(worse)
    return {
        "test": "Mann-Whitney U on the histogram buckets (ties within a bucket), one-sided "
        "(canary slower)",
        "u": u,
        "z": z,
        "p_value": p_value,
        "slower_share": u / (sum(mine) * sum(theirs)),
        "regressed": regressed,
        "finding": (
            f"{canary.version} is slower than {baseline.version}: {'; '.join(worse) or '-'} "
            f"({_p(p_value)})"
        ),
    }


# --- the PromQL ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Query:
    service: str
    reporter: str
    window: str
    versions: tuple[str, str]
    label: str  # the version label: destination_version, or source_version for calls_to
    selector: str  # without the version label
    compared: str

    @classmethod
    def of(
        cls,
        service: str,
        *,
        namespace: str,
        canary: str,
        baseline: str,
        reporter: str,
        window: str,
        calls_to: str | None,
    ) -> _Query:
        # The names, window and reporter are checked where the Istio questions check them.
        prometheus.istio_promql("request_rate", service, namespace, window, reporter)
        for name, version in (("canary_version", canary), ("baseline_version", baseline)):
            if not isinstance(version, str) or not _VERSION.fullmatch(version):
                raise InvalidInput(name, f"{version!r} is not a label value", "e.g. v3")
        if canary == baseline:
            raise InvalidInput("canary_version", f"is the baseline too ({canary!r})")
        if calls_to is None:
            return cls(
                service,
                reporter,
                window,
                (canary, baseline),
                "destination_version",
                f'reporter="{reporter}",destination_service_name="{service}",'
                f'destination_service_namespace="{namespace}"',
                f"requests to {service} by destination_version ({reporter}'s view)",
            )
        try:
            prometheus.istio_promql("request_rate", calls_to, namespace, window, reporter)
        except InvalidInput as error:
            raise InvalidInput("calls_to", error.problem, error.fix) from error
        return cls(
            service,
            reporter,
            window,
            (canary, baseline),
            "source_version",
            f'reporter="{reporter}",destination_service_name="{calls_to}",'
            f'destination_service_namespace="{namespace}",source_canonical_service="{service}",'
            f'source_workload_namespace="{namespace}"',
            f"calls from {service} to {calls_to} by source_version ({reporter}'s view)",
        )

    @property
    def _versions(self) -> str:
        return f'{self.label}=~"{"|".join(re.escape(v) for v in self.versions)}"'

    def counts(self, url: str, extra: str, at: prometheus.Timestamp | None) -> dict[str, int]:
        promql = (
            f"sum by ({self.label}) (increase(istio_requests_total"
            f"{{{self.selector},{self._versions}{extra}}}[{self.window}]))"
        )
        # increase() extrapolates to the window's edges: counts come back fractional.
        return {
            row["metric"].get(self.label, ""): _count(row["value"])
            for row in prometheus.query(url, promql, at)
        }

    def histograms(self, url: str, at: prometheus.Timestamp | None) -> dict[str, Histogram]:
        promql = (
            f"sum by ({self.label}, le) (increase(istio_request_duration_milliseconds_bucket"
            f"{{{self.selector},{self._versions}}}[{self.window}]))"
        )
        buckets: dict[str, list[tuple[float, float]]] = {}
        for row in prometheus.query(url, promql, at):
            value = row["value"]
            bound = float(row["metric"].get("le", "+Inf"))
            buckets.setdefault(row["metric"].get(self.label, ""), []).append(
                (bound, 0.0 if math.isnan(value) else value)
            )
        return {version: Histogram(tuple(sorted(rows))) for version, rows in buckets.items()}

    def unattributed(self, url: str, at: prometheus.Timestamp | None) -> dict[str, Any]:
        promql = (
            f"sum by (response_code, response_flags) (increase(istio_requests_total"
            f'{{{self.selector},{self.label}="{UNKNOWN}"}}[{self.window}]))'
        )
        rows = prometheus.query(url, promql, at)
        counted = [(row["metric"], _count(row["value"])) for row in rows]
        failed = [
            (labels, n)
            for labels, n in counted
            if re.fullmatch(ERROR_CODES, labels.get("response_code", ""))
        ]
        return {
            "requests": sum(n for _, n in counted),
            "errors": sum(n for _, n in failed),
            "flags": sorted({labels.get("response_flags", "-") for labels, n in failed if n}),
        }


def _p(p_value: float) -> str:
    # Past 1e-12 the normal approximation's tail says nothing more (and prints as 0).
    return "p < 1e-12" if p_value < 1e-12 else f"p = {p_value:.2g}"


def _count(value: float) -> int:
    return 0 if math.isnan(value) else max(round(value), 0)


def _check_number(
    field: str, value: Any, low: float, high: float, *, inclusive: bool = True
) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise InvalidInput(field, f"must be a number, not {value!r}")
    inside = low <= value <= high if inclusive else low < value < high
    if not inside:
        span = f"[{low}, {high}]" if inclusive else f"({low}, {high})"
        raise InvalidInput(field, f"{value} is outside {span}")
