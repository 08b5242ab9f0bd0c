"""Istio's Bookinfo fault-injection task on the local mesh, judged by the steady-state probe."""

import pytest
from chaoslib.hypothesis import within_tolerance

from chaosmesh_py.faults.actions import inject_abort, inject_delay
from chaosmesh_py.faults.rollbacks import remove_faults
from chaosmesh_py.observe.probes import bookinfo_page

pytestmark = pytest.mark.slow

# The tolerance the packaged experiments give the page probe: every load whole.
EVERY_PAGE_WHOLE = {"type": "range", "range": [1.0, 1.0], "target": "whole_share"}


def page(mesh, user=None, pages=5):
    """What the page probe reports for ``user``, through the ingress gateway."""
    return bookinfo_page(url=mesh.info()["ingress_url"], user=user, pages=pages)


def ratings_fault(action, configuration, **arguments):
    return action(
        virtual_service="ratings",
        namespace="bookinfo",
        headers={"end-user": "jason"},
        configuration=configuration,
        **{"percentage": 100, **arguments},
    )


def test_a_7s_ratings_delay_breaks_jasons_page_and_only_his(mesh, configuration):
    assert page(mesh, "jason")["whole_share"] == 1.0
    report = ratings_fault(inject_delay, configuration, fixed_delay="7s")
    assert report["effect"]["traffic"].startswith("1 request")

    jason = page(mesh, "jason")
    assert (jason["whole"], jason["errors"]) == (0, {"reviews": 5})
    assert 5.5 <= jason["seconds"]["median"] <= 7.5  # productpage's 3 s timeout, tried twice
    assert page(mesh)["whole_share"] == 1.0

    removed = remove_faults(
        virtual_service="ratings", namespace="bookinfo", configuration=configuration
    )
    assert removed[0]["effect"]["config_s"] < 1
    assert page(mesh, "jason")["whole_share"] == 1.0


def test_a_ratings_abort_shows_jason_the_ratings_error(mesh, configuration):
    ratings_fault(inject_abort, configuration, http_status=500)
    jason = page(mesh, "jason")
    assert (jason["whole"], jason["errors"]) == (0, {"ratings": 5})
    assert page(mesh, "mary")["whole_share"] == 1.0
    remove_faults(virtual_service="ratings", namespace="bookinfo", configuration=configuration)
    assert page(mesh, "jason")["whole_share"] == 1.0


def test_a_half_fault_is_seen_every_time_not_by_a_coin_flip(mesh, configuration):
    # One page load passes a 50 % abort half the time; twenty all pass it once in a million.
    ratings_fault(inject_abort, configuration, http_status=500, percentage=50)
    try:
        for _ in range(3):
            jason = page(mesh, "jason", pages=20)
            assert jason["pages"] == 20
            assert 0 < jason["whole"] < 20, jason
            assert jason["errors"] == {"ratings": 20 - jason["whole"]}
            assert not within_tolerance(EVERY_PAGE_WHOLE, jason)
    finally:
        remove_faults(virtual_service="ratings", namespace="bookinfo", configuration=configuration)
    assert within_tolerance(EVERY_PAGE_WHOLE, page(mesh, "jason", pages=20))
