"""Istio's standard metrics from the local mesh: exact counts, Istio's labels, bounded series.

Read straight from the telemetry endpoint (``mesh.info()["metrics_url"]``), without Prometheus:
what it serves must match, request for request, what a client saw.
"""

import socketserver
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler

import pytest
import requests

from chaosmesh_py.engine.envoy_admin import EnvoyAdmin
from chaosmesh_py.faults.actions import inject_abort
from chaosmesh_py.faults.rollbacks import remove_faults
from chaosmesh_py.localmesh.telemetry import Telemetry
from chaosmesh_py.localmesh.topology import free_ports
from chaosmesh_py.observe.exposition import parse_text
from tests.local.conftest import httpbin_route, through_sidecar, workload_of
from tests.local.load import burst

# The caller's view: the same requests that reached a workload are also reported with
# reporter="destination" (test_destination_reporter.py).
SOURCE = {"reporter": "source"}
HTTPBIN = {**SOURCE, "destination_service_name": "httpbin", "source_workload": "sleep"}


def scrape(mesh):
    """Every served series: (name, frozenset of label pairs) -> value."""
    text = requests.get(mesh.info()["metrics_url"], timeout=5).text
    return {(s.name, frozenset(s.labels)): s.value for s in parse_text(text)}


def increase(before, after, name, by, **match):
    """How much series ``name`` matching ``match`` grew, summed per the labels in ``by``."""
    grown = Counter()
    for (series, labels), value in after.items():
        found = dict(labels)
        if series == name and all(found.get(k) == v for k, v in match.items()):
            grown[tuple(found[label] for label in by)] += value - before.get((series, labels), 0)
    return +grown  # drop the series that did not grow


def test_every_request_is_counted_once_under_its_outcome_and_the_series_stay_bounded(
    mesh, configuration
):
    httpbin_route(mesh)
    inject_abort(
        virtual_service="httpbin",
        namespace="bookinfo",
        http_status=503,
        percentage=30,
        configuration=configuration,
    )
    url, headers = through_sidecar(mesh, "httpbin", "/get")
    try:
        before = scrape(mesh)
        first = burst(url, 1000, concurrency=50, headers=headers)
        middle = scrape(mesh)
        second = burst(url, 1000, concurrency=50, headers=headers)
        after = scrape(mesh)
    finally:
        remove_faults(virtual_service="httpbin", namespace="bookinfo", configuration=configuration)

    # Per outcome, exactly what the client saw: served by which instance, or aborted (FI) by the
    # caller's sidecar before reaching any workload.
    seen = Counter(
        (workload_of(r.instance), "200", "-")
        if r.status == 200
        else ("unknown", str(r.status), "FI")
        for r in first + second
    )
    by = ("destination_workload", "response_code", "response_flags")
    assert increase(before, after, "istio_requests_total", by, **HTTPBIN) == seen
    assert 0.25 < seen["unknown", "503", "FI"] / 2000 < 0.35

    # A few thousand requests a second, and the second thousand added no series: memory is
    # bounded by the topology, not by the traffic.
    def requests_series(scraped):
        return [key for key in scraped if key[0] == "istio_requests_total"]

    assert len(requests_series(middle)) == len(requests_series(after))

    aborted = next(
        dict(labels)
        for (name, labels), _ in after.items()
        if name == "istio_requests_total"
        and {("source_workload", "sleep"), ("destination_service_name", "httpbin")} <= labels
        and {("response_code", "503"), ("response_flags", "FI")} <= labels
    )
    assert aborted == {
        "reporter": "source",
        "source_workload": "sleep",
        "source_workload_namespace": "bookinfo",
        "source_principal": "unknown",
        "source_app": "sleep",
        "source_version": "unknown",
        "source_canonical_service": "sleep",
        "source_canonical_revision": "latest",
        "source_cluster": "Kubernetes",
        "destination_workload": "unknown",
        "destination_workload_namespace": "unknown",
        "destination_principal": "unknown",
        "destination_app": "unknown",
        "destination_version": "unknown",
        "destination_service": "httpbin.bookinfo.svc.cluster.local",
        "destination_service_name": "httpbin",
        "destination_service_namespace": "bookinfo",
        "destination_canonical_service": "unknown",
        "destination_canonical_revision": "unknown",
        "destination_cluster": "unknown",
        "request_protocol": "http",
        "response_code": "503",
        "response_flags": "FI",
        "connection_security_policy": "unknown",
    }

    # The duration histogram counts the same requests, once Envoy's stats flush (every 5 s)
    # has published them: per response code, its count equals the counter, in total.
    def totals(scraped, name):
        return increase({}, scraped, name, ("response_code",), **HTTPBIN)

    deadline = time.monotonic() + 8
    while totals(later := scrape(mesh), "istio_request_duration_milliseconds_count") != totals(
        later, "istio_requests_total"
    ):
        assert time.monotonic() < deadline, "the duration histogram never caught up"
        time.sleep(0.2)
    buckets = totals(later, "istio_request_duration_milliseconds_count")
    infinity = increase(
        {},
        later,
        "istio_request_duration_milliseconds_bucket",
        ("response_code",),
        le="+Inf",
        **HTTPBIN,
    )
    assert infinity == buckets


def test_the_ingress_and_bookinfo_calls_report_their_own_workloads(mesh):
    before = scrape(mesh)
    page = requests.get(mesh.info()["ingress_url"] + "/productpage", timeout=10)
    assert page.status_code == 200
    lost = requests.get(
        mesh.info()["workloads"]["sleep"]["sidecar_url"] + "/", headers={"Host": "nowhere"}
    )
    assert lost.status_code == 404
    after = scrape(mesh)

    by = ("source_workload", "source_workload_namespace", "destination_workload", "response_code")
    counted = increase(before, after, "istio_requests_total", by, **SOURCE)
    # Only the callers this test made call (a slow call of an earlier test may still land).
    ours = ("istio-ingressgateway", "productpage-v1", "sleep")
    assert {key: n for key, n in counted.items() if key[0] in ours} == {
        ("istio-ingressgateway", "istio-system", "productpage-v1", "200"): 1,
        ("productpage-v1", "bookinfo", "details-v1", "200"): 1,
        ("productpage-v1", "bookinfo", "reviews-v1", "200"): 1,
        ("sleep", "bookinfo", "unknown", "404"): 1,
    }
    by = ("source_app", "destination_app", "destination_version", "destination_service")
    assert increase(
        before, after, "istio_requests_total", by, source_workload="productpage-v1", **SOURCE
    ) == {
        ("productpage", "details", "v1", "details.bookinfo.svc.cluster.local"): 1,
        ("productpage", "reviews", "v1", "reviews.bookinfo.svc.cluster.local"): 1,
    }
    # No route for that Host: Envoy answers NR before any service is chosen.
    assert increase(
        before,
        after,
        "istio_requests_total",
        ("destination_service", "response_flags"),
        source_workload="sleep",
        **SOURCE,
    ) == {("unknown", "NR"): 1}


def test_tcp_metrics_count_each_connection_to_the_destination_and_its_bytes(mesh):
    mesh.api.create(
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "DestinationRule",
            "metadata": {"name": "httpbin", "namespace": "bookinfo"},
            # A connection per request: the count of connections is then exact.
            "spec": {
                "host": "httpbin",
                "trafficPolicy": {"connectionPool": {"http": {"maxRequestsPerConnection": 1}}},
            },
        }
    )
    mesh.sync()
    url, headers = through_sidecar(mesh, "httpbin", "/get")
    before = scrape(mesh)
    with requests.Session() as session:
        answers = [session.get(url, headers=headers, timeout=5) for _ in range(40)]
    assert {a.status_code for a in answers} == {200}
    deadline = time.monotonic() + 2
    while True:  # Envoy closes each upstream connection just after its response
        after = scrape(mesh)
        closed = increase(
            before,
            after,
            "istio_tcp_connections_closed_total",
            (),
            destination_service_name="httpbin",
        )
        if closed[()] == 40 or time.monotonic() > deadline:
            break
        time.sleep(0.05)

    def grew(name):
        return increase(before, after, name, (), destination_service_name="httpbin")[()]

    assert grew("istio_tcp_connections_opened_total") == 40
    assert grew("istio_tcp_connections_closed_total") == 40
    # Received: the requests sent on to httpbin; sent: its answers, headers and bodies.
    assert grew("istio_tcp_received_bytes_total") >= 40 * len("GET /get HTTP/1.1\r\n")
    assert grew("istio_tcp_sent_bytes_total") >= sum(len(a.content) for a in answers)
    labels = next(
        dict(labels)
        for (name, labels) in after
        if name == "istio_tcp_sent_bytes_total"
        and ("destination_service_name", "httpbin") in labels
    )
    assert labels["request_protocol"] == "tcp"
    assert labels["source_workload"] == "unknown"  # one connection pool for every caller
    assert labels["destination_service"] == "httpbin.bookinfo.svc.cluster.local"


class FakeEnvoy:
    """What Telemetry reads of Envoy, from canned text: ``admin`` and ``stats()``."""

    def __init__(self, directory):
        self.text = ""
        self.clusters = {}
        envoy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                body = envoy.text.encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
            daemon_threads = True

        self.server = Server(str(directory / "admin.sock"), Handler)
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        self.admin = EnvoyAdmin(directory / "admin.sock")

    def stats(self, filter_regex):
        return dict(self.clusters)


@pytest.fixture
def fake_envoy(tmp_path):
    envoy = FakeEnvoy(tmp_path)
    yield envoy
    envoy.server.shutdown()
    envoy.server.server_close()


@pytest.fixture
def fake_telemetry(local_mesh, fake_envoy):
    telemetry = Telemetry(local_mesh.topology, fake_envoy, next(free_ports())).start()
    yield telemetry
    telemetry.stop()


def served(telemetry):
    answer = requests.get(telemetry.url, timeout=5)
    assert answer.status_code == 200, answer.text
    return {s.name: s.value for s in parse_text(answer.text)}


def test_a_counter_envoy_resets_or_drops_never_goes_back(fake_envoy, fake_telemetry):
    request = (
        'envoy_istio_requests_total{source_workload="sleep",source_workload_namespace="bookinfo",'
        'upstream_cluster="outbound|8000||httpbin.bookinfo.svc.cluster.local",'
        'upstream_host="-",response_code="503",response_flags="FI"}'
    )
    cluster = "cluster.outbound|8000||httpbin.bookinfo.svc.cluster.local.upstream_cx_total"
    readings = []
    # Counting, reset (POST /reset_counters), counting again, then gone (a removed cluster).
    for requests_total, connections in ((10, 4), (3, 1), (5, 2), (None, None)):
        fake_envoy.text = "" if requests_total is None else f"{request} {requests_total}\n"
        fake_envoy.clusters = {} if connections is None else {cluster: connections}
        readings.append(served(fake_telemetry))
    # Prometheus would read a fall as a restart and count everything again: the series holds
    # what it had counted, and what comes after counts on top.
    assert [r["istio_requests_total"] for r in readings] == [10, 13, 15, 15]
    assert [r["istio_tcp_connections_opened_total"] for r in readings] == [4, 5, 6, 6]


def test_the_endpoint_says_when_envoy_cannot_be_read(fake_envoy, fake_telemetry, tmp_path):
    fake_envoy.admin = EnvoyAdmin(tmp_path / "nothing-listens-here.sock")
    answer = requests.get(fake_telemetry.url, timeout=5)
    assert answer.status_code == 503
    assert "could not read Envoy's stats" in answer.text
