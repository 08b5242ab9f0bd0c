"""The three edit forms and their records, planned without a server: field overrides that remember
what they replaced, owned objects, route copies that prove themselves ours, records by run."""

import copy
import json
from datetime import UTC, datetime

import pytest

from chaosmesh_py.errors import InvalidInput, OwnedByAnotherRun, TargetNotFound
from chaosmesh_py.istio import document, field_override, owned_object, release, route_copy
from chaosmesh_py.istio.owner_record import (
    ABSENT,
    FieldRecord,
    holdings,
    owner_key,
    record_of,
)
from chaosmesh_py.localmesh.apiserver.patch import merge_patch
from tests.unit.test_edit import apply, injection, to, virtual_service

LATER = datetime(2030, 1, 1, tzinfo=UTC)
POOL = ("spec", "trafficPolicy", "connectionPool")
TIGHT = {"tcp": {"maxConnections": 1}, "http": {"http1MaxPendingRequests": 1}}


def destination_rule(**spec):
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": {"name": "reviews", "namespace": "bookinfo", "resourceVersion": "3"},
        "spec": {"host": "reviews", **spec},
    }


def override(resource, path=POOL, value=TIGHT, run="r1"):
    patch = field_override.plan_override(resource, run, path, value, LATER)
    return resource if patch is None else apply(resource, patch)


def released(resource, run="r1", **kwargs):
    patch, what = release.plan_release(resource, [run], **kwargs)
    return (resource if patch is None else apply(resource, patch)), what


def exact(resource):
    return resource["spec"], resource["metadata"].get("annotations")


# --- numbers as a Go API server re-encodes them ------------------------------------------


def test_integral_floats_and_ints_are_one_value():
    assert document.digest("x", "r1", {"value": 100.0}) == document.digest(
        "x", "r1", {"value": 100}
    )
    assert document.digest("x", "r1", {"value": 50.5}) != document.digest("x", "r1", {"value": 50})
    assert document.same([{"a": 1.0}], [{"a": 1}])


# --- route copies: records decide, names prove -----------------------------------------


def test_a_copy_proves_itself_ours_after_a_round_trip_through_go():
    injected = apply(
        virtual_service([{"name": "v1", "route": to("v1")}]),
        route_copy.plan_injection(
            virtual_service([{"name": "v1", "route": to("v1")}]), injection()
        ),
    )
    copy_ = copy.deepcopy(injected["spec"]["http"][0])
    assert copy_["fault"]["delay"]["percentage"]["value"] == 100.0
    copy_["fault"]["delay"]["percentage"]["value"] = 100  # as the server answers it
    assert route_copy.proven_copy_owner(copy_) == "r1"
    copy_["timeout"] = "3s"  # changed by someone since
    assert route_copy.proven_copy_owner(copy_) is None


def test_user_routes_named_like_chaosmesh_are_user_routes():
    original = virtual_service(
        [
            {"name": "chaosmesh-dash-canary", "route": to("v2")},
            {"name": "chaosmesh-ci-0123456789ab", "route": to("v1")},
        ]
    )
    assert route_copy.owned_routes(original) == {}
    assert route_copy.user_routes(original) == original["spec"]["http"]
    # Shaped like a copy but not proven ours: reported, never removed.
    assert route_copy.unproven_copies(original) == ["chaosmesh-ci-0123456789ab"]
    injected = apply(original, route_copy.plan_injection(original, injection(route_index=1)))
    assert injected["spec"]["http"][1]["route"] == to("v1")  # index 1 is still the second route
    restored, what = released(injected)
    assert exact(restored) == exact(original)
    assert what.routes == [injected["spec"]["http"][1]["name"]]


def test_an_orphaned_copy_is_released_only_while_it_proves_itself_ours():
    original = virtual_service([{"name": "v1", "route": to("v1")}])
    injected = apply(original, route_copy.plan_injection(original, injection()))
    orphan = copy.deepcopy(injected)
    del orphan["metadata"]["annotations"]
    assert release.runs_holding(orphan) == ["r1"]
    restored, _ = released(orphan)
    assert restored["spec"] == original["spec"]
    orphan["spec"]["http"][0]["timeout"] = "1s"
    assert release.runs_holding(orphan) == []
    assert release.plan_release(orphan, ["r1"])[0] is None


def test_the_ledger_names_what_the_record_no_longer_does():
    original = virtual_service([{"name": "v1", "route": to("v1")}])
    injected = apply(original, route_copy.plan_injection(original, injection()))
    orphan = copy.deepcopy(injected)
    del orphan["metadata"]["annotations"]
    orphan["spec"]["http"][0]["timeout"] = "1s"  # no longer proves itself
    name = orphan["spec"]["http"][0]["name"]
    extra = {"r1": release.Extra(routes=(name,))}
    restored, what = released(orphan, extra=extra)
    assert restored["spec"] == original["spec"] and what.routes == [name]


def test_a_retry_after_the_original_was_edited_finds_its_copy():
    original = virtual_service([{"name": "v1", "route": to("v1")}])
    injected = apply(original, route_copy.plan_injection(original, injection()))
    edited = copy.deepcopy(injected)
    edited["spec"]["http"][1]["timeout"] = "9s"  # another writer, between our write and retry
    assert route_copy.plan_injection(edited, injection()) is None
    assert route_copy.copy_names(edited, injection()) == [injected["spec"]["http"][0]["name"]]


def test_records_of_the_previous_release_are_honoured():
    original = virtual_service([{"name": "v1", "route": to("v1")}])
    legacy = copy.deepcopy(original)
    legacy["spec"]["http"].insert(0, {"name": "chaosmesh-ci-nightly-0a1b2c3d4e", "route": to("v1")})
    legacy["metadata"]["annotations"] = {
        "fault.chaosmesh.io/ci-nightly": json.dumps(
            {"expires": "2026-01-01T00:00:00+00:00", "routes": ["chaosmesh-ci-nightly-0a1b2c3d4e"]}
        )
    }
    assert record_of(legacy, "ci-nightly").routes == ("chaosmesh-ci-nightly-0a1b2c3d4e",)
    assert release.runs_holding(legacy) == ["ci-nightly"]
    assert release.plan_release(legacy, ["ci"])[0] is None  # a prefix is not a run
    assert release.expired_runs(legacy, LATER) == ["ci-nightly"]
    restored, _ = released(legacy, run="ci-nightly")
    assert exact(restored) == exact(original)


# --- every route: routes that contradict the narrowing are skipped -------------------------


def reviews_with_a_tester_route():
    return virtual_service(
        [
            {
                "name": "tester",
                "match": [{"headers": {"end-user": {"exact": "tester"}}}],
                "route": to("v3"),
            },
            {"name": "rest", "route": to("v1")},
        ]
    )


def test_every_route_skips_a_route_whose_match_contradicts_the_narrowing():
    original = reviews_with_a_tester_route()
    jason = injection(headers={"end-user": {"exact": "jason"}})
    injected = apply(original, route_copy.plan_injection(original, jason))
    copies = [r for r in injected["spec"]["http"] if r["name"].startswith("chaosmesh-r1-")]
    assert [c["route"] for c in copies] == [to("v1")]
    (skipped,) = route_copy.skipped_routes(injected, jason)
    assert skipped.route == "tester" and "would match nothing" in skipped.reason


def test_every_route_fails_only_when_no_route_is_left():
    original = reviews_with_a_tester_route()
    original["spec"]["http"][1]["match"] = [{"headers": {"end-user": {"prefix": "te"}}}]
    with pytest.raises(InvalidInput, match=r"no route .* can carry the narrowed traffic"):
        route_copy.plan_injection(original, injection(headers={"end-user": {"exact": "jason"}}))


def test_a_named_route_that_contradicts_is_still_refused():
    with pytest.raises(InvalidInput, match="would match nothing"):
        route_copy.plan_injection(
            reviews_with_a_tester_route(),
            injection(route_name="tester", headers={"end-user": {"exact": "jason"}}),
        )


@pytest.mark.parametrize(
    ("theirs", "ours", "combined"),
    [
        ({"prefix": "ja"}, {"exact": "jason"}, {"exact": "jason"}),
        ({"exact": "jason"}, {"prefix": "ja"}, {"exact": "jason"}),
        ({"prefix": "ja"}, {"prefix": "jas"}, {"prefix": "jas"}),
        ({"regex": "j.*"}, {"exact": "jason"}, {"exact": "jason"}),
    ],
)
def test_a_compatible_route_match_is_combined_into_the_stricter(theirs, ours, combined):
    original = virtual_service([{"match": [{"headers": {"end-user": theirs}}], "route": to("v1")}])
    injected = apply(
        original, route_copy.plan_injection(original, injection(headers={"end-user": ours}))
    )
    assert injected["spec"]["http"][0]["match"] == [{"headers": {"end-user": combined}}]


def test_only_match_entries_that_contradict_are_dropped_from_the_copy():
    original = virtual_service(
        [
            {
                "match": [
                    {"headers": {"end-user": {"exact": "tester"}}},
                    {"uri": {"prefix": "/a"}},
                ],
                "route": to("v1"),
            }
        ]
    )
    narrowed = injection(headers={"end-user": {"exact": "jason"}})
    injected = apply(original, route_copy.plan_injection(original, narrowed))
    assert injected["spec"]["http"][0]["match"] == [
        {"uri": {"prefix": "/a"}, "headers": {"end-user": {"exact": "jason"}}}
    ]


# --- field overrides ---------------------------------------------------------------------


def test_an_override_remembers_what_it_replaced_and_removal_puts_it_back():
    loose = {"tcp": {"maxConnections": 100}}
    original = destination_rule(trafficPolicy={"connectionPool": loose, "tls": {"mode": "SIMPLE"}})
    overridden = override(original)
    assert overridden["spec"]["trafficPolicy"] == {
        "connectionPool": TIGHT,
        "tls": {"mode": "SIMPLE"},
    }
    (held,) = record_of(overridden, "r1").fields
    assert (held.path, held.wrote, held.replaced) == (POOL, TIGHT, loose)
    restored, what = released(overridden)
    assert exact(restored) == exact(original)
    assert what.fields == ["spec.trafficPolicy.connectionPool"] and not what.conflicts


def test_a_field_that_was_absent_goes_away_again_with_the_objects_created_for_it():
    original = destination_rule()
    overridden = override(original)
    assert overridden["spec"]["trafficPolicy"] == {"connectionPool": TIGHT}
    assert record_of(overridden, "r1").fields[0].replaced is ABSENT
    restored, _ = released(overridden)
    assert exact(restored) == exact(original)


def test_a_field_another_writer_changed_keeps_their_value_and_is_reported():
    original = destination_rule(trafficPolicy={"connectionPool": {"tcp": {"maxConnections": 9}}})
    overridden = override(original)
    theirs = copy.deepcopy(overridden)
    theirs["spec"]["trafficPolicy"]["connectionPool"] = {"tcp": {"maxConnections": 50}}
    theirs["spec"]["trafficPolicy"]["loadBalancer"] = {"simple": "ROUND_ROBIN"}
    restored, what = released(theirs)
    assert restored["spec"] == theirs["spec"]  # nothing of theirs undone
    assert not restored["metadata"].get("annotations")  # nothing of ours held any more
    (conflict,) = what.conflicts
    assert conflict["field"] == "spec.trafficPolicy.connectionPool"
    assert conflict["now"] == {"tcp": {"maxConnections": 50}}
    assert conflict["replaced"] == {"tcp": {"maxConnections": 9}}


def test_an_override_inside_a_list_selects_the_element_by_its_fields():
    original = destination_rule(subsets=[{"name": "v1"}, {"name": "v2", "labels": {"v": "2"}}])
    path = ("spec", "subsets", {"name": "v2"}, "trafficPolicy")
    overridden = override(original, path=path, value={"connectionPool": TIGHT})
    assert overridden["spec"]["subsets"][1]["trafficPolicy"] == {"connectionPool": TIGHT}
    # Another writer inserts a subset before it: the element is still found by name.
    moved = copy.deepcopy(overridden)
    moved["spec"]["subsets"].insert(0, {"name": "v0"})
    restored, what = released(moved)
    assert restored["spec"]["subsets"] == [{"name": "v0"}, *original["spec"]["subsets"]]
    assert not what.conflicts


def test_overriding_twice_is_idempotent_and_numbers_compare_as_the_server_holds_them():
    original = destination_rule()
    value = {"outlierDetection": {"consecutive5xxErrors": 1, "interval": "1s"}}
    path = ("spec", "trafficPolicy")
    overridden = override(original, path=path, value=value)
    assert field_override.plan_override(overridden, "r1", path, value, LATER) is None
    as_go_writes = copy.deepcopy(overridden)
    as_go_writes["spec"]["trafficPolicy"]["outlierDetection"]["consecutive5xxErrors"] = 1.0
    restored, what = released(as_go_writes)
    assert exact(restored) == exact(original) and not what.conflicts


def test_two_runs_never_hold_the_same_or_nested_fields():
    overridden = override(destination_rule())
    with pytest.raises(OwnedByAnotherRun, match="r1"):
        field_override.plan_override(overridden, "r2", POOL, TIGHT, LATER)
    with pytest.raises(OwnedByAnotherRun):
        field_override.plan_override(overridden, "r2", ("spec", "trafficPolicy"), {}, LATER)
    with pytest.raises(InvalidInput, match="overlaps"):
        field_override.plan_override(overridden, "r1", (*POOL, "tcp"), {}, LATER)


@pytest.mark.parametrize(
    "path",
    ["metadata.annotations", "spec", ["spec", 0], ["spec", ""], 5, ["spec", {}]],
)
def test_paths_outside_spec_or_malformed_are_refused(path):
    with pytest.raises(InvalidInput):
        field_override.parse_path(path)


def test_a_list_element_is_never_created_and_an_ambiguous_one_never_guessed():
    with pytest.raises(TargetNotFound):
        field_override.plan_override(
            destination_rule(), "r1", ("spec", "subsets", {"name": "v9"}, "x"), 1, LATER
        )
    twins = destination_rule(subsets=[{"name": "v1"}, {"name": "v1"}])
    with pytest.raises(TargetNotFound, match="several"):
        field_override.plan_override(twins, "r1", ("spec", "subsets", {"name": "v1"}), {}, LATER)


def test_a_run_holds_routes_and_fields_on_one_object_under_one_record():
    original = virtual_service([{"name": "v1", "route": to("v1")}])
    both = override(
        apply(original, route_copy.plan_injection(original, injection())),
        path=("spec", "http", {"name": "v1"}, "timeout"),
        value="1s",
    )
    record = record_of(both, "r1")
    assert len(record.routes) == 1 and len(record.fields) == 1
    assert list(holdings(both).run_ids()) == ["r1"]
    restored, what = released(both)
    assert exact(restored) == exact(original)
    assert what.routes and what.fields == ["spec.http[name=v1].timeout"]


# --- owned objects -----------------------------------------------------------------------

DENY = {"action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/ratings/*"]}}]}]}


def build(spec=DENY, run="r1"):
    return owned_object.build(
        run,
        api_version="security.istio.io/v1",
        kind="AuthorizationPolicy",
        namespace="bookinfo",
        spec=spec,
        expires_at=LATER,
    )


def test_an_owned_object_carries_its_record_and_proves_itself_ours():
    body = build()
    assert body["metadata"]["name"].startswith("chaosmesh-r1-")
    assert owned_object.owner_of(body, "r1") and not owned_object.owner_of(body, "r2")
    assert json.loads(body["metadata"]["annotations"][owner_key("r1")])["object"] is True
    assert build()["metadata"]["name"] == body["metadata"]["name"]  # same content, same name
    stripped = copy.deepcopy(body)
    del stripped["metadata"]["annotations"]
    stripped["apiVersion"] = "security.istio.io/v1beta1"  # served at another version
    assert owned_object.proven_owner(stripped) == "r1"
    stripped["spec"]["action"] = "ALLOW"
    assert owned_object.proven_owner(stripped) is None


def test_an_owned_object_istio_would_refuse_is_refused_before_sending():
    with pytest.raises(InvalidInput):
        build(spec=[1, 2])


def test_field_records_round_trip_through_json():
    held = FieldRecord(("spec", "subsets", {"name": "v1"}), {"a": 1}, ABSENT, (("spec", "x"),))
    assert FieldRecord.from_json(json.loads(json.dumps(held.to_json()))) == held
    assert merge_patch({"a": {"b": 1}}, {"a": None}) == {}
