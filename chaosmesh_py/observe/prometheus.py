"""Prometheus as a steady-state probe: PromQL queries and ready-made Istio questions.

Results are plain and tolerance-friendly: floats, lists and dicts with string labels, so a Chaos
Toolkit tolerance (a range, an exact value) compares them directly. Two layers:

``query`` / ``query_value`` / ``query_range``
    Any PromQL, instant (now, or ``at``) or over a window such as the experiment's.

``request_rate`` / ``error_ratio`` / ``latency_p99_ms`` / ``tcp_bytes`` / ``tcp_connections``
    Questions about one destination service, from Istio's standard metrics
    (``istio_requests_total``, ``istio_request_duration_milliseconds``, ``istio_tcp_*``). Their
    PromQL comes from ``istio_promql``, the one place it is written, with Istio's own metric
    and label names: the same queries run against a cluster's Prometheus and against the local
    mesh's (``chaosmesh_py.localmesh.telemetry`` serves the same names). ``reporter`` picks whose
    view: ``source`` (the calling side's proxy, which sees injected faults: Istio applies them
    there) or ``destination`` (the server side's, which never sees an injected abort; the
    local mesh has none). A window should span at least four scrape intervals. ``rate`` starts
    a series at its first sample, so the very first 503s of a fault (a new series) only count
    from the scrape after: the ratio shows a fault one scrape late.

Errors, under the project's root (``chaosmesh_py.errors``)::

    ChaosMeshError
    ├── InvalidInput            a bad argument (URL, name, window, step...), before any request
    └── PrometheusError         Prometheus could not answer
        ├── PrometheusUnreachable   no connection, a timeout, or no Prometheus API at the URL
        └── QueryFailed             Prometheus refused or failed the PromQL; its own words
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Any

import requests

from chaosmesh_py.errors import ChaosMeshError, InvalidInput, shorten

__all__ = [
    "ISTIO_QUESTIONS",
    "PrometheusError",
    "PrometheusUnreachable",
    "QueryFailed",
    "error_ratio",
    "istio_promql",
    "latency_p99_ms",
    "query",
    "query_range",
    "query_value",
    "request_rate",
    "tcp_bytes",
    "tcp_connections",
]

DEFAULT_TIMEOUT_S = 10.0
# Prometheus refuses a range query of more than 11,000 points per series.
MAX_POINTS = 11_000
REPORTERS = ("source", "destination")
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_DURATION = re.compile(r"(\d+(ms|s|m|h|d|w|y))+")

Timestamp = float | str | datetime


class PrometheusError(ChaosMeshError):
    """Prometheus could not answer the query."""


class PrometheusUnreachable(PrometheusError):
    """No connection, a timeout, or something other than a Prometheus API at the URL."""


class QueryFailed(PrometheusError):
    """Prometheus answered with an error: ``error_type`` (bad_data, execution, timeout...)."""

    def __init__(self, message: str, error_type: str) -> None:
        self.error_type = error_type
        super().__init__(message)


# --- any PromQL ------------------------------------------------------------------------------


def query(
    url: str, promql: str, at: Timestamp | None = None, timeout_s: float = DEFAULT_TIMEOUT_S
) -> list[dict[str, Any]]:
    """Evaluate ``promql`` now, or at ``at`` (Unix seconds, RFC 3339 text or a datetime).

    Returns one ``{"metric": {label: value}, "value": float}`` per series (an empty list when
    nothing matches); a scalar result is one entry with no labels. PromQL's NaN and ±Inf come
    back as float NaN and ±inf.
    """
    parameters = {"query": _promql(promql)}
    if at is not None:
        parameters["time"] = _timestamp(at, "at")
    data = _get(url, "/api/v1/query", parameters, timeout_s)
    kind, result = data.get("resultType"), data.get("result") or []
    if kind == "vector":
        return [
            {"metric": dict(item["metric"]), "value": float(item["value"][1])} for item in result
        ]
    if kind == "scalar":
        return [{"metric": {}, "value": float(result[1])}]
    if kind == "matrix":
        raise InvalidInput(
            "promql",
            f"{promql!r} gives a range vector, not one value per series",
            "wrap it in a function such as rate(...) or last_over_time(...), or use query_range",
        )
    raise InvalidInput("promql", f"{promql!r} gives a {kind}, not numbers")


def query_value(
    url: str,
    promql: str,
    at: Timestamp | None = None,
    default: float | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> float:
    """The one number ``promql`` gives: its only series, or ``default`` when there is none.

    More than one series is an error (aggregate with ``sum(...)``); no series and no default
    too, since silence from a probe would otherwise read as a value.
    """
    results = query(url, promql, at, timeout_s)
    if not results:
        if default is None:
            raise InvalidInput(
                "promql", f"{promql!r} matches no series", "check its labels, or pass a default"
            )
        return float(default)
    if len(results) > 1:
        raise InvalidInput(
            "promql",
            f"{promql!r} gives {len(results)} series, not one",
            "aggregate it, e.g. sum(...) or sum by (label) (...) with query()",
        )
    return float(results[0]["value"])


def query_range(
    url: str,
    promql: str,
    start: Timestamp,
    end: Timestamp,
    step_s: float,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> list[dict[str, Any]]:
    """Evaluate ``promql`` every ``step_s`` seconds from ``start`` to ``end`` (both included).

    For an experiment's window: its start and end as Unix seconds, RFC 3339 text or datetimes.
    Returns one ``{"metric": {...}, "values": [[unix_s, float], ...]}`` per series.
    """
    if isinstance(step_s, bool) or not isinstance(step_s, int | float) or not step_s > 0:
        raise InvalidInput("step_s", f"must be a number of seconds > 0, not {step_s!r}")
    parameters = {
        "query": _promql(promql),
        "start": _timestamp(start, "start"),
        "end": _timestamp(end, "end"),
        "step": repr(float(step_s)),
    }
    if not isinstance(start, str) and not isinstance(end, str):
        span_s = _seconds(end) - _seconds(start)
        if span_s < 0:
            raise InvalidInput("end", "is before start")
        if span_s / step_s > MAX_POINTS:
            raise InvalidInput(
                "step_s",
                f"{step_s} s over {span_s:.0f} s gives more than {MAX_POINTS} points",
                f"use step_s >= {math.ceil(span_s / MAX_POINTS)}",
            )
    data = _get(url, "/api/v1/query_range", parameters, timeout_s)
    return [
        {
            "metric": dict(item["metric"]),
            "values": [[float(t), float(value)] for t, value in item["values"]],
        }
        for item in data.get("result") or []
    ]


# --- Istio questions -------------------------------------------------------------------------

# The PromQL behind each question, over Istio's standard metrics, for one destination service.
# {selector} is the label matchers (reporter, destination_service_name and _namespace) and
# {window} the range, e.g. [1m]: see istio_promql.
ISTIO_QUESTIONS = {
    # Requests per second.
    "request_rate": "sum(rate(istio_requests_total{{{selector}}}[{window}]))",
    # 5xx answers / all answers. `or vector(0)`: no 5xx series at all means 0 errors, not an
    # empty result (parenthesised: `or` binds last); without traffic the ratio stays undefined.
    "error_ratio": (
        '(sum(rate(istio_requests_total{{{selector},response_code=~"5.."}}[{window}]))'
        " or vector(0))"
        " / sum(rate(istio_requests_total{{{selector}}}[{window}]))"
    ),
    # Istio's dashboards' p99: interpolated within the histogram bucket holding it, so the
    # answer is only as precise as Istio's buckets (..., 100, 250, 500, 1000, ... ms).
    "latency_p99_ms": (
        "histogram_quantile(0.99, sum by (le) ("
        "rate(istio_request_duration_milliseconds_bucket{{{selector}}}[{window}])))"
    ),
    # Requests counted over the window, per version of the workload that answered (Istio's
    # destination_version: "unknown" when none did, e.g. an injected abort). increase()
    # extrapolates to the window's edges, so the counts are estimates, not integers.
    "requests_by_version": (
        "sum by (destination_version) (increase(istio_requests_total{{{selector}}}[{window}]))"
    ),
    # TCP bytes per second: sent = towards the client (responses), received = from it.
    "tcp_sent_bytes_per_s": "sum(rate(istio_tcp_sent_bytes_total{{{selector}}}[{window}]))",
    "tcp_received_bytes_per_s": (
        "sum(rate(istio_tcp_received_bytes_total{{{selector}}}[{window}]))"
    ),
    "tcp_connections_opened_per_s": (
        "sum(rate(istio_tcp_connections_opened_total{{{selector}}}[{window}]))"
    ),
    "tcp_connections_closed_per_s": (
        "sum(rate(istio_tcp_connections_closed_total{{{selector}}}[{window}]))"
    ),
}


def istio_promql(
    question: str, service: str, namespace: str, window: str = "1m", reporter: str = "source"
) -> str:
    """The PromQL of one of ``ISTIO_QUESTIONS`` about ``service`` in ``namespace``.

    ``window`` is a PromQL duration (``30s``, ``1m``, ``1m30s``); make it at least four scrape
    intervals, or ``rate`` has too few samples (Istio's Prometheus scrapes every 15 s).
    """
    if question not in ISTIO_QUESTIONS:
        raise InvalidInput(
            "question", f"unknown: {question!r}", f"one of {sorted(ISTIO_QUESTIONS)}"
        )
    for field, value in (("service", service), ("namespace", namespace)):
        # Also what keeps the text from breaking out of the PromQL string it is put in.
        if not isinstance(value, str) or not _DNS_LABEL.fullmatch(value):
            raise InvalidInput(field, f"{value!r} is not a Kubernetes name (DNS-1123 label)")
    if not isinstance(window, str) or not _DURATION.fullmatch(window):
        raise InvalidInput("window", f"{window!r} is not a PromQL duration", "e.g. 30s, 1m, 1m30s")
    if reporter not in REPORTERS:
        raise InvalidInput("reporter", f"{reporter!r} is not one of {list(REPORTERS)}")
    selector = (
        f'reporter="{reporter}",destination_service_name="{service}",'
        f'destination_service_namespace="{namespace}"'
    )
    return ISTIO_QUESTIONS[question].format(selector=selector, window=window)


def request_rate(
    url: str,
    service: str,
    namespace: str,
    *,
    window: str = "1m",
    reporter: str = "source",
    at: Timestamp | None = None,
) -> float:
    """Requests per second to ``service`` over the last ``window``; 0.0 without traffic."""
    return _value(url, istio_promql("request_rate", service, namespace, window, reporter), at)


def error_ratio(
    url: str,
    service: str,
    namespace: str,
    *,
    window: str = "1m",
    reporter: str = "source",
    at: Timestamp | None = None,
) -> float:
    """The share of requests to ``service`` answered 5xx over the last ``window``, 0.0 to 1.0.

    Without traffic the ratio is undefined and this answers 0.0, so that a tolerance such as
    ``[0, 0.01]`` holds; check ``request_rate`` as well when no traffic would be a failure.
    """
    return _value(url, istio_promql("error_ratio", service, namespace, window, reporter), at)


def latency_p99_ms(
    url: str,
    service: str,
    namespace: str,
    *,
    window: str = "1m",
    reporter: str = "source",
    at: Timestamp | None = None,
) -> float:
    """The 99th percentile of request durations to ``service`` over ``window``, in ms.

    Estimated by ``histogram_quantile`` within Istio's histogram buckets: a true p99 of 200 ms
    reads as a value in (100, 250]. 0.0 without traffic (check ``request_rate``).
    """
    return _value(url, istio_promql("latency_p99_ms", service, namespace, window, reporter), at)


def tcp_bytes(
    url: str,
    service: str,
    namespace: str,
    *,
    window: str = "1m",
    reporter: str = "source",
    at: Timestamp | None = None,
) -> dict[str, float]:
    """Bytes per second on connections to ``service`` over ``window``.

    ``sent_bytes_per_s`` flows towards the client (responses), ``received_bytes_per_s`` from it
    (requests), as Istio names them; 0.0 each without traffic.
    """
    return {
        "sent_bytes_per_s": _value(
            url, istio_promql("tcp_sent_bytes_per_s", service, namespace, window, reporter), at
        ),
        "received_bytes_per_s": _value(
            url, istio_promql("tcp_received_bytes_per_s", service, namespace, window, reporter), at
        ),
    }


def tcp_connections(
    url: str,
    service: str,
    namespace: str,
    *,
    window: str = "1m",
    reporter: str = "source",
    at: Timestamp | None = None,
) -> dict[str, float]:
    """Connections to ``service`` opened and closed per second over ``window``."""
    return {
        "opened_per_s": _value(
            url,
            istio_promql("tcp_connections_opened_per_s", service, namespace, window, reporter),
            at,
        ),
        "closed_per_s": _value(
            url,
            istio_promql("tcp_connections_closed_per_s", service, namespace, window, reporter),
            at,
        ),
    }


def _value(url: str, promql: str, at: Timestamp | None) -> float:
    value = query_value(url, promql, at, default=0.0)
    # No traffic in the window: rate() is 0, and 0/0 or a quantile of nothing is NaN.
    return 0.0 if math.isnan(value) else value


# --- HTTP ------------------------------------------------------------------------------------


def _get(url: str, path: str, parameters: dict[str, str], timeout_s: float) -> dict[str, Any]:
    """``data`` of a Prometheus API answer; the errors above for anything else."""
    base = _base_url(url)
    # Errors name the URL as people wrote it, without a user:password written into it.
    shown = without_userinfo(base) or ""
    try:
        answer = requests.get(base + path, params=parameters, timeout=timeout_s)
    except requests.Timeout as error:
        raise PrometheusUnreachable(
            f"Prometheus at {shown} did not answer within {timeout_s} s: "
            + str(error).replace(base, shown)
        ) from error
    except requests.RequestException as error:
        raise PrometheusUnreachable(
            f"Prometheus at {shown} could not be reached ({str(error).replace(base, shown)}); "
            "is it running at that URL?"
        ) from error
    try:
        document = answer.json()
    except ValueError:
        document = None
    if not isinstance(document, dict) or document.get("status") not in ("success", "error"):
        raise PrometheusUnreachable(
            f"{shown}{path} answered HTTP {answer.status_code}, not the Prometheus API "
            f"(is {shown} Prometheus's base URL?): {shorten(answer.text)}"
        )
    if document["status"] == "error":
        error_type = str(document.get("errorType") or "unknown")
        raise QueryFailed(
            f"Prometheus refused the query ({error_type}): {shorten(str(document.get('error')))}"
            f" -- query: {parameters['query']}",
            error_type,
        )
    data = document.get("data")
    if not isinstance(data, dict):
        raise PrometheusUnreachable(f"{shown}{path} answered success without data")
    return data


def _base_url(url: str) -> str:
    if not isinstance(url, str) or not re.match(r"^https?://[^/\s]+", url):
        raise InvalidInput(
            "url",
            f"{without_userinfo(url)!r} is not an http(s) URL"
            if isinstance(url, str)
            else f"{url!r} is not an http(s) URL",
            "e.g. http://prometheus.istio-system:9090",
        )
    return url.rstrip("/")


def _promql(promql: str) -> str:
    if not isinstance(promql, str) or not promql.strip():
        raise InvalidInput("promql", "must be a non-empty PromQL expression")
    return promql


def _timestamp(value: Timestamp, field: str) -> str:
    """What the API takes: Unix seconds, or RFC 3339 text (which Prometheus checks itself)."""
    if isinstance(value, str) and value.strip():
        return value.strip()
    if isinstance(value, datetime) or (
        isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    ):
        return repr(_seconds(value))
    raise InvalidInput(field, f"{value!r} is not a time", "Unix seconds, RFC 3339 or a datetime")


def _seconds(value: float | datetime) -> float:
    return value.timestamp() if isinstance(value, datetime) else float(value)


def without_userinfo(url: str | None) -> str | None:
    """``url`` without credentials written into it (``http://user:pass@host``), to record."""
    if url is None:
        return None
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
