"""Where policy edits write, planned without a server: named and unnamed routes (Istio's task
VirtualServices have no route names), route copies never picked, identical routes refused, and
the override restored exactly with or without another writer."""

import copy
from datetime import UTC, datetime

import pytest

from chaosmesh_py.errors import InvalidInput, TargetNotFound
from chaosmesh_py.istio import field_override, policy_target, release, route_copy
from chaosmesh_py.istio.owner_record import path_text
from chaosmesh_py.resilience import policy_edits
from tests.unit.test_edit import apply, injection

LATER = datetime(2030, 1, 1, tzinfo=UTC)
JASON = [{"headers": {"end-user": {"exact": "jason"}}}]


def to(subset):
    return [{"destination": {"host": "reviews", "subset": subset}}]


def reviews(*routes):
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "reviews", "namespace": "bookinfo", "resourceVersion": "1"},
        "spec": {"hosts": ["reviews"], "http": list(routes)},
    }


# Istio's samples/bookinfo/networking/virtual-service-reviews-jason-v2-v3.yaml, unnamed.
TASK = reviews({"match": JASON, "route": to("v2")}, {"route": to("v3")})


def set_timeout(resource, target, value="0.5s", run="r1"):
    patch = field_override.plan_override(resource, run, target.path("timeout"), value, LATER)
    return resource if patch is None else apply(resource, patch)


def test_a_named_route_is_picked_by_its_name():
    (target,) = policy_target.route_targets(
        reviews({"name": "a", "route": to("v1")}, {"name": "b", "route": to("v2")}), "b", None
    )
    assert target.selector == {"name": "b"} and target.label == "b"


def test_unnamed_routes_are_picked_by_their_own_match_and_labelled_by_index():
    jason, everyone = policy_target.route_targets(TASK, None, None)
    assert (jason.label, everyone.label) == ("#0", "#1")
    assert jason.selector == {"name": None, "match": JASON}
    assert everyone.selector == {"name": None, "match": None}
    assert path_text(everyone.path("timeout")) == "spec.http[name=(none),match=(none)].timeout"
    done = set_timeout(TASK, everyone)
    assert done["spec"]["http"][1]["timeout"] == "0.5s"
    assert "timeout" not in done["spec"]["http"][0]


def test_a_copy_with_the_original_s_match_is_never_the_target():
    # A fault for everyone copies the catch-all route with the same (no) match, before it.
    faulted = apply(TASK, route_copy.plan_injection(TASK, injection(route_index=1)))
    assert len(faulted["spec"]["http"]) == 3
    (target,) = policy_target.route_targets(faulted, None, 1)
    done = set_timeout(faulted, target)
    timed = [r for r in done["spec"]["http"] if "timeout" in r]
    assert len(timed) == 1 and "name" not in timed[0]
    restored, what = release.plan_release(done, ["r1"], only_fields=True)
    after = apply(done, restored)
    assert what.fields == ["spec.http[name=(none),match=(none)].timeout"]
    assert after["spec"] == faulted["spec"]  # the copy stays: only the field went


def test_two_unnamed_routes_with_one_match_are_told_apart_by_destinations():
    twins = reviews({"route": to("v1")}, {"route": to("v2")})
    _, second = policy_target.route_targets(twins, None, None)
    assert second.selector == {"name": None, "match": None, "route": to("v2")}
    assert set_timeout(twins, second)["spec"]["http"][1]["timeout"] == "0.5s"


def test_identical_unnamed_routes_are_refused_naming_the_fix():
    with pytest.raises(InvalidInput, match="give the routes names") as caught:
        policy_target.route_targets(reviews({"route": to("v1")}, {"route": to("v1")}), None, 0)
    assert caught.value.field == "route_index"


def test_routes_that_do_not_forward_are_refused_and_unknown_ones_listed():
    redirect = reviews({"name": "old", "redirect": {"uri": "/new"}}, {"route": to("v1")})
    with pytest.raises(InvalidInput, match="timeouts and retries apply to routes that forward"):
        policy_target.route_targets(redirect, "old", None)
    assert [t.label for t in policy_target.route_targets(redirect, None, None)] == ["#1"]
    with pytest.raises(TargetNotFound, match=r"its routes: \[0\] old"):
        policy_target.route_targets(redirect, None, 5)


def test_another_writer_s_later_value_wins_and_their_other_fields_stay():
    (target,) = policy_target.route_targets(TASK, None, 1)
    done = set_timeout(TASK, target)
    theirs = copy.deepcopy(done)
    theirs["spec"]["http"][1]["timeout"] = "2s"
    theirs["spec"]["http"][1]["retries"] = {"attempts": 1}
    patch, what = release.plan_release(theirs, ["r1"])
    after = apply(theirs, patch)
    assert after["spec"]["http"][1] == {
        **TASK["spec"]["http"][1],
        "timeout": "2s",
        "retries": {"attempts": 1},
    }
    (conflict,) = what.conflicts
    assert (conflict["now"], conflict["wrote"], conflict["replaced"]) == ("2s", "0.5s", "(absent)")
    # Their retries beside our timeout: ours goes, theirs stays, no conflict.
    both = copy.deepcopy(done)
    both["spec"]["http"][1]["retries"] = {"attempts": 1}
    patch, what = release.plan_release(both, ["r1"])
    assert apply(both, patch)["spec"]["http"][1] == {
        **TASK["spec"]["http"][1],
        "retries": {"attempts": 1},
    }
    assert what.conflicts == []


def test_a_field_already_back_at_its_old_value_is_no_conflict():
    (target,) = policy_target.route_targets(TASK, None, 1)
    done = set_timeout(TASK, target)
    record = field_override.FieldRecord(target.path("timeout"), "0.5s")
    patch, _ = release.plan_release(done, ["r1"])
    after = apply(done, patch)
    # The ledger still names the field after the record went: nothing to report.
    again, what = release.plan_release(after, ["r1"], {"r1": release.Extra(fields=(record,))})
    assert again is None and what.conflicts == []


def test_descriptions_say_what_the_override_did_without_header_values():
    (target,) = policy_target.route_targets(TASK, None, 0)
    done = set_timeout(TASK, target, "1s")
    _, what = release.plan_release(done, ["r1"])
    (path,) = what.fields
    assert "jason" not in path
    assert what.described[path] == 'the run had set it to "1s"; back to unset'


@pytest.mark.parametrize(
    ("attempts", "per_try", "retry_on", "expected"),
    [
        (0, None, None, {"attempts": 0}),
        (3, "0.2s", None, {"attempts": 3, "perTryTimeout": "0.2s"}),
        (2, None, "5xx, reset", {"attempts": 2, "retryOn": "5xx,reset"}),
        (2, None, ["gateway-error", 503], {"attempts": 2, "retryOn": "gateway-error,503"}),
    ],
)
def test_retries_are_written_as_one_istio_object(attempts, per_try, retry_on, expected):
    assert policy_edits.parse_retries(attempts, per_try, retry_on) == expected
