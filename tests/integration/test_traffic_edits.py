"""Routing edits against the Kubernetes API double, over HTTP, with the real client: the write,
the exact rollback, other writers' edits kept in both directions, 409s, and the checks that read
the cluster (DestinationRules, ServiceEntries) before any write."""

import inspect
import time

import pytest
from chaoslib.exceptions import ActivityFailed

from chaosmesh_py.engine import access
from chaosmesh_py.localmesh.apiserver import ApiFault, User
from chaosmesh_py.localmesh.apiserver.rbac import PolicyRule
from chaosmesh_py.traffic.actions import mirror_traffic, route_to_version, shift_traffic
from chaosmesh_py.traffic.rollbacks import remove_routing
from tests.conftest import NAMESPACE
from tests.integration.test_inject_rollback import JASON, exact, read, writes

V1 = "networking.istio.io/v1"
REVIEWS = {"virtual_service": "reviews", "namespace": NAMESPACE}


def shadow_entry(api):
    """A ServiceEntry for shadow.example.com: a host mirror_host may name."""
    api.create(
        {
            "apiVersion": V1,
            "kind": "ServiceEntry",
            "metadata": {"name": "shadow", "namespace": NAMESPACE},
            "spec": {
                "hosts": ["shadow.example.com"],
                "ports": [{"number": 80, "name": "http", "protocol": "HTTP"}],
                "resolution": "DNS",
            },
        }
    )


def copies_of(api, report):
    return [r for r in read(api, "reviews")["spec"]["http"] if r["name"] in report["routes"]]


def rollback(configuration, name="reviews"):
    return remove_routing(virtual_service=name, namespace=NAMESPACE, configuration=configuration)


def test_route_to_version_then_rollback_is_exact(api, configuration):
    before = read(api, "reviews")
    report = route_to_version("v3", headers=JASON, configuration=configuration, **REVIEWS)
    assert report["virtual_service"] == f"{NAMESPACE}/reviews"
    assert report["edit"]["action"] == "route_to_version"
    assert report["edit"]["weights"] == {"v3": 100}
    during = read(api, "reviews")
    # Bookinfo's reviews: jason-to-v2 (end-user: jason), then everyone-to-v1. The copy before
    # jason's route takes all of jason's requests; a jason copy of the catch-all would be the
    # same route again, never reached: it is skipped, and said.
    assert [r["name"] for r in during["spec"]["http"]] == [
        report["routes"][0],
        "jason-to-v2",
        "everyone-to-v1",
    ]
    assert during["spec"]["http"][0]["route"] == [
        {"destination": {"host": "reviews", "subset": "v3"}}
    ]
    assert report["skipped_routes"] == [
        {"route": "everyone-to-v1", "reason": "its copy would be the copy of route jason-to-v2"}
    ]
    assert report["edit"]["description"] == ["routes reviews to v3 for header end-user"]

    removed = rollback(configuration)
    assert removed[0]["removed"] == report["routes"]
    assert exact(read(api, "reviews")) == exact(before)


def test_shift_traffic_writes_weights_and_a_retry_after_409_keeps_the_other_writer(
    api, configuration
):
    def rollout_controller(server):
        current = server.get(V1, "VirtualService", NAMESPACE, "reviews")
        current["spec"]["http"][1]["timeout"] = "3s"
        server.replace(current)

    api.inject(
        ApiFault(
            method="PATCH", path="/virtualservices/reviews$", concurrent_write=rollout_controller
        )
    )
    report = shift_traffic(
        {"v1": 50, "v3": 50}, route_name="everyone-to-v1", configuration=configuration, **REVIEWS
    )
    assert report["api_attempts"] == 2
    during = read(api, "reviews")
    jason, first, everyone = during["spec"]["http"]
    assert first["name"] == report["routes"][0]
    assert [(d["destination"]["subset"], d["weight"]) for d in first["route"]] == [
        ("v1", 50),
        ("v3", 50),
    ]
    assert everyone["timeout"] == "3s"
    # The copy carries what the original had when the copy was planned: the 409 re-plan saw it.
    assert first["timeout"] == "3s"
    rollback(configuration)
    after = read(api, "reviews")
    assert after["spec"]["http"] == [jason, everyone]


def test_another_writers_change_made_during_the_edit_survives_rollback(api, configuration):
    route_to_version("v2", route_name="everyone-to-v1", configuration=configuration, **REVIEWS)
    edited = read(api, "reviews")
    edited["spec"]["http"].append(
        {"name": "late", "route": [{"destination": {"host": "reviews", "subset": "v1"}}]}
    )
    edited["metadata"].setdefault("annotations", {})["team"] = "reviews"
    api.replace(edited)
    rollback(configuration)
    after = read(api, "reviews")
    assert [r["name"] for r in after["spec"]["http"]] == ["jason-to-v2", "everyone-to-v1", "late"]
    assert after["metadata"]["annotations"] == {"team": "reviews"}


def test_mirror_to_a_subset_and_to_a_service_entry_host(api, configuration):
    shadow_entry(api)
    report = mirror_traffic(
        12.5, subset="v3", route_name="everyone-to-v1", configuration=configuration, **REVIEWS
    )
    (first,) = copies_of(api, report)
    assert first["mirror"] == {"host": "reviews", "subset": "v3"}
    assert first["mirrorPercentage"] == {"value": 12.5}
    assert first["route"] == [{"destination": {"host": "reviews", "subset": "v1"}}]
    assert report["edit"]["mirror_percentage"] == 12.5
    report = mirror_traffic(
        100,
        mirror_host="shadow.example.com",
        route_name="jason-to-v2",
        configuration=configuration,
        **REVIEWS,
    )
    (mirrored,) = copies_of(api, report)
    assert mirrored["mirror"] == {"host": "shadow.example.com"}
    rollback(configuration)
    assert [r["name"] for r in read(api, "reviews")["spec"]["http"]] == [
        "jason-to-v2",
        "everyone-to-v1",
    ]


@pytest.mark.parametrize(
    ("arguments", "words"),
    [
        (
            {"subset": "v9"},
            "has no subset 'v9' (DestinationRule bookinfo/reviews defines v1, v2, v3)",
        ),
        ({"subset": "v1", "destination_host": "nowhere"}, "unknown host 'nowhere'"),
    ],
)
def test_refused_before_any_write(api, configuration, arguments, words):
    with pytest.raises(ActivityFailed) as refused:
        route_to_version(configuration=configuration, **REVIEWS, **arguments)
    assert words in str(refused.value)
    assert writes(api) == []


def test_no_destination_rule_at_all_says_so(api, configuration):
    api.delete(V1, "DestinationRule", NAMESPACE, "reviews")
    api.request_log.clear()
    with pytest.raises(ActivityFailed) as refused:
        shift_traffic({"v1": 90, "v3": 10}, configuration=configuration, **REVIEWS)
    message = str(refused.value)
    assert (
        "weights: no DestinationRule defines subsets for reviews.bookinfo.svc.cluster.local"
        in message
    )
    assert "create a DestinationRule" in message
    assert writes(api) == []


def _as_user_with(api, monkeypatch, accesses):
    """Authenticated as a user whose only rules are ``accesses`` (RBAC's verbs, resources,
    groups and namespaces)."""
    rules = tuple(
        PolicyRule(
            verbs=(a.verb,),
            resources=(a.resource,),
            api_groups=(a.group,),
            namespaces=(a.namespace or "*",),
        )
        for a in accesses
    )
    api.set_tokens({"least": User("least", rules)})
    monkeypatch.setenv("KUBERNETES_API_KEY", "least")


@pytest.mark.parametrize(
    ("action", "arguments"),
    [
        (route_to_version, {"subset": "v2", "headers": JASON}),
        (shift_traffic, {"weights": {"v1": 90, "v3": 10}}),
        (mirror_traffic, {"percentage": 10, "subset": "v3"}),
        (mirror_traffic, {"percentage": 10, "mirror_host": "shadow.example.com"}),
    ],
)
def test_the_declared_needs_are_enough_and_each_is_needed(
    api, configuration, monkeypatch, action, arguments
):
    """What ``@needs`` declares (what ``chaosmesh gameday render`` grants) runs the action and
    its rollback; without the DestinationRule or ServiceEntry list it fails naming it."""
    shadow_entry(api)
    bound = inspect.signature(action).bind(**REVIEWS, **arguments)
    bound.apply_defaults()
    declared = access.declared(action.__module__, action.__name__)(bound.arguments)
    resources = {a.resource for a in declared}
    assert "virtualservices" in resources
    checked = "serviceentries" if "mirror_host" in arguments else "destinationrules"
    assert checked in resources

    _as_user_with(api, monkeypatch, [a for a in declared if a.resource != checked])
    with pytest.raises(ActivityFailed) as refused:
        action(configuration=configuration, **REVIEWS, **arguments)
    assert f"Forbidden: forbidden: needs list on {checked}.networking.istio.io" in str(
        refused.value
    )
    assert writes(api) == []

    _as_user_with(api, monkeypatch, declared)
    report = action(configuration=configuration, **REVIEWS, **arguments)
    assert report["routes"]
    assert rollback(configuration)[0]["removed"] == report["routes"]


def test_rollback_halt_and_reap_say_what_each_copy_did(api, configuration):
    from tests.integration.test_cleanup import chaosmesh

    run_id = configuration["chaosmesh_run_id"]
    dark = route_to_version("v3", headers=JASON, configuration=configuration, **REVIEWS)
    done = chaosmesh("rollback", "--run", run_id)
    assert done.returncode == 0, done.output
    assert f"{dark['routes'][0]} (routes reviews to v3 for header end-user)" in done.stdout

    shift = shift_traffic(
        {"v1": 90, "v3": 10}, route_name="everyone-to-v1", configuration=configuration, **REVIEWS
    )
    done = chaosmesh("halt")
    assert f"{shift['routes'][0]} (routes reviews to v1 90%, v3 10%)" in done.stdout

    short = {**configuration, "chaosmesh_ttl_s": 1}
    mirror = mirror_traffic(
        50, subset="v3", route_name="everyone-to-v1", configuration=short, **REVIEWS
    )
    time.sleep(1.5)
    done = chaosmesh("reap")
    assert f"{mirror['routes'][0]} (mirrors 50% to reviews v3)" in done.stdout


def test_a_rollout_controller_stepping_weights_on_every_attempt_keeps_its_last_step(
    api, configuration
):
    """Three 409s in a row (the controller writes before each of our patches): each time the
    edit is planned again on what it wrote, and its last weights are what stays."""
    steps = iter([10, 20, 30])

    def rollout_controller(server):
        current = server.get(V1, "VirtualService", NAMESPACE, "reviews")
        canary = next(steps)
        current["spec"]["http"][-1]["route"] = [
            {"destination": {"host": "reviews", "subset": "v1"}, "weight": 100 - canary},
            {"destination": {"host": "reviews", "subset": "v3"}, "weight": canary},
        ]
        server.replace(current)

    api.inject(
        ApiFault(
            method="PATCH",
            path="/virtualservices/reviews$",
            times=3,
            concurrent_write=rollout_controller,
        )
    )
    report = route_to_version("v2", headers=JASON, configuration=configuration, **REVIEWS)
    assert report["api_attempts"] == 4
    everyone = read(api, "reviews")["spec"]["http"][-1]
    assert [d["weight"] for d in everyone["route"]] == [70, 30]
    rollback(configuration)
    after = read(api, "reviews")["spec"]["http"]
    assert [r["name"] for r in after] == ["jason-to-v2", "everyone-to-v1"]
    assert [d["weight"] for d in after[-1]["route"]] == [70, 30]  # never the weights from before


def test_a_lost_answer_to_our_write_is_not_written_twice(api, configuration):
    api.inject(ApiFault(method="PATCH", path="/virtualservices/reviews$", drop="after"))
    report = shift_traffic(
        {"v1": 50, "v3": 50}, route_name="everyone-to-v1", configuration=configuration, **REVIEWS
    )
    names = [r["name"] for r in read(api, "reviews")["spec"]["http"]]
    assert names.count(report["routes"][0]) == 1
    assert len(names) == 3
    rollback(configuration)
    assert [r["name"] for r in read(api, "reviews")["spec"]["http"]] == [
        "jason-to-v2",
        "everyone-to-v1",
    ]
