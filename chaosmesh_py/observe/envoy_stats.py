"""Envoy's own counters on the local mesh, read from its admin API and summed per meaning.

Which Envoy stats answer which question, in one place:
- a calling workload's sidecar (``http.outbound_<workload>.``): requests, 5xx answered, faults
  injected (aborts, delays) — injected aborts never reach cluster stats, since the fault filter
  runs before the router;
- a destination service's clusters (``cluster.outbound|<port>|<subset>|<fqdn>.``, all subsets
  summed): upstream requests and 5xx, retries, timeouts, circuit-breaker overflows (pending and
  connections), outlier ejections;
- a route (``route_requests``): the request counter the local mesh's stats access logger keeps
  (``chaosmesh_py.localmesh.telemetry``), tagged with the route name, the response flags and
  whether chaosmesh's own verifier sent the request. Counted when a request ends: one still
  held by a delay is not counted yet.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from chaosmesh_py.engine.envoy_admin import EnvoyAdmin
from chaosmesh_py.observe.exposition import parse_text

SIDECAR_COUNTERS = {
    "requests": "downstream_rq_total",
    "responses_5xx": "downstream_rq_5xx",
    "aborts_injected": "fault.aborts_injected",
    "delays_injected": "fault.delays_injected",
}
# The local mesh's request counter: its Envoy stats scope and name, and the tags that tell a
# fault's own route and chaosmesh's verifier apart (the telemetry writes them, this reads them).
REQUEST_STATS_SCOPE = "istio"
REQUEST_COUNTER = "requests_total"
ROUTE_TAG = "route_name"
VERIFIER_TAG = "chaosmesh_verifier"
# Envoy's %RESPONSE_FLAGS% for an injected fault, by kind.
FAULT_FLAGS = {"delay": "DI", "abort": "FI"}
SERVICE_COUNTERS = {
    "requests": "upstream_rq_total",
    "responses_5xx": "upstream_rq_5xx",
    "retries": "upstream_rq_retry",
    "timeouts": "upstream_rq_timeout",
    "pending_overflows": "upstream_rq_pending_overflow",
    "connection_overflows": "upstream_cx_overflow",
    "ejections": "outlier_detection.ejections_enforced_total",
}


def sidecar_counters(admin: EnvoyAdmin, stat_prefix: str) -> dict[str, int]:
    """The counters of one sidecar, by meaning (see ``SIDECAR_COUNTERS``)."""
    stats = admin.counters(rf"^http\.{re.escape(stat_prefix)}\.")
    base = f"http.{stat_prefix}."
    return {meaning: stats.get(base + name, 0) for meaning, name in SIDECAR_COUNTERS.items()}


def service_counters(admin: EnvoyAdmin, fqdn: str) -> dict[str, int]:
    """The counters of every cluster of one service (all ports and subsets), summed."""
    pattern = rf"^cluster\.outbound\|\d+\|[^|]*\|{re.escape(fqdn)}\."
    totals = dict.fromkeys(SERVICE_COUNTERS, 0)
    for name, value in admin.counters(pattern).items():
        suffix = name.split(f"|{fqdn}.", 1)[1]
        for meaning, counter in SERVICE_COUNTERS.items():
            if suffix == counter:
                totals[meaning] += value
    return totals


@dataclass(frozen=True)
class RouteRequests:
    """Requests that took one Envoy route and ended, chaosmesh's verifier's left out."""

    requests: int = 0
    delayed: int = 0  # a delay fault held them (flag DI)
    aborted: int = 0  # an abort fault answered them (flag FI)

    def __sub__(self, earlier: RouteRequests) -> RouteRequests:
        if self.requests < earlier.requests:
            return self  # the counters were reset since: all of them are newer
        return RouteRequests(
            self.requests - earlier.requests,
            self.delayed - earlier.delayed,
            self.aborted - earlier.aborted,
        )


def route_requests(admin: EnvoyAdmin, route_prefix: str) -> dict[str, RouteRequests]:
    """Per Envoy route whose name starts with ``route_prefix``, every caller summed."""
    # Envoy matches the filter against the stat's full name, tags and values joined by dots.
    pattern = (
        rf"^{REQUEST_STATS_SCOPE}\.{REQUEST_COUNTER}\..*\.{ROUTE_TAG}\.{re.escape(route_prefix)}"
    )
    text = admin.get("/stats/prometheus", {"usedonly": "", "filter": pattern}).decode()
    counted: dict[str, list[int]] = {}
    for sample in parse_text(text):
        labels = dict(sample.labels)
        route = labels.get(ROUTE_TAG, "")
        # Without the verifier's header Envoy gives "" (or "-", as other access-log operators).
        if not route.startswith(route_prefix) or labels.get(VERIFIER_TAG, "") not in ("", "-"):
            continue
        flags = set(labels.get("response_flags", "-").split(","))
        total = counted.setdefault(route, [0, 0, 0])
        total[0] += int(sample.value)
        total[1] += int(sample.value) if FAULT_FLAGS["delay"] in flags else 0
        total[2] += int(sample.value) if FAULT_FLAGS["abort"] in flags else 0
    return {route: RouteRequests(*numbers) for route, numbers in counted.items()}


def requests_held(admin: EnvoyAdmin) -> int:
    """Requests a delay fault holds now, on every listener."""
    return sum(admin.counters(r"^http\..*\.fault\.active_faults$").values())


def active_requests(admin: EnvoyAdmin) -> int:
    """Requests every listener is serving now, the admin's own left out."""
    stats = admin.counters(r"^http\..*\.downstream_rq_active$")
    return sum(value for name, value in stats.items() if not name.startswith("http.admin."))
