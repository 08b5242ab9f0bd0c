"""The policy report's prediction and the local mesh's Envoy configuration come from the same
VirtualServices and DestinationRules: for every workload (a sidecar: its labels, its namespace)
and every Bookinfo service it may call, each route the report lists is the route Envoy got, in
order, with the same timeout, attempts and per-try timeout, and the destination cluster has a
circuit breaker / outlier detection exactly where the report says so."""

from typing import Any

import pytest

from chaosmesh_py.istio.effective_policy import PolicyIndex
from chaosmesh_py.localmesh.translate import MAX_THRESHOLD
from tests.local.test_translate import NS, SUBSETS, bookinfo, cluster, dr, run, vhost, vs

SERVICES = ("productpage", "details", "reviews", "ratings")


def to(host: str, subset: str) -> list[dict[str, Any]]:
    return [{"destination": {"host": host, "subset": subset}}]


SCENARIOS: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]] = {
    "istio defaults, no VirtualService": ([], []),
    "bookinfo with timeouts, retries, attempts 0, sourceLabels and circuit breakers": (
        [
            vs(
                "reviews",
                ["reviews"],
                [
                    {
                        "name": "jason",
                        "match": [{"headers": {"end-user": {"exact": "jason"}}}],
                        "route": to("reviews", "v2"),
                        "timeout": "10s",
                        "retries": {"attempts": 4, "perTryTimeout": "1s", "retryOn": "5xx"},
                    },
                    {
                        "name": "everyone",
                        "route": to("reviews", "v1"),
                        "timeout": "3s",
                        "retries": {"attempts": 0},
                    },
                ],
            ),
            vs(
                "ratings",
                ["ratings"],
                [
                    {
                        "name": "from-v2",
                        "match": [{"sourceLabels": {"version": "v2"}}],
                        "route": to("ratings", "v1"),
                        "retries": {"attempts": 1, "retryOn": "gateway-error"},
                    },
                    {"name": "rest", "route": to("ratings", "v1"), "timeout": "0.5s"},
                ],
            ),
            vs(
                "details",
                ["details"],
                [{"route": to("details", "v1"), "timeout": "2s"}],
                exportTo=["."],
            ),
        ],
        [
            dr(
                "reviews",
                subsets=[
                    *SUBSETS[:1],
                    {
                        **SUBSETS[1],
                        "trafficPolicy": {"outlierDetection": {"consecutive5xxErrors": 2}},
                    },
                    SUBSETS[2],
                ],
                trafficPolicy={"connectionPool": {"http": {"http1MaxPendingRequests": 1}}},
            ),
            dr(
                "ratings",
                subsets=SUBSETS[:1],
                trafficPolicy={
                    "portLevelSettings": [
                        {
                            "port": {"number": 9080},
                            "connectionPool": {"tcp": {"maxConnections": 3}},
                            "outlierDetection": {"consecutiveGatewayErrors": 1},
                        }
                    ]
                },
            ),
            dr("details", subsets=SUBSETS[:1]),
        ],
    ),
}


def envoy_seconds(duration: str | None) -> float | None:
    if duration in (None, "0s"):
        return None
    return float(duration.removesuffix("s"))


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_the_report_predicts_what_envoy_is_programmed_with(scenario):
    virtual_services, destination_rules = SCENARIOS[scenario]
    topology = bookinfo()
    config = run(virtual_services, destination_rules, topology=topology)
    index = PolicyIndex(virtual_services, destination_rules)
    compared = 0
    for workload in (w for w in topology.workloads if w.namespace == NS):
        for service in SERVICES:
            predicted = index.effective(
                source_namespace=workload.namespace,
                source_labels=workload.labels,
                host=service,
                port=9080,
            )
            programmed = vhost(config, service, workload.instance)["routes"]
            assert len(predicted.routes) == len(programmed), (workload.name, service)
            for route, envoy_route in zip(predicted.routes, programmed, strict=True):
                action = envoy_route["route"]
                retry = action.get("retry_policy")
                assert route.timeout_s == envoy_seconds(action.get("timeout"))
                assert route.retries.attempts == (retry["num_retries"] + 1 if retry else 1)
                per_try = envoy_seconds((retry or {}).get("per_try_timeout"))
                assert route.retries.per_try_timeout_s == per_try
                (destination,) = route.destinations
                envoy_cluster = cluster(config, action["cluster"])
                limits = envoy_cluster["circuit_breakers"]["thresholds"][0]
                limited = any(
                    limits[key] != MAX_THRESHOLD
                    for key in ("max_connections", "max_pending_requests", "max_requests")
                )
                assert destination.circuit_breaker == limited, (workload.name, service)
                assert destination.ejects == ("outlier_detection" in envoy_cluster)
                compared += 1
    assert compared >= 4 * len(SERVICES)


def test_a_retry_cap_or_connection_reuse_limit_alone_is_no_circuit_breaker():
    capped = dr(
        "ratings",
        trafficPolicy={
            "connectionPool": {"http": {"maxRetries": 2, "maxRequestsPerConnection": 1}}
        },
    )
    config = run([], [capped])
    limits = cluster(config, "outbound|9080||ratings.bookinfo.svc.cluster.local")
    thresholds = limits["circuit_breakers"]["thresholds"][0]
    assert thresholds["max_retries"] == 2
    assert thresholds["max_pending_requests"] == MAX_THRESHOLD
    effective = PolicyIndex([], [capped]).effective(
        source_namespace=NS, source_labels={}, host="ratings", port=9080
    )
    assert not effective.circuit_breaker
