"""Canary analysis against a stand-in Prometheus on a real socket: the PromQL it sends, the
judgement it makes of known counts, and bad input refused before any query.

The real thing (Envoy, Prometheus, Bookinfo) is ``tests/local/test_canary_analysis.py``; here
the counts are chosen, so each verdict and each number can be checked exactly.
"""

import math

import pytest
from chaoslib.exceptions import ActivityFailed

from chaosmesh_py.observe.statistics import two_proportion_z
from chaosmesh_py.traffic.canary import Comparison, Criteria, Histogram, analyse_canary
from chaosmesh_py.traffic.probes import canary_analysis, canary_is_healthy
from tests.unit.test_prometheus import StandIn

# Istio's default buckets up to 5 s, in ms.
BOUNDS = (0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000)


class Prometheus(StandIn):
    """Answers each query from ``versions`` (per version: requests, errors, and a latency per
    request: every request of a version in the bucket holding it) and ``unattributed``."""

    def __init__(self):
        super().__init__()
        self.versions = {}
        self.unattributed = []  # (response_code, response_flags, count)

    @property
    def queries(self):
        return [parameters["query"] for _, parameters in self.asked]

    @property
    def body(self):
        query = self.queries[-1]
        label = "source_version" if "by (source_version" in query else "destination_version"
        if 'version="unknown"' in query:
            rows = [
                ({"response_code": code, "response_flags": flags}, n)
                for code, flags, n in self.unattributed
            ]
        elif "_bucket" in query:
            rows = [
                ({label: version, "le": "+Inf" if math.isinf(bound) else str(bound)}, count)
                for version, (_, _, latency_ms) in self.versions.items()
                for bound, count in _cumulative(latency_ms)
            ]
        else:
            errors = "response_code=~" in query
            rows = [
                ({label: version}, n_errors if errors else n)
                for version, (n, n_errors, _) in self.versions.items()
            ]
        result = [{"metric": metric, "value": [1700000000, str(value)]} for metric, value in rows]
        return {"status": "success", "data": {"resultType": "vector", "result": result}}

    @body.setter
    def body(self, value):
        pass  # StandIn's constructor sets one; the answers here are computed


def _cumulative(latency_ms):
    """A latency's histogram for ``latency_ms`` = {ms: requests}: cumulative, +Inf last."""
    return [
        (bound, sum(n for ms, n in latency_ms.items() if ms <= bound))
        for bound in (*BOUNDS, math.inf)
    ]


@pytest.fixture
def prom():
    stand_in = Prometheus()
    yield stand_in
    stand_in.server.shutdown()
    stand_in.server.server_close()


def analyse(prom, reporter="destination", **options):
    comparison = Comparison("reviews", "v3", "v2", "bookinfo", reporter, **options)
    return analyse_canary(prom.url, comparison).to_json()


def test_the_promql_asks_istios_metrics_by_version_for_the_chosen_reporter(prom):
    prom.versions = {"v3": (200, 0, {3: 200}), "v2": (1800, 0, {3: 1800})}
    analyse(prom, reporter="destination", window="2m")
    selector = (
        'reporter="destination",destination_service_name="reviews",'
        'destination_service_namespace="bookinfo",destination_version=~"v3|v2"'
    )
    assert prom.queries == [
        f"sum by (destination_version) (increase(istio_requests_total{{{selector}}}[2m]))",
        f"sum by (destination_version) (increase(istio_requests_total{{{selector},"
        'response_code=~"5..|0"}[2m]))',
        "sum by (destination_version, le) (increase(istio_request_duration_milliseconds_bucket"
        f"{{{selector}}}[2m]))",
    ]
    # The source's view adds the requests its proxy failed before choosing a version.
    prom.asked.clear()
    analyse(prom, reporter="source", calls_to="ratings")
    assert prom.queries[0] == (
        'sum by (source_version) (increase(istio_requests_total{reporter="source",'
        'destination_service_name="ratings",destination_service_namespace="bookinfo",'
        'source_canonical_service="reviews",source_workload_namespace="bookinfo",'
        'source_version=~"v3|v2"}[1m]))'
    )
    assert len(prom.queries) == 3  # a version's own calls always carry its labels
    # Requests to reviews by the source's view: also those no version received.
    prom.asked.clear()
    analyse(prom, reporter="source")
    assert prom.queries[-1] == (
        "sum by (response_code, response_flags) (increase(istio_requests_total"
        '{reporter="source",destination_service_name="reviews",'
        'destination_service_namespace="bookinfo",destination_version="unknown"}[1m]))'
    )


def test_a_canary_like_its_baseline_passes_with_every_number_reported(prom):
    prom.versions = {
        "v3": (400, 2, {3: 390, 8: 10}),
        "v2": (3600, 20, {3: 3500, 8: 100}),
    }
    judged = analyse(prom)
    assert judged["verdict"] == "pass" and judged["reasons"] == []
    assert judged["canary"]["requests"] == 400 and judged["canary"]["errors"] == 2
    assert judged["canary"]["error_ratio"] == 0.005
    low, high = judged["canary"]["error_ratio_interval"]
    assert low < 0.005 < high
    z, p = two_proportion_z(2, 400, 20, 3600)
    assert (
        judged["tests"]["error_ratio"]["z"] == z and judged["tests"]["error_ratio"]["p_value"] == p
    )
    # histogram_quantile: rank 200 of 400 within (1, 5] holding 390 -> 1 + 4 * 200/390.
    assert judged["canary"]["latency_ms"]["p50"] == pytest.approx(1 + 4 * 200 / 390)
    assert judged["canary"]["latency_ms"]["p99"] == pytest.approx(5 + 5 * (396 - 390) / 10)
    assert judged["unattributed"] is None  # the destination never sees those


def test_more_errors_than_the_baseline_fail_only_when_significant_and_larger_than_allowed(prom):
    prom.versions = {"v3": (400, 40, {3: 400}), "v2": (3600, 36, {3: 3600})}
    judged = analyse(prom)
    assert judged["verdict"] == "fail"
    assert judged["tests"]["error_ratio"]["regressed"]
    assert judged["reasons"] == [
        "v3's error ratio is +9.00% above v2's (40/400 against 36/3600, p < 1e-12)"
    ]
    assert judged["tests"]["error_ratio"]["p_value"] < 1e-12
    # The same 9 points allowed: significant, but within what the canary may cost.
    assert analyse(prom, criteria=Criteria(max_error_ratio_delta=0.1))["verdict"] == "pass"
    # Larger than allowed, but 2 of 20 against 1 of 20 is no evidence.
    prom.versions = {"v3": (20, 2, {3: 20}), "v2": (20, 1, {3: 20})}
    assert analyse(prom, criteria=Criteria(min_requests=20))["verdict"] == "pass"


def test_a_slower_canary_fails_on_latency_and_a_slightly_slower_one_does_not(prom):
    prom.versions = {"v3": (300, 0, {2000: 300}), "v2": (3000, 0, {3: 3000})}
    judged = analyse(prom)
    assert judged["verdict"] == "fail"
    latency = judged["tests"]["latency"]
    assert latency["regressed"] and latency["slower_share"] == 1.0 and latency["p_value"] < 1e-12
    assert judged["reasons"][0].startswith("v3 is slower than v2: p50 1750 ms against 3 ms")
    # A bucket up at the bottom of the scale: significant, twice the time, yet under 5 ms more.
    prom.versions = {"v3": (300, 0, {0.7: 300}), "v2": (3000, 0, {0.3: 3000})}
    slight = analyse(prom)
    assert slight["tests"]["latency"]["p_value"] < 1e-12
    assert slight["verdict"] == "pass"


def test_too_few_requests_is_insufficient_never_pass_and_the_bool_probe_refuses_it(prom):
    prom.versions = {"v3": (99, 0, {3: 99}), "v2": (3000, 0, {3: 3000})}
    judged = analyse(prom, window="30s")
    assert judged["verdict"] == "insufficient"
    assert judged["reasons"] == [
        "v3 has 99 requests in the last 30s, fewer than 100",
        "v3 has 99 timed requests in the last 30s, fewer than 100",
    ]
    assert judged["tests"] == {}
    prom.versions = {}  # no traffic at all
    assert analyse(prom)["verdict"] == "insufficient"
    arguments = {"service": "reviews", "canary_version": "v3", "baseline_version": "v2"}
    with pytest.raises(ActivityFailed, match="InsufficientData: too few requests to judge"):
        canary_is_healthy(**arguments, reporter="destination", prometheus_url=prom.url)


def test_the_bool_probe_is_the_verdict(prom):
    arguments = {
        "service": "reviews",
        "canary_version": "v3",
        "baseline_version": "v2",
        "reporter": "source",
        "namespace": "bookinfo",
        "prometheus_url": prom.url,
    }
    prom.versions = {"v3": (300, 0, {3: 300}), "v2": (3000, 0, {3: 3000})}
    assert canary_is_healthy(**arguments) is True
    with pytest.raises(ActivityFailed, match="says pass, not fail: no test flagged the canary"):
        canary_analysis(**arguments, expect="fail")
    prom.versions["v3"] = (300, 90, {3: 300})
    assert canary_is_healthy(**arguments) is False
    assert canary_analysis(**arguments, expect="fail")["verdict"] == "fail"
    prom.versions["v3"] = (30, 30, {3: 30})
    with pytest.raises(ActivityFailed, match="says insufficient, not fail: v3 has 30 requests"):
        canary_analysis(**arguments, expect="fail")


def test_requests_the_source_failed_before_any_version_are_reported_not_blamed(prom):
    prom.versions = {"v3": (300, 0, {3: 300}), "v2": (3000, 0, {3: 3000})}
    prom.unattributed = [("503", "FI", 1650.4), ("200", "-", 3.0)]
    judged = analyse(prom, reporter="source")
    assert judged["verdict"] == "pass"
    assert judged["unattributed"] == {"requests": 1653, "errors": 1650, "flags": ["FI"]}
    assert judged["reasons"] == [
        "1650 of 1653 requests to reviews failed in the caller's proxy before a version was "
        'chosen (flags FI): Istio labels them destination_version="unknown", so neither '
        "version is blamed for them"
    ]


def test_histogram_quantile_follows_prometheus():
    histogram = Histogram(((10.0, 0.0), (100.0, 50.0), (math.inf, 100.0)))
    assert histogram.quantile(0.25) == pytest.approx(55.0)  # rank 25 within (10, 100]
    assert histogram.quantile(0.99) == 100.0  # in +Inf: the highest finite bound
    assert Histogram(()).quantile(0.5) is None
    assert histogram.per_bucket([10.0, 100.0, math.inf]) == [0.0, 50.0, 50.0]


GOOD = {
    "service": "reviews",
    "canary_version": "v3",
    "baseline_version": "v2",
    "reporter": "destination",
    "namespace": "bookinfo",
}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"reporter": "both"}, "reporter"),
        ({"reporter": None}, "reporter"),
        ({"service": "Reviews!"}, "service"),
        ({"namespace": ""}, "namespace"),
        ({"window": "a minute"}, "window"),
        ({"canary_version": "v3|.*"}, "canary_version"),
        ({"baseline_version": 2}, "baseline_version"),
        ({"canary_version": "v2"}, "canary_version"),
        ({"calls_to": "ratings.bookinfo"}, "calls_to"),
        ({"min_requests": 5}, "min_requests"),
        ({"min_requests": 100.5}, "min_requests"),
        ({"max_error_ratio_delta": 1.5}, "max_error_ratio_delta"),
        ({"max_latency_ratio": 0.9}, "max_latency_ratio"),
        ({"confidence": 1}, "confidence"),
        ({"confidence": "high"}, "confidence"),
        ({"expect": "flagged"}, "expect"),
    ],
)
def test_bad_input_names_the_field_and_asks_prometheus_nothing(prom, change, field):
    probes = (canary_analysis,) if "expect" in change else (canary_analysis, canary_is_healthy)
    for probe in probes:
        with pytest.raises(ActivityFailed, match=rf"^InvalidInput: {field}: "):
            probe(**{**GOOD, **change, "prometheus_url": prom.url})
    assert prom.asked == []


def test_the_reporter_has_no_default():
    with pytest.raises(TypeError, match="reporter"):
        canary_analysis(service="reviews", canary_version="v3", baseline_version="v2")
