"""The policy report's analysis without a server: amplification along paths (Istio's default
3 attempts per hop: 9, 27), cycles, timeout inversions, per-try timeouts, retried POSTs, the
worst of parallel edges, the bound on listed paths, worst-case times, and declared edges."""

from typing import Any

import pytest

from chaosmesh_py.errors import InvalidInput
from chaosmesh_py.resilience.call_graph import Edge, IstioObjects, parse_edges
from chaosmesh_py.resilience.report import build_report


def vs(host: str, **rule: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": host, "namespace": "default"},
        "spec": {"hosts": [host], "http": [{"route": [{"destination": {"host": host}}], **rule}]},
    }


def report(pairs, *virtual_services, destination_rules=(), **options):
    edges = [Edge(source, "default", destination, {"app": source}) for source, destination in pairs]
    objects = IstioObjects(tuple(virtual_services), tuple(destination_rules), {})
    return build_report(edges, objects, **options)


def kinds(built):
    return [f["kind"] for f in built.report["findings"] if not f["kind"].startswith("no_")]


def test_istios_default_multiplies_three_per_hop():
    built = report([("a", "b"), ("b", "c"), ("c", "d")])
    (path,) = built.report["paths"]
    assert path["nodes"] == ["a.default", "b.default", "c.default", "d.default"]
    assert (path["attempts"], path["max_attempts"]) == ([3, 3, 3], 27)
    assert built.report["max_amplification"] == 27
    (finding,) = [f for f in built.report["findings"] if f["kind"] == "amplification"]
    assert finding["max_attempts"] == 27
    assert "27 attempts at d.default" in finding["message"]
    assert "attempts: 0" in finding["fix"]
    assert built.graph.amplification("a.default", "c.default") == 9
    assert built.graph.amplification("c.default", "a.default") is None


def test_the_threshold_decides_what_is_a_finding():
    assert "amplification" not in kinds(report([("a", "b"), ("b", "c")]))  # 9 <= 10
    assert kinds(report([("a", "b"), ("b", "c")], max_amplification=8)) == ["amplification"]


def test_the_worst_of_two_routes_to_a_leaf_is_reported():
    # a -> b -> d (3 x 5: d retries b's calls 4 times) and a -> c -> d (3 x 3).
    from_b = vs("d", retries={"attempts": 4})
    from_b["spec"]["http"][0]["match"] = [{"sourceLabels": {"app": "b"}}]
    from_b["spec"]["http"].append({"route": [{"destination": {"host": "d"}}]})
    built = report([("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")], from_b)
    paths = {tuple(p["nodes"]): p["max_attempts"] for p in built.report["paths"]}
    assert paths == {("a.default", "b.default", "d.default"): 15}
    edges = {(e["source"], e["destination"]): e for e in built.report["edges"]}
    assert edges[("c.default", "d.default")]["worst_path_amplification"] == 9
    assert edges[("b.default", "d.default")]["worst_path_amplification"] == 15
    assert built.graph.amplification("a.default", "d.default") == 15
    assert built.graph.amplification("c.default", None) == 3


def test_parallel_edges_of_one_caller_count_at_their_worst():
    v1 = Edge("reviews", "default", "ratings", {"app": "reviews", "version": "v1"}, "reviews-v1")
    v2 = Edge("reviews", "default", "ratings", {"app": "reviews", "version": "v2"}, "reviews-v2")
    only_v2 = {
        "metadata": {"name": "ratings", "namespace": "default"},
        "spec": {
            "hosts": ["ratings"],
            "http": [
                {
                    "match": [{"sourceLabels": {"version": "v2"}}],
                    "route": [{"destination": {"host": "ratings"}}],
                    "retries": {"attempts": 9},
                },
                {"route": [{"destination": {"host": "ratings"}}], "retries": {"attempts": 0}},
            ],
        },
    }
    built = build_report([v1, v2], IstioObjects((only_v2,), (), {}))
    assert [e["attempts"] for e in built.report["edges"]] == [1, 10]
    assert built.report["max_amplification"] == 10
    # Each workload's edge says the worst path through itself.
    assert [e["worst_path_amplification"] for e in built.report["edges"]] == [1, 10]


def test_a_cycle_is_cut_and_said():
    built = report([("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")])
    (cycle,) = [f for f in built.report["findings"] if f["kind"] == "cycle"]
    assert cycle["edge"] == ["c.default", "a.default"]
    assert built.report["max_amplification"] == 27  # a -> b -> c -> d
    cut = {(e["source"], e["destination"]): e for e in built.report["edges"]}
    assert cut[("c.default", "a.default")]["worst_path_amplification"] == 0


def test_a_cycle_with_no_entry_still_has_paths():
    built = report([("a", "b"), ("b", "a")])
    assert [f["kind"] for f in built.report["findings"] if f["kind"] == "cycle"] == ["cycle"]
    assert built.report["max_amplification"] == 3


def test_a_deep_chain_is_no_recursion_problem():
    chain = [(f"s{i}", f"s{i + 1}") for i in range(3000)]
    built = report(chain, max_amplification=10**12)
    (path,) = built.report["paths"]
    assert (len(path["nodes"]), path["max_attempts"]) == (3001, 3**3000)


@pytest.mark.parametrize(
    ("inner", "inverted"),
    [
        ({"timeout": "2s"}, True),  # the inner call may outlast the outer's 1 s
        ({"retries": {"attempts": 2, "perTryTimeout": "0.5s"}}, True),  # 3 x 0.5 s
        ({"retries": {"attempts": 2, "perTryTimeout": "0.3s"}}, False),  # 3 x 0.3 s
        ({"timeout": "0.9s"}, False),
        ({}, False),  # unbounded, but nothing certain: not an inversion
        ({"fault": {"delay": {"fixedDelay": "1.5s", "percentage": {"value": 100}}}}, True),
    ],
)
def test_timeout_inversions(inner, inverted):
    built = report([("a", "b"), ("b", "c")], vs("b", timeout="1s"), vs("c", **inner))
    found = [f for f in built.report["findings"] if f["kind"] == "timeout_inversion"]
    assert bool(found) is inverted
    if inverted:
        assert found[0]["path"] == ["a.default", "b.default", "c.default"]
        assert found[0]["outer_budget_s"] == 1.0


def test_the_outer_per_try_timeout_is_its_budget():
    built = report(
        [("a", "b"), ("b", "c")],
        vs("b", timeout="10s", retries={"attempts": 2, "perTryTimeout": "1s"}),
        vs("c", timeout="2s"),
    )
    (found,) = [f for f in built.report["findings"] if f["kind"] == "timeout_inversion"]
    assert found["outer_budget_s"] == 1.0


def test_a_per_try_timeout_at_least_the_route_timeout_leaves_no_retry():
    built = report(
        [("a", "b")], vs("b", timeout="1s", retries={"attempts": 3, "perTryTimeout": "1s"})
    )
    (found,) = [f for f in built.report["findings"] if f["kind"] == "per_try_timeout"]
    assert "0.25 s" in found["fix"]
    fine = report(
        [("a", "b")], vs("b", timeout="1s", retries={"attempts": 3, "perTryTimeout": "250ms"})
    )
    assert "per_try_timeout" not in kinds(fine)


def test_retried_posts_are_flagged_unless_only_connect_failures_are_retried():
    def post_route(retry_on):
        resource = vs("b", retries={"attempts": 2, "retryOn": retry_on})
        resource["spec"]["http"][0]["match"] = [{"method": {"exact": "POST"}}]
        return resource

    assert "retries_non_idempotent" in kinds(report([("a", "b")], post_route("5xx")))
    assert "retries_non_idempotent" not in kinds(
        report([("a", "b")], post_route("connect-failure,refused-stream"))
    )


def test_worst_case_time_along_a_path():
    # c: 3 attempts x 1 s per try; b: 2 attempts, each waiting for c's 3 s, cut at 10 s.
    built = report(
        [("a", "b"), ("b", "c")],
        vs("b", timeout="10s", retries={"attempts": 1}),
        vs("c", retries={"attempts": 2, "perTryTimeout": "1s"}),
    )
    assert built.report["paths"][0]["worst_case_s"] == 6.0
    unbounded = report([("a", "b"), ("b", "c")])
    assert unbounded.report["paths"][0]["worst_case_s"] is None


def test_listed_paths_are_bounded_and_the_total_is_said():
    star = [("hub", f"leaf{i}") for i in range(50)]
    built = report(star, max_paths=5)
    assert len(built.report["paths"]) == 5
    assert built.report["paths_total"] == 50


def test_a_circuit_breaker_and_outlier_detection_silence_their_findings():
    rule = {
        "metadata": {"name": "b", "namespace": "default"},
        "spec": {
            "host": "b",
            "trafficPolicy": {
                "connectionPool": {"tcp": {"maxConnections": 10}, "http": {"maxRetries": 3}},
                "outlierDetection": {"consecutive5xxErrors": 2},
            },
        },
    }
    built = report([("a", "b")], vs("b", retries={"attempts": 0}), destination_rules=[rule])
    assert built.report["findings"] == []
    assert built.report["summary"]["findings"]["no_circuit_breaker"] == 0
    assert built.report["edges"][0]["max_retries_in_flight"] == 3
    assert report([("a", "b")]).report["edges"][0]["max_retries_in_flight"] is None


# --- declared edges -------------------------------------------------------------------------


def test_declared_edges_default_to_the_namespace_and_app_label():
    (edge,) = parse_edges([{"source": "productpage", "destination": "reviews"}], "edges", "shop")
    assert (edge.namespace, edge.host, dict(edge.labels)) == (
        "shop",
        "reviews",
        {"app": "productpage"},
    )
    (named,) = parse_edges(
        {
            "edges": [
                {
                    "source": "a",
                    "destination": "B.other",
                    "namespace": "x",
                    "port": 9080,
                    "source_labels": {"version": "v2"},
                }
            ]
        },
        "edges",
        "shop",
    )
    assert (named.namespace, named.host, named.port, dict(named.labels)) == (
        "x",
        "b.other",
        9080,
        {"version": "v2"},
    )


@pytest.mark.parametrize(
    ("edges", "field", "words"),
    [
        ([], "edges", "non-empty list"),
        ("productpage->reviews", "edges", "non-empty list"),
        ([["productpage", "reviews"]], "edges[0]", "must be an object"),
        ([{"source": "productpage"}], "edges[0].destination", "is missing"),
        (
            [{"source": "Product Page", "destination": "reviews"}],
            "edges[0].source",
            "not a service name",
        ),
        ([{"source": "a", "destination": "*.default"}], "edges[0].destination", "wildcard"),
        (
            [{"source": "a", "destination": "reviews", "namespace": "Bad_NS"}],
            "edges[0].namespace",
            "not a namespace",
        ),
        ([{"source": "a", "destination": "reviews", "port": 0}], "edges[0].port", "not a port"),
        ([{"source": "a", "destination": "reviews", "port": True}], "edges[0].port", "not a port"),
        (
            [{"source": "a", "destination": "reviews", "source_labels": ["app"]}],
            "edges[0].source_labels",
            "label",
        ),
        ([{"source": "a", "destination": "reviews", "weight": 3}], "edges[0]", "unknown field"),
    ],
)
def test_bad_declared_edges_name_the_entry_and_the_fix(edges, field, words):
    with pytest.raises(InvalidInput) as refused:
        parse_edges(edges, "edges", "default")
    assert refused.value.field == field
    assert words in str(refused.value)


def test_what_a_failing_leaf_multiplies_to_depends_on_what_each_hop_retries():
    # b retries 503s (5xx), c has Istio's default (connect failures only), d retries nothing.
    built = report(
        [("a", "b"), ("b", "c"), ("c", "d")],
        vs("b", retries={"attempts": 3, "retryOn": "5xx"}),
        vs("d", retries={"attempts": 0}),
    )
    (path,) = built.report["paths"]
    assert path["attempts"] == [4, 3, 1]
    assert path["max_attempts"] == 12
    assert path["max_attempts_on_503"] == 4  # only a -> b retries a 503
    assert path["max_attempts_leaf_unreachable"] == 4  # c -> d does not retry at all
    leaf_retried = report(
        [("a", "b"), ("b", "c")], vs("b", retries={"attempts": 3, "retryOn": "5xx"})
    )
    (path,) = leaf_retried.report["paths"]
    assert (path["max_attempts_on_503"], path["max_attempts_leaf_unreachable"]) == (4, 12)
