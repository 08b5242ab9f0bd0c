"""reporter="destination" on the local mesh: what the destination's sidecar would count.

A destination counts exactly the requests that reached its workload, under the workload's own
labels and the answer it gave: nothing the caller's proxy answered itself (an injected abort,
no route), and no time the caller's proxy added (an injected delay). Read straight from the
telemetry endpoint, request for request against what the client saw.
"""

import time
from collections import Counter

from chaosmesh_py.faults.actions import inject_abort, inject_delay
from chaosmesh_py.faults.rollbacks import remove_faults
from tests.local.conftest import httpbin_route, through_sidecar, workload_of
from tests.local.load import burst
from tests.local.test_telemetry import increase, scrape

FROM_SLEEP = {"destination_service_name": "httpbin", "source_workload": "sleep"}
SOURCE, DESTINATION = {"reporter": "source"}, {"reporter": "destination"}
DURATION = "istio_request_duration_milliseconds"


def settled(mesh):
    """A scrape once the histograms hold every request counted so far (an earlier test's
    requests reach them at Envoy's next stats flush, every 5 s)."""
    deadline = time.monotonic() + 12
    while True:
        scraped = scrape(mesh)
        counted = [
            sum(increase({}, scraped, name, (), **FROM_SLEEP, reporter=reporter).values())
            for reporter in ("source", "destination")
            for name in ("istio_requests_total", DURATION + "_count")
        ]
        if counted[0] == counted[1] and counted[2] == counted[3]:
            return scraped
        assert time.monotonic() < deadline, f"the histograms never caught up: {counted}"
        time.sleep(0.2)


def test_the_destination_counts_only_requests_that_reached_a_workload(mesh, configuration):
    httpbin_route(mesh)
    inject_abort(
        virtual_service="httpbin",
        namespace="bookinfo",
        http_status=503,
        percentage=40,
        configuration=configuration,
    )
    url, headers = through_sidecar(mesh, "httpbin", "/get")
    lost_url = mesh.info()["workloads"]["sleep"]["sidecar_url"] + "/"
    try:
        before = scrape(mesh)
        answers = burst(url, 600, concurrency=30, headers=headers)
        # No route for that Host: answered by the caller's proxy (NR), reaches no one.
        lost = burst(lost_url, 5, headers={"Host": "nowhere"})
        after = scrape(mesh)
    finally:
        remove_faults(virtual_service="httpbin", namespace="bookinfo", configuration=configuration)
    assert {a.status for a in lost} == {404}

    served = Counter((workload_of(a.instance), "200", "-") for a in answers if a.status == 200)
    aborted = sum(a.status == 503 for a in answers)
    assert 0.3 < aborted / len(answers) < 0.5
    by = ("destination_workload", "response_code", "response_flags")
    # The caller saw both; the destination only what its workload answered.
    assert increase(before, after, "istio_requests_total", by, **FROM_SLEEP, **SOURCE) == {
        **served,
        ("unknown", "503", "FI"): aborted,
    }
    assert increase(before, after, "istio_requests_total", by, **FROM_SLEEP, **DESTINATION) == (
        served
    )
    assert not increase(
        before,
        after,
        "istio_requests_total",
        (),
        source_workload="sleep",
        destination_service="unknown",
        **DESTINATION,
    )

    labels = next(
        dict(labels)
        for (name, labels), _ in after.items()
        if name == "istio_requests_total"
        and {("reporter", "destination"), ("destination_workload", "httpbin-v1")} <= labels
        and ("source_workload", "sleep") in labels
        and ("response_code", "200") in labels  # not one a busy machine's client gave up on
    )
    assert labels == {
        "reporter": "destination",
        "source_workload": "sleep",
        "source_workload_namespace": "bookinfo",
        "source_principal": "spiffe://cluster.local/ns/bookinfo/sa/sleep",
        "source_app": "sleep",
        "source_version": "unknown",
        "source_canonical_service": "sleep",
        "source_canonical_revision": "latest",
        "source_cluster": "Kubernetes",
        "destination_workload": "httpbin-v1",
        "destination_workload_namespace": "bookinfo",
        "destination_principal": "spiffe://cluster.local/ns/bookinfo/sa/httpbin",
        "destination_app": "httpbin",
        "destination_version": "v1",
        "destination_service": "httpbin.bookinfo.svc.cluster.local",
        "destination_service_name": "httpbin",
        "destination_service_namespace": "bookinfo",
        "destination_canonical_service": "httpbin",
        "destination_canonical_revision": "v1",
        "destination_cluster": "Kubernetes",
        "request_protocol": "http",
        "response_code": "200",
        "response_flags": "-",
        "connection_security_policy": "mutual_tls",
    }


def test_a_delay_injected_by_the_caller_is_not_in_the_destinations_duration(mesh, configuration):
    httpbin_route(mesh)
    inject_delay(
        virtual_service="httpbin",
        namespace="bookinfo",
        fixed_delay="300ms",
        percentage=100,
        configuration=configuration,
    )
    url, headers = through_sidecar(mesh, "httpbin", "/get")
    try:
        before = settled(mesh)
        answers = burst(url, 60, concurrency=30, headers=headers)
    finally:
        remove_faults(virtual_service="httpbin", namespace="bookinfo", configuration=configuration)
    assert {a.status for a in answers} == {200}
    # Envoy's timer may fire a millisecond before the client's clock says 300 ms.
    assert min(a.latency_s for a in answers) >= 0.29

    def histogram(reporter, **match):
        return increase(
            before,
            scrape(mesh),
            DURATION + "_bucket",
            ("le",),
            **FROM_SLEEP,
            reporter=reporter,
            **match,
        )

    # Histograms reach Envoy's stats at its flush, every 5 s.
    deadline = time.monotonic() + 12
    while histogram("destination").get(("+Inf",)) != 60:
        assert time.monotonic() < deadline, f"never flushed: {histogram('destination')}"
        time.sleep(0.2)
    source, destination = histogram("source"), histogram("destination")
    # The caller waited >= 300 ms for every request (bucket 250 holds none); httpbin answered
    # each in well under 250 ms (most in a few ms; a loaded machine is slow, not 300 ms slow).
    assert source.get(("250",), 0) == 0 and source[("500",)] == 60
    assert destination[("250",)] == 60
    # The destination counts the same requests once, with no trace of the caller's delay flag.
    assert increase(
        before,
        scrape(mesh),
        "istio_requests_total",
        ("response_flags",),
        **FROM_SLEEP,
        **DESTINATION,
    ) == {("-",): 60}


def test_a_caller_that_gives_up_is_seen_by_the_destination_as_a_reset_not_an_error(mesh):
    # The caller's route times out after 200 ms; httpbin answers after 1 s. The caller reports
    # 504 UT; the destination's sidecar saw its downstream go away before any answer: 0 DC, as
    # Istio reports it (and as a 5xx filter, such as Flagger's success rate, never counts).
    httpbin_route(mesh, timeout="0.2s")
    url, headers = through_sidecar(mesh, "httpbin", "/delay/1")
    before = scrape(mesh)
    answers = burst(url, 5, concurrency=5, headers=headers)
    after = scrape(mesh)
    assert {a.status for a in answers} == {504}
    by = ("destination_workload", "response_code", "response_flags")
    source = increase(before, after, "istio_requests_total", by, **FROM_SLEEP, **SOURCE)
    destination = increase(before, after, "istio_requests_total", by, **FROM_SLEEP, **DESTINATION)
    assert sum(source.values()) == sum(destination.values()) == 5
    assert {key[1:] for key in source} == {("504", "UT")}
    assert {key[1:] for key in destination} == {("0", "DC")}
