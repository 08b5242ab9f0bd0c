"""The policy report's call graph from Istio's metrics, on the local mesh: real Bookinfo traffic
through the real Envoy, counted by the mesh's telemetry and scraped by a real Prometheus, gives
the edges productpage -> details, productpage -> reviews, reviews -> ratings (jason's reviews v2
calls ratings), and the report predicts 9 attempts at ratings per productpage request (Istio's
implicit 2 retries at each hop). A Prometheus URL with a password never shows in an error."""

import time

import pytest
import requests
from chaoslib.exceptions import ActivityFailed

from chaosmesh_py.localmesh.prometheus import SCRAPE_INTERVAL_S
from chaosmesh_py.resilience.probes import max_amplification, policy_report
from tests.local.test_prometheus import prometheus_url  # noqa: F401 (a fixture)

NAMESPACE = "bookinfo"
DEADLINE_S = 60


def test_edges_from_istio_metrics_give_the_bookinfo_call_graph(mesh, prometheus_url):  # noqa: F811
    page = mesh.info()["services"]["productpage"]["url"] + "/productpage"
    with requests.Session() as session:
        for _ in range(20):
            session.get(page, cookies={"user": "jason"}, timeout=15).raise_for_status()
            session.get(page, timeout=15).raise_for_status()
    wanted = {
        (f"productpage.{NAMESPACE}", f"details.{NAMESPACE}"),
        (f"productpage.{NAMESPACE}", f"reviews.{NAMESPACE}"),
        (f"reviews.{NAMESPACE}", f"ratings.{NAMESPACE}"),
    }
    arguments = {
        "from_metrics": True,
        "prometheus_url": prometheus_url,
        "window": "5m",
        "namespaces": [NAMESPACE],
    }
    deadline = time.monotonic() + DEADLINE_S
    seen: set = set()
    while not wanted <= seen and time.monotonic() < deadline:  # a scrape after the traffic
        time.sleep(SCRAPE_INTERVAL_S)
        try:
            report = policy_report(**arguments)
        except ActivityFailed as error:
            assert "show no calls" in str(error)  # not scraped yet
            continue
        seen = {(e["source"], e["destination"]) for e in report["edges"]}
    assert wanted <= seen, seen
    assert report["edges_from"] == "metrics over 5m"
    edges = {(e["source"], e["destination"], e["source_workload"]): e for e in report["edges"]}
    ratings = edges[(f"reviews.{NAMESPACE}", f"ratings.{NAMESPACE}", "reviews-v2")]
    assert (ratings["attempts"], ratings["implicit_default"]) == (3, True)
    # The worst case over the measured graph: other tests' traffic in the same Prometheus window
    # may add edges (and so paths as bad or worse), never remove Bookinfo's.
    assert max_amplification(entry="productpage", leaf="ratings", **arguments) >= 9, report["paths"]
    # Bookinfo's own edges as the metrics gave them: 9 attempts at ratings per productpage
    # request (the entry listener, a mesh client too, makes it 27 over the whole graph).
    measured = [
        {"source": e["source"].split(".")[0], "destination": e["destination"].split(".")[0]}
        for e in report["edges"]
        if (e["source"], e["destination"]) in wanted
    ]
    bookinfo = policy_report(edges=measured, namespaces=[NAMESPACE])
    assert bookinfo["max_amplification"] == 9
    assert [p["nodes"][-3:] for p in bookinfo["paths"] if p["max_attempts"] == 9] == [
        [f"{name}.{NAMESPACE}" for name in ("productpage", "reviews", "ratings")]
    ]


def test_a_prometheus_password_never_shows_in_the_error(mesh):
    url = "http://reporter:s3cret-pass@127.0.0.1:1"
    with pytest.raises(ActivityFailed) as failed:
        policy_report(from_metrics=True, prometheus_url=url, namespaces=[NAMESPACE])
    assert "s3cret-pass" not in str(failed.value)
    assert "http://127.0.0.1:1" in str(failed.value)
