"""Chaos Toolkit probes for traffic: what users get, measured, not what the configuration says.

Three families, each a thin surface over its own module:
- the observed share of requests per version (``chaosmesh_py.traffic.share``);
- the dark-launch leak check (``chaosmesh_py.traffic.leaks``);
- canary analysis, canary against baseline (``chaosmesh_py.traffic.canary``).
"""

import dataclasses
import logging
from collections.abc import Callable, Mapping
from typing import Any

from chaosmesh_py.engine.access import Access, needs
from chaosmesh_py.engine.activity import boundary
from chaosmesh_py.errors import InvalidInput
from chaosmesh_py.observe.probes import _prometheus, _prometheus_needs
from chaosmesh_py.observe.prometheus import istio_promql
from chaosmesh_py.traffic import share

__all__ = ["observed_share", "share_is_within"]

logger = logging.getLogger("chaostoolkit")

# Per probe: what refuses its arguments before it measures anything (no request, no API call).
# `chaosmesh validate` and the control run them on the experiment's arguments before the run.
_ARGUMENT_CHECKS: dict[str, Callable[[Mapping[str, Any]], object]] = {}


def check_arguments(
    probe: str, arguments: Mapping[str, Any], configuration: Mapping[str, Any] | None
) -> None:
    """Raise InvalidInput if `probe` would refuse `arguments` (bound, defaults applied)."""
    check = _ARGUMENT_CHECKS.get(probe)
    if check is not None:
        check(arguments)


# ---------------------------------------------------------------- observed share (share.py)


def _share_needs(arguments: Mapping[str, Any]) -> list[Access]:
    """A window asks Prometheus only (refused when that would be the local mesh's); a number
    of requests counts through the local mesh's Envoy, which a cluster has not."""
    if arguments.get("window") is not None:
        return _prometheus_needs(arguments)
    raise InvalidInput(
        "requests",
        "counts where requests went through the local mesh's Envoy, which a cluster has not",
        'on a cluster, give "window" (Istio\'s metrics in Prometheus) instead',
    )


def _share_query(arguments: Mapping[str, Any]) -> share.ShareQuery:
    """The measurement a share probe's ``arguments`` (its own names) ask for, checked whole."""
    names = {field.name for field in dataclasses.fields(share.ShareQuery)}
    query = share.ShareQuery(**{name: arguments[name] for name in names & arguments.keys()})
    # The PromQL's own checks of service, namespace, reporter (and window, when counting over
    # one): Kubernetes names either way, before any request.
    window = query.window if query.window is not None else "1m"
    istio_promql("requests_by_version", query.service, query.namespace, window, query.reporter)
    if "percent" in arguments:
        share.check_percent(arguments["percent"], arguments["tolerance_pp"])
    return query


def _observed(arguments: dict[str, Any]) -> share.ObservedShare:
    """Measure as a probe's ``arguments`` say."""
    query, secrets = _share_query(arguments), arguments["secrets"]
    resolved = (
        _prometheus(arguments["prometheus_url"] or "", secrets) if query.window is not None else ""
    )
    return share.observed_share(query, resolved, secrets)


@needs(_share_needs)
def observed_share(
    service: str,
    namespace: str = "default",
    window: str = None,
    requests: int = None,
    url: str = None,
    headers: dict = None,
    prometheus_url: str = None,
    reporter: str = "source",
    confidence: float = 0.95,
    min_requests: int = 100,
    concurrency: int = 10,
    secrets: dict = None,
) -> dict:
    """The share of `service`'s requests each version answered, measured, with a Wilson
    confidence interval (`confidence`, 0.95 by default) on each share. Give one of:

    - `window` (e.g. "1m"): Istio's `istio_requests_total` by `destination_version` over that
      window from the Prometheus at `prometheus_url` (empty: the local mesh's), as `reporter`
      ("source" or "destination") counts them; works on a cluster and on the local mesh;
    - `requests` (e.g. 2000): the local mesh only. Sends that many GETs to `url` (default: the
      service itself, as a caller without a sidecar's labels would reach it through the mesh)
      with `headers`, `concurrency` at a time, and attributes every one to the version whose
      workload answered, from Envoy's counters. Mirrored copies a version received are
      reported apart (`mirrored`), never in its share.

    Returns {"total", "versions": {"v1": {"requests", "share", "percent", "interval",
    "interval_percent", "mirrored"}, ...}, "sufficient", "method", ...}. Fewer than
    `min_requests` requests is refused before sending, or reported "sufficient": false for a
    window. To judge a share, use share_is_within (tolerance true); this probe's output, kept in
    the journal, is the evidence (e.g. a mirror's copies: versions.v3.mirrored).
    """
    with boundary():
        return _observed(dict(locals())).to_json()


@needs(_share_needs)
def share_is_within(
    service: str,
    version: str,
    percent: float,
    tolerance_pp: float,
    namespace: str = "default",
    window: str = None,
    requests: int = None,
    url: str = None,
    headers: dict = None,
    prometheus_url: str = None,
    reporter: str = "source",
    confidence: float = 0.95,
    min_requests: int = 100,
    concurrency: int = 10,
    secrets: dict = None,
) -> bool:
    """True when `version` answered `percent` % ± `tolerance_pp` percentage points of
    `service`'s requests, measured as observed_share does (same arguments), and at least
    `min_requests` were counted (too few is False, never a pass). Use it with tolerance true:
    "v3 gets 10 % ± 1 pp" is version "v3", percent 10, tolerance_pp 1. The measurement, with
    its interval, is in the probe's log line.
    """
    with boundary():
        observed = _observed(dict(locals()))
        within = share.share_is_within(observed, version, percent, tolerance_pp)
        low, high = observed.interval_of(version)
        logger.info(
            "%s %s: %.2f %% of %d requests (%.0f %% interval %.2f-%.2f %%), wanted %s ± %s pp: %s",
            service,
            version,
            100.0 * observed.share_of(version),
            observed.total,
            100.0 * observed.confidence,
            100.0 * low,
            100.0 * high,
            percent,
            tolerance_pp,
            "within" if within else "NOT within",
        )
        return within


_ARGUMENT_CHECKS["observed_share"] = _share_query
_ARGUMENT_CHECKS["share_is_within"] = _share_query


# ---------------------------------------------------------------- dark-launch leaks (leaks.py)


# ---------------------------------------------------------------- canary analysis (canary.py)
