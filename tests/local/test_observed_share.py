"""The observed-share probe on the local mesh: every request sent is attributed to the version
whose workload answered it (Envoy's counters), shares come with their Wilson interval, and too
few requests are refused before any is sent; over a window, the same answer from Istio's metrics
in a real Prometheus, and a silent service is "insufficient", never a pass."""

import time

import pytest
from chaoslib.exceptions import ActivityFailed

from chaosmesh_py.localmesh.prometheus import SCRAPE_INTERVAL_S
from chaosmesh_py.observe.load import LoadSpec, run_load
from chaosmesh_py.observe.probes import envoy_counters
from chaosmesh_py.traffic.probes import observed_share, share_is_within
from tests.local.reviews_routes import weighted, write_reviews
from tests.local.test_prometheus import prometheus_url  # noqa: F401 (a fixture)

REVIEWS = {"service": "reviews", "namespace": "bookinfo"}


def test_every_request_is_attributed_to_the_version_that_answered(mesh):
    # Bookinfo's own routing: jason to v2, everyone else to v1.
    everyone = observed_share(requests=400, **REVIEWS)
    assert everyone["method"] == "envoy_counters"
    assert everyone["sent"] == 400 and everyone["total"] == 400 and everyone["sufficient"]
    assert list(everyone["versions"]) == ["v1"]
    v1 = everyone["versions"]["v1"]
    assert (v1["requests"], v1["share"], v1["percent"], v1["mirrored"]) == (400, 1.0, 100.0, 0)
    # 400 of 400: the Wilson interval's lower bound is 1 - z²/(n + z²) ≈ 0.9905.
    assert v1["interval"][1] == 1.0 and 0.985 < v1["interval"][0] < 0.995

    jason = observed_share(requests=200, headers={"end-user": "jason"}, **REVIEWS)
    assert {version: seen["requests"] for version, seen in jason["versions"].items()} == {"v2": 200}


def test_a_hidden_version_is_asserted_to_answer_nothing(mesh):
    # Bookinfo's routing hides v2 from everyone but jason.
    hidden = {"version": "v2", "percent": 0, "tolerance_pp": 0, "requests": 200, **REVIEWS}
    assert share_is_within(**hidden)
    assert not share_is_within(headers={"end-user": "jason"}, **hidden)


def test_a_split_is_measured_and_judged_within_a_tolerance(mesh):
    write_reviews(weighted({"v1": 50, "v3": 50}))
    mesh.sync()
    seen = observed_share(requests=2000, **REVIEWS)
    counts = {version: seen["requests"] for version, seen in seen["versions"].items()}
    assert set(counts) == {"v1", "v3"} and sum(counts.values()) == 2000
    # Binomial spread at 50 % of 2,000: 1.1 points; 6 points is over 5 sigma.
    assert 44 < seen["versions"]["v3"]["percent"] < 56
    low, high = seen["versions"]["v3"]["interval"]
    assert low < seen["versions"]["v3"]["share"] < high and 0.04 < high - low < 0.05

    assert share_is_within(version="v3", percent=50, tolerance_pp=6, requests=2000, **REVIEWS)
    assert not share_is_within(version="v3", percent=10, tolerance_pp=1, requests=500, **REVIEWS)
    assert not share_is_within(version="v2", percent=10, tolerance_pp=5, requests=500, **REVIEWS)


def test_too_few_requests_are_refused_before_any_is_sent(mesh):
    before = envoy_counters(service="reviews")["service"]["requests"]
    with pytest.raises(ActivityFailed, match=r"requests: 50 is fewer than min_requests = 100"):
        observed_share(requests=50, **REVIEWS)
    with pytest.raises(ActivityFailed, match=r"requests: 50 is fewer than min_requests = 100"):
        share_is_within(version="v1", percent=100, tolerance_pp=0, requests=50, **REVIEWS)
    assert envoy_counters(service="reviews")["service"]["requests"] == before
    # Asking for fewer explicitly is the user's call.
    assert observed_share(requests=50, min_requests=50, **REVIEWS)["total"] == 50


def test_requests_that_never_reach_the_service_are_insufficient_not_a_share(mesh):
    # reviews v1 calls no one: 200 requests to it reach ratings 0 times.
    url = mesh.info()["services"]["reviews"]["url"] + "/reviews/0"
    seen = observed_share(service="ratings", namespace="bookinfo", requests=200, url=url)
    assert (seen["sent"], seen["total"], seen["sufficient"]) == (200, 0, False)
    assert seen["reason"].endswith(f"200 were sent to {url}: does that URL reach ratings?")
    assert not share_is_within(
        service="ratings",
        namespace="bookinfo",
        version="v1",
        percent=100,
        tolerance_pp=100,
        requests=200,
        url=url,
    )


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({}, r"window/requests: give exactly one"),
        ({"requests": 200, "window": "1m"}, r"window/requests: give exactly one"),
        ({"requests": 200, "confidence": 1.5}, r"confidence: must be strictly between 0 and 1"),
        ({"requests": 2.5}, r"requests: must be a whole number"),
        ({"requests": 200, "service": "nope"}, r"service: no service 'nope'"),
        ({"requests": 200, "namespace": "shop"}, r"service: no service 'reviews' in namespace"),
        ({"window": "1m", "url": "http://x"}, r"url/headers: only apply when requests are sent"),
        ({"window": "1 minute", "prometheus_url": "http://127.0.0.1:1"}, r"window: .* duration"),
        (
            {"window": "1m", "reporter": "sidecar", "prometheus_url": "http://127.0.0.1:1"},
            "reporter",
        ),
    ],
)
def test_bad_arguments_name_the_field_and_send_nothing(mesh, arguments, message):
    before = envoy_counters(service="reviews")["service"]["requests"]
    with pytest.raises(ActivityFailed, match=message):
        observed_share(**{**REVIEWS, **arguments})
    assert envoy_counters(service="reviews")["service"]["requests"] == before


@pytest.mark.parametrize(
    ("percent", "tolerance_pp", "message"),
    [(110, 1, "percent: must be between 0 and 100"), (10, -1, "tolerance_pp: must be between")],
)
def test_share_is_within_refuses_impossible_percentages(mesh, percent, tolerance_pp, message):
    with pytest.raises(ActivityFailed, match=message):
        share_is_within(
            version="v1", percent=percent, tolerance_pp=tolerance_pp, requests=200, **REVIEWS
        )


# --- over a window, from Istio's metrics in a real Prometheus --------------------------------


def test_the_share_over_a_window_comes_from_istio_metrics(mesh, prometheus_url):  # noqa: F811
    write_reviews(weighted({"v1": 80, "v3": 20}))
    mesh.sync()
    url = mesh.info()["services"]["reviews"]["url"] + "/reviews/0"
    # Every version's series exists before the counted burst: increase() counts from a
    # series' first sample, so a series born mid-burst would lose what its first sample holds.
    load(url, 200)
    time.sleep(3 * SCRAPE_INTERVAL_S)
    load(url, 2000)
    window = {"window": "20s", "prometheus_url": prometheus_url, **REVIEWS}
    seen = _wait_for(lambda: observed_share(**window), lambda seen: seen["total"] >= 2100)
    assert seen["method"] == "prometheus" and seen["reporter"] == "source" and seen["sufficient"]
    assert "destination_version" in seen["promql"] and 'reporter="source"' in seen["promql"]
    assert set(seen["versions"]) == {"v1", "v3"}
    # 2,200 requests at 20 %: spread 0.85 points; increase() extrapolates a little too.
    assert 15 < seen["versions"]["v3"]["percent"] < 25
    assert share_is_within(version="v3", percent=20, tolerance_pp=5, **window)

    silent = observed_share(
        service="httpbin", namespace="bookinfo", window="20s", prometheus_url=prometheus_url
    )
    assert (silent["total"], silent["versions"], silent["sufficient"]) == (0, {}, False)
    assert "too few to say" in silent["reason"]
    assert not share_is_within(
        service="httpbin",
        namespace="bookinfo",
        version="v1",
        percent=0,
        tolerance_pp=100,
        window="20s",
        prometheus_url=prometheus_url,
    )


def load(url, requests):
    assert run_load(LoadSpec(url, requests=requests, concurrency=10)).to_json()["errors"] == 0


def _wait_for(read, ready, timeout_s=20.0):
    deadline = time.monotonic() + timeout_s
    while True:
        value = read()
        if ready(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.5)
