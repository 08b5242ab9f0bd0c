"""Mirroring as istiod translates it (pilot/pkg/networking/core/route/route.go: MirrorPercent,
MirrorPercentByPolicy, TranslateRequestMirrorPolicy), then through the real Envoy: the copies
reach the mirror's version and are counted there, and users get the primary's answer and
latency whether the mirror is slow or failing."""

from __future__ import annotations

import time
from typing import Any

import pytest

from chaosmesh_py.kube import Kube, ResourceKind, ResourceRef
from chaosmesh_py.observe.load import LoadSpec, run_load
from chaosmesh_py.observe.probes import envoy_counters
from chaosmesh_py.traffic.probes import observed_share
from tests.local.reviews_routes import to_subset, write_reviews
from tests.local.test_translate import cluster_name, fqdn, one_route, to

V3 = {"host": "reviews", "subset": "v3"}
ALL = {"numerator": 100, "denominator": "HUNDRED"}


def mirror_policies(**rule: Any) -> list[dict[str, Any]]:
    route = one_route({"route": [to("reviews", "v1")], **rule}, host="reviews")
    return route["route"].get("request_mirror_policies", [])


def policy(cluster: str, fraction: dict[str, Any]) -> dict[str, Any]:
    return {
        "cluster": cluster,
        "runtime_fraction": {"default_value": fraction},
        "trace_sampled": False,
        # istiod's DISABLE_SHADOW_HOST_SUFFIX, true by default: the copy keeps its Host.
        "disable_shadow_host_suffix_append": True,
    }


@pytest.mark.parametrize(
    ("rule", "fraction"),
    [
        ({"mirror": V3}, ALL),  # no percentage: 100 %, as a HUNDRED fraction
        (
            {"mirror": V3, "mirrorPercentage": {"value": 25.5}},
            {"numerator": 255000, "denominator": "MILLION"},
        ),
        # uint32(0.57 * 10000) truncates: 5699, not 5700.
        (
            {"mirror": V3, "mirrorPercentage": {"value": 0.57}},
            {"numerator": 5699, "denominator": "MILLION"},
        ),
        ({"mirror": V3, "mirrorPercent": 50}, {"numerator": 50, "denominator": "HUNDRED"}),
        # mirrorPercentage wins over the deprecated mirrorPercent.
        (
            {"mirror": V3, "mirrorPercentage": {"value": 10}, "mirrorPercent": 50},
            {"numerator": 100000, "denominator": "MILLION"},
        ),
    ],
)
def test_mirror_percentages_translate_as_istiod_does(rule, fraction):
    assert mirror_policies(**rule) == [policy(cluster_name("reviews", "v3"), fraction)]


@pytest.mark.parametrize(
    "rule",
    [
        {"mirror": V3, "mirrorPercentage": {"value": 0}},
        {"mirror": V3, "mirrorPercentage": {}},  # a Percent without value is 0
        {"mirror": V3, "mirrorPercent": 0},
        {"mirror": V3, "mirrorPercentage": {"value": 0}, "mirrorPercent": 50},
        {"mirrors": [{"destination": V3, "percentage": {"value": 0}}]},
    ],
)
def test_an_explicit_zero_mirrors_nothing(rule):
    assert mirror_policies(**rule) == []


def test_mirrors_each_take_their_own_percentage_in_order():
    policies = mirror_policies(
        mirrors=[
            {"destination": {"host": "reviews", "subset": "v2"}},
            {"destination": V3, "percentage": {"value": 10}},
            {"destination": {"host": "ratings"}, "percentage": {"value": 0}},
            {
                "destination": {"host": "httpbin.other.svc.cluster.local"},
                "percentage": {"value": 1},
            },
        ]
    )
    assert policies == [
        policy(cluster_name("reviews", "v2"), ALL),
        policy(cluster_name("reviews", "v3"), {"numerator": 100000, "denominator": "MILLION"}),
        policy(
            f"outbound|8000||{fqdn('httpbin', 'other')}",
            {"numerator": 10000, "denominator": "MILLION"},
        ),
    ]


# --- through the real Envoy -----------------------------------------------------------------


def reviews_url(mesh) -> str:
    return mesh.info()["services"]["reviews"]["url"] + "/reviews/0"


def mirrored_share(mesh, requests: int) -> dict[str, Any]:
    seen = observed_share(
        service="reviews", namespace="bookinfo", requests=requests, url=reviews_url(mesh)
    )
    assert seen["statuses"] == {"200": requests}
    return seen


def test_every_request_is_copied_to_the_mirror_and_only_the_primary_answers(mesh):
    write_reviews(to_subset("v1", mirror=V3))
    mesh.sync()
    seen = mirrored_share(mesh, 300)
    # Users were answered by v1 alone: v3's copies are not in the share.
    assert seen["total"] == 300 and seen["versions"]["v1"]["requests"] == 300
    assert seen["versions"]["v3"]["requests"] == 0 and seen["versions"]["v3"]["mirrored"] == 300
    assert seen["versions"]["v1"]["mirrored"] == 0


def test_a_mirror_percentage_copies_that_share(mesh):
    write_reviews(to_subset("v1", mirror=V3, mirrorPercentage={"value": 25}))
    mesh.sync()
    seen = mirrored_share(mesh, 2000)
    # Binomial spread of 25 % of 2,000: 0.97 points; 5 points is over 5 sigma.
    assert 400 < seen["versions"]["v3"]["mirrored"] < 600
    write_reviews(to_subset("v1", mirror=V3, mirrorPercentage={"value": 0}))
    mesh.sync()
    assert "v3" not in mirrored_share(mesh, 300)["versions"]


def test_the_copies_are_v3s_own_work_in_telemetry(mesh):
    """v3 handles each copy fully, calling ratings through its own sidecar: those calls are
    counted with v3 as the source, while Istio's source-side count of reviews' requests (the
    caller's proxy, which never passes a mirror's copy through its stats) grows for v1 only."""
    write_reviews(to_subset("v1", mirror=V3))
    mesh.sync()
    before = envoy_counters(workload="reviews-v3")["workload"]["requests"]
    metrics_before = _metrics(mesh)
    mirrored_share(mesh, 200)
    assert envoy_counters(workload="reviews-v3")["workload"]["requests"] - before == 200
    metrics_after = _metrics(mesh)
    answered = _grown(
        metrics_before,
        metrics_after,
        "destination_version",
        destination_service_name="reviews",
        source_workload="entry-reviews",
    )
    assert answered == {"v1": 200}
    calls = _grown(
        metrics_before,
        metrics_after,
        "source_version",
        destination_service_name="ratings",
        source_workload="reviews-v3",
    )
    assert calls == {"v3": 200}


def test_users_get_the_primarys_answer_and_latency_when_the_mirror_is_slow(mesh):
    # v3's calls to ratings held 1.5 s (v3 waits up to 2.5 s): each copy takes 1.5 s or more.
    _ratings_fault_for_v3(mesh, {"delay": {"fixedDelay": "1.5s", "percentage": {"value": 100}}})
    write_reviews(to_subset("v1", mirror=V3))
    mesh.sync()
    before = envoy_counters(workload="reviews-v3")["workload"]["delays_injected"]
    seen = run_load(LoadSpec(reviews_url(mesh), requests=100, concurrency=10)).to_json()
    assert seen["statuses"] == {"200": 100}
    # The copies' 1.5 s is nowhere in users' latency (v1 answers in milliseconds).
    assert seen["latency_ms"]["p99"] < 1000 and seen["latency_ms"]["p50"] < 500
    # ...though the copies were held: v3 asked ratings once per copy, and each call was delayed
    # (counted as v3 gets to it: the copies may still be on their way when users are answered).
    deadline = time.monotonic() + 10
    while True:
        delayed = envoy_counters(workload="reviews-v3")["workload"]["delays_injected"] - before
        if delayed >= 100 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert delayed == 100


def test_users_get_the_primarys_answer_when_the_mirror_fails(mesh):
    # A subset with no workload behind it: every copy fails in Envoy (503, no healthy host).
    rules = Kube.connect().get(DESTINATION_RULE)
    subsets = [*rules["spec"]["subsets"], {"name": "v9", "labels": {"version": "v9"}}]
    Kube.connect().patch(DESTINATION_RULE, {"spec": {"subsets": subsets}})
    write_reviews(to_subset("v1", mirror={"host": "reviews", "subset": "v9"}))
    mesh.sync()
    before = mesh.envoy.stats().get(
        f"cluster.{cluster_name('reviews', 'v9')}.upstream_cx_none_healthy", 0
    )
    seen = mirrored_share(mesh, 200)
    assert seen["versions"]["v1"]["requests"] == 200 and seen["total"] == 200
    failed = mesh.envoy.stats().get(
        f"cluster.{cluster_name('reviews', 'v9')}.upstream_cx_none_healthy", 0
    )
    assert failed - before >= 200  # the copies were tried, and failed


DESTINATION_RULE = ResourceRef(
    ResourceKind("networking.istio.io", "v1", "destinationrules", "DestinationRule"),
    "bookinfo",
    "reviews",
)


def _ratings_fault_for_v3(mesh, fault: dict[str, Any]) -> None:
    ratings = ResourceRef(
        ResourceKind("networking.istio.io", "v1", "virtualservices", "VirtualService"),
        "bookinfo",
        "ratings",
    )
    rule = {
        "name": "v3-calls",
        "match": [{"sourceLabels": {"app": "reviews", "version": "v3"}}],
        "fault": fault,
        "route": [{"destination": {"host": "ratings", "subset": "v1"}}],
    }
    current = Kube.connect().get(ratings)
    Kube.connect().patch(ratings, {"spec": {"http": [rule, *current["spec"]["http"]]}})


def _metrics(mesh) -> str:
    import requests

    return requests.get(mesh.info()["metrics_url"], timeout=10).text


def _grown(before: str, after: str, by: str, **wanted: str) -> dict[str, int]:
    """How much istio_requests_total grew between two scrapes, per value of label ``by``, over
    the series whose labels include ``wanted``."""
    from chaosmesh_py.observe.exposition import parse_text

    growth: dict[str, int] = {}
    for sign, text in ((-1, before), (1, after)):
        for sample in parse_text(text):
            labels = dict(sample.labels)
            if sample.name == "istio_requests_total" and all(
                labels.get(key) == value for key, value in wanted.items()
            ):
                growth[labels[by]] = growth.get(labels[by], 0) + sign * int(sample.value)
    return {value: grew for value, grew in growth.items() if grew}
