"""Routing edits through the real Envoy of the local mesh: a dark launch reaches the hidden
version for the tester only, a 50/50 shift reaches both versions, a mirror reaches its shadow
while users keep the route's answers; and each is gone after the rollback."""

import json
from collections import Counter

import pytest
import requests
from chaoslib.exceptions import ActivityFailed

from chaosmesh_py.traffic.actions import mirror_traffic, route_to_version, shift_traffic
from chaosmesh_py.traffic.rollbacks import remove_routing
from tests.integration.test_inject_rollback import exact
from tests.local.conftest import through_sidecar

V1 = "networking.istio.io/v1"
REVIEWS = {"virtual_service": "reviews", "namespace": "bookinfo"}
JASON = {"end-user": "jason"}
REQUESTS = 40


def reviews(mesh):
    return mesh.api.get(V1, "VirtualService", "bookinfo", "reviews")


def all_to_v1(mesh):
    """Istio's request-routing task, first step: every request to reviews v1."""
    resource = reviews(mesh)
    resource["spec"]["http"] = [resource["spec"]["http"][-1]]
    mesh.api.replace(resource)
    mesh.sync()


def answered_by(mesh, count=REQUESTS, headers=None):
    """Which reviews pod answered each of ``count`` requests from productpage's sidecar."""
    url, base = through_sidecar(mesh, "reviews", "/reviews/0", workload="productpage-v1")
    pods = Counter()
    with requests.Session() as session:
        for _ in range(count):
            answer = session.get(url, headers={**base, **(headers or {})}, timeout=5)
            pods[answer.json().get("podname") if answer.ok else answer.status_code] += 1
    return pods


def test_dark_launch_reaches_v2_for_jason_only_and_is_gone_after_rollback(mesh, configuration):
    all_to_v1(mesh)
    before = reviews(mesh)
    report = route_to_version("v2", headers=JASON, configuration=configuration, **REVIEWS)
    checked = report["verification"]
    assert checked["checked"] == "local mesh: Envoy config and requests"
    assert checked["requests_sent"] == 5
    assert checked["counted"] == {"reviews.bookinfo.svc.cluster.local v2": 5}
    assert 0 < report["time_to_effect_s"] < 10
    assert report["edit"]["description"] == ["routes reviews to v2 for header end-user"]

    assert answered_by(mesh, headers=JASON) == {"reviews-v2": REQUESTS}
    assert answered_by(mesh) == {"reviews-v1": REQUESTS}
    assert answered_by(mesh, headers={"end-user": "jasonx"}) == {"reviews-v1": REQUESTS}

    remove_routing(configuration=configuration)
    mesh.sync()
    assert exact(reviews(mesh)) == exact(before)
    assert answered_by(mesh, headers=JASON) == {"reviews-v1": REQUESTS}


def test_a_50_50_shift_reaches_both_versions(mesh, configuration):
    all_to_v1(mesh)
    report = shift_traffic({"v1": 50, "v3": 50}, configuration=configuration, **REVIEWS)
    counted = report["verification"]["counted"]
    assert counted["reviews.bookinfo.svc.cluster.local v1"] > 0
    assert counted["reviews.bookinfo.svc.cluster.local v3"] > 0
    pods = answered_by(mesh, count=200)
    assert set(pods) == {"reviews-v1", "reviews-v3"}
    # 200 draws at 50 %: outside 60-140 has probability below 1e-8.
    assert 60 <= pods["reviews-v3"] <= 140
    remove_routing(configuration=configuration)
    mesh.sync()
    assert answered_by(mesh) == {"reviews-v1": REQUESTS}


def test_a_mirror_reaches_v3_while_users_get_v1(mesh, configuration):
    all_to_v1(mesh)
    stats_before = mesh.envoy.stats()
    report = mirror_traffic(100, subset="v3", configuration=configuration, **REVIEWS)
    mirrored = "reviews.bookinfo.svc.cluster.local v3"
    assert report["verification"]["counted"][mirrored] >= 1
    assert answered_by(mesh) == {"reviews-v1": REQUESTS}
    v3 = "cluster.outbound|9080|v3|reviews.bookinfo.svc.cluster.local.upstream_rq_total"
    # Every user request was mirrored to v3 (Envoy counts the shadow requests on its cluster).
    assert mesh.envoy.stats().get(v3, 0) - stats_before.get(v3, 0) >= REQUESTS
    remove_routing(configuration=configuration)


def test_an_edit_envoy_cannot_carry_out_is_removed_and_reported(mesh, configuration):
    """A subset that the DestinationRule defines but no pod carries: Envoy has the route and
    the cluster, but no request can land there; the edit fails and is removed."""
    rule = mesh.api.get(V1, "DestinationRule", "bookinfo", "reviews")
    rule["spec"]["subsets"].append({"name": "v9", "labels": {"version": "v9"}})
    mesh.api.replace(rule)
    all_to_v1(mesh)
    before = reviews(mesh)
    with pytest.raises(ActivityFailed) as failed:
        route_to_version(
            "v9", configuration={**configuration, "chaosmesh_verify_timeout_s": 3}, **REVIEWS
        )
    assert "0 counted on reviews.bookinfo.svc.cluster.local v9" in str(failed.value)
    assert exact(reviews(mesh)) == exact(before)


@pytest.mark.slow
def test_a_dark_launch_experiment_passes_chaos_run_and_the_gate(mesh, tmp_path):
    """A routing edit alone is an experiment: verified live, removed by the control, graded."""
    from tests.conftest import python_activity
    from tests.local.test_hits import bookinfo_experiment, chaos_run, gate, page_probe

    all_to_v1(mesh)
    before = reviews(mesh)
    dark_launch = python_activity(
        "reviews-v2-for-jason",
        "chaosmesh_py.traffic.actions",
        "route_to_version",
        virtual_service="reviews",
        namespace="bookinfo",
        subset="v2",
        headers=JASON,
    )
    experiment = bookinfo_experiment(
        tmp_path,
        [page_probe("page-whole-for-others"), page_probe("page-whole-for-jason", user="jason")],
        [dark_launch],
    )
    done = chaos_run(mesh, tmp_path, experiment)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "chaosmesh: verdict pass" in done.stderr
    journal = json.loads((tmp_path / "journal.json").read_text())
    output = journal["run"][0]["output"]
    assert output["verification"]["counted"] == {"reviews.bookinfo.svc.cluster.local v2": 5}
    assert journal["chaosmesh"]["rollback_complete"] is True
    assert exact(reviews(mesh)) == exact(before)
    graded, row = gate(mesh, tmp_path, tmp_path / "journal.json")
    assert graded.returncode == 0, graded.stdout
    assert row["outcome"] == "pass"


def test_checked_by_url_as_on_a_cluster_says_what_it_cannot_see(mesh, configuration):
    all_to_v1(mesh)
    url = mesh.info()["services"]["reviews"]["url"] + "/reviews/0"
    report = route_to_version(
        "v2", headers=JASON, verify_url=url, configuration=configuration, **REVIEWS
    )
    checked = report["verification"]
    assert checked["checked"].startswith(f"requests to {url}: answered as listed; which version")
    assert "observed share probe" in checked["checked"]
    assert checked["answers"] == {"200": 5}
    assert report["time_to_effect_s"] is None
    remove_routing(configuration=configuration)


def test_narrowed_by_source_labels_only_that_callers_requests_move(mesh, configuration):
    all_to_v1(mesh)
    report = route_to_version(
        "v3", source_labels={"app": "productpage"}, configuration=configuration, **REVIEWS
    )
    assert report["verification"]["traffic"] == "5 request(s) through productpage-v1's sidecar"
    assert report["edit"]["description"] == ["routes reviews to v3 for source app=productpage"]
    assert answered_by(mesh) == {"reviews-v3": REQUESTS}  # productpage's sidecar
    url, base = through_sidecar(mesh, "reviews", "/reviews/0", workload="sleep")
    assert requests.get(url, headers=base, timeout=5).json()["podname"] == "reviews-v1"
    remove_routing(configuration=configuration)


def test_a_mirror_to_the_routes_own_subset_is_seen_only_by_its_copies(mesh, configuration):
    """v1 mirrored to v1: each request counts once as itself; only counts beyond one per
    request sent prove the copies."""
    all_to_v1(mesh)
    report = mirror_traffic(100, subset="v1", configuration=configuration, **REVIEWS)
    checked = report["verification"]
    assert checked["counted"]["reviews.bookinfo.svc.cluster.local v1"] > checked["requests_sent"]
    remove_routing(configuration=configuration)


def test_a_mirror_on_every_route_to_a_subset_one_of_them_routes_to(mesh, configuration):
    """Bookinfo's reviews as shipped: jason's route goes to v2, everyone else's to v1; a mirror
    to v2 on both is seen on the copy the verifying requests take (everyone's)."""
    report = mirror_traffic(100, subset="v2", configuration=configuration, **REVIEWS)
    checked = report["verification"]
    assert checked["counted"]["reviews.bookinfo.svc.cluster.local v2"] >= 1
    assert len(report["routes"]) == 2
    remove_routing(configuration=configuration)
