"""The Prometheus client against a stand-in API on a real socket: the PromQL it sends, what it
makes of each answer, and every failure named.

The real Prometheus is in ``tests/local/test_prometheus.py``; here the answers are canned, so
each shape (vector, scalar, matrix, NaN, error bodies, a non-Prometheus server) is shown once.
"""

import json
import math
import re
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from chaosmesh_py.errors import ChaosMeshError, InvalidInput
from chaosmesh_py.observe import prometheus


class StandIn:
    """Answers every GET with ``status`` and ``body`` after ``delay_s``; remembers each path
    and its parameters."""

    def __init__(self):
        self.status, self.body = 200, {"status": "success", "data": {}}
        self.delay_s = 0.0
        self.asked = []
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                url = urlsplit(self.path)
                stand_in.asked.append((url.path, {k: v[0] for k, v in parse_qs(url.query).items()}))
                time.sleep(stand_in.delay_s)
                body = stand_in.body
                payload = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                self.send_response(stand_in.status)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True  # a held answer must not hold the teardown
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def answer(self, result_type, result):
        self.body = {"status": "success", "data": {"resultType": result_type, "result": result}}


@pytest.fixture
def api():
    stand_in = StandIn()
    yield stand_in
    stand_in.server.shutdown()
    stand_in.server.server_close()


# --- the PromQL of Istio's questions ---------------------------------------------------------


def test_the_istio_questions_use_istios_names_and_labels():
    assert prometheus.istio_promql("error_ratio", "ratings", "bookinfo") == (
        '(sum(rate(istio_requests_total{reporter="source",destination_service_name="ratings",'
        'destination_service_namespace="bookinfo",response_code=~"5.."}[1m])) or vector(0))'
        ' / sum(rate(istio_requests_total{reporter="source",destination_service_name="ratings",'
        'destination_service_namespace="bookinfo"}[1m]))'
    )
    assert prometheus.istio_promql(
        "latency_p99_ms", "ratings", "bookinfo", window="30s", reporter="destination"
    ) == (
        "histogram_quantile(0.99, sum by (le) (rate(istio_request_duration_milliseconds_bucket"
        '{reporter="destination",destination_service_name="ratings",'
        'destination_service_namespace="bookinfo"}[30s])))'
    )
    for question in prometheus.ISTIO_QUESTIONS:
        promql = prometheus.istio_promql(question, "ratings", "bookinfo", window="1m30s")
        assert promql.count("[1m30s]") in (1, 2)
        assert promql.count("{") == promql.count("}")


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"question": "p50"}, "question"),
        ({"service": 'ratings"} or vector(1) #'}, "service"),
        ({"service": "Ratings"}, "service"),
        ({"namespace": ""}, "namespace"),
        ({"namespace": "bookinfo\n"}, "namespace"),
        ({"window": "1 minute"}, "window"),
        ({"window": "60"}, "window"),
        ({"reporter": "client"}, "reporter"),
    ],
)
def test_bad_arguments_to_a_question_name_the_field(arguments, field):
    # Names are checked as Kubernetes names: nothing can break out of the PromQL string.
    call = {"question": "error_ratio", "service": "ratings", "namespace": "bookinfo", **arguments}
    with pytest.raises(InvalidInput) as caught:
        prometheus.istio_promql(**call)
    assert caught.value.field == field


# --- answers -----------------------------------------------------------------------------------


def test_a_vector_becomes_labels_and_floats(api):
    api.answer(
        "vector",
        [
            {"metric": {"response_code": "200"}, "value": [1700000000.5, "12.5"]},
            {"metric": {"response_code": "503"}, "value": [1700000000.5, "NaN"]},
        ],
    )
    results = prometheus.query(api.url, "sum by (response_code) (x)", at=1700000000.5)
    assert results[0] == {"metric": {"response_code": "200"}, "value": 12.5}
    assert math.isnan(results[1]["value"])
    assert api.asked == [
        ("/api/v1/query", {"query": "sum by (response_code) (x)", "time": "1700000000.5"})
    ]


def test_a_scalar_is_one_unlabelled_value_and_times_may_be_text_or_datetimes(api):
    api.answer("scalar", [1700000000, "3"])
    assert prometheus.query(api.url + "/", "scalar(x)", at="2023-11-14T22:13:20Z") == [
        {"metric": {}, "value": 3.0}
    ]
    prometheus.query(api.url, "scalar(x)", at=datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC))
    assert [asked[1]["time"] for asked in api.asked] == ["2023-11-14T22:13:20Z", "1700000000.0"]


def test_query_value_wants_exactly_one_series(api):
    api.answer("vector", [])
    assert prometheus.query_value(api.url, "x", default=0.0) == 0.0
    with pytest.raises(InvalidInput, match="matches no series"):
        prometheus.query_value(api.url, "x")
    api.answer("vector", [{"metric": {"a": "1"}, "value": [0, "1"]}] * 2)
    with pytest.raises(InvalidInput, match="2 series, not one"):
        prometheus.query_value(api.url, "x")


def test_a_question_without_traffic_answers_zero(api):
    api.answer("vector", [])  # nothing matched: no series for the service at all
    assert prometheus.error_ratio(api.url, "ratings", "bookinfo") == 0.0
    api.answer("vector", [{"metric": {}, "value": [0, "NaN"]}])  # series, but 0/0
    assert prometheus.error_ratio(api.url, "ratings", "bookinfo") == 0.0
    assert prometheus.latency_p99_ms(api.url, "ratings", "bookinfo") == 0.0
    api.answer("vector", [{"metric": {}, "value": [0, "0.25"]}])
    assert prometheus.error_ratio(api.url, "ratings", "bookinfo", window="5m") == 0.25
    assert prometheus.tcp_connections(api.url, "ratings", "bookinfo") == {
        "opened_per_s": 0.25,
        "closed_per_s": 0.25,
    }
    assert api.asked[-1][1]["query"] == prometheus.istio_promql(
        "tcp_connections_closed_per_s", "ratings", "bookinfo"
    )


def test_a_range_query_spans_the_window_at_the_step(api):
    api.answer(
        "matrix",
        [{"metric": {"job": "mesh"}, "values": [[100, "0"], [101, "0.3"], [102, "+Inf"]]}],
    )
    (series,) = prometheus.query_range(api.url, "x", 100, 102, 1)
    assert series == {
        "metric": {"job": "mesh"},
        "values": [[100.0, 0.0], [101.0, 0.3], [102.0, math.inf]],
    }
    assert api.asked == [
        ("/api/v1/query_range", {"query": "x", "start": "100.0", "end": "102.0", "step": "1.0"})
    ]


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"step_s": 0}, "step_s"),
        ({"step_s": True}, "step_s"),
        ({"start": 200, "end": 100}, "end"),
        ({"start": 0, "end": 86_400, "step_s": 1}, "step_s"),  # 86,401 points: over 11,000
        ({"start": None}, "start"),
        ({"promql": " "}, "promql"),
    ],
)
def test_bad_range_arguments_are_refused_before_asking(api, arguments, field):
    call = {"url": api.url, "promql": "x", "start": 0, "end": 60, "step_s": 1, **arguments}
    with pytest.raises(InvalidInput) as caught:
        prometheus.query_range(**call)
    assert caught.value.field == field
    assert api.asked == []


def test_a_range_vector_from_an_instant_query_is_refused_with_the_fix(api):
    api.answer("matrix", [])
    with pytest.raises(InvalidInput, match=r"range vector.*rate\(\.\.\.\)"):
        prometheus.query(api.url, "x[1m]")


# --- failures ----------------------------------------------------------------------------------


def test_a_promql_error_comes_back_in_prometheus_words(api):
    api.status = 400
    api.body = {"status": "error", "errorType": "bad_data", "error": "1:5: parse error: oops"}
    with pytest.raises(prometheus.QueryFailed) as caught:
        prometheus.query(api.url, "sum(")
    assert caught.value.error_type == "bad_data"
    assert str(caught.value) == (
        "Prometheus refused the query (bad_data): 1:5: parse error: oops -- query: sum("
    )
    assert isinstance(caught.value, ChaosMeshError)


def test_something_else_at_the_url_is_not_taken_for_prometheus(api):
    api.status, api.body = 404, "<html>no such page</html>"
    with pytest.raises(prometheus.PrometheusUnreachable, match=r"HTTP 404, not the Prometheus API"):
        prometheus.query(api.url, "up")
    api.status, api.body = 200, {"hello": "world"}
    with pytest.raises(prometheus.PrometheusUnreachable, match="not the Prometheus API"):
        prometheus.query(api.url, "up")


def test_a_closed_port_and_a_bad_url_are_named(api):
    url = api.url
    api.server.shutdown()
    api.server.server_close()
    with pytest.raises(
        prometheus.PrometheusUnreachable, match=re.escape(f"Prometheus at {url} could not")
    ):
        prometheus.query(url, "up")
    with pytest.raises(InvalidInput, match="not an http"):
        prometheus.query("prometheus:9090", "up")


def test_a_password_written_into_the_url_never_shows_in_an_error(api):
    with_password = api.url.replace("http://", "http://reader:s3cret-pass@")
    api.status, api.body = 404, "<html>no such page</html>"
    with pytest.raises(prometheus.PrometheusUnreachable) as answered:
        prometheus.query(with_password, "up")
    api.server.shutdown()
    api.server.server_close()
    with pytest.raises(prometheus.PrometheusUnreachable) as closed:
        prometheus.query(with_password, "up")
    with pytest.raises(InvalidInput) as malformed:
        prometheus.query("ftp://reader:s3cret-pass@prometheus:9090", "up")
    for error in (answered, closed, malformed):
        assert "s3cret-pass" not in str(error.value)
    assert api.url.rstrip("/") in str(closed.value)


def test_a_slow_prometheus_times_out(api):
    api.delay_s = 0.5
    with pytest.raises(prometheus.PrometheusUnreachable, match=r"did not answer within 0\.2 s"):
        prometheus.query(api.url, "up", timeout_s=0.2)


def test_the_probes_fail_clearly():
    from chaoslib.exceptions import ActivityFailed

    from chaosmesh_py.observe.probes import istio_error_ratio

    with pytest.raises(ActivityFailed, match="PrometheusUnreachable"):
        istio_error_ratio("http://127.0.0.1:9", "ratings", "bookinfo")
    with pytest.raises(ActivityFailed, match="InvalidInput"):
        istio_error_ratio("http://127.0.0.1:9", 'ratings"}', "bookinfo")
