"""What resilience policies did, measured in the data plane: real requests, counted answers,
and the destination's Envoy counters before and after.

    with EnvoyAdmin(mesh["envoy_admin_socket"]) as admin:
        seen = measure(admin, fqdn, Load(url, headers, requests=400))
    seen.attempts_per_request      # the destination's upstream requests per user request
    seen.error_interval(0.999)     # Wilson interval of the user error ratio

Where each number comes from, and what a cluster has of it:

- user requests, errors and statuses: the answers themselves (anywhere);
- ``x-envoy-overloaded: true`` on an answer: Envoy's circuit breaker refused it (a 503 with
  response flag UO); on a cluster also ``istio_requests_total{response_flags="UO"}`` by default;
- attempts per user request: the destination's clusters' ``upstream_rq_total`` delta divided by
  the user requests (Envoy counts every try), cross-checked by ``upstream_rq_retry`` and by the
  attempt number the upstream saw (``x-envoy-attempt-count``, which Istio's sidecars send; the
  local httpbin repeats it as ``x-httpbin-attempt-count``). On a cluster Istio's default
  metrics give the same ratio without Envoy's counters: ``istio_requests_total`` reported by
  the destination (one per attempt that reached it) over the same edge reported by the source
  (one per request its app sent). ``upstream_rq_retry``, ``upstream_rq_pending_overflow``,
  ``upstream_cx_overflow`` and ``outlier_detection.*`` are not exported by Istio's sidecars
  unless ``proxyStatsMatcher`` includes them (``inclusionRegexps`` in ``meshConfig.
  defaultConfig`` or the pod's ``proxy.istio.io/config`` annotation);
- ejections: ``outlier_detection.ejections_enforced_total`` and the gauge
  ``outlier_detection.ejections_active``, local mesh (or proxyStatsMatcher) only.

Bounded: at most ``MAX_REQUESTS`` requests and ``MAX_SECONDS`` of sending per measurement,
``MAX_CONCURRENCY`` in flight, each with its own timeout.
"""

from __future__ import annotations

import functools
import http.client
import math
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from chaosmesh_py import checks
from chaosmesh_py.engine.envoy_admin import EnvoyAdmin
from chaosmesh_py.errors import InvalidInput
from chaosmesh_py.observe import envoy_stats
from chaosmesh_py.observe.statistics import wilson_interval

MAX_REQUESTS = 20_000
MAX_SECONDS = 300.0
MAX_CONCURRENCY = 64
MAX_TIMEOUT_S = 60.0
OVERLOADED_HEADER = "x-envoy-overloaded"
# The local httpbin's echo of the x-envoy-attempt-count it received (not in httpbin.org).
ATTEMPT_HEADER = "x-httpbin-attempt-count"
INSTANCE_HEADER = "x-httpbin-instance"
NO_ANSWER = 0  # status of a request that got no answer (refused, reset, timed out)


@dataclass(frozen=True)
class Load:
    """What to send: ``requests`` GETs of ``url``, ``concurrency`` at a time.

    ``waves``: send the requests in waves of exactly ``concurrency`` at once, the next wave
    only after the whole previous one answered and ``wave_pause_s`` passed (a circuit breaker's
    admission is then a per-wave question); otherwise each of ``concurrency`` workers sends its
    next request as soon as its previous one answered (closed loop, as fortio ``-qps 0``).
    ``pace_s``: with one worker, at least this long between starts (time-resolved measures).
    """

    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    requests: int = 200
    concurrency: int = 1
    timeout_s: float = 10.0
    waves: bool = False
    wave_pause_s: float = 0.05
    pace_s: float = 0.0

    def __post_init__(self) -> None:
        check_load(self.url, self.requests, self.concurrency, self.timeout_s)


def check_load(url: object, requests: object, concurrency: object, timeout_s: object) -> None:
    """InvalidInput naming the field when a load could not be sent as asked."""
    parts = urlsplit(checks.text("url", url))
    if parts.scheme != "http" or not parts.hostname:
        raise InvalidInput("url", f"must be an http:// URL, got {url!r}", "e.g. http://host:80/get")
    checks.whole("requests", requests, 1, MAX_REQUESTS)
    checks.whole("concurrency", concurrency, 1, MAX_CONCURRENCY)
    if checks.seconds("timeout_s", timeout_s) > MAX_TIMEOUT_S:
        raise InvalidInput("timeout_s", f"must be at most {MAX_TIMEOUT_S:g} s, got {timeout_s}")


@dataclass(frozen=True)
class Answer:
    """One user request's outcome, as the client saw it."""

    status: int  # NO_ANSWER when nothing came back
    overloaded: bool  # x-envoy-overloaded: true (Envoy's circuit breaker, flag UO)
    attempt: int | None  # the try that answered, as the upstream saw it (None: not told)
    instance: str
    started_s: float  # since the load started
    seconds: float

    @property
    def error(self) -> bool:
        return self.status == NO_ANSWER or self.status >= 500


def send(load: Load) -> list[Answer]:
    """Every answer of ``load``, in the order the requests started."""
    sender = _Sender(load)
    if load.waves:
        sender.in_waves()
    else:
        sender.closed_loop()
    return sorted(sender.answers, key=lambda answer: answer.started_s)


class _Sender:
    """Keep-alive connections to the load's URL, one per worker, and the answers so far."""

    def __init__(self, load: Load) -> None:
        parts = urlsplit(load.url)
        self.load = load
        self.host, self.port = parts.hostname or "", parts.port or 80
        self.target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.answers: list[Answer] = []
        self._lock = threading.Lock()
        self.started = time.monotonic()
        self.deadline = self.started + MAX_SECONDS

    def connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=self.load.timeout_s)

    def one(
        self, connection: http.client.HTTPConnection
    ) -> tuple[http.client.HTTPConnection, Answer]:
        """One GET on ``connection`` (replaced when it broke or the server closes it)."""
        at = time.monotonic()
        try:
            connection.request("GET", self.target, headers=dict(self.load.headers))
            response = connection.getresponse()
            response.read()
        except (OSError, http.client.HTTPException):
            connection.close()
            return self.connect(), Answer(
                NO_ANSWER, False, None, "", at - self.started, time.monotonic() - at
            )
        attempt = response.getheader(ATTEMPT_HEADER) or ""
        answer = Answer(
            response.status,
            (response.getheader(OVERLOADED_HEADER) or "").lower() == "true",
            int(attempt) if attempt.isdigit() else None,
            response.getheader(INSTANCE_HEADER) or "",
            at - self.started,
            time.monotonic() - at,
        )
        if (response.getheader("connection") or "").lower() == "close":
            connection.close()
        return connection, answer

    def closed_loop(self) -> None:
        issued = iter(range(self.load.requests))

        def worker() -> None:
            connection = self.connect()
            try:
                for _ in issued:
                    if time.monotonic() > self.deadline:
                        return
                    at = time.monotonic()
                    connection, answer = self.one(connection)
                    with self._lock:
                        self.answers.append(answer)
                    time.sleep(max(0.0, self.load.pace_s - (time.monotonic() - at)))
            finally:
                connection.close()

        _run_all([worker] * self.load.concurrency)

    def in_waves(self) -> None:
        connections = [self.connect() for _ in range(self.load.concurrency)]
        try:
            for first in range(0, self.load.requests, self.load.concurrency):
                if time.monotonic() > self.deadline:
                    break
                self._wave(connections, min(self.load.concurrency, self.load.requests - first))
                time.sleep(self.load.wave_pause_s)
        finally:
            for connection in connections:
                connection.close()

    def _wave(self, connections: list[http.client.HTTPConnection], size: int) -> None:
        """``size`` requests released together (a barrier), all answered before returning."""
        gate = threading.Barrier(size)

        def member(index: int) -> None:
            gate.wait()
            connections[index], answer = self.one(connections[index])
            with self._lock:
                self.answers.append(answer)

        _run_all([functools.partial(member, index) for index in range(size)])


def _run_all(work: list[Callable[[], None]]) -> None:
    threads = [threading.Thread(target=job) for job in work]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


# --------------------------------------------------------------------- what the data plane did

CLUSTER_COUNTERS = tuple(envoy_stats.SERVICE_COUNTERS)


@dataclass(frozen=True)
class Measured:
    """The answers of one load and the destination's Envoy counters it moved."""

    answers: tuple[Answer, ...]
    counters: Mapping[str, int]  # deltas, by envoy_stats.SERVICE_COUNTERS meaning
    ejected_after: int  # outlier_detection.ejections_active once the load ended
    seconds: float

    @property
    def requests(self) -> int:
        return len(self.answers)

    @property
    def errors(self) -> int:
        return sum(answer.error for answer in self.answers)

    @property
    def error_ratio(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def error_interval(self, confidence: float = 0.95) -> tuple[float, float]:
        return wilson_interval(self.errors, self.requests, confidence)

    @property
    def overloaded(self) -> int:
        return sum(answer.overloaded for answer in self.answers)

    @property
    def overflows(self) -> int:
        """Requests Envoy refused for the circuit breaker: ``upstream_rq_pending_overflow``.
        ``upstream_cx_overflow`` counts connections *not opened* at ``maxConnections``; the
        request behind one waits as pending, so it is no refusal by itself."""
        return self.counters["pending_overflows"]

    @property
    def attempts_per_request(self) -> float:
        """Tries that reached the destination's clusters per user request (Envoy's count)."""
        return self.counters["requests"] / self.requests if self.requests else 0.0

    @property
    def statuses(self) -> dict[str, int]:
        counted = Counter(str(answer.status or "error") for answer in self.answers)
        return dict(sorted(counted.items()))

    @property
    def answered_on_attempt(self) -> dict[str, int]:
        """How many answers came from the 1st, 2nd, ... try (as the upstream saw it)."""
        counted = Counter(str(a.attempt) for a in self.answers if a.attempt is not None)
        return dict(sorted(counted.items(), key=lambda item: int(item[0])))

    def latency_s(self, fraction: float) -> float:
        """The ``fraction`` quantile of the answers' seconds (nearest rank; 0 without any)."""
        ordered = sorted(answer.seconds for answer in self.answers)
        if not ordered:
            return 0.0
        return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]

    def to_json(self, confidence: float = 0.95) -> dict[str, Any]:
        low, high = self.error_interval(confidence)
        return {
            "requests": self.requests,
            "errors": self.errors,
            "error_ratio": round(self.error_ratio, 6),
            "error_ratio_interval": [round(low, 6), round(high, 6)],
            "confidence": confidence,
            "statuses": self.statuses,
            "upstream_attempts": self.counters["requests"],
            "attempts_per_request": round(self.attempts_per_request, 6),
            "retries": self.counters["retries"],
            "answered_on_attempt": self.answered_on_attempt,
            "overloaded_answers": self.overloaded,
            "overflow_ratio": round(self.overloaded / self.requests, 6) if self.requests else 0.0,
            "pending_overflows": self.counters["pending_overflows"],
            "connection_overflows": self.counters["connection_overflows"],
            "ejections": self.counters["ejections"],
            "ejected_now": self.ejected_after,
            "latency_p50_s": round(self.latency_s(0.5), 4),
            "latency_p99_s": round(self.latency_s(0.99), 4),
            "latency_max_s": round(self.latency_s(1.0), 4),
            "seconds": round(self.seconds, 3),
        }


def measure(admin: EnvoyAdmin, fqdn: str, load: Load) -> Measured:
    """Send ``load`` and read what it moved on the clusters of the service ``fqdn``."""
    before = envoy_stats.service_counters(admin, fqdn)
    started = time.monotonic()
    answers = send(load)
    seconds = time.monotonic() - started
    after = envoy_stats.service_counters(admin, fqdn)
    return Measured(
        tuple(answers),
        {meaning: after[meaning] - before[meaning] for meaning in CLUSTER_COUNTERS},
        ejected_now(admin, fqdn),
        seconds,
    )


def ejected_now(admin: EnvoyAdmin, fqdn: str) -> int:
    """Hosts of the service ``fqdn`` that outlier detection holds ejected now (all clusters)."""
    pattern = (
        rf"^cluster\.outbound\|\d+\|[^|]*\|{re.escape(fqdn)}\.outlier_detection\.ejections_active$"
    )
    return sum(admin.counters(pattern).values())


# --------------------------------------------------------------------- ejection over time


@dataclass(frozen=True)
class Ejection:
    """A failing endpoint met outlier detection: when its errors started and stopped."""

    answers: tuple[Answer, ...]
    errors_before_ejection: int  # user-visible errors until the last one before the quiet
    first_error_s: float | None
    last_error_s: float | None  # the ejection took effect right after this answer
    quiet_s: float  # how long after the last error no error came back
    ejections: int

    @property
    def time_to_ejection_s(self) -> float | None:
        if self.first_error_s is None or self.last_error_s is None:
            return None
        return self.last_error_s - self.first_error_s

    def error_ratio_after(self) -> tuple[int, int]:
        """(errors, requests) after the ejection took effect: the returned baseline."""
        after = [
            a
            for a in self.answers
            if self.last_error_s is not None and a.started_s > self.last_error_s
        ]
        return sum(a.error for a in after), len(after)

    def to_json(self) -> dict[str, Any]:
        errors_after, requests_after = self.error_ratio_after()
        return {
            "requests": len(self.answers),
            "errors_before_ejection": self.errors_before_ejection,
            "time_to_ejection_s": _rounded(self.time_to_ejection_s),
            "first_error_s": _rounded(self.first_error_s),
            "last_error_s": _rounded(self.last_error_s),
            "requests_after_ejection": requests_after,
            "errors_after_ejection": errors_after,
            "error_ratio_after_ejection": round(errors_after / requests_after, 6)
            if requests_after
            else None,
            "quiet_s": round(self.quiet_s, 3),
            "ejections": self.ejections,
        }


def measure_ejection(admin: EnvoyAdmin, fqdn: str, load: Load) -> Ejection:
    """Send ``load`` (one worker, paced) while an endpoint of ``fqdn`` fails; when did its errors
    stop, and how many did users see first?"""
    return ejection_of(measure(admin, fqdn, load))


def ejection_of(seen: Measured) -> Ejection:
    """The ejection a paced load's answers show: errors until the last one, then none."""
    errors = [answer for answer in seen.answers if answer.error]
    end = seen.answers[-1].started_s if seen.answers else 0.0
    return Ejection(
        seen.answers,
        len(errors),
        errors[0].started_s if errors else None,
        errors[-1].started_s if errors else None,
        end - errors[-1].started_s if errors else end,
        seen.counters["ejections"],
    )


def answers_only(load: Load) -> Measured:
    """Send ``load`` where no Envoy counters can be read: every counter delta is 0."""
    started = time.monotonic()
    answers = send(load)
    return Measured(
        tuple(answers), dict.fromkeys(CLUSTER_COUNTERS, 0), 0, time.monotonic() - started
    )


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


__all__ = [
    "Answer",
    "Ejection",
    "Load",
    "Measured",
    "answers_only",
    "check_load",
    "ejected_now",
    "ejection_of",
    "measure",
    "measure_ejection",
    "send",
]
