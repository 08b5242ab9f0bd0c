"""Envoy's own counters on the local mesh, read from its admin API and summed per meaning.

Which Envoy stats answer which question, in one place:
- a calling workload's sidecar (``http.outbound_<workload>.``): requests, 5xx answered, faults
  injected (aborts, delays) — injected aborts never reach cluster stats, since the fault filter
  runs before the router;
- a destination service's clusters (``cluster.outbound|<port>|<subset>|<fqdn>.``, all subsets
  summed): upstream requests and 5xx, retries, timeouts, circuit-breaker overflows (pending and
  connections), outlier ejections.
"""

from __future__ import annotations

import re

from chaosmesh_py.engine.envoy_admin import EnvoyAdmin

SIDECAR_COUNTERS = {
    "requests": "downstream_rq_total",
    "responses_5xx": "downstream_rq_5xx",
    "aborts_injected": "fault.aborts_injected",
    "delays_injected": "fault.delays_injected",
}
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
