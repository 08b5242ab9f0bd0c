"""Rollback against a hostile API: storms, timeouts, drops, other writers, deletions, GitOps.

Each scenario injects through the activities, turns the API double hostile, rolls back through
``remove_faults`` or the control (``roll_back`` / ``after_experiment_control``), and checks:
- retries are bounded: the attempts are counted in the double's request log, the wall time too;
- no route is ever duplicated, and no route someone else removed comes back;
- the resource, compared field by field, is the original plus whatever the other writer did
  (the same object: same uid), with our annotation gone and everyone else's metadata intact;
- a rollback that cannot finish says, in the journal, what is left, and the gate exits 3.

Scenarios already in ``test_api_failures.py`` (drops and short storms during injection and
``remove_faults``, an outage during injection, 403s) are not repeated here.
"""

import copy
import dataclasses
import json
import time
from collections import Counter

import pytest
from chaoslib.exceptions import ActivityFailed
from click.testing import CliRunner

from chaosmesh_py import control
from chaosmesh_py.cli import main as chaosmesh
from chaosmesh_py.engine.run import run_for
from chaosmesh_py.faults.actions import inject_abort
from chaosmesh_py.kube import client as kube
from chaosmesh_py.localmesh.apiserver import ApiFault
from tests.conftest import NAMESPACE
from tests.integration.test_inject_rollback import V1, delay_jason, read, rollback
from tests.unit.test_verdict import clean

DEFAULT = kube.RetryPolicy()
# A budget small enough that giving up takes well under a second.
QUICK = dataclasses.replace(DEFAULT, first_backoff_s=0.01, max_backoff_s=0.05)
# Reads time out after 0.3 s instead of 30 s.
IMPATIENT = dataclasses.replace(QUICK, request_timeout_s=(1.0, 0.3))

# Metadata the server rewrites on every write (managedFields: who wrote last, and when);
# everything else must come back as it was.
VOLATILE = ("resourceVersion", "generation", "managedFields")


def item_path(name="ratings"):
    return f"/apis/networking.istio.io/v1/namespaces/{NAMESPACE}/virtualservices/{name}"


def item(name="ratings"):
    return f"/virtualservices/{name}$"


def statuses(api, method, name="ratings"):
    """The answers to every ``method`` request on the VirtualService, in order (0: dropped)."""
    return [r.status for r in api.request_log if r.method == method and r.path == item_path(name)]


def creates_or_replaces(api):
    return [r for r in api.request_log if r.method in ("POST", "PUT")]


@pytest.fixture
def policy(api, monkeypatch):
    """``policy(retry)``: every Kube the activities connect from now on retries by ``retry``."""

    def use(retry):
        monkeypatch.setattr(kube, "RetryPolicy", lambda: retry)
        # If Kube stops building its default this way, say so instead of running slow.
        assert kube.Kube.connect().retry is retry

    return use


def differences(expected, actual, where="") -> list[str]:
    """Every field where ``actual`` differs from ``expected``, as ``path: expected != actual``."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        found = []
        for key in sorted(set(expected) | set(actual)):
            path = f"{where}.{key}" if where else key
            if key not in actual:
                found.append(f"{path}: missing (expected {expected[key]!r})")
            elif key not in expected:
                found.append(f"{path}: unexpected {actual[key]!r}")
            else:
                found += differences(expected[key], actual[key], path)
        return found
    if isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            return [f"{where}: {len(expected)} items expected, got {len(actual)}: {actual!r}"]
        found = []
        for index, (one, other) in enumerate(zip(expected, actual, strict=True)):
            found += differences(one, other, f"{where}[{index}]")
        return found
    return [] if expected == actual else [f"{where}: expected {expected!r}, got {actual!r}"]


def stable(resource):
    kept = copy.deepcopy(resource)
    for key in VOLATILE:
        kept["metadata"].pop(key, None)
    return kept


def assert_same_resource(actual, expected):
    """Field by field, except what the server bumps on each write (resourceVersion,
    generation): uid, name, labels, annotations, the whole spec."""
    assert actual is not None, "the VirtualService is gone"
    assert differences(stable(expected), stable(actual)) == []


def assert_no_duplicate_routes(resource):
    names = [route.get("name") for route in resource["spec"]["http"]]
    assert len(names) == len(set(names)), f"duplicated routes: {names}"


def our_routes(resource, configuration):
    prefix = f"chaosmesh-{configuration['chaosmesh_run_id']}-"
    return [r["name"] for r in resource["spec"]["http"] if r["name"].startswith(prefix)]


def our_annotation(configuration):
    return f"fault.chaosmesh.io/{configuration['chaosmesh_run_id']}"


def patch_directly(api, patch, name="ratings"):
    """Another writer (a person, an operator): never faulted, never logged."""
    return api.patch(V1, "VirtualService", NAMESPACE, name, patch)


CANARY = {"name": "canary", "route": [{"destination": {"host": "ratings", "subset": "v1"}}]}


def edit_by_another_team(api):
    """An unrelated change made while the fault is in place: a route, an annotation, a label."""
    current = read(api)
    current["spec"]["http"].append(CANARY)
    current["metadata"].setdefault("annotations", {})["owner"] = "ratings-team"
    current["metadata"]["labels"] = {"team": "ratings"}
    return api.replace(current)


def gitops_revert(api, original, name="ratings"):
    """What Argo CD or Flux does to a drifted object: the manifest's spec and metadata again."""
    current = api.get(V1, "VirtualService", NAMESPACE, name)
    current["spec"] = copy.deepcopy(original["spec"])
    current["metadata"]["annotations"] = copy.deepcopy(original["metadata"].get("annotations"))
    current["metadata"]["labels"] = copy.deepcopy(original["metadata"].get("labels"))
    for key in ("annotations", "labels"):
        if current["metadata"][key] is None:
            del current["metadata"][key]
    return api.replace(current)


def roll_back_with_the_control(configuration):
    return control.roll_back(run_for(configuration))


def roll_back_after_the_experiment(configuration):
    state: dict = {}
    control.after_experiment_control({}, state=state, configuration=configuration)
    return state[control.JOURNAL_KEY]


# -- 5xx and 429 storms ------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_a_5xx_storm_during_rollback_is_ridden_out_with_exponential_backoff(
    api, configuration, status
):
    before = read(api)
    injected = delay_jason(configuration)
    api.request_log.clear()
    api.inject(ApiFault(method="PATCH", path=item(), status=status, times=4))

    started = time.monotonic()
    summary = roll_back_with_the_control(configuration)
    elapsed_s = time.monotonic() - started

    assert summary["rollback_complete"] is True
    assert summary["rollback"][0]["removed"] == injected["routes"]
    assert summary["rollback"][0]["api_attempts"] == 5
    assert statuses(api, "PATCH") == [status] * 4 + [200]
    assert statuses(api, "GET") == [200] * 5  # every attempt plans from a fresh read
    # Backoffs 0.1, 0.2, 0.4, 0.8 s, each jittered down to half: it waited, and not forever.
    assert 0.75 <= elapsed_s < 0.1 + 0.2 + 0.4 + 0.8 + 1.0
    assert_same_resource(read(api), before)


def test_a_storm_on_the_reads_during_rollback_is_ridden_out(api, configuration, policy):
    policy(QUICK)
    before = read(api)
    injected = delay_jason(configuration)
    api.request_log.clear()
    for status in (503, 500, 429):
        api.inject(ApiFault(method="GET", path=item(), status=status))

    removed = rollback(configuration)

    assert removed[0]["removed"] == injected["routes"]
    assert statuses(api, "GET") == [503, 500, 429, 200]
    assert statuses(api, "PATCH") == [200]
    assert_same_resource(read(api), before)


def test_a_429_is_retried_no_sooner_than_its_retry_after(api, configuration):
    before = read(api)
    delay_jason(configuration)
    api.request_log.clear()
    api.inject(ApiFault(method="PATCH", path=item(), status=429, retry_after_s=1))

    started = time.monotonic()
    rollback(configuration)
    elapsed_s = time.monotonic() - started

    assert statuses(api, "PATCH") == [429, 200]
    assert 1.0 <= elapsed_s < 2.5
    assert_same_resource(read(api), before)


def test_a_retry_after_longer_than_the_cap_is_capped(api, configuration, policy):
    policy(dataclasses.replace(QUICK, max_retry_after_s=0.2))
    before = read(api)
    delay_jason(configuration)
    api.request_log.clear()
    api.inject(ApiFault(method="PATCH", path=item(), status=429, retry_after_s=60, times=3))

    started = time.monotonic()
    rollback(configuration)
    elapsed_s = time.monotonic() - started

    assert statuses(api, "PATCH") == [429, 429, 429, 200]
    assert 3 * 0.2 <= elapsed_s < 2.0  # three capped waits, not three minutes
    assert_same_resource(read(api), before)


def test_an_outage_during_rollback_gives_up_after_the_budget_and_changes_nothing(
    api, configuration, policy
):
    policy(QUICK)
    before = read(api)
    delay_jason(configuration)
    during = read(api)
    api.request_log.clear()
    api.inject(ApiFault(method="PATCH", path=item(), status=503, times=1000))

    started = time.monotonic()
    with pytest.raises(ActivityFailed, match="Unavailable"):
        rollback(configuration)
    elapsed_s = time.monotonic() - started

    assert statuses(api, "PATCH") == [503] * (QUICK.max_transient + 1)
    assert elapsed_s < 2.0
    assert_same_resource(read(api), during)  # nothing half-removed

    api.clear_faults()
    rollback(configuration)
    assert_same_resource(read(api), before)


# -- timeouts ------------------------------------------------------------------------------------


def test_a_rollback_write_slower_than_the_read_timeout_lands_once(api, configuration, policy):
    policy(IMPATIENT)
    before = read(api)
    injected = delay_jason(configuration)
    api.request_log.clear()
    # The server applies this write 0.8 s after the client stopped waiting (0.3 s).
    api.inject(ApiFault(method="PATCH", path=item(), delay_s=0.8))

    started = time.monotonic()
    summary = roll_back_with_the_control(configuration)
    elapsed_s = time.monotonic() - started
    assert api.wait_idle(5), "the slow request never finished"

    assert summary["rollback_complete"] is True
    assert summary["rollback"][0]["removed"] == injected["routes"]
    assert elapsed_s < 2.0
    # Whichever came first, the retry or the late write: one applied, the other refused by its
    # resourceVersion precondition (409) or never sent.
    assert statuses(api, "PATCH").count(200) == 1
    assert set(statuses(api, "PATCH")) <= {200, 409}
    assert_same_resource(read(api), before)


def test_an_injection_slower_than_the_read_timeout_never_duplicates_the_route(
    api, configuration, policy
):
    policy(IMPATIENT)
    before = read(api)
    api.inject(ApiFault(method="PATCH", path=item(), delay_s=0.8))
    injected = delay_jason(configuration)
    assert api.wait_idle(5), "the slow request never finished"

    during = read(api)
    assert_no_duplicate_routes(during)
    assert our_routes(during, configuration) == injected["routes"]
    assert len(injected["routes"]) == 1
    assert statuses(api, "PATCH").count(200) == 1

    rollback(configuration)
    assert_same_resource(read(api), before)


def test_reads_that_always_time_out_give_up_within_the_budget(api, configuration, policy):
    policy(IMPATIENT)
    before = read(api)
    delay_jason(configuration)
    during = read(api)
    api.request_log.clear()
    api.inject(ApiFault(method="GET", path=item(), delay_s=0.6, times=1000))

    started = time.monotonic()
    summary = roll_back_with_the_control(configuration)
    elapsed_s = time.monotonic() - started
    api.clear_faults()
    assert api.wait_idle(5), "the slow requests never finished"

    assert summary["rollback_complete"] is False
    (failed,) = summary["rollback_failed"]
    assert failed["virtual_service"] == f"{NAMESPACE}/ratings"
    assert "timed out" in failed["error"].lower()
    attempts = IMPATIENT.max_transient + 1
    assert len(statuses(api, "GET")) == attempts
    assert statuses(api, "PATCH") == []
    assert elapsed_s < attempts * (0.3 + 0.05) + 1.0
    assert_same_resource(read(api), during)

    rollback(configuration)
    assert_same_resource(read(api), before)


# -- dropped connections -----------------------------------------------------------------------


def test_a_rollback_whose_answer_is_lost_is_not_sent_again(api, configuration, policy):
    policy(QUICK)
    before = read(api)
    injected = delay_jason(configuration)
    api.request_log.clear()
    api.inject(ApiFault(method="PATCH", path=item(), drop="after"))

    summary = roll_back_with_the_control(configuration)

    # The re-read shows the write landed: nothing more is sent, and it is reported as removed.
    assert statuses(api, "PATCH") == [0]
    assert summary["rollback"][0]["removed"] == injected["routes"]
    assert summary["rollback_complete"] is True
    assert_same_resource(read(api), before)


def test_a_rollback_dropped_before_it_landed_is_sent_once_more(api, configuration, policy):
    policy(QUICK)
    before = read(api)
    injected = delay_jason(configuration)
    api.request_log.clear()
    api.inject(ApiFault(method="PATCH", path=item(), drop="before"))

    summary = roll_back_with_the_control(configuration)

    assert statuses(api, "PATCH") == [0, 200]
    assert summary["rollback"][0]["removed"] == injected["routes"]
    assert_same_resource(read(api), before)


# -- 409s from a concurrent writer -------------------------------------------------------------


def test_a_concurrent_writer_between_our_read_and_write_keeps_every_edit(
    api, configuration, policy
):
    policy(QUICK)
    before = read(api)
    delay_jason(configuration)
    api.request_log.clear()
    edits = iter(
        [
            # A route inserted before ours: we remove by name, not by position.
            lambda current: current["spec"]["http"].insert(0, CANARY),
            lambda current: (
                current["metadata"].setdefault("annotations", {}).update(owner="ratings-team")
            ),
            lambda current: current["metadata"].update(labels={"team": "ratings"}),
        ]
    )

    def another_writer(server):
        current = server.get(V1, "VirtualService", NAMESPACE, "ratings")
        next(edits)(current)
        server.replace(current)

    api.inject(ApiFault(method="PATCH", path=item(), concurrent_write=another_writer, times=3))

    started = time.monotonic()
    summary = roll_back_with_the_control(configuration)
    elapsed_s = time.monotonic() - started

    assert summary["rollback"][0]["api_attempts"] == 4
    assert statuses(api, "PATCH") == [409, 409, 409, 200]
    assert statuses(api, "GET") == [200] * 4
    assert elapsed_s < 1.0  # a 409 re-reads at once: no backoff
    expected = copy.deepcopy(before)
    expected["spec"]["http"].insert(0, CANARY)
    expected["metadata"]["annotations"] = {"owner": "ratings-team"}
    expected["metadata"]["labels"] = {"team": "ratings"}
    after = read(api)
    assert_same_resource(after, expected)
    assert our_annotation(configuration) not in after["metadata"]["annotations"]


def test_a_writer_that_never_stops_exhausts_the_conflict_budget_and_says_so(
    api, configuration, policy
):
    policy(QUICK)
    before = read(api)
    injected = delay_jason(configuration)
    api.request_log.clear()
    writes = iter(range(1000))

    def busy_operator(server):
        patch_directly(server, {"metadata": {"labels": {"reconciled": str(next(writes))}}})

    api.inject(ApiFault(method="PATCH", path=item(), concurrent_write=busy_operator, times=1000))

    started = time.monotonic()
    summary = roll_back_after_the_experiment(configuration)
    elapsed_s = time.monotonic() - started
    api.clear_faults()

    assert summary["rollback_complete"] is False
    (failed,) = summary["rollback_failed"]
    assert failed["virtual_service"] == f"{NAMESPACE}/ratings"
    assert "another writer keeps updating it" in failed["error"]
    assert statuses(api, "PATCH") == [409] * (QUICK.max_conflicts + 1)
    assert elapsed_s < 3.0
    during = read(api)
    assert our_routes(during, configuration) == injected["routes"]  # still exactly once
    assert_no_duplicate_routes(during)

    rollback(configuration)
    expected = copy.deepcopy(before)
    expected["metadata"]["labels"] = {"reconciled": str(QUICK.max_conflicts)}
    assert_same_resource(read(api), expected)


def test_a_writer_that_removes_our_route_meanwhile_is_not_undone(api, configuration, policy):
    policy(QUICK)
    before = read(api)
    delay_jason(configuration)
    api.request_log.clear()

    def someone_removes_our_route(server):
        current = server.get(V1, "VirtualService", NAMESPACE, "ratings")
        current["spec"]["http"] = [r for r in current["spec"]["http"] if r["name"] == "ratings-v1"]
        server.replace(current)

    api.inject(ApiFault(method="PATCH", path=item(), concurrent_write=someone_removes_our_route))

    summary = roll_back_with_the_control(configuration)

    # Only the annotation was left to remove; the route is not resurrected.
    assert statuses(api, "PATCH") == [409, 200]
    assert summary["rollback"][0]["removed"] == []
    assert summary["rollback_complete"] is True
    assert_same_resource(read(api), before)


def test_a_route_someone_removes_between_our_read_and_write_stays_removed(
    api, configuration, policy
):
    policy(QUICK)
    with_canary = read(api)
    with_canary["spec"]["http"].append(CANARY)
    before = api.replace(with_canary)
    delay_jason(configuration)
    api.request_log.clear()

    def someone_removes_the_canary(server):
        current = server.get(V1, "VirtualService", NAMESPACE, "ratings")
        current["spec"]["http"] = [r for r in current["spec"]["http"] if r["name"] != "canary"]
        server.replace(current)

    api.inject(ApiFault(method="PATCH", path=item(), concurrent_write=someone_removes_the_canary))

    roll_back_with_the_control(configuration)

    assert statuses(api, "PATCH") == [409, 200]
    expected = copy.deepcopy(before)
    expected["spec"]["http"].remove(CANARY)
    assert_same_resource(read(api), expected)


# -- the VirtualService deleted mid-run --------------------------------------------------------


@pytest.mark.parametrize("roll_back", [roll_back_with_the_control, roll_back_after_the_experiment])
def test_a_virtual_service_deleted_mid_run_is_not_recreated(api, configuration, roll_back):
    delay_jason(configuration)
    api.delete(V1, "VirtualService", NAMESPACE, "ratings")
    api.request_log.clear()

    summary = roll_back(configuration)

    assert summary["rollback_complete"] is True
    (removal,) = summary["rollback"]
    assert removal.pop("removed_at")  # when (for chaosmesh report's timeline)
    # Said as another writer's doing, when unknown (nothing followed the object).
    (lost,) = removal.pop("removed_by_another_writer")
    assert (lost["deleted"], lost["at"]) == (True, None)
    assert removal.pop("note").startswith("the object, route chaosmesh-")
    assert removal == {"virtual_service": f"{NAMESPACE}/ratings", "removed": [], "gone": True}
    assert statuses(api, "GET") == [404]
    assert statuses(api, "PATCH") == []
    assert creates_or_replaces(api) == []
    assert read(api) is None


def test_a_virtual_service_deleted_between_our_read_and_write_is_not_recreated(api, configuration):
    delay_jason(configuration)
    api.request_log.clear()

    def someone_deletes_it(server):
        server.delete(V1, "VirtualService", NAMESPACE, "ratings")

    api.inject(ApiFault(method="PATCH", path=item(), concurrent_write=someone_deletes_it))

    summary = roll_back_with_the_control(configuration)

    assert summary["rollback"][0]["gone"] is True
    assert summary["rollback_complete"] is True
    assert statuses(api, "PATCH") == [404]
    assert creates_or_replaces(api) == []
    assert read(api) is None


@pytest.mark.parametrize("when", ["before the rollback", "between our read and write"])
def test_a_virtual_service_recreated_from_its_manifest_is_left_as_recreated(
    api, configuration, when
):
    manifest = read(api)
    delay_jason(configuration)
    api.request_log.clear()

    def delete_and_recreate(server):
        server.delete(V1, "VirtualService", NAMESPACE, "ratings")
        recreated = copy.deepcopy(manifest)
        for key in ("resourceVersion", "uid", "generation", "creationTimestamp"):
            recreated["metadata"].pop(key, None)
        server.create(recreated)

    if when == "before the rollback":
        delete_and_recreate(api)
        recreated = read(api)
    else:
        api.inject(ApiFault(method="PATCH", path=item(), concurrent_write=delete_and_recreate))

    summary = roll_back_with_the_control(configuration)

    after = read(api)
    if when == "before the rollback":
        assert statuses(api, "PATCH") == []
        assert_same_resource(after, recreated)
    else:
        # Our write still carried the old object's resourceVersion: refused, then nothing to do.
        assert statuses(api, "PATCH") == [409]
    assert after["metadata"]["uid"] != manifest["metadata"]["uid"]
    assert summary["rollback_complete"] is True
    assert differences(manifest["spec"], after["spec"]) == []
    assert creates_or_replaces(api) == []


# -- a GitOps tool reverting our route mid-run -------------------------------------------------


@pytest.mark.parametrize(
    "roll_back",
    [rollback, roll_back_with_the_control, roll_back_after_the_experiment],
    ids=["remove_faults", "roll_back", "after_experiment_control"],
)
def test_a_gitops_revert_mid_run_leaves_nothing_to_do(api, configuration, roll_back):
    original = read(api)
    delay_jason(configuration)
    reverted = gitops_revert(api, original)
    api.request_log.clear()

    roll_back(configuration)

    assert statuses(api, "PATCH") == []
    assert creates_or_replaces(api) == []
    assert_same_resource(read(api), reverted)
    assert differences(original["spec"], read(api)["spec"]) == []


def test_a_gitops_revert_between_our_read_and_write_is_not_undone(api, configuration):
    original = read(api)
    delay_jason(configuration)
    api.request_log.clear()
    api.inject(
        ApiFault(method="PATCH", path=item(), concurrent_write=lambda s: gitops_revert(s, original))
    )

    summary = roll_back_with_the_control(configuration)

    assert statuses(api, "PATCH") == [409]
    assert summary["rollback_complete"] is True
    assert differences(original["spec"], read(api)["spec"]) == []
    assert "annotations" not in read(api)["metadata"]


@pytest.mark.parametrize("other_writer", ["gitops revert", "delete and recreate"])
def test_a_rollback_refused_by_409_does_not_claim_what_someone_else_removed(
    api, configuration, other_writer
):
    original = read(api)
    delay_jason(configuration)

    def revert(server):
        gitops_revert(server, original)

    def delete_and_recreate(server):
        server.delete(V1, "VirtualService", NAMESPACE, "ratings")
        server.create(
            {key: original[key] for key in ("apiVersion", "kind", "spec")}
            | {"metadata": {"name": "ratings", "namespace": NAMESPACE}}
        )

    writer = revert if other_writer == "gitops revert" else delete_and_recreate
    api.inject(ApiFault(method="PATCH", path=item(), concurrent_write=writer))

    summary = roll_back_with_the_control(configuration)

    assert summary["rollback"][0]["removed"] == []


@pytest.mark.parametrize("keeps_our_annotation", [True, False])
def test_a_tool_that_drops_our_route_but_keeps_other_edits(
    api, configuration, keeps_our_annotation
):
    original = read(api)
    delay_jason(configuration)
    edit_by_another_team(api)
    # A controller that owns spec.http only: it drops the routes it does not know.
    current = read(api)
    current["spec"]["http"] = [
        r for r in current["spec"]["http"] if not r["name"].startswith("chaosmesh-")
    ]
    if not keeps_our_annotation:
        del current["metadata"]["annotations"][our_annotation(configuration)]
    api.replace(current)
    api.request_log.clear()

    summary = roll_back_with_the_control(configuration)

    assert statuses(api, "PATCH") == ([200] if keeps_our_annotation else [])
    assert summary["rollback"][0]["removed"] == []
    expected = copy.deepcopy(original)
    expected["spec"]["http"].append(CANARY)
    expected["metadata"]["annotations"] = {"owner": "ratings-team"}
    expected["metadata"]["labels"] = {"team": "ratings"}
    assert_same_resource(read(api), expected)


# -- a rollback that cannot finish ---------------------------------------------------------------


def inject_two_faults(configuration):
    """A delay on ratings and an abort on both of reviews' routes."""
    ratings = delay_jason(configuration)
    reviews = inject_abort(
        percentage=50,
        http_status=503,
        virtual_service="reviews",
        namespace=NAMESPACE,
        configuration=configuration,
    )
    return ratings["routes"], reviews["routes"]


def journal_with(summary, tmp_path):
    # What the faults hit, as the control would have counted them for this journal's run.
    journal = clean(chaosmesh={**summary, "faults": clean()["chaosmesh"]["faults"]})
    path = tmp_path / "journal.json"
    path.write_text(json.dumps(journal))
    return path


def unfinished_rollback(api, configuration):
    """Inject on ratings and reviews, then roll back while reviews answers 503 forever."""
    ratings_routes, reviews_routes = inject_two_faults(configuration)
    api.request_log.clear()
    api.inject(ApiFault(method="PATCH", path=item("reviews"), status=503, times=1000))
    started = time.monotonic()
    summary = roll_back_after_the_experiment(configuration)
    elapsed_s = time.monotonic() - started
    api.clear_faults()
    return summary, elapsed_s, ratings_routes, reviews_routes


def test_a_rollback_that_cannot_finish_is_reported_and_graded_exit_3(
    api, configuration, policy, tmp_path
):
    policy(QUICK)
    before = {name: read(api, name) for name in ("ratings", "reviews")}

    summary, elapsed_s, ratings_routes, reviews_routes = unfinished_rollback(api, configuration)

    assert elapsed_s < 2.0
    assert statuses(api, "PATCH", "reviews") == [503] * (QUICK.max_transient + 1)
    assert summary["rollback_complete"] is False
    assert [r["removed"] for r in summary["rollback"]] == [ratings_routes]
    (failed,) = summary["rollback_failed"]
    assert failed["virtual_service"] == f"{NAMESPACE}/reviews"
    assert "503" in failed["error"]
    assert_same_resource(read(api, "ratings"), before["ratings"])
    left = read(api, "reviews")
    assert our_routes(left, configuration) == reviews_routes
    assert_no_duplicate_routes(left)

    journal = journal_with(summary, tmp_path)
    graded = CliRunner().invoke(
        chaosmesh, ["gate", str(journal), "--json", str(tmp_path / "report.json")]
    )
    assert graded.exit_code == 3, graded.output
    (row,) = json.loads((tmp_path / "report.json").read_text())
    assert row["outcome"] == "rollback-incomplete"
    (reason,) = row["reasons"]
    assert f"run {configuration['chaosmesh_run_id']}'s faults from {NAMESPACE}/reviews" in reason

    # What the journal asks for: run the rollback again once the API is back.
    finished = roll_back_after_the_experiment(configuration)
    assert finished["rollback_complete"] is True
    assert [r["removed"] for r in finished["rollback"]] == [reviews_routes]
    for name, resource in before.items():
        assert_same_resource(read(api, name), resource)


def test_an_unfinished_rollback_says_which_routes_are_left_and_how_to_finish(
    api, configuration, policy
):
    policy(QUICK)
    try:
        summary, _, ratings_routes, reviews_routes = unfinished_rollback(api, configuration)
        (failed,) = summary["rollback_failed"]
        left = json.dumps(failed)
        assert failed["virtual_service"] == f"{NAMESPACE}/reviews"
        # Exactly what is left: reviews' routes, not the ones already removed from ratings.
        assert all(name in left for name in reviews_routes), left
        assert not any(name in left for name in ratings_routes), left
        command = f"chaosmesh rollback --run {configuration['chaosmesh_run_id']}"
        assert command in json.dumps(summary), summary
    finally:
        api.clear_faults()
        roll_back_after_the_experiment(configuration)


def test_an_unfinished_rollback_never_duplicates_or_loses_routes_on_retry(
    api, configuration, policy
):
    policy(QUICK)
    original = read(api, "reviews")
    _, _, _, reviews_routes = unfinished_rollback(api, configuration)
    # A second outage, shorter this time, then the rollback the journal asked for.
    api.inject(ApiFault(method="PATCH", path=item("reviews"), status=502, times=3))
    api.request_log.clear()

    finished = roll_back_with_the_control(configuration)

    assert Counter(statuses(api, "PATCH", "reviews")) == Counter({502: 3, 200: 1})
    assert finished["rollback"][0]["removed"] == reviews_routes
    assert_same_resource(read(api, "reviews"), original)
