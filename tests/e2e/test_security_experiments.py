"""The security-change experiments, run by `chaosmesh gate` on the local mesh as a user runs
them (`chaosmesh local up`, the variables it prints), with their journals read for what was
seen: a deny that shows on jason's page and goes away, a certificate whose expiry a guardrail
catches and rolls back."""

import time

import pytest

from chaosmesh_py.observe.bookinfo_page import check_page
from tests.e2e.localmesh import running_mesh
from tests.e2e.test_resilience_experiments import gate, outputs

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def environment(tmp_path_factory):
    with running_mesh(tmp_path_factory.mktemp("security-mesh")) as (environment, _):
        yield environment


def whole_again(url, user="jason", within_s=15.0):
    """Seconds until ``user``'s page is whole on every load of a round; a caller's pooled
    connection may carry the old filters for one more answer (the sidecars drain as Istio's)."""
    started = time.monotonic()
    while True:
        report = check_page(url, user, pages=10)
        if report.whole_share == 1.0:
            return time.monotonic() - started
        assert time.monotonic() - started < within_s, report.to_json()
        time.sleep(0.2)


def test_deny_reviews_to_ratings_shows_on_jasons_page_and_recovers(environment, tmp_path):
    done, verdict, journal = gate(environment, tmp_path, "bookinfo-deny-reviews-to-ratings.json")
    assert done.returncode == 0 and verdict["outcome"] == "pass", verdict["reasons"]
    seen = outputs(journal)
    deny = seen["deny-reviews-to-ratings"]
    assert deny["effect"]["verified"] is True
    assert deny["effect"]["request"]["status"] == 403
    page = seen["page-for-jason-under-the-deny"]
    # Every page answered, each without ratings (Bookinfo's own words), nothing else failed.
    assert page["statuses"] == {"200": page["pages"]}, page
    assert page["errors"] == {"ratings": page["pages"]}, page
    assert journal["chaosmesh"]["rollback_complete"] is True
    # ...and recovers: the rollback saw the policy leave ratings' RBAC filter, and jason's page
    # is whole again.
    (removal,) = [
        e for e in journal["rollbacks"] if e["activity"]["name"] == "remove-security-changes"
    ]
    assert removal["output"]["effect"]["verified"] is True, removal["output"]
    assert whole_again(environment["PRODUCTPAGE_URL"]) < 5


def test_an_expired_ratings_certificate_trips_the_guardrail_which_rolls_back(environment, tmp_path):
    done, verdict, journal = gate(
        environment, tmp_path, "bookinfo-ratings-certificate-expired.json"
    )
    summary = journal["chaosmesh"]
    # The guardrail saw ratings fail on jason's page, removed the change and stopped the run.
    assert summary["aborted_by_guardrail"]["probe"] == "ratings-shown-to-jason"
    assert summary["rollback_complete"] is True
    assert verdict["outcome"] == "fail" and done.returncode != 0
    assert any("aborted by guardrail 'ratings-shown-to-jason'" in r for r in verdict["reasons"])
    expired = outputs(journal)["expire-ratings-certificate"]
    assert expired["effect"]["verified"] is True
    # Stopped well before the method's 30 s hold.
    assert journal["duration"] < 30, journal["duration"]
    assert whole_again(environment["PRODUCTPAGE_URL"]) < 5
