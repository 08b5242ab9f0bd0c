"""Canary analysis through the real Envoy and a real Prometheus: Bookinfo's reviews v3 as the
canary at 10 %, v2 the baseline, productpage's calls to reviews as the traffic.

Each phase sends steady traffic for PHASE_S seconds, waits until Envoy's stats flush (every
5 s) has put every request in the histograms and Prometheus has scraped them, then asks
``analyse_canary`` about exactly that phase: the window runs from the phase's start to the
question's time. Bounds, and why:

- min_requests 30: at 60 requests/s for 12 s, v3 gets ~72 (binomial at 10 %: 72 +- 8.5, so 30
  is 5 sigma below); v2 ~650.
- a healthy canary passes: same code paths, latencies of a few ms in both, no errors. The
  latency test's practical floor (5 ms, ratio 1.5) keeps a busy machine's jitter from failing it,
  and confidence 0.999 the tests' chance false alarms.
- a delay of 4 s on v3's calls to ratings: v3 gives up after its 2.5 s timeout and answers 200
  without stars, so every v3 request takes >= 2.5 s, against a few ms for v2.
"""

import time
from pathlib import Path

import pytest
import yaml

from chaosmesh_py.faults.actions import inject_abort, inject_delay
from chaosmesh_py.faults.rollbacks import remove_faults
from chaosmesh_py.traffic.canary import Comparison, Criteria, analyse_canary
from tests.local.conftest import through_sidecar
from tests.local.load import Traffic
from tests.local.test_prometheus import prometheus_url  # noqa: F401 (a fixture)

pytestmark = pytest.mark.slow

SETUP = Path(__file__).parents[2] / "experiments" / "bookinfo" / "canary-reviews-v3.yaml"
NAMESPACE = "bookinfo"
PHASE_S = 12
RATE_PER_S = 60
# Envoy flushes histograms every 5 s, Prometheus scrapes every second, a delayed request
# finishes within v3's 2.5 s timeout: the phase is whole in Prometheus this long after it ends.
SETTLE_S = 8
# At 0.95 a healthy canary is failed by chance in up to 5 % of windows (bench/canary_power.py),
# by design; judged at 0.999, these tests' own false alarms are rare enough not to flake, and a
# 2.5 s canary against a few ms is still p < 1e-12.
CRITERIA = Criteria(min_requests=30, confidence=0.999)


@pytest.fixture
def canary_step(mesh):
    """Bookinfo's canary setup, then the canary step: reviews v2 90 %, v3 10 %."""
    documents = list(yaml.safe_load_all(SETUP.read_text()))
    service = next(d for d in documents if d["kind"] == "VirtualService")
    current = mesh.api.get(service["apiVersion"], "VirtualService", NAMESPACE, "reviews")
    step = {
        "name": "canary-step",
        "route": [
            {"destination": {"host": "reviews", "subset": "v2"}, "weight": 90},
            {"destination": {"host": "reviews", "subset": "v3"}, "weight": 10},
        ],
    }
    mesh.api.replace(
        {
            **service,
            "metadata": {**current["metadata"]},
            "spec": {**service["spec"], "http": [step, *service["spec"]["http"]]},
        }
    )
    mesh.sync()
    return mesh


def phase(mesh, url_of_prometheus):
    """Steady traffic from productpage to reviews for PHASE_S, then the analysis of it (a
    function of the reporter, so one phase can be judged from both sides)."""
    url, headers = through_sidecar(mesh, "reviews", "/reviews/0", workload="productpage-v1")
    started = time.time()
    with Traffic(url, headers, RATE_PER_S, concurrency=40) as traffic:
        time.sleep(PHASE_S)
    time.sleep(SETTLE_S)
    at = time.time()
    window = f"{int(at - started) + 1}s"

    def analysis(reporter, calls_to=None):
        comparison = Comparison(
            "reviews", "v3", "v2", NAMESPACE, reporter, window, CRITERIA, calls_to
        )
        return analyse_canary(url_of_prometheus, comparison, at).to_json()

    return traffic, analysis


def test_a_healthy_canary_passes_and_one_whose_ratings_calls_hang_is_flagged(
    canary_step,
    prometheus_url,  # noqa: F811
    configuration,
):
    traffic, healthy = phase(canary_step, prometheus_url)
    assert {status for _, status, _ in traffic.answers} == {200}
    for reporter in ("destination", "source"):
        judged = healthy(reporter)
        assert judged["verdict"] == "pass", judged
        assert judged["canary"]["requests"] >= 30 and judged["baseline"]["requests"] >= 300
        assert judged["canary"]["errors"] == judged["baseline"]["errors"] == 0

    inject_delay(
        virtual_service="ratings",
        namespace=NAMESPACE,
        fixed_delay="4s",
        percentage=100,
        source_labels={"app": "reviews", "version": "v3"},
        configuration=configuration,
    )
    try:
        traffic, slowed = phase(canary_step, prometheus_url)
    finally:
        remove_faults(virtual_service="ratings", namespace=NAMESPACE, configuration=configuration)
    # What users of reviews got: answers, every one 200 (v3 hides ratings' failure).
    assert {status for _, status, _ in traffic.answers} == {200}
    assert sum(seconds >= 2.5 for _, _, seconds in traffic.answers) >= 30

    for reporter in ("destination", "source"):
        judged = slowed(reporter)
        assert judged["verdict"] == "fail", judged
        latency = judged["tests"]["latency"]
        assert latency["regressed"] and latency["p_value"] < 1e-6
        assert latency["slower_share"] > 0.99  # nearly every v3 request slower than every v2
        # v3's requests take ~2.5 s: Istio's buckets either side of 2500 ms; v2's under 250 ms.
        assert 1000 <= judged["canary"]["latency_ms"]["p50"] <= 5000
        assert judged["baseline"]["latency_ms"]["p99"] < 250
        # Its error ratio is no signal: reviews v3 answered 200 throughout.
        assert not judged["tests"]["error_ratio"]["regressed"]
        assert judged["canary"]["errors"] == 0
        assert any(reason.startswith("v3 is slower than v2") for reason in judged["reasons"])


def test_a_client_side_abort_into_reviews_is_seen_by_the_source_and_never_by_the_destination(
    canary_step,
    prometheus_url,  # noqa: F811
    configuration,
):
    # productpage's sidecar fails half its calls to reviews before choosing a version: no
    # workload ever sees them.
    inject_abort(
        virtual_service="reviews",
        namespace=NAMESPACE,
        http_status=503,
        percentage=50,
        configuration=configuration,
    )
    try:
        traffic, judged = phase(canary_step, prometheus_url)
    finally:
        remove_faults(virtual_service="reviews", namespace=NAMESPACE, configuration=configuration)
    failed = sum(status == 503 for _, status, _ in traffic.answers)
    assert 0.4 < failed / len(traffic.answers) < 0.6

    source = judged("source")
    assert source["unattributed"]["errors"] == pytest.approx(failed, rel=0.1)
    assert source["unattributed"]["flags"] == ["FI"]
    assert any("failed in the caller's proxy" in reason for reason in source["reasons"])
    destination = judged("destination")
    assert destination["unattributed"] is None
    assert destination["canary"]["errors"] == destination["baseline"]["errors"] == 0
    # The destination's totals are the requests that got through, not what productpage sent.
    reached = destination["canary"]["requests"] + destination["baseline"]["requests"]
    assert reached == pytest.approx(len(traffic.answers) - failed, rel=0.1)


def test_an_abort_in_the_canarys_own_calls_shows_only_in_its_calls_and_only_to_the_source(
    canary_step,
    prometheus_url,  # noqa: F811
    configuration,
):
    # v3's sidecar fails every call v3 makes to ratings. v3 answers 200 ("ratings
    # unavailable"): the analysis of requests to reviews passes; v3's calls to ratings, as its
    # own proxy reports them, fail; ratings' proxy never saw them.
    inject_abort(
        virtual_service="ratings",
        namespace=NAMESPACE,
        http_status=503,
        percentage=100,
        source_labels={"app": "reviews", "version": "v3"},
        configuration=configuration,
    )
    try:
        traffic, judged = phase(canary_step, prometheus_url)
    finally:
        remove_faults(virtual_service="ratings", namespace=NAMESPACE, configuration=configuration)
    assert {status for _, status, _ in traffic.answers} == {200}

    assert judged("destination")["verdict"] == "pass"
    calls = judged("source", calls_to="ratings")
    assert calls["verdict"] == "fail", calls
    assert calls["canary"]["error_ratio"] == 1.0 and calls["baseline"]["error_ratio"] == 0.0
    assert calls["tests"]["error_ratio"]["regressed"]
    unseen = judged("destination", calls_to="ratings")
    assert unseen["verdict"] == "insufficient"
    assert unseen["canary"]["requests"] == 0
    assert unseen["reasons"][0].startswith("v3 has 0 requests")
