"""Routing edits as route copies, planned without a server: destinations, weights, mirrors,
narrowing, idempotent retries, exact removal, and the argument checks."""

import copy

import pytest

from chaosmesh_py.errors import InvalidInput
from chaosmesh_py.istio import route_copy, routing
from tests.unit.test_edit import (
    LATER,
    apply,
    inject,
    remove,
    spec_and_annotations,
    to,
    virtual_service,
)

TO_V2 = routing.Destinations((("v2", 100),))
CANARY = routing.Destinations((("v1", 90), ("v3", 10)))
SHADOW = routing.Mirror(25.0, subset="v3")
JASON = {"end-user": {"exact": "jason"}}


def reviews(*routes):
    resource = virtual_service(list(routes) or [{"name": "all", "route": to("v1", "reviews")}])
    resource["spec"]["hosts"] = ["reviews"]
    return resource


def test_dark_launch_copies_the_route_for_the_tester_only_and_keeps_the_original():
    original = reviews()
    edited = inject(original, chosen=TO_V2, headers=JASON)
    first, second = edited["spec"]["http"]
    assert second == original["spec"]["http"][0]
    assert first["match"] == [{"headers": JASON}]
    assert first["route"] == to("v2", "reviews")
    assert route_copy.describe_copy(edited, first["name"]) == (
        "routes reviews to v2 for header end-user"
    )


def test_without_narrowing_the_copy_has_the_originals_match_and_supersedes_it():
    matched = {"name": "api", "match": [{"uri": {"prefix": "/api"}}], "route": to("v1", "reviews")}
    edited = inject(reviews(matched), chosen=CANARY)
    first, second = edited["spec"]["http"]
    assert first["match"] == matched["match"]
    assert first["route"] == [
        {"destination": {"host": "reviews", "subset": "v1"}, "weight": 90},
        {"destination": {"host": "reviews", "subset": "v3"}, "weight": 10},
    ]
    assert second == matched
    assert "v1 90%, v3 10%" in route_copy.describe_copy(edited, first["name"])


def test_a_copy_keeps_everything_else_the_route_does():
    route = {
        "name": "all",
        "route": [{"destination": {"host": "reviews", "subset": "v1", "port": {"number": 9080}}}],
        "retries": {"attempts": 3},
        "timeout": "2s",
    }
    first = inject(reviews(route), chosen=TO_V2)["spec"]["http"][0]
    assert first["retries"] == {"attempts": 3}
    assert first["timeout"] == "2s"
    assert first["route"][0]["destination"] == {
        "host": "reviews",
        "subset": "v2",
        "port": {"number": 9080},
    }


def test_mirror_keeps_the_routes_destinations_and_adds_mirror_and_percentage():
    edited = inject(reviews(), chosen=SHADOW)
    first = edited["spec"]["http"][0]
    assert first["route"] == to("v1", "reviews")
    assert first["mirror"] == {"host": "reviews", "subset": "v3"}
    assert first["mirrorPercentage"] == {"value": 25.0}
    assert route_copy.describe_copy(edited, first["name"]) == "mirrors 25% to reviews v3"


def test_mirror_to_another_host_beside_a_mirror_the_route_already_has():
    route = {
        "name": "all",
        "route": to("v1", "reviews"),
        "mirror": {"host": "audit"},
        "mirrorPercentage": {"value": 5.0},
    }
    first = inject(reviews(route), chosen=routing.Mirror(100.0, host="shadow"))["spec"]["http"][0]
    assert "mirror" not in first
    assert "mirrorPercentage" not in first
    assert first["mirrors"] == [
        {"destination": {"host": "audit"}, "percentage": {"value": 5.0}},
        {"destination": {"host": "shadow"}, "percentage": {"value": 100.0}},
    ]


def test_a_retry_finds_the_copy_and_writes_nothing():
    edited = inject(reviews(), chosen=CANARY, headers=JASON)
    request = route_copy.Injection("r1", CANARY, LATER, headers=JASON)
    assert route_copy.plan_injection(edited, request) is None


def test_a_retry_after_the_original_changed_finds_the_copy_by_change_and_match():
    edited = inject(reviews(), chosen=TO_V2, headers=JASON)
    changed = copy.deepcopy(edited)
    changed["spec"]["http"][1]["timeout"] = "9s"  # the name a copy would get now differs
    request = route_copy.Injection("r1", TO_V2, LATER, headers=JASON)
    assert route_copy.plan_injection(changed, request) is None
    # A different change is a new copy, before the first; composed onto the first too, which
    # still lacks the original's new timeout (a copy is taken from the route as it was).
    other = route_copy.Injection("r1", CANARY, LATER, headers=JASON)
    again = apply(changed, route_copy.plan_injection(changed, other))
    assert [r.get("weight") for r in again["spec"]["http"][0]["route"]] == [90, 10]
    assert [r.get("timeout") for r in again["spec"]["http"]] == [None, "9s", None, "9s"]
    assert route_copy.plan_injection(again, other) is None


def test_removal_restores_the_virtual_service_exactly():
    original = reviews()
    for change in (TO_V2, CANARY, SHADOW):
        assert spec_and_annotations(
            remove(inject(original, chosen=change, headers=JASON))
        ) == spec_and_annotations(original)


def test_fault_and_routing_copies_of_one_run_compose_and_leave_together():
    original = reviews()
    edited = inject(inject(original, chosen=CANARY), headers=JASON)
    # jason's delay on the canary step's copy and on the route's own; then the step; the route.
    assert len(edited["spec"]["http"]) == 4
    assert spec_and_annotations(remove(edited)) == spec_and_annotations(original)


def test_a_route_sending_to_several_hosts_needs_the_host_named():
    split = {
        "name": "split",
        "route": [
            {"destination": {"host": "reviews-primary"}, "weight": 80},
            {"destination": {"host": "reviews-canary"}, "weight": 20},
        ],
    }
    with pytest.raises(InvalidInput) as refused:
        inject(reviews(split), chosen=TO_V2)
    assert refused.value.field == "destination_host"
    named = routing.Destinations((("v2", 100),), host="reviews-canary")
    first = inject(reviews(split), chosen=named)["spec"]["http"][0]
    assert first["route"] == to("v2", "reviews-canary")


@pytest.mark.parametrize(
    ("weights", "field", "words"),
    [
        ({"v1": 90, "v3": 20}, "weights", "sum to 110"),
        ({"v1": 110, "v3": -10}, "weights.v1", "outside 0-100"),
        ({"v1": 50.5, "v3": 49.5}, "weights.v1", "whole percentage"),
        ({"v1": 50.0, "v3": 50}, "weights.v1", "write it as a whole number: 50"),
        ({"v1": "90", "v3": 10}, "weights.v1", "str"),
        ({"v1": True, "v3": 99}, "weights.v1", "bool"),
        ({"v1": 0, "v3": 0}, "weights", "sum to 0"),
        ({}, "weights", "must map"),
        ([90, 10], "weights", "must map"),
        ({"v_1": 100}, "weights", "not a subset name"),
    ],
)
def test_bad_weights_name_the_field(weights, field, words):
    with pytest.raises(InvalidInput) as refused:
        routing.parse_weights(weights)
    assert refused.value.field == field
    assert words in str(refused.value)


@pytest.mark.parametrize("value", [0, -1, 100.5, float("nan"), "50", True, None])
def test_mirror_percentage_is_above_0_and_at_most_100(value):
    with pytest.raises(InvalidInput) as refused:
        routing.parse_mirror_percentage(value)
    assert refused.value.field == "percentage"


def test_mirror_percentage_accepts_fractions_up_to_100():
    assert routing.parse_mirror_percentage(0.5) == 0.5
    assert routing.parse_mirror_percentage(100) == 100.0


def _rule(name, namespace, host, subsets, export_to=None):
    spec = {"host": host, "subsets": [{"name": s, "labels": {"version": s}} for s in subsets]}
    if export_to is not None:
        spec["exportTo"] = export_to
    return {"metadata": {"name": name, "namespace": namespace}, "spec": spec}


FQDN = "reviews.shop.svc.cluster.local"


def test_subsets_come_from_the_client_namespace_first_then_the_services_then_root():
    rules = [
        _rule("root", "istio-system", FQDN, ["r1"]),
        _rule("service", "shop", "reviews", ["v1", "v2"]),
        _rule("client", "front", FQDN, ["c1"]),
    ]
    assert routing.subsets_for(FQDN, "front", rules).names == ("c1",)
    assert routing.subsets_for(FQDN, "shop", rules).names == ("v1", "v2")
    assert routing.subsets_for(FQDN, "other", rules[:1]).names == ("r1",)
    assert routing.subsets_for(FQDN, "other", []) is None


def test_subsets_honour_export_to_specificity_and_merging():
    private = _rule("private", "shop", "reviews", ["v1"], export_to=["."])
    assert routing.subsets_for(FQDN, "front", [private]) is None
    assert routing.subsets_for(FQDN, "shop", [private]).names == ("v1",)
    rules = [
        _rule("wild", "shop", "*.shop.svc.cluster.local", ["w"]),
        _rule("a", "shop", "reviews", ["v1"]),
        _rule("b", "shop", FQDN, ["v2", "v1"]),
    ]
    found = routing.subsets_for(FQDN, "shop", rules)
    assert found.names == ("v1", "v2")
    assert found.rules == ("shop/a", "shop/b")


def test_a_mirror_beside_istios_deprecated_mirror_percent_keeps_its_share():
    route = {
        "name": "all",
        "route": to("v1", "reviews"),
        "mirror": {"host": "audit"},
        "mirrorPercent": 20,
    }
    first = inject(reviews(route), chosen=SHADOW)["spec"]["http"][0]
    assert "mirrorPercent" not in first
    assert first["mirrors"][0] == {"destination": {"host": "audit"}, "percentage": {"value": 20}}
