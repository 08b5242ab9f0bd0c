"""The effective policy of one call, as istiod would program the caller's sidecar: Istio's
implicit retries, attempts 0, retryOn with and without 5xx, timeouts, which VirtualService and
route apply (exportTo, namespace order, sourceLabels, sourceNamespace, header matches),
DestinationRule lookup with port-level settings and the subset merge."""

from typing import Any

import pytest

from chaosmesh_py.istio.effective_policy import (
    DEFAULT_RETRY_ON,
    effective_route_policy,
    route_retries,
)
from chaosmesh_py.istio.traffic_policy import merge_traffic_policy, port_traffic_policy


def vs(name: str, hosts: list[str], http: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    namespace = extra.pop("namespace", "default")
    created = extra.pop("created", "2026-01-01T00:00:00Z")
    return {
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": created},
        "spec": {"hosts": hosts, "http": http, **extra},
    }


def dr(name: str, host: str, **spec: Any) -> dict[str, Any]:
    namespace = spec.pop("namespace", "default")
    return {"metadata": {"name": name, "namespace": namespace}, "spec": {"host": host, **spec}}


def to(host: str, subset: str = "") -> list[dict[str, Any]]:
    destination = {"host": host, **({"subset": subset} if subset else {})}
    return [{"destination": destination}]


def policy(vss=(), drs=(), *, host="ratings", namespace="default", labels=None, port=None):
    return effective_route_policy(
        list(vss),
        list(drs),
        source_namespace=namespace,
        source_labels=labels or {},
        host=host,
        port=port,
    )


# --- retries --------------------------------------------------------------------------------


def test_no_virtual_service_is_istios_default_route_with_two_implicit_retries():
    effective = policy()
    assert effective.host == "ratings.default.svc.cluster.local"
    assert effective.attempts == 3
    assert effective.implicit
    assert effective.timeout_s is None
    assert ",".join(effective.retry_on) == DEFAULT_RETRY_ON
    (route,) = effective.routes
    assert route.virtual_service is None
    # The default retries a refused connection, never a 503 or a 500 answer.
    assert route.retries.retries_connect_failure
    assert not route.retries.retries_gateway_errors
    assert not route.retries.retries_5xx


def test_a_route_without_retries_gets_the_implicit_default_too():
    effective = policy([vs("ratings", ["ratings"], [{"route": to("ratings")}])])
    assert (effective.attempts, effective.implicit) == (3, True)
    assert effective.routes[0].virtual_service == "default/ratings"


def test_attempts_zero_turns_retries_off():
    retries = route_retries({"attempts": 0})
    assert (retries.attempts, retries.implicit, retries.retry_on) == (1, False, ())
    assert not retries.retries_connect_failure


def test_explicit_attempts_keep_istios_default_retry_on_when_none_is_given():
    retries = route_retries({"attempts": 4, "perTryTimeout": "2s"})
    assert (retries.attempts, retries.per_try_timeout_s, retries.implicit) == (5, 2.0, False)
    assert not retries.retries_gateway_errors


@pytest.mark.parametrize(
    ("retry_on", "five_xx", "gateway", "connect"),
    [
        ("5xx", True, True, True),
        ("gateway-error", False, True, True),
        ("connect-failure,refused-stream", False, False, True),
        ("reset", False, False, True),
        ("retriable-status-codes,503", False, True, False),
        ("500", True, False, False),  # a bare code: istiod adds retriable-status-codes
        ("retriable-4xx", False, False, False),
    ],
)
def test_retry_on_tokens_say_what_is_retried(retry_on, five_xx, gateway, connect):
    retries = route_retries({"attempts": 2, "retryOn": retry_on})
    assert retries.retries_5xx is five_xx
    assert retries.retries_gateway_errors is gateway
    assert retries.retries_connect_failure is connect
    assert "retriable-status-codes" in retries.retry_on or not retries.status_codes


# --- timeouts -------------------------------------------------------------------------------


def test_timeout_and_per_try_timeout_bound_the_worst_case():
    rule = {
        "route": to("ratings"),
        "timeout": "10s",
        "retries": {"attempts": 2, "perTryTimeout": "1s"},
    }
    (route,) = policy([vs("ratings", ["ratings"], [rule])]).routes
    assert (route.timeout_s, route.worst_case_s, route.per_attempt_budget_s) == (10.0, 3.0, 1.0)
    rule["timeout"] = "2s"
    (route,) = policy([vs("ratings", ["ratings"], [rule])]).routes
    assert route.worst_case_s == 2.0  # the route timeout bounds all attempts together


def test_zero_timeout_is_none_and_nothing_bounds_the_default():
    (route,) = policy(
        [vs("ratings", ["ratings"], [{"route": to("ratings"), "timeout": "0s"}])]
    ).routes
    assert route.timeout_s is None
    assert route.worst_case_s is None


def test_a_certain_fixed_delay_is_reported_a_partial_one_is_not():
    certain = {"delay": {"fixedDelay": "2s", "percentage": {"value": 100}}}
    partial = {"delay": {"fixedDelay": "2s", "percentage": {"value": 50}}}
    for fault, expected in ((certain, 2.0), (partial, 0.0)):
        rule = {"route": to("ratings"), "fault": fault}
        assert policy([vs("ratings", ["ratings"], [rule])]).routes[0].fault_delay_s == expected


# --- which route ----------------------------------------------------------------------------


def test_every_reachable_route_is_reported_and_the_worst_one_heads():
    header_route = {
        "name": "jason",
        "match": [{"headers": {"end-user": {"exact": "jason"}}}],
        "route": to("reviews", "v2"),
        "retries": {"attempts": 5, "retryOn": "5xx"},
    }
    everyone = {"name": "everyone", "route": to("reviews", "v1"), "retries": {"attempts": 0}}
    shadowed = {"name": "never", "route": to("reviews", "v3")}
    effective = policy(
        [vs("reviews", ["reviews"], [header_route, everyone, shadowed])], host="reviews"
    )
    assert [r.route for r in effective.routes] == ["jason", "everyone"]
    assert [r.conditional for r in effective.routes] == [True, False]
    assert effective.attempts == 6
    assert effective.worst.route == "jason"


def test_source_labels_and_source_namespace_pick_the_callers_routes():
    for_v2 = {
        "name": "from-v2",
        "match": [{"sourceLabels": {"version": "v2"}}],
        "route": to("ratings"),
        "retries": {"attempts": 0},
    }
    from_shop = {
        "name": "from-shop",
        "match": [{"sourceNamespace": "shop"}],
        "route": to("ratings"),
        "timeout": "1s",
    }
    rest = {"name": "rest", "route": to("ratings"), "timeout": "9s"}
    services = [vs("ratings", ["ratings"], [for_v2, from_shop, rest])]
    v2 = policy(services, labels={"app": "reviews", "version": "v2"})
    assert [r.route for r in v2.routes] == ["from-v2"]
    assert v2.attempts == 1
    shop = policy(services, host="ratings.default", namespace="shop")
    assert [r.route for r in shop.routes] == ["from-shop"]
    other = policy(services, labels={"version": "v1"})
    assert [(r.route, r.timeout_s) for r in other.routes] == [("rest", 9.0)]


def test_a_virtual_service_with_no_route_for_this_caller_falls_through_to_the_default():
    only_v2 = {
        "match": [{"sourceLabels": {"version": "v2"}}],
        "route": to("ratings"),
        "timeout": "1s",
    }
    effective = policy([vs("ratings", ["ratings"], [only_v2])], labels={"version": "v1"})
    assert effective.routes[0].virtual_service is None
    assert effective.implicit


def test_gateway_only_virtual_services_do_not_apply_to_sidecars():
    bound = vs("ratings", ["ratings"], [{"route": to("ratings"), "timeout": "1s"}], gateways=["gw"])
    assert policy([bound]).routes[0].virtual_service is None
    both = vs(
        "ratings", ["ratings"], [{"route": to("ratings"), "timeout": "1s"}], gateways=["gw", "mesh"]
    )
    assert policy([both]).timeout_s == 1.0


def test_export_to_hides_a_virtual_service_from_other_namespaces():
    private = vs(
        "ratings",
        ["ratings.default.svc.cluster.local"],
        [{"route": to("ratings"), "timeout": "1s"}],
        exportTo=["."],
    )
    assert policy([private]).timeout_s == 1.0
    assert policy([private], host="ratings.default", namespace="shop").timeout_s is None
    named = vs(
        "ratings",
        ["ratings.default.svc.cluster.local"],
        [{"route": to("ratings"), "timeout": "2s"}],
        exportTo=["shop"],
    )
    assert policy([named], host="ratings.default", namespace="shop").timeout_s == 2.0
    assert policy([named], host="ratings.default", namespace="other").timeout_s is None


def test_the_callers_private_virtual_service_wins_over_an_older_public_one():
    public = vs(
        "public",
        ["ratings.default.svc.cluster.local"],
        [{"route": to("ratings"), "timeout": "5s"}],
        namespace="default",
        created="2020-01-01T00:00:00Z",
    )
    private = vs(
        "mine",
        ["ratings.default.svc.cluster.local"],
        [{"route": to("ratings.default.svc.cluster.local"), "timeout": "1s"}],
        namespace="shop",
        exportTo=["."],
        created="2026-01-01T00:00:00Z",
    )
    assert policy([public, private], host="ratings.default", namespace="shop").timeout_s == 1.0
    # Among public ones, the oldest wins.
    newer = vs(
        "newer",
        ["ratings"],
        [{"route": to("ratings"), "timeout": "7s"}],
        created="2030-01-01T00:00:00Z",
    )
    assert policy([newer, public]).timeout_s == 5.0


def test_wildcard_hosts_match():
    star = vs("all", ["*.default.svc.cluster.local"], [{"route": to("ratings"), "timeout": "3s"}])
    assert policy([star]).timeout_s == 3.0
    assert policy([star], host="ratings.shop", namespace="shop").timeout_s is None


# --- DestinationRules -----------------------------------------------------------------------

POOL = {"tcp": {"maxConnections": 1}, "http": {"http1MaxPendingRequests": 1}}
OUTLIER = {"consecutive5xxErrors": 1, "interval": "1s", "baseEjectionTime": "3m"}


def test_no_destination_rule_means_no_circuit_breaker_and_no_outlier_detection():
    effective = policy()
    assert not effective.circuit_breaker
    assert not effective.outlier_detection


def test_a_connect_timeout_alone_is_no_circuit_breaker_outlier_detection_defaults_to_ejecting():
    rule = dr(
        "ratings",
        "ratings",
        trafficPolicy={"connectionPool": {"tcp": {"connectTimeout": "1s"}}, "outlierDetection": {}},
    )
    effective = policy(drs=[rule])
    assert not effective.circuit_breaker
    assert effective.outlier_detection  # consecutive5xxErrors defaults to 5
    off = dr("ratings", "ratings", trafficPolicy={"outlierDetection": {"consecutive5xxErrors": 0}})
    assert not policy(drs=[off]).outlier_detection


def test_port_level_settings_replace_the_top_level_for_that_port():
    rule = dr(
        "ratings",
        "ratings",
        trafficPolicy={
            "connectionPool": POOL,
            "portLevelSettings": [{"port": {"number": 9080}, "outlierDetection": OUTLIER}],
        },
    )
    on_port = policy(drs=[rule], port=9080)
    assert (on_port.circuit_breaker, on_port.outlier_detection) == (False, True)
    other_port = policy(drs=[rule], port=8080)
    assert (other_port.circuit_breaker, other_port.outlier_detection) == (True, False)
    assert port_traffic_policy(None, 1) is None


def test_a_subset_policy_replaces_only_the_sections_it_sets():
    top = {"connectionPool": POOL, "outlierDetection": OUTLIER}
    merged = merge_traffic_policy(top, {"connectionPool": {"tcp": {"maxConnections": 9}}}, None)
    assert merged == {"connectionPool": {"tcp": {"maxConnections": 9}}, "outlierDetection": OUTLIER}
    rule = dr(
        "reviews",
        "reviews",
        trafficPolicy={"connectionPool": POOL},
        subsets=[
            {"name": "v1", "labels": {"version": "v1"}},
            {
                "name": "v2",
                "labels": {"version": "v2"},
                "trafficPolicy": {"outlierDetection": OUTLIER},
            },
        ],
    )
    split = vs(
        "reviews",
        ["reviews"],
        [
            {
                "route": [
                    {"destination": {"host": "reviews", "subset": "v1"}, "weight": 50},
                    {"destination": {"host": "reviews", "subset": "v2"}, "weight": 50},
                ]
            }
        ],
    )
    effective = policy([split], [rule], host="reviews")
    v1, v2 = effective.routes[0].destinations
    assert (v1.subset, v1.circuit_breaker, v1.ejects, v1.weight) == ("v1", True, False, 50)
    assert (v2.subset, v2.circuit_breaker, v2.ejects) == ("v2", True, True)
    assert v1.destination_rule == "default/reviews"
    # The edge has outlier detection only if every destination has it.
    assert effective.circuit_breaker
    assert not effective.outlier_detection


def test_the_callers_namespace_destination_rule_wins_and_export_to_hides():
    mine = dr(
        "mine",
        "ratings.default.svc.cluster.local",
        namespace="shop",
        trafficPolicy={"connectionPool": POOL},
    )
    theirs = dr("theirs", "ratings", trafficPolicy={"outlierDetection": OUTLIER})
    shop = policy(drs=[mine, theirs], host="ratings.default", namespace="shop")
    assert shop.routes[0].destinations[0].destination_rule == "shop/mine"
    assert (shop.circuit_breaker, shop.outlier_detection) == (True, False)
    hidden = dr("hidden", "ratings", exportTo=["."], trafficPolicy={"connectionPool": POOL})
    assert not policy(drs=[hidden], host="ratings.default", namespace="shop").circuit_breaker
    assert policy(drs=[hidden]).circuit_breaker


def test_a_mesh_wide_wildcard_rule_in_the_root_namespace_applies_unless_a_nearer_one_does():
    mesh_wide = dr(
        "mesh-wide",
        "*.svc.cluster.local",
        namespace="istio-system",
        trafficPolicy={"outlierDetection": OUTLIER},
    )
    assert policy(drs=[mesh_wide]).outlier_detection
    assert policy(drs=[mesh_wide]).routes[0].destinations[0].destination_rule == (
        "istio-system/mesh-wide"
    )
    nearer = dr("ratings", "ratings", trafficPolicy={"connectionPool": POOL})
    effective = policy(drs=[mesh_wide, nearer])
    assert (effective.circuit_breaker, effective.outlier_detection) == (True, False)


def test_a_port_match_shadows_later_routes_only_when_the_called_port_is_known():
    on_9080 = {
        "name": "on-9080",
        "match": [{"port": 9080}],
        "route": to("ratings"),
        "timeout": "1s",
    }
    on_8080 = {
        "name": "on-8080",
        "match": [{"port": 8080}],
        "route": to("ratings"),
        "timeout": "2s",
    }
    rest = {"name": "rest", "route": to("ratings")}
    services = [vs("ratings", ["ratings"], [on_9080, on_8080, rest])]
    assert [r.route for r in policy(services, port=9080).routes] == ["on-9080"]
    assert [r.route for r in policy(services, port=8080).routes] == ["on-8080"]
    assert [r.route for r in policy(services).routes] == ["on-9080", "on-8080", "rest"]


def test_a_virtual_service_istiod_cannot_read_applies_to_nothing():
    broken = vs("ratings", ["ratings"], [{"route": to("ratings"), "timeout": "soon"}])
    effective = policy([broken])
    assert effective.routes[0].virtual_service is None
    assert effective.implicit
