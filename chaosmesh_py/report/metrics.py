"""Istio's metrics around a run: Prometheus range queries, padded before and after.

Where from: ``--prometheus URL`` given to ``chaosmesh report``, else the Prometheus the run
itself used (configuration ``chaosmesh_prometheus_url``, which the control records in the
journal without any credentials in its URL). Which: for each service a fault of the run sent
traffic to, Istio's error ratio and p99 latency as its dashboards ask
(``observe.prometheus.istio_promql``, reporter ``source``, where Istio applies faults), from
``padding`` before the run to ``padding`` after it. Prometheus keeps what it scraped for its
retention (15 days by default): a report made later than that finds nothing, and says so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from chaosmesh_py.errors import ChaosMeshError
from chaosmesh_py.observe import prometheus
from chaosmesh_py.report.model import ExperimentView

MAX_POINTS = 400
QUESTIONS = (("error_ratio", "error ratio"), ("latency_p99_ms", "p99 latency (ms)"))


@dataclass(frozen=True)
class Series:
    title: str
    points: tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class Metrics:
    url: str
    series: tuple[Series, ...]
    problems: tuple[str, ...]


def services(view: ExperimentView) -> list[tuple[str, str]]:
    """(service, namespace) of every destination a fault of the run sent traffic to."""
    found = []
    for fault in view.faults:
        for destination in fault.destinations:
            parts = destination.split(".")
            if len(parts) >= 2 and (parts[0], parts[1]) not in found:
                found.append((parts[0], parts[1]))
    return found


def around(
    view: ExperimentView,
    url: str,
    padding_s: float,
    rate_window: str,
    unreachable: set[str] | None = None,
) -> Metrics:
    """The range queries for one run; what could not be asked is in ``problems``. A URL found
    unreachable is added to ``unreachable`` and not asked again (a report of 20 runs must not
    wait 40 timeouts for a Prometheus that is down)."""
    unreachable = set() if unreachable is None else unreachable
    if url in unreachable:
        return Metrics(url, (), ("unreachable (see above)",))
    start = view.start - timedelta(seconds=padding_s)
    end = view.end + timedelta(seconds=padding_s)
    step_s = max(1.0, (end - start).total_seconds() / MAX_POINTS)
    series: list[Series] = []
    problems: list[str] = []
    targets = services(view)
    if not targets:
        problems.append("no fault of this run names a destination service to ask about")
    for service, namespace in targets:
        for question, label in QUESTIONS:
            try:
                promql = prometheus.istio_promql(question, service, namespace, rate_window)
                found = prometheus.query_range(url, promql, start, end, step_s)
            except prometheus.PrometheusUnreachable as error:
                unreachable.add(url)
                return Metrics(url, tuple(series), (*problems, str(error)))
            except ChaosMeshError as error:
                problems.append(f"{service}.{namespace} {label}: {error}")
                continue
            points = tuple(
                (t, v)
                for item in found
                for t, v in item["values"]
                if not math.isnan(v)  # no traffic: no ratio
            )
            if not points:
                problems.append(f"{service}.{namespace} {label}: Prometheus has no samples")
                continue
            series.append(Series(f"{service}.{namespace} {label}", points))
    return Metrics(url, tuple(series), tuple(problems))


def as_plot_input(series: Sequence[Series]) -> list[tuple[str, Sequence[tuple[float, float]]]]:
    return [(s.title, s.points) for s in series]
