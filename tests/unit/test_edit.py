"""Owned edits, planned without a server: exact insertion, exact removal, refusals."""

import copy
import json
from datetime import UTC, datetime, timedelta

import pytest

from chaosmesh_py.errors import InvalidInput, OwnedByAnotherRun, TargetNotFound
from chaosmesh_py.istio import fault, narrowing, owner_record, release, route_copy
from chaosmesh_py.localmesh.apiserver.patch import merge_patch

LATER = datetime(2030, 1, 1, tzinfo=UTC)
DELAY = fault.parse_delay("7s", 100)
ABORT = fault.parse_abort(100, http_status=500)


def virtual_service(http, **spec):
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "ratings", "namespace": "bookinfo", "resourceVersion": "7"},
        "spec": {"hosts": ["ratings"], "http": http, **spec},
    }


def to(subset, host="ratings"):
    return [{"destination": {"host": host, "subset": subset}}]


def injection(run="r1", chosen=DELAY, **extra):
    return route_copy.Injection(run_id=run, change=chosen, expires_at=LATER, **extra)


def apply(resource, patch):
    """What the server holds after the merge patch (resourceVersion bumped)."""
    assert patch["metadata"]["resourceVersion"] == resource["metadata"]["resourceVersion"]
    result = merge_patch(resource, patch)
    result["metadata"]["resourceVersion"] = str(int(resource["metadata"]["resourceVersion"]) + 1)
    if not result["metadata"].get("annotations"):
        result["metadata"].pop("annotations", None)
    return result


def inject(resource, **kwargs):
    allow = kwargs.pop("allow_other_runs", False)
    return apply(resource, route_copy.plan_injection(resource, injection(**kwargs), allow))


def plan_removal(resource, run, only=None):
    return release.plan_release(resource, [run], only_routes=only)[0]


def remove(resource, run="r1"):
    patch = plan_removal(resource, run)
    return resource if patch is None else apply(resource, patch)


def spec_and_annotations(resource):
    return resource["spec"], resource["metadata"].get("annotations")


def test_copy_goes_directly_before_the_original_and_the_original_is_untouched():
    original = virtual_service([{"name": "v1", "route": to("v1")}])
    injected = inject(original, headers={"end-user": {"exact": "jason"}})
    routes = injected["spec"]["http"]
    assert len(routes) == 2
    assert routes[1] == original["spec"]["http"][0]
    copy_ = routes[0]
    assert copy_["name"].startswith("chaosmesh-r1-")
    assert copy_["match"] == [{"headers": {"end-user": {"exact": "jason"}}}]
    assert copy_["fault"] == DELAY.to_istio()
    assert copy_["route"] == to("v1")
    record = json.loads(injected["metadata"]["annotations"]["fault.chaosmesh.io/r1"])
    assert record["routes"] == [copy_["name"]]
    assert datetime.fromisoformat(record["expires"]) == LATER


def test_rollback_restores_spec_and_metadata_exactly():
    original = virtual_service(
        [
            {"match": [{"uri": {"prefix": "/a"}}, {"uri": {"prefix": "/b"}}], "route": to("v2")},
            {"name": "default", "route": to("v1"), "timeout": "3s"},
        ],
        gateways=["mesh"],
    )
    original["metadata"]["annotations"] = {"team": "ratings"}
    injected = inject(original, headers={"end-user": {"exact": "jason"}})
    injected = inject(injected, chosen=ABORT, route_index=1)
    assert len(injected["spec"]["http"]) == 5
    restored = remove(injected)
    assert spec_and_annotations(restored) == spec_and_annotations(original)


def test_every_match_entry_is_narrowed():
    original = virtual_service(
        [{"match": [{"uri": {"prefix": "/a"}}, {"uri": {"exact": "/b"}}], "route": to("v1")}]
    )
    copy_ = inject(original, headers={"end-user": {"exact": "jason"}})["spec"]["http"][0]
    assert copy_["match"] == [
        {"uri": {"prefix": "/a"}, "headers": {"end-user": {"exact": "jason"}}},
        {"uri": {"exact": "/b"}, "headers": {"end-user": {"exact": "jason"}}},
    ]


def test_narrowing_that_contradicts_the_route_is_refused():
    original = virtual_service(
        [{"match": [{"headers": {"end-user": {"exact": "bob"}}}], "route": to("v1")}]
    )
    with pytest.raises(InvalidInput, match="would match nothing"):
        route_copy.plan_injection(original, injection(headers={"end-user": {"exact": "jason"}}))


def test_repeating_an_injection_writes_nothing():
    original = virtual_service([{"route": to("v1")}])
    injected = inject(original)
    assert route_copy.plan_injection(injected, injection()) is None


def test_a_fault_that_was_already_there_survives_and_stays_in_force_on_the_copy():
    existing = {"delay": {"fixedDelay": "1s", "percentage": {"value": 10}}}
    original = virtual_service([{"route": to("v1"), "fault": existing}])
    injected = inject(original, chosen=ABORT)
    copy_, kept = injected["spec"]["http"]
    assert kept == original["spec"]["http"][0]
    assert copy_["fault"] == {**existing, **ABORT.to_istio()}
    assert spec_and_annotations(remove(injected)) == spec_and_annotations(original)


def test_delay_then_abort_on_one_route_newest_first_and_both_roll_back():
    original = virtual_service([{"name": "only", "route": to("v1")}])
    both = inject(inject(original), chosen=ABORT)
    names = [r["name"] for r in both["spec"]["http"]]
    assert names[2] == "only"
    assert "abort" in both["spec"]["http"][0]["fault"]
    assert both["spec"]["http"][1]["fault"] == DELAY.to_istio()
    record = json.loads(both["metadata"]["annotations"]["fault.chaosmesh.io/r1"])
    assert record["routes"] == [names[1], names[0]]
    assert spec_and_annotations(remove(both)) == spec_and_annotations(original)


def test_another_runs_faults_block_unless_sharing_is_allowed():
    original = virtual_service([{"route": to("v1")}])
    theirs = inject(original, run="other")
    with pytest.raises(OwnedByAnotherRun, match="other"):
        route_copy.plan_injection(theirs, injection(run="mine"))
    shared = inject(theirs, run="mine", chosen=ABORT, allow_other_runs=True)
    after_mine = remove(shared, run="mine")
    assert spec_and_annotations(after_mine) == spec_and_annotations(theirs)


def test_removal_keeps_edits_others_made_meanwhile():
    original = virtual_service([{"route": to("v1")}])
    injected = inject(original)
    edited = copy.deepcopy(injected)
    edited["spec"]["http"].append({"name": "added-by-ops", "route": to("v3")})
    edited["metadata"].setdefault("annotations", {})["ops"] = "yes"
    restored = remove(edited)
    assert restored["spec"]["http"] == [*original["spec"]["http"], edited["spec"]["http"][-1]]
    assert restored["metadata"]["annotations"] == {"ops": "yes"}


def test_removal_is_idempotent():
    original = virtual_service([{"route": to("v1")}])
    assert plan_removal(remove(inject(original)), "r1") is None
    assert plan_removal(original, "r1") is None


def test_route_indices_count_only_the_routes_users_wrote():
    original = virtual_service([{"name": "a", "route": to("v1")}, {"name": "b", "route": to("v2")}])
    injected = inject(original, route_index=0)
    again = inject(injected, chosen=ABORT, route_index=1)
    target = next(r for r in again["spec"]["http"] if r.get("fault", {}).get("abort"))
    assert target["route"] == to("v2")


def test_unknown_route_lists_what_exists():
    original = virtual_service([{"name": "a", "route": to("v1")}])
    with pytest.raises(TargetNotFound, match=r"\[0\] a -> ratings"):
        route_copy.plan_injection(original, injection(route_name="nope"))
    with pytest.raises(TargetNotFound, match="no route 3"):
        route_copy.plan_injection(original, injection(route_index=3))


def test_redirects_are_skipped_by_default_and_refused_when_named():
    original = virtual_service(
        [{"name": "old", "redirect": {"uri": "/new"}}, {"name": "new", "route": to("v1")}]
    )
    injected = inject(original)
    names = [r["name"] for r in injected["spec"]["http"]]
    assert names[0] == "old" and names[2] == "new" and names[1].startswith("chaosmesh-r1-")
    with pytest.raises(InvalidInput, match="redirects"):
        route_copy.plan_injection(original, injection(route_name="old"))


def test_source_labels_on_a_gateway_only_service_are_refused():
    original = virtual_service([{"route": to("v1")}], gateways=["bookinfo-gateway"])
    with pytest.raises(InvalidInput, match="source_labels"):
        route_copy.plan_injection(original, injection(source_labels={"app": "productpage"}))


def test_source_labels_narrow_the_copy():
    original = virtual_service([{"route": to("v1")}], gateways=["mesh"])
    copy_ = inject(original, source_labels={"app": "reviews"})["spec"]["http"][0]
    assert copy_["match"] == [{"sourceLabels": {"app": "reviews"}}]


def test_expiry_is_the_latest_of_the_runs_injections():
    original = virtual_service([{"route": to("v1")}])
    sooner = LATER - timedelta(days=1)
    first = apply(original, route_copy.plan_injection(original, injection()))
    second = apply(
        first,
        route_copy.plan_injection(
            first, route_copy.Injection(run_id="r1", change=ABORT, expires_at=sooner)
        ),
    )
    assert owner_record.record_of(second, "r1").expires_at == LATER


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ("jason", "headers"),
        ({"end-user": {"exactly": "x"}}, "headers.end-user"),
        ({"end-user": 5}, "headers.end-user"),
        ({"": "x"}, "headers"),
    ],
)
def test_bad_header_narrowing(value, field):
    with pytest.raises(InvalidInput) as caught:
        narrowing.parse_headers(value)
    assert caught.value.field == field


def test_header_shorthand_is_an_exact_match():
    assert narrowing.parse_headers({"end-user": "jason"}) == {"end-user": {"exact": "jason"}}


@pytest.mark.parametrize(("name", "index"), [("a", 0), ("", None), (None, -1), (None, True)])
def test_bad_route_choice(name, index):
    with pytest.raises(InvalidInput):
        narrowing.parse_route_choice(name, index)


def test_removing_some_routes_keeps_the_others_and_their_record():
    original = virtual_service([{"name": "only", "route": to("v1")}])
    delayed = inject(original)
    both = inject(delayed, chosen=ABORT)
    abort_copy = both["spec"]["http"][0]["name"]
    after = apply(both, plan_removal(both, "r1", only=[abort_copy]))
    assert spec_and_annotations(after) == spec_and_annotations(delayed)
    assert plan_removal(after, "r1", only=[abort_copy]) is None
    assert spec_and_annotations(remove(after)) == spec_and_annotations(original)
