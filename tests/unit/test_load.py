"""The load probe's parts: the histogram, spec validation, slo_met, and the HTTP client itself.

The client is driven against a small scripted HTTP server in a subprocess (its own process, so
that tracemalloc counts only the client's memory), which answers in each of the ways a body can
end: Content-Length, chunked (also trickled a byte at a time), read-to-close, after a 100
Continue, HTTP/1.0, garbage, a dropped connection, or never.
"""

import asyncio
import json
import math
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import tracemalloc

import pytest

from chaosmesh_py.errors import InvalidInput
from chaosmesh_py.observe.load import (
    MAX_REQUESTS,
    LatencyHistogram,
    LoadResult,
    LoadSpec,
    measure_load,
    run_load,
    slo_met,
)

# -- the histogram -----------------------------------------------------------------------------

STATED_ERROR = 1 / 256  # the histogram's promise, from 12.8 µs to 60 s


def exact_percentile(samples, fraction):
    ordered = sorted(samples)
    return ordered[max(1, math.ceil(fraction * len(ordered))) - 1]


def samples_of(kind, count=50_000):
    rng = random.Random(kind)
    if kind == "log-uniform":  # every decade of the range equally
        return [math.exp(rng.uniform(math.log(12.8e-6), math.log(60))) for _ in range(count)]
    if kind == "lognormal":  # a service's latency: ~1 ms with a long tail
        return [min(60.0, rng.lognormvariate(math.log(1e-3), 0.8)) for _ in range(count)]
    # a delay fault on half the requests: 1 ms and 200 ms
    return [rng.gauss(0.2 if rng.random() < 0.5 else 0.001, 1e-4) for _ in range(count)]


@pytest.mark.parametrize("kind", ["log-uniform", "lognormal", "bimodal"])
def test_percentiles_are_within_the_stated_error_of_exact_ones(kind):
    samples = samples_of(kind)
    histogram = LatencyHistogram()
    for sample in samples:
        histogram.record(sample)
    for fraction in (0.0, 0.01, 0.5, 0.9, 0.99, 0.999, 1.0):
        exact = exact_percentile(samples, fraction)
        assert histogram.percentile(fraction) == pytest.approx(exact, rel=STATED_ERROR), fraction
    assert histogram.count == len(samples)
    assert histogram.max_s == max(samples)
    assert histogram.min_s == min(samples)
    assert histogram.mean() == pytest.approx(sum(samples) / len(samples), rel=1e-9)


def test_values_beyond_the_range_keep_an_exact_max():
    histogram = LatencyHistogram()
    for seconds in (0.0, 1e-9, 120.0, 3600.0):
        histogram.record(seconds)
    assert histogram.max_s == 3600.0
    assert histogram.percentile(1.0) == 3600.0
    assert histogram.percentile(0.25) == 0.0  # rank 1: the exact min
    assert histogram.percentile(0.5) == pytest.approx(1e-9, abs=1e-7)


def test_an_empty_histogram_reports_zero_and_bad_fractions_are_refused():
    assert LatencyHistogram().percentile(0.99) == 0.0
    assert LatencyHistogram().mean() == 0.0
    with pytest.raises(ValueError, match="outside"):
        LatencyHistogram().percentile(1.5)


def test_merged_histograms_equal_one_that_saw_everything():
    samples = samples_of("lognormal", 10_000)
    whole, first, second = LatencyHistogram(), LatencyHistogram(), LatencyHistogram()
    for index, sample in enumerate(samples):
        whole.record(sample)
        (first if index % 2 else second).record(sample)
    first.merge(second)
    for fraction in (0.5, 0.9, 0.99):
        assert first.percentile(fraction) == whole.percentile(fraction)
    assert (first.count, first.max_s, first.min_s) == (whole.count, whole.max_s, whole.min_s)


def histogram_peak_bytes(count):
    """Bytes the histogram module holds after ``count`` values. Only its own allocations are
    counted: in a full run, other threads (servers of session fixtures) allocate too."""
    samples = samples_of("log-uniform", 1000)
    tracemalloc.start()
    try:
        histogram = LatencyHistogram()
        for index in range(count):
            histogram.record(samples[index % 1000])
        own = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(True, sys.modules[LatencyHistogram.__module__].__file__)]
        )
        assert histogram.count == count
        return sum(stat.size for stat in own.statistics("filename"))
    finally:
        tracemalloc.stop()


def test_the_histogram_does_not_grow_with_the_number_of_values():
    small, large = histogram_peak_bytes(10_000), histogram_peak_bytes(200_000)
    # 3,072 counters: the list, and boxed counts once they pass Python's small-int cache.
    assert large < 150_000, large
    assert large - small < 50_000, (small, large)


# -- the spec ----------------------------------------------------------------------------------

URL = "http://127.0.0.1:8000/get"


@pytest.mark.parametrize(
    ("field", "arguments"),
    [
        ("url", {"url": "ftp://example.com/"}),
        ("url", {"url": "example.com/get"}),
        ("url", {"url": "http:///get"}),
        ("url", {"url": 42}),
        ("url", {"url": "http://user:secret@example.com/"}),
        ("url", {"url": "http://example.com:99999/"}),
        ("url", {"url": "http://example.com/a b"}),
        ("method", {"method": "FETCH"}),
        ("method", {"method": 1}),
        ("headers", {"headers": ["end-user"]}),
        ("headers", {"headers": {"end user": "jason"}}),
        ("headers", {"headers": {"end-user": "jason\r\nx-evil: 1"}}),
        ("headers", {"headers": {"end-user": 7}}),
        ("headers", {"headers": {"Content-Length": "10"}}),
        ("requests", {"requests": None, "duration_s": None}),
        ("requests", {"requests": 0}),
        ("requests", {"requests": -5}),
        ("requests", {"requests": MAX_REQUESTS + 1}),
        ("requests", {"requests": 10.5}),
        ("requests", {"requests": True}),
        ("requests", {"requests": "100"}),
        ("duration_s", {"duration_s": 0}),
        ("duration_s", {"duration_s": -1.0}),
        ("duration_s", {"duration_s": 3601}),
        ("duration_s", {"duration_s": float("nan")}),
        ("duration_s", {"duration_s": float("inf")}),
        ("duration_s", {"duration_s": "5"}),
        ("rate_per_s", {"rate_per_s": 0}),
        ("rate_per_s", {"rate_per_s": -10.0}),
        ("rate_per_s", {"rate_per_s": 1e9}),
        ("concurrency", {"concurrency": 0}),
        ("concurrency", {"concurrency": 1001}),
        ("concurrency", {"concurrency": 2.0}),
        ("timeout_s", {"timeout_s": 0}),
        ("timeout_s", {"timeout_s": 301}),
        ("timeout_s", {"timeout_s": None}),
        ("error_if_status_at_least", {"error_if_status_at_least": 99}),
        ("error_if_status_at_least", {"error_if_status_at_least": 601}),
        ("error_if_status_at_least", {"error_if_status_at_least": 500.0}),
    ],
)
def test_each_bad_field_is_refused_by_name(field, arguments):
    with pytest.raises(InvalidInput) as caught:
        LoadSpec(**{"url": URL, "requests": 10, **arguments})
    assert caught.value.field == field, caught.value


def test_a_valid_spec_is_normalised_and_owns_its_headers():
    headers = {"end-user": "jason"}
    spec = LoadSpec(URL, method="post", headers=headers, duration_s=1, requests=5)
    headers["end-user"] = "mary"
    assert spec.method == "POST"
    assert spec.headers == {"end-user": "jason"}
    assert LoadSpec(URL, duration_s=0.5).requests is None


# -- slo_met and the Chaos Toolkit shape -------------------------------------------------------


def result(requests=1000, errors=10, p50=1.0, p90=5.0, p99=20.0):
    return LoadResult(
        requests=requests,
        errors=errors,
        error_ratio=errors / requests if requests else 0.0,
        statuses={"200": requests - errors, "503": errors},
        latency_ms={"p50": p50, "p90": p90, "p99": p99, "max": 30.0, "mean": 2.0},
        duration_s=1.0,
        throughput_per_s=float(requests),
    )


def test_slo_met_checks_every_threshold_given_inclusively():
    measured = result()
    assert slo_met(measured)
    assert slo_met(measured, max_error_ratio=0.01, max_p50_ms=1, max_p90_ms=5, max_p99_ms=20)
    assert not slo_met(measured, max_error_ratio=0.009)
    assert not slo_met(measured, max_p50_ms=0.9)
    assert not slo_met(measured, max_p90_ms=4.9)
    assert not slo_met(measured, max_p99_ms=19.9)
    assert not slo_met(result(requests=0, errors=0))  # nothing measured proves nothing


def test_the_json_shape_is_what_chaos_toolkit_tolerances_check():
    from chaoslib.hypothesis import within_tolerance

    shape = result().to_json()
    assert json.loads(json.dumps(shape)) == shape
    assert set(shape) == {
        "requests",
        "errors",
        "error_ratio",
        "statuses",
        "latency_ms",
        "duration_s",
        "throughput_per_s",
    }
    assert set(shape["latency_ms"]) == {"p50", "p90", "p99", "max", "mean"}
    assert within_tolerance({"type": "range", "range": [0, 0.01], "target": "error_ratio"}, shape)
    assert not within_tolerance(
        {"type": "range", "range": [0, 0.005], "target": "error_ratio"}, shape
    )


# -- the client, against a scripted server ------------------------------------------------------

SERVER = r"""
import asyncio, sys

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
CHUNKED = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n")
BIG = b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n" + b"x" * 1_000_000
BIG_CHUNKED = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
               + (b"186a0\r\n" + b"y" * 100_000 + b"\r\n") * 3 + b"0\r\n\r\n")
FIXED = {
    "/ok": OK,
    "/chunked": CHUNKED,
    "/big": BIG,
    "/bigchunked": BIG_CHUNKED,
    "/continue": (b"HTTP/1.1 100 Continue\r\n\r\n"
                  b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"),
    "/garbage": b"SSH-2.0-OpenSSH_9.2\r\n\r\n",
}

class Http(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport, self.buffer = transport, b""

    def data_received(self, data):
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
            method, path = head.split(b" ", 2)[:2]
            self.answer(method.decode(), path.decode().split("?")[0], head)

    def answer(self, method, path, head):
        write = self.transport.write
        if path in FIXED:
            write(FIXED[path])
        elif method == "HEAD":
            write(b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n")
        elif path.startswith("/status/"):
            write(b"HTTP/1.1 %s X\r\nContent-Length: 0\r\n\r\n" % path[8:].encode())
        elif path == "/jason-only":
            self.allow(b"\r\nend-user: jason" in head and b"\r\nHost: 127.0.0.1:" in head)
        elif path == "/host-is-httpbin":
            self.allow(head.lower().count(b"\r\nhost:") == 1 and b"\r\nhost: httpbin:8000" in head)
        elif path == "/close":
            write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nthe body ends with the connection")
            self.transport.close()
        elif path == "/http10":
            write(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
            self.transport.close()
        elif path == "/split":
            asyncio.ensure_future(self.trickle(CHUNKED))
        elif path == "/drop":
            self.transport.abort()
        elif path.startswith("/delay/"):
            asyncio.get_running_loop().call_later(int(path[7:]) / 1000, write, OK)
        elif path != "/hang":
            write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")

    def allow(self, allowed):
        self.transport.write(OK if allowed else b"HTTP/1.1 403 No\r\nContent-Length: 0\r\n\r\n")

    async def trickle(self, answer):
        for index in range(len(answer)):
            self.transport.write(answer[index : index + 1])
            await asyncio.sleep(0.0005)

async def main():
    server = await asyncio.get_running_loop().create_server(Http, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()

try:
    import uvloop
    runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
except ImportError:
    runner = asyncio.Runner()
runner.run(main())
"""


@pytest.fixture(scope="module")
def server():
    process = subprocess.Popen(
        [sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True, env=dict(os.environ)
    )
    try:
        port = int(process.stdout.readline())
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)
        process.stdout.close()


def load(url, **arguments):
    return run_load(LoadSpec(url, **{"requests": 20, "concurrency": 3, **arguments}))


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/ok", "200"),
        ("/chunked", "200"),
        ("/split", "200"),
        ("/big", "200"),
        ("/bigchunked", "200"),
        ("/close", "200"),
        ("/http10", "200"),
        ("/continue", "201"),
        ("/status/404", "404"),
    ],
)
def test_every_way_a_body_can_end_is_read_as_one_answer(server, path, status):
    measured = load(server + path)
    assert measured.statuses == {status: 20}
    assert (measured.requests, measured.errors, measured.error_ratio) == (20, 0, 0.0)


def test_a_head_request_expects_no_body_whatever_content_length_says(server):
    assert load(server + "/anything", method="HEAD").statuses == {"200": 20}


@pytest.mark.parametrize("path", ["/garbage", "/drop"])
def test_broken_answers_are_connection_errors(server, path):
    measured = load(server + path)
    assert measured.statuses == {"error": 20}
    assert measured.error_ratio == 1.0


def test_5xx_are_errors_and_4xx_are_not_unless_asked(server):
    assert load(server + "/status/503").error_ratio == 1.0
    assert load(server + "/status/404").error_ratio == 0.0
    assert load(server + "/status/404", error_if_status_at_least=400).error_ratio == 1.0


def test_a_refused_connection_is_an_error_and_the_run_still_ends():
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    measured = load(f"http://127.0.0.1:{port}/", requests=50)
    assert measured.statuses == {"error": 50}


def test_a_request_past_its_timeout_is_an_error_timed_at_the_timeout(server):
    started = time.monotonic()
    measured = load(server + "/hang", requests=6, concurrency=3, timeout_s=0.1)
    assert time.monotonic() - started < 0.6
    assert measured.statuses == {"error": 6}
    assert 100 <= measured.latency_ms["p50"] <= 150, measured.latency_ms


def test_the_headers_given_reach_the_target_and_a_host_header_replaces_the_urls(server):
    assert load(server + "/jason-only").statuses == {"403": 20}
    assert load(server + "/jason-only", headers={"end-user": "jason"}).statuses == {"200": 20}
    assert load(server + "/host-is-httpbin").statuses == {"403": 20}
    assert load(server + "/host-is-httpbin", headers={"host": "httpbin:8000"}).statuses == {
        "200": 20
    }


def test_requests_stop_at_the_count_given(server):
    measured = run_load(LoadSpec(server + "/ok", requests=1234, concurrency=7))
    assert measured.requests == 1234
    assert measured.statuses == {"200": 1234}


def test_a_duration_bounds_the_run(server):
    started = time.monotonic()
    measured = run_load(LoadSpec(server + "/ok", duration_s=0.5, concurrency=4))
    elapsed = time.monotonic() - started
    assert 0.5 <= elapsed < 0.7, elapsed
    assert 0.49 <= measured.duration_s <= 0.55, measured.duration_s
    assert measured.requests > 100


def test_a_fixed_rate_is_kept(server):
    measured = run_load(LoadSpec(server + "/ok", duration_s=1.0, rate_per_s=500))
    assert abs(measured.requests - 500) <= 1, measured.requests
    assert measured.throughput_per_s == pytest.approx(500, rel=0.03)


def test_an_open_loop_counts_the_wait_of_requests_held_back_by_a_slow_target(server):
    # 100/s due, one connection, 50 ms answers: requests fall behind their schedule, and
    # their latency counts from when they were due. Timed from when each was sent, every one
    # would look like 50 ms (coordinated omission).
    measured = run_load(
        LoadSpec(server + "/delay/50", duration_s=1.0, rate_per_s=100, concurrency=1)
    )
    assert 15 <= measured.requests <= 21, measured.requests
    assert measured.latency_ms["p50"] > 300, measured.latency_ms
    assert measured.latency_ms["max"] > 700, measured.latency_ms
    assert measured.throughput_per_s < 25


def test_inside_a_running_event_loop_the_load_runs_in_a_thread_of_its_own(server):
    async def caller():
        loop_thread = threading.get_ident()
        ticks = []
        ticker = asyncio.get_running_loop().call_later(0, lambda: ticks.append(1))
        measured = run_load(LoadSpec(server + "/ok", requests=200))
        ticker.cancel()
        return measured, loop_thread, await measure_load(LoadSpec(server + "/ok", requests=50))

    synchronous, _, awaited = asyncio.run(caller())
    assert synchronous.statuses == {"200": 200}
    assert awaited.statuses == {"200": 50}


def interrupt_after(seconds):
    timer = threading.Timer(seconds, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    return timer


def test_ctrl_c_stops_a_run_at_once(server):
    spec = LoadSpec(server + "/ok", duration_s=30, rate_per_s=200)
    started = time.monotonic()
    timer = interrupt_after(0.3)
    with pytest.raises(KeyboardInterrupt):
        run_load(spec)
    timer.join()
    assert time.monotonic() - started < 1.5


def test_ctrl_c_stops_a_run_started_from_inside_an_event_loop(server):
    async def caller():
        return run_load(LoadSpec(server + "/ok", duration_s=30, rate_per_s=200))

    started = time.monotonic()
    timer = interrupt_after(0.3)
    with pytest.raises(KeyboardInterrupt):
        asyncio.run(caller())
    timer.join()
    assert time.monotonic() - started < 1.5


def peak_bytes_of_a_run(url, requests):
    run_load(LoadSpec(url, requests=10))  # imports and caches, once, out of the measure
    tracemalloc.start()
    try:
        measured = run_load(LoadSpec(url, requests=requests, concurrency=10))
        return measured, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_does_not_grow_with_the_number_of_requests(server):
    small, small_peak = peak_bytes_of_a_run(server + "/ok", 10_000)
    large, large_peak = peak_bytes_of_a_run(server + "/ok", 100_000)
    assert (small.requests, large.requests) == (10_000, 100_000)
    # ~320 kB either way, most of it the event loop's 256 KiB receive buffer; a result kept per
    # request would add megabytes between the two (90,000 more requests: 10 bytes each is
    # 900 kB). The margin allows the loop's own buffers growing on a busy machine (66 kB seen).
    assert large_peak < 1_000_000, large_peak
    assert large_peak < small_peak + 200_000, (small_peak, large_peak)
