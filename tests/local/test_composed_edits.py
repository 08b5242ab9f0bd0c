"""A run's edits of one route compose, through the real Envoy of the local mesh: a fault after a
canary step (or a dark launch) keeps the step's versions for the requests it lets through, and
the other order keeps the fault; one rollback restores the VirtualService exactly. And the
canary analysis of the run's own canary step under a client-side abort: v3 keeps its share, the
aborts are counted by the source only."""

from collections import Counter

import pytest
import yaml

from chaosmesh_py.faults.actions import inject_abort
from chaosmesh_py.faults.rollbacks import remove_faults
from chaosmesh_py.traffic.actions import route_to_version, shift_traffic
from tests.integration.test_inject_rollback import exact
from tests.local.test_canary_analysis import SETUP, phase
from tests.local.test_prometheus import prometheus_url  # noqa: F401 (a fixture)
from tests.local.test_traffic_edits import JASON, REQUESTS, REVIEWS, all_to_v1, answered_by, reviews

ABORTED = 503


def test_a_fault_after_sending_everyone_to_v3_lets_requests_through_to_v3_only(mesh, configuration):
    all_to_v1(mesh)
    before = reviews(mesh)
    route_to_version("v3", configuration=configuration, **REVIEWS)
    report = inject_abort(50, http_status=ABORTED, configuration=configuration, **REVIEWS)
    # The abort's first copy is composed onto the v3 copy: the one every request takes.
    composed = report["composed"]
    assert list(composed) == [report["fault_routes"][0]]
    assert "request(s) through" in report["effect"]["traffic"]  # the abort was seen
    pods = answered_by(mesh)
    # 40 draws at 50 %: none aborted, or none let through, has probability 2 * 2^-40.
    assert set(pods) == {"reviews-v3", ABORTED}
    remove_faults(configuration=configuration, **REVIEWS)
    mesh.sync()
    assert exact(reviews(mesh)) == exact(before)
    assert answered_by(mesh) == {"reviews-v1": REQUESTS}


def test_a_canary_step_after_a_fault_keeps_the_fault_on_both_versions(mesh, configuration):
    all_to_v1(mesh)
    before = reviews(mesh)
    inject_abort(50, http_status=ABORTED, configuration=configuration, **REVIEWS)
    report = shift_traffic({"v2": 50, "v3": 50}, configuration=configuration, **REVIEWS)
    assert report["edit"]["description"][0] == (
        "routes reviews to v2 50%, v3 50% and abort 503 at 50%"
    )
    counted = report["verification"]["counted"]
    assert counted["reviews.bookinfo.svc.cluster.local v2"] > 0
    assert counted["reviews.bookinfo.svc.cluster.local v3"] > 0
    pods = answered_by(mesh, count=120)
    assert set(pods) == {"reviews-v2", "reviews-v3", ABORTED}
    # 120 draws at 50 %: outside 30-90 aborted has probability below 1e-5.
    assert 30 <= pods[ABORTED] <= 90
    remove_faults(configuration=configuration, **REVIEWS)
    mesh.sync()
    assert exact(reviews(mesh)) == exact(before)


def test_a_dark_launch_then_a_fault_for_everyone_jasons_requests_still_reach_v2(
    mesh, configuration
):
    all_to_v1(mesh)
    before = reviews(mesh)
    route_to_version("v2", headers=JASON, configuration=configuration, **REVIEWS)
    report = inject_abort(50, http_status=ABORTED, configuration=configuration, **REVIEWS)
    assert len(report["fault_routes"]) == 2  # jason's v2 with the abort; everyone's
    assert set(answered_by(mesh, headers=JASON)) == {"reviews-v2", ABORTED}
    assert set(answered_by(mesh)) == {"reviews-v1", ABORTED}
    remove_faults(configuration=configuration, **REVIEWS)
    mesh.sync()
    assert exact(reviews(mesh)) == exact(before)
    assert Counter(answered_by(mesh, headers=JASON)) == {"reviews-v1": REQUESTS}


def test_a_step_composed_onto_an_abort_of_every_request_is_checked_by_config_only(
    mesh, configuration
):
    # No request gets through the abort to show where the step sends it: Envoy's routes are
    # checked, and the report says that traffic could not be.
    all_to_v1(mesh)
    before = reviews(mesh)
    inject_abort(100, http_status=ABORTED, configuration=configuration, **REVIEWS)
    report = shift_traffic({"v2": 50, "v3": 50}, configuration=configuration, **REVIEWS)
    checked = report["verification"]
    assert checked["traffic"].startswith("every copy a request can take aborts it"), checked
    assert "v2" in checked["envoy_routes"] and "v3" in checked["envoy_routes"]
    assert report["time_to_effect_s"] is None
    assert answered_by(mesh) == {ABORTED: REQUESTS}
    remove_faults(configuration=configuration, **REVIEWS)
    mesh.sync()
    assert exact(reviews(mesh)) == exact(before)


@pytest.mark.slow
def test_the_runs_canary_step_then_a_client_side_abort_v3_still_gets_its_share(
    mesh,
    prometheus_url,  # noqa: F811
    configuration,
):
    # Bookinfo's canary setup (everyone to v2); the run's canary step, then an abort of half the
    # requests in productpage's sidecar. Before edits composed, the abort's copy carried the
    # original's destinations and sat ahead of the step: v3 got nothing.
    service = next(
        d for d in yaml.safe_load_all(SETUP.read_text()) if d["kind"] == "VirtualService"
    )
    current = reviews(mesh)
    mesh.api.replace({**service, "metadata": {**current["metadata"]}})
    mesh.sync()
    shift_traffic({"v2": 90, "v3": 10}, configuration=configuration, **REVIEWS)
    inject_abort(50, http_status=ABORTED, configuration=configuration, **REVIEWS)
    try:
        traffic, judged = phase(mesh, prometheus_url)
    finally:
        remove_faults(configuration=configuration, **REVIEWS)
    failed = sum(status == ABORTED for _, status, _ in traffic.answers)
    assert 0.4 < failed / len(traffic.answers) < 0.6

    # The destination's sidecars saw the requests that got through, split 90/10, none failed.
    destination = judged("destination")
    canary, baseline = destination["canary"], destination["baseline"]
    assert canary["errors"] == baseline["errors"] == 0
    # ~360 requests got through: v3's 10 % is 36 +- 6; 10 is 4.5 sigma below.
    assert canary["requests"] >= 10
    assert 0.04 < canary["requests"] / (canary["requests"] + baseline["requests"]) < 0.18
    # Only the source (productpage's proxy) counts the aborts, unattributed to a version.
    source = judged("source")
    assert source["unattributed"]["errors"] == pytest.approx(failed, rel=0.1)
    assert source["unattributed"]["flags"] == ["FI"]
    assert destination["unattributed"] is None
