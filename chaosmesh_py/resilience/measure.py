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

import http.client
import re
import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from chaosmesh_py.engine.envoy_admin import EnvoyAdmin
from chaosmesh_py.errors import InvalidInput
from chaosmesh_py.observe import envoy_stats
from chaosmesh_py.observe.statistics import wilson_interval

MAX_REQUESTS = 20_000
MAX_SECONDS = 300.0
MAX_CONCURRENCY = 64
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
    parts = urlsplit(str(url))
    if not isinstance(url, str) or parts.scheme != "http" or not parts.hostname:
        raise InvalidInput("url", f"must be an http:// URL, got {url!r}", "e.g. http://host:80/get")
    for name, value, high in (
        ("requests", requests, MAX_REQUESTS),
        ("concurrency", concurrency, MAX_CONCURRENCY),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high:
            raise InvalidInput(name, f"must be a whole number from 1 to {high}, got {value!r}")
    if (
        isinstance(timeout_s, bool)
        or not isinstance(timeout_s, int | float)
        or not 0 < timeout_s <= 60
    ):
        raise InvalidInput("timeout_s", f"must be a number of seconds in (0, 60], got {timeout_s!r}")


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
    parts = urlsplit(load.url)
    target = parts.path + (f"?{parts.query}" if parts.query else "") or "/"
    headers = dict(load.headers)
    answers: list[Answer] = []
    lock = threading.Lock()
    started = time.monotonic()
    deadline = started + MAX_SECONDS
    issued = iter(range(load.requests))

    def one(connection: http.client.HTTPConnection) -> tuple[http.client.HTTPConnection, Answer]:
        at = time.monotonic()
        try:
            connection.request("GET", target, headers=headers)
            response = connection.getresponse()
            response.read()
            attempt = response.getheader(ATTEMPT_HEADER)
            answer = Answer(
                response.status,
                response.getheader(OVERLOADED_HEADER, "").lower() == "true",
                int(attempt) if attempt and attempt.isdigit() else None,
                response.getheader(INSTANCE_HEADER, ""),
                at - started,
                time.monotonic() - at,
            )
            if response.getheader("connection", "").lower() == "close":
                connection.close()
        except (OSError, http.client.HTTPException):
            connection.close()
            connection = _connect(parts.hostname or "", parts.port or 80, load.timeout_s)
            answer = Answer(NO_ANSWER, False, None, "", at - started, time.monotonic() - at)
        return connection, answer

    def worker() -> None:
        connection = _connect(parts.hostname or "", parts.port or 80, load.timeout_s)
        try:
            for _ in issued:
                if time.monotonic() > deadline:
                    return
                at = time.monotonic()
                connection, answer = one(connection)
                with lock:
                    answers.append(answer)
                if load.pace_s:
                    time.sleep(max(0.0, load.pace_s - (time.monotonic() - at)))
        finally:
            connection.close()

    if load.waves:
        connections = [
            _connect(parts.hostname or "", parts.port or 80, load.timeout_s)
            for _ in range(load.concurrency)
        ]
        try:
            for first in range(0, load.requests, load.concurrency):
                if time.monotonic() > deadline:
                    break
                size = min(load.concurrency, load.requests - first)
                wave: list[Answer | None] = [None] * size
                gate = threading.Barrier(size)

                def wave_member(index: int) -> None:
                    gate.wait()
                    connections[index], wave[index] = one(connections[index])

                threads = [threading.Thread(target=wave_member, args=(i,)) for i in range(size)]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
                answers.extend(answer for answer in wave if answer is not None)
                time.sleep(load.wave_pause_s)
        finally:
            for connection in connections:
                connection.close()
    else:
        workers = [threading.Thread(target=worker) for _ in range(load.concurrency)]
        for thread in workers:
            thread.start()
        for thread in workers:
            thread.join()
    return sorted(answers, key=lambda answer: answer.started_s)


def _connect(host: str, port: int, timeout_s: float) -> http.client.HTTPConnection:
    return http.client.HTTPConnection(host, port, timeout=timeout_s)


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
    pattern = rf"^cluster\.outbound\|\d+\|[^|]*\|{re.escape(fqdn)}\.outlier_detection\.ejections_active$"
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
        after = [a for a in self.answers if self.last_error_s is not None and a.started_s > self.last_error_s]
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
    seen = measure(admin, fqdn, load)
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


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


__all__ = [
    "Answer",
    "Ejection",
    "Load",
    "Measured",
    "check_load",
    "ejected_now",
    "measure",
    "measure_ejection",
    "send",
]

