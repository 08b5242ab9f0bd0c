"""Hostile API answers: every injection completes or fails cleanly, every rollback is exact.

More hostile conditions, during rollback and through the control: ``test_hostile_api.py``.
"""

import time

import pytest
from chaoslib.exceptions import ActivityFailed

from chaosmesh_py.localmesh.apiserver import ApiFault, PolicyRule
from tests.integration.test_inject_rollback import (
    delay_jason,
    exact,
    read,
    rollback,
    writes,
)

RATINGS = "/virtualservices/ratings$"


def answers(api, method):
    """The statuses of ``method`` requests on ratings, in order (0: connection dropped)."""
    return [r.status for r in api.request_log if r.method == method and r.path.endswith("/ratings")]


def fault_routes(api):
    return [r["name"] for r in read(api)["spec"]["http"] if r["name"].startswith("chaosmesh-")]


@pytest.mark.parametrize("drop_on", ["PATCH", "GET"])
@pytest.mark.parametrize("when", ["before", "after"])
def test_a_dropped_connection_never_duplicates_and_rollback_stays_exact(
    api, configuration, drop_on, when
):
    # A lost answer to a write that landed is recognised on the re-read and not sent again.
    patches = {("PATCH", "after"): [0], ("PATCH", "before"): [0, 200]}.get((drop_on, when), [200])
    before = read(api)
    api.inject(ApiFault(method=drop_on, path=RATINGS, drop=when))
    started = time.monotonic()
    delay_jason(configuration)
    assert len(fault_routes(api)) == 1
    assert answers(api, "PATCH") == patches
    assert answers(api, "GET")[0] == (0 if drop_on == "GET" else 200)

    api.request_log.clear()
    api.inject(ApiFault(method=drop_on, path=RATINGS, drop=when))
    rollback(configuration)
    assert exact(read(api)) == exact(before)
    assert answers(api, "PATCH") == patches
    assert time.monotonic() - started < 2.0  # one short backoff each


@pytest.mark.parametrize("status", [500, 502, 503, 429])
def test_transient_errors_are_retried_without_state_change(api, configuration, status):
    before = read(api)
    api.inject(ApiFault(method="PATCH", path=RATINGS, status=status, times=3, retry_after_s=0))
    delay_jason(configuration)
    assert len(fault_routes(api)) == 1
    api.inject(ApiFault(method="PATCH", path=RATINGS, status=status, times=3, retry_after_s=0))
    rollback(configuration)
    assert exact(read(api)) == exact(before)


def test_an_outage_that_outlasts_the_retries_fails_cleanly_and_changes_nothing(api, configuration):
    before = read(api)
    api.inject(ApiFault(method="PATCH", path=RATINGS, status=503, times=1000, retry_after_s=0))
    with pytest.raises(ActivityFailed, match="Unavailable"):
        delay_jason(configuration)
    api.clear_faults()
    assert exact(read(api)) == exact(before)
    assert rollback(configuration)[0]["removed"] == []


def test_a_conflict_storm_is_ridden_out(api, configuration):
    before = read(api)
    api.inject(ApiFault(method="PATCH", path=RATINGS, status=409, times=10))
    delay_jason(configuration)
    assert len(fault_routes(api)) == 1
    api.inject(ApiFault(method="PATCH", path=RATINGS, status=409, times=10))
    rollback(configuration)
    assert exact(read(api)) == exact(before)


def test_a_conflict_storm_that_never_ends_fails_cleanly(api, configuration):
    before = read(api)
    api.inject(ApiFault(method="PATCH", path=RATINGS, status=409, times=1000))
    with pytest.raises(ActivityFailed, match="ConflictPersisted"):
        delay_jason(configuration)
    api.clear_faults()
    assert exact(read(api)) == exact(before)


def test_slow_answers_are_waited_for(api, configuration):
    before = read(api)
    api.inject(ApiFault(method="PATCH", path=RATINGS, delay_s=0.3))
    delay_jason(configuration)
    assert len(fault_routes(api)) == 1
    api.inject(ApiFault(method="PATCH", path=RATINGS, delay_s=0.3))
    rollback(configuration)
    assert exact(read(api)) == exact(before)


def test_forbidden_is_an_error_that_says_what_permission_is_missing(
    api, configuration, monkeypatch
):
    reader = PolicyRule(verbs=("get", "list"), resources=("*",))
    api.set_tokens({"reader-token": ("jane", [reader])})
    monkeypatch.setenv("KUBERNETES_API_KEY", "reader-token")
    before = read(api)
    try:
        with pytest.raises(ActivityFailed) as caught:
            delay_jason(configuration)
    finally:
        api.set_tokens(None)
    message = str(caught.value)
    assert "Forbidden" in message
    assert "needs patch on virtualservices.networking.istio.io in namespace 'bookinfo'" in message
    assert exact(read(api)) == exact(before)


def test_a_403_is_never_reported_as_success(api, configuration):
    api.inject(ApiFault(method="PATCH", path=RATINGS, status=403))
    with pytest.raises(ActivityFailed, match="Forbidden"):
        delay_jason(configuration)
    assert fault_routes(api) == []


def test_rollback_of_a_deleted_virtual_service_reports_it_gone(api, configuration):
    delay_jason(configuration)
    api.delete("networking.istio.io/v1", "VirtualService", "bookinfo", "ratings")
    report = rollback(configuration)
    assert report == [{"virtual_service": "bookinfo/ratings", "removed": [], "gone": True}]


def test_no_write_is_sent_when_validation_fails(api, configuration):
    api.request_log.clear()
    with pytest.raises(ActivityFailed):
        delay_jason(configuration, percentage=101)
    assert api.request_log == []
    assert writes(api) == []
