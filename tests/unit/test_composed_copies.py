"""A run's edits of one route compose: every request keeps what the run's earlier edits gave it
and gets the new change too (a canary step then a fault, a dark launch then a fault, and the
other orders), planned without a server."""

import pytest

from chaosmesh_py.errors import InvalidInput
from chaosmesh_py.istio import fault, route_copy, routing
from tests.unit.test_edit import LATER, apply, remove, spec_and_annotations, to, virtual_service

STEP = routing.Destinations((("v2", 90), ("v3", 10)))
TO_V2 = routing.Destinations((("v2", 100),))
ABORT = fault.parse_abort(50, http_status=503)
DELAY = fault.parse_delay("2s", 100)
SHADOW = routing.Mirror(25.0, subset="v3")
JASON = {"end-user": {"exact": "jason"}}
TESTER = {"end-user": {"exact": "tester"}}


def reviews():
    resource = virtual_service([{"name": "all", "route": to("v1", "reviews")}])
    resource["spec"]["hosts"] = ["reviews"]
    return resource


def request(change, run="r1", **narrowing):
    return route_copy.Injection(run, change, LATER, **narrowing)


def add(resource, change, run="r1", allow_other_runs=False, **narrowing):
    wanted = request(change, run, **narrowing)
    edited = apply(resource, route_copy.plan_injection(resource, wanted, allow_other_runs))
    # A retried write (its answer lost) finds every copy and writes nothing.
    assert route_copy.plan_injection(edited, wanted, allow_other_runs) is None
    return edited


def taken_by(resource, headers=None):
    """The route a request takes: the first whose match it meets (headers only)."""
    sent = headers or {}
    for route in resource["spec"]["http"]:
        for entry in route.get("match") or [{}]:
            wanted = entry.get("headers") or {}
            if all(sent.get(name) == condition.get("exact") for name, condition in wanted.items()):
                return route
    raise AssertionError("no route takes the request")


def subsets(route):
    return {d["destination"]["subset"]: d.get("weight", 100) for d in route["route"]}


def test_a_canary_step_then_a_fault_the_fault_keeps_the_split():
    edited = add(add(reviews(), STEP), ABORT)
    taken = taken_by(edited)
    assert subsets(taken) == {"v2": 90, "v3": 10}
    assert taken["fault"] == ABORT.to_istio()
    assert route_copy.describe_copy(edited, taken["name"]) == (
        "routes reviews to v2 90%, v3 10% and abort 503 at 50%"
    )


def test_a_fault_then_a_canary_step_the_split_keeps_the_fault():
    edited = add(add(reviews(), ABORT), STEP)
    taken = taken_by(edited)
    assert subsets(taken) == {"v2": 90, "v3": 10}
    assert taken["fault"] == ABORT.to_istio()


def test_a_dark_launch_then_a_fault_for_everyone_jason_keeps_v2():
    edited = add(add(reviews(), TO_V2, headers=JASON), DELAY)
    jason, others = taken_by(edited, {"end-user": "jason"}), taken_by(edited)
    assert (subsets(jason), jason["fault"]) == ({"v2": 100}, DELAY.to_istio())
    assert (subsets(others), others["fault"]) == ({"v1": 100}, DELAY.to_istio())
    assert route_copy.describe_copy(edited, jason["name"]).endswith("for header end-user")


def test_a_fault_for_everyone_then_a_dark_launch_jason_keeps_the_fault():
    edited = add(add(reviews(), DELAY), TO_V2, headers=JASON)
    jason, others = taken_by(edited, {"end-user": "jason"}), taken_by(edited)
    assert (subsets(jason), jason["fault"]) == ({"v2": 100}, DELAY.to_istio())
    assert (subsets(others), others["fault"]) == ({"v1": 100}, DELAY.to_istio())


def test_a_mirror_composes_with_a_canary_step_and_is_added_once():
    edited = add(add(reviews(), STEP), SHADOW)
    taken = taken_by(edited)
    assert subsets(taken) == {"v2": 90, "v3": 10}
    assert taken["mirror"] == {"host": "reviews", "subset": "v3"}
    assert taken["mirrorPercentage"] == {"value": 25.0}


def test_a_new_destination_replaces_the_earlier_one_without_a_dead_composed_copy():
    # Jason's dark launch then a step for everyone: the step's own copy takes jason too, so
    # composing onto the dark launch would add nothing.
    edited = add(add(reviews(), TO_V2, headers=JASON), STEP)
    assert len(edited["spec"]["http"]) == 3
    assert subsets(taken_by(edited, {"end-user": "jason"})) == {"v2": 90, "v3": 10}


def test_an_earlier_copy_that_contradicts_the_narrowing_is_not_composed_onto():
    edited = add(add(reviews(), TO_V2, headers=JASON), ABORT, headers=TESTER)
    assert len(edited["spec"]["http"]) == 3  # tester's abort, jason's v2, the route
    assert "fault" not in taken_by(edited, {"end-user": "jason"})
    assert taken_by(edited, {"end-user": "tester"})["fault"] == ABORT.to_istio()


def test_the_routes_own_contradiction_still_refuses_a_picked_route():
    narrowed = reviews()
    narrowed["spec"]["http"][0]["match"] = [{"headers": JASON}]
    with pytest.raises(InvalidInput, match="would match nothing"):
        route_copy.plan_injection(narrowed, request(ABORT, headers=TESTER, route_name="all"))


def test_another_runs_copies_are_not_composed_onto():
    theirs = add(reviews(), STEP, run="other")
    edited = add(theirs, ABORT, allow_other_runs=True)
    ours = route_copy.run_routes(edited, "r1")
    assert len(ours) == 1 and subsets(ours[0]) == {"v1": 100}


def test_composed_copies_name_their_base_and_all_leave_with_the_run():
    original = reviews()
    stepped = add(original, STEP)
    step_copy = route_copy.copy_names(stepped, request(STEP))[0]
    edited = add(stepped, ABORT)
    composed = route_copy.composed_copies(edited, request(ABORT))
    assert list(composed.values()) == [step_copy]
    assert list(composed) == [taken_by(edited)["name"]]
    assert route_copy.copy_names(edited, request(ABORT))[0] == taken_by(edited)["name"]
    assert spec_and_annotations(remove(edited)) == spec_and_annotations(original)


def test_three_edits_compose_and_retries_stay_idempotent():
    edited = add(add(add(reviews(), TO_V2, headers=JASON), DELAY), ABORT)
    jason = taken_by(edited, {"end-user": "jason"})
    assert subsets(jason) == {"v2": 100}
    assert jason["fault"] == {**DELAY.to_istio(), **ABORT.to_istio()}
    assert taken_by(edited)["fault"] == {**DELAY.to_istio(), **ABORT.to_istio()}


def _entry(module, name, output):
    return {
        "status": "succeeded",
        "activity": {"name": name, "provider": {"module": module}},
        "output": {"virtual_service": "bookinfo/reviews", **output},
    }


def test_a_faults_hits_are_also_counted_on_the_copies_later_edits_composed_onto_it():
    from chaosmesh_py.observe import hits
    from chaosmesh_py.verdict import rules

    runs = [
        _entry(rules.ACTIONS_MODULE, "abort", {"fault": ABORT.to_istio(), "fault_routes": ["a"]}),
        _entry(rules.ROUTING_MODULE, "step", {"routes": ["a+s", "s"], "composed": {"a+s": "a"}}),
        # A delay keeps the abort on the copy it composes; a second abort would replace it.
        _entry(
            rules.ACTIONS_MODULE,
            "delay",
            {
                "fault": DELAY.to_istio(),
                "fault_routes": ["a+s+d", "d"],
                "composed": {"a+s+d": "a+s"},
            },
        ),
        _entry(
            rules.ACTIONS_MODULE,
            "abort again",
            {"fault": ABORT.to_istio(), "fault_routes": ["x", "y"], "composed": {"x": "a+s+d"}},
        ),
    ]
    found = hits.injected_faults(runs, rules.ACTIONS_MODULE, rules.EDIT_MODULES)
    assert [(f.activity, f.routes, f.composed_routes) for f in found] == [
        ("abort", ("a",), ("a+s", "a+s+d")),
        ("delay", ("a+s+d", "d"), ("x",)),
        ("abort again", ("x", "y"), ()),
    ]
    # Without the routing module, the step's copy is not known to be the abort's.
    alone = hits.injected_faults(runs, rules.ACTIONS_MODULE)
    assert alone[0].counted_routes == ("a",)


def test_an_earlier_copy_that_already_carries_the_change_moves_ahead_of_the_routes_new_copy():
    # Jason's abort copy already sends to v1; sending everyone to v1 must not shadow it.
    edited = add(add(reviews(), ABORT, headers=JASON), routing.Destinations((("v1", 100),)))
    jason = taken_by(edited, {"end-user": "jason"})
    assert jason["fault"] == ABORT.to_istio()
    assert "fault" not in taken_by(edited)
    assert len(edited["spec"]["http"]) == 3
