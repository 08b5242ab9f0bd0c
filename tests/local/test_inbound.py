"""Each pod's inbound sidecar on the local mesh, through the real Envoy: a call goes caller's
sidecar -> server's inbound (istiod's HTTP chain: the fault filter, then the router) -> app."""

import urllib.request

import pytest

from tests.local.conftest import through_sidecar

pytestmark = pytest.mark.slow

RATINGS = "ratings-v1"


def get(url, headers=None, timeout=5):
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def inbound_listener(mesh, workload):
    name = mesh.info()["workloads"][workload]["inbound_listener"]
    # With a resource asked for, Envoy answers each as its own entry of "configs".
    for item in mesh.envoy.config_dump("dynamic_listeners")["configs"]:
        if item["name"] == name:
            return item["active_state"]["listener"]
    raise AssertionError(f"no listener {name}")


def test_each_pod_has_an_inbound_listener_in_istiods_shape(mesh):
    workload = mesh.info()["workloads"][RATINGS]
    assert workload["inbound_stat_prefix"] == "inbound_ratings-v1_9080"
    listener = inbound_listener(mesh, RATINGS)
    assert listener["traffic_direction"] == "INBOUND"
    assert listener["address"]["socket_address"]["port_value"] == int(
        workload["pod_url"].rsplit(":", 1)[1]
    )
    (chain,) = listener["filter_chains"]
    assert chain["name"] == "0.0.0.0_9080"
    (manager,) = [f["typed_config"] for f in chain["filters"]]
    assert manager["stat_prefix"] == "inbound_ratings-v1_9080"
    filters = [f["name"] for f in manager["http_filters"]]
    assert filters == ["envoy.filters.http.fault", "envoy.filters.http.router"]
    # istiod's empty HTTPFault: nothing injected until an EnvoyFilter says so.
    assert set(manager["http_filters"][0]["typed_config"]) == {"@type"}
    (virtual_host,) = manager["route_config"]["virtual_hosts"]
    assert virtual_host["name"] == "inbound|http|9080"
    (route,) = virtual_host["routes"]
    assert route["route"]["cluster"] == "inbound|9080||bookinfo~ratings-v1"


def test_a_call_goes_through_the_callers_sidecar_then_the_servers_inbound(mesh):
    before = mesh.envoy.stats(r"inbound_ratings-v1_9080|inbound\|9080\|\|bookinfo~ratings-v1")
    url, headers = through_sidecar(mesh, "ratings", "/ratings/0", workload="reviews-v2")
    for _ in range(5):
        assert get(url, headers)[0] == 200
    after = mesh.envoy.stats(r"inbound_ratings-v1_9080|inbound\|9080\|\|bookinfo~ratings-v1")

    def moved(name):
        return after.get(name, 0) - before.get(name, 0)

    assert moved("http.inbound_ratings-v1_9080.downstream_rq_2xx") == 5
    assert moved("cluster.inbound|9080||bookinfo~ratings-v1.upstream_rq_2xx") == 5
    # The caller's cluster's endpoint is the pod's inbound, not its app.
    outbound = "outbound|9080||ratings.bookinfo.svc.cluster.local"
    clusters = mesh.envoy.admin.get_json("/clusters", {"format": "json"})["cluster_statuses"]
    (status,) = [c for c in clusters if c["name"] == outbound]
    addresses = {h["address"]["socket_address"]["port_value"] for h in status["host_statuses"]}
    pod_port = int(mesh.info()["workloads"][RATINGS]["pod_url"].rsplit(":", 1)[1])
    assert addresses == {pod_port}


def test_the_destination_reporter_still_names_the_workload(mesh):
    url, headers = through_sidecar(mesh, "ratings", "/ratings/0", workload="reviews-v2")
    assert get(url, headers)[0] == 200
    text = mesh.telemetry.render()
    lines = [
        line
        for line in text.splitlines()
        if line.startswith("istio_requests_total{")
        and 'reporter="destination"' in line
        and 'source_workload="reviews-v2"' in line
        and 'destination_workload="ratings-v1"' in line
    ]
    assert lines, "no destination series for reviews-v2 -> ratings-v1"
