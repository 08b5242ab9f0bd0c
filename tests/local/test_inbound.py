"""Each pod's inbound sidecar on the local mesh, through the real Envoy: a call goes caller's
sidecar -> server's inbound (istiod's HTTP chain: the fault filter, then the router) -> app."""

import json
import re
import urllib.request

import pytest

from chaosmesh_py.faults.actions import inject_abort
from chaosmesh_py.faults.rollbacks import remove_faults
from chaosmesh_py.istio.inbound_fault import UpstreamFault
from chaosmesh_py.resilience.actions import inject_upstream_fault
from chaosmesh_py.resilience.rollbacks import remove_upstream_faults
from tests.local.conftest import cluster_stat, httpbin_route, through_sidecar, workload_of

pytestmark = pytest.mark.slow

RATINGS = "ratings-v1"
V1 = "networking.istio.io/v1"


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
    # PERMISSIVE (Istio's default): a TLS chain for Istio's ALPN, and one for plain text, told
    # apart by the TLS inspector; both hold the same HTTP chain.
    tls, plain = listener["filter_chains"]
    assert [f["name"] for f in listener["listener_filters"]] == [
        "envoy.filters.listener.tls_inspector"
    ]
    assert tls["filter_chain_match"]["transport_protocol"] == "tls"
    assert "istio" in tls["filter_chain_match"]["application_protocols"]
    assert plain["filter_chain_match"] == {"transport_protocol": "raw_buffer"}
    assert tls["name"] == plain["name"] == "0.0.0.0_9080"
    assert tls["filters"] == plain["filters"]
    chain = tls
    (manager,) = [f["typed_config"] for f in chain["filters"]]
    assert manager["stat_prefix"] == "inbound_ratings-v1_9080"
    filters = [f["name"] for f in manager["http_filters"]]
    assert filters == ["envoy.filters.http.fault", "envoy.filters.http.router"]
    # istiod's empty HTTPFault: nothing injected until an EnvoyFilter says so.
    assert set(manager["http_filters"][0]["typed_config"]) == {"@type"}
    (virtual_host,) = manager["route_config"]["virtual_hosts"]
    assert virtual_host["name"] == "inbound|http|9080"
    (route,) = virtual_host["routes"]
    # One Envoy serves every pod: the inbound cluster carries the pod's name.
    assert route["route"]["cluster"] == f"inbound|9080||bookinfo~{workload['pod']}"


def test_a_call_goes_through_the_callers_sidecar_then_the_servers_inbound(mesh):
    cluster = f"inbound|9080||bookinfo~{mesh.info()['workloads'][RATINGS]['pod']}"
    wanted = rf"inbound_ratings-v1_9080|{re.escape(cluster)}"
    before = mesh.envoy.stats(wanted)
    url, headers = through_sidecar(mesh, "ratings", "/ratings/0", workload="reviews-v2")
    for _ in range(5):
        assert get(url, headers)[0] == 200
    after = mesh.envoy.stats(wanted)

    def moved(name):
        return after.get(name, 0) - before.get(name, 0)

    assert moved("http.inbound_ratings-v1_9080.downstream_rq_2xx") == 5
    assert moved(f"cluster.{cluster}.upstream_rq_2xx") == 5
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


# --- the upstream fault (an owned EnvoyFilter on the inbound side) ----------------------------

HTTPBIN_CLUSTER = "outbound|8000||httpbin.bookinfo.svc.cluster.local"


def inbound_aborts(mesh, *workloads):
    info = mesh.info()["workloads"]
    stats = mesh.envoy.stats(r"fault\.aborts_injected")
    return sum(
        stats.get(f"http.{info[w]['inbound_stat_prefix']}.fault.aborts_injected", 0)
        for w in workloads
    )


def test_an_inbound_abort_is_a_real_upstream_error_the_callers_retries_retry(mesh, configuration):
    httpbin_route(mesh, retries={"attempts": 2, "retryOn": "5xx"})
    report = inject_upstream_fault(
        workload_labels={"app": "httpbin"},
        namespace="bookinfo",
        abort_http_status=503,
        configuration=configuration,
    )
    # The pods the selector picks, by their names (the API's), one per workload.
    assert [workload_of(pod) for pod in report["workloads"]] == ["httpbin-v1", "httpbin-v2"]
    assert report["effect"]["verified"] is True
    assert set(report["effect"]["verifier_hits"]) == {"httpbin-v1", "httpbin-v2"}
    assert (
        report["description"] == "aborts 100 % of requests to pods app=httpbin with 503 (inbound)"
    )
    aborts_before = inbound_aborts(mesh, "httpbin-v1", "httpbin-v2")
    retries_before = cluster_stat(mesh, HTTPBIN_CLUSTER, "upstream_rq_retry")
    url, headers = through_sidecar(mesh, "httpbin", "/status/200")
    for _ in range(5):
        assert get(url, headers)[0] == 503
    # Each request: 1 attempt + 2 retries, each aborted by the server's inbound (a VirtualService
    # abort at the caller would be 1 local reply and 0 retries).
    assert inbound_aborts(mesh, "httpbin-v1", "httpbin-v2") - aborts_before == 15
    assert cluster_stat(mesh, HTTPBIN_CLUSTER, "upstream_rq_retry") - retries_before == 10

    removed = remove_upstream_faults(namespace="bookinfo", configuration=configuration)
    (entry,) = removed["removed"]
    assert entry["deleted"] is True
    assert entry["what"] == report["description"]
    mesh.sync()
    fault_filter = inbound_listener(mesh, "httpbin-v1")["filter_chains"][0]["filters"][0]
    assert set(fault_filter["typed_config"]["http_filters"][0]["typed_config"]) == {"@type"}
    mesh.api.delete(V1, "VirtualService", "bookinfo", "httpbin")


def test_another_writers_envoy_filter_is_left_alone(mesh, configuration):
    other = {
        "apiVersion": "networking.istio.io/v1alpha3",
        "kind": "EnvoyFilter",
        "metadata": {"name": "team-delay", "namespace": "bookinfo"},
        "spec": UpstreamFault({"app": "details"}, delay_ms=5).envoy_filter_spec(),
    }
    mesh.api.create(other)
    inject_upstream_fault(
        workload_labels={"app": "details"},
        namespace="bookinfo",
        abort_http_status=500,
        abort_percentage=50,
        port=9080,
        configuration=configuration,
    )
    removed = remove_upstream_faults(namespace="bookinfo", configuration=configuration)
    assert len(removed["removed"]) == 1
    assert mesh.api.get("networking.istio.io/v1alpha3", "EnvoyFilter", "bookinfo", "team-delay")
    mesh.api.delete("networking.istio.io/v1alpha3", "EnvoyFilter", "bookinfo", "team-delay")


def test_an_envoy_filter_the_local_mesh_does_not_apply_says_so_in_its_status(mesh):
    mesh.api.create(
        {
            "apiVersion": "networking.istio.io/v1alpha3",
            "kind": "EnvoyFilter",
            "metadata": {"name": "cluster-patch", "namespace": "bookinfo"},
            "spec": {
                "configPatches": [
                    {
                        "applyTo": "CLUSTER",
                        "match": {"context": "SIDECAR_OUTBOUND"},
                        "patch": {"operation": "MERGE", "value": {"connect_timeout": "1s"}},
                    }
                ]
            },
        }
    )
    mesh.sync()
    found = mesh.api.get("networking.istio.io/v1alpha3", "EnvoyFilter", "bookinfo", "cluster-patch")
    (condition,) = found["status"]["conditions"]
    assert condition["status"] == "False"
    assert condition["reason"] == "NotSupported"
    assert "applyTo CLUSTER" in condition["message"]
    mesh.api.delete("networking.istio.io/v1alpha3", "EnvoyFilter", "bookinfo", "cluster-patch")


def test_chaos_run_counts_what_the_upstream_fault_hit_per_pod_and_rolls_it_back(mesh, tmp_path):
    from tests.local.test_hits import bookinfo_experiment, chaos_run, page_probe

    inject = {
        "type": "action",
        "name": "reviews-v1-fails",
        "provider": {
            "type": "python",
            "module": "chaosmesh_py.resilience.actions",
            "func": "inject_upstream_fault",
            "arguments": {
                "workload_labels": {"app": "reviews", "version": "v1"},
                "namespace": "bookinfo",
                "abort_http_status": 503,
            },
        },
        # Connections productpage's sidecar opened before the listener changed carry one more
        # request each without the fault, or close at the drain time (1 s here): after it, every
        # page meets the fault (docs/resilience.md, "When it reaches callers").
        "pauses": {"after": 1.5},
    }
    probe = page_probe("pages-during-the-fault", pages=4)
    probe.pop("tolerance")
    experiment = bookinfo_experiment(tmp_path, [], [inject, probe])
    done = chaos_run(mesh, tmp_path, experiment)
    journal = json.loads((tmp_path / "journal.json").read_text())
    assert journal["run"][0]["status"] == "succeeded", done.stderr
    (counted,) = journal["chaosmesh"]["upstream_faults"]
    # The Pods the action found in the API; counted per workload, as the mesh's status names it.
    (pod,) = counted["pods"]
    assert pod.startswith("reviews-v1-"), pod
    # Each page calls reviews once (Istio's default retry policy does not retry a 503).
    assert counted["by_pod"]["reviews-v1"]["aborted"] >= 4
    assert counted["hits"] == counted["by_pod"]["reviews-v1"]["hits"] >= 4
    (removed,) = [r for r in journal["chaosmesh"]["rollback"] if "EnvoyFilter" in r["resource"]]
    assert removed["deleted"] is True
    assert mesh.api.list("networking.istio.io/v1alpha3", "EnvoyFilter") == []


def test_chaosmesh_rollback_of_the_run_describes_the_upstream_fault_it_deletes(mesh, configuration):
    from tests.integration.test_cleanup import chaosmesh

    inject_upstream_fault(
        workload_labels={"app": "reviews", "version": "v3"},
        namespace="bookinfo",
        abort_http_status=503,
        abort_percentage=50,
        configuration=configuration,
    )
    done = chaosmesh("rollback", "--run", configuration["chaosmesh_run_id"])
    assert done.returncode == 0, done.stderr
    assert (
        "deleted (aborts 50 % of requests to pods app=reviews,version=v3 with 503 (inbound))"
        in done.stdout
    ), done.stdout
    assert mesh.api.list("networking.istio.io/v1alpha3", "EnvoyFilter") == []


def httpbin_outlier_detection(mesh):
    mesh.api.create(
        {
            "apiVersion": V1,
            "kind": "DestinationRule",
            "metadata": {"name": "httpbin", "namespace": "bookinfo"},
            "spec": {
                "host": "httpbin",
                "trafficPolicy": {
                    "outlierDetection": {
                        "consecutive5xxErrors": 1,
                        "interval": "1s",
                        "baseEjectionTime": "3m",
                        "maxEjectionPercent": 100,
                    }
                },
            },
        }
    )
    mesh.sync()


def test_the_callers_outlier_detection_ejects_a_pod_failing_on_its_inbound(mesh, configuration):
    httpbin_outlier_detection(mesh)
    inject_upstream_fault(
        workload_labels={"app": "httpbin", "version": "v1"},
        namespace="bookinfo",
        abort_http_status=503,
        configuration=configuration,
    )
    ejected_before = cluster_stat(
        mesh, HTTPBIN_CLUSTER, "outlier_detection.ejections_enforced_total"
    )
    url, headers = through_sidecar(mesh, "httpbin", "/status/200")
    statuses = [get(url, headers)[0] for _ in range(20)]
    ejected = cluster_stat(mesh, HTTPBIN_CLUSTER, "outlier_detection.ejections_enforced_total")
    assert ejected - ejected_before == 1
    # At most the requests before the ejection failed; once v1 is out, v2 answers every one.
    assert statuses[-10:] == [200] * 10
    assert 1 <= statuses.count(503) <= 10
    remove_upstream_faults(namespace="bookinfo", configuration=configuration)


def test_a_virtual_service_abort_at_the_caller_ejects_nothing(mesh, configuration):
    """The contrast (istio#12349): the caller's own local reply never reaches outlier detection."""
    httpbin_outlier_detection(mesh)
    httpbin_route(mesh)
    inject_abort(
        virtual_service="httpbin",
        namespace="bookinfo",
        http_status=503,
        percentage=100,
        configuration=configuration,
    )
    ejected_before = cluster_stat(
        mesh, HTTPBIN_CLUSTER, "outlier_detection.ejections_enforced_total"
    )
    url, headers = through_sidecar(mesh, "httpbin", "/status/200")
    assert [get(url, headers)[0] for _ in range(10)] == [503] * 10
    ejected = cluster_stat(mesh, HTTPBIN_CLUSTER, "outlier_detection.ejections_enforced_total")
    assert ejected == ejected_before
    remove_faults(configuration=configuration)
