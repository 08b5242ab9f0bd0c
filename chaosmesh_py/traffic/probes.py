"""Chaos Toolkit probes for traffic: what users get, measured, not what the configuration says.

Three families, each a thin surface over its own module:
- the observed share of requests per version (``chaosmesh_py.traffic.share``);
- the dark-launch leak check (``chaosmesh_py.traffic.leaks``);
- canary analysis, canary against baseline (``chaosmesh_py.traffic.canary``).
"""

import dataclasses
import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

from chaosmesh_py import checks
from chaosmesh_py.engine.access import Access, needs, on
from chaosmesh_py.engine.activity import boundary
from chaosmesh_py.errors import InvalidInput
from chaosmesh_py.kube import SERVICE, Kube
from chaosmesh_py.kube.names import is_namespace, parse_namespace
from chaosmesh_py.observe import prometheus_source
from chaosmesh_py.observe.prometheus import istio_promql
from chaosmesh_py.traffic import canary, leaks, share
from chaosmesh_py.traffic.entries import Entry, parse_entries

__all__ = [
    "canary_analysis",
    "canary_is_healthy",
    "dark_launch_leaks",
    "observed_share",
    "share_is_within",
]

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
        return prometheus_source.needs(arguments)
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
        prometheus_source.url(arguments["prometheus_url"] or "", secrets)
        if query.window is not None
        else ""
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


def _dark_launch_needs(arguments: Mapping[str, Any]) -> list[Access]:
    """It lists the namespace's Services (other Services selecting the hidden pods are ways in);
    everything else is HTTP."""
    return on(SERVICE, ["list"], arguments["namespace"])


@needs(_dark_launch_needs)
def dark_launch_leaks(
    service: str,
    hidden_version: str,
    testers: dict,
    namespace: str = "default",
    path: str = "/",
    ingress_path: str = None,
    via: list = None,
    entries: list = None,
    requests_per_entry: int = 20,
    served_by: str = leaks.PODNAME_PATTERN,
    hidden_name: str = None,
    testers_must_reach: bool = True,
    concurrency: int = 10,
    timeout_s: float = 5.0,
    secrets: dict = None,
) -> dict:
    """Is `hidden_version` of `service` really hidden from everyone but `testers`? Real
    requests through every way in: `requests_per_entry` without the tester match, which must
    never be served by the hidden version, and as many with it where the match is honoured
    (ingress, in-mesh callers), which must all be.

    `testers`: {"headers": {"end-user": "jason"}} and/or {"source_labels": {"app": "tester"}}.
    `path`: a path of the service that answers with its server's identity (Bookinfo's
    /reviews/0); `ingress_path`: a page behind the ingress that calls the service and passes
    the identity on (/api/v1/products/0/reviews), with `via` the services in between
    (["productpage"]) so a hop that drops the tester match is named. `served_by`: a regular
    expression whose group 1 is the server's name in a response (default: Bookinfo's
    "podname"); the hidden version is `hidden_name` (default "<service>-<hidden_version>") or a
    pod named after it.

    `entries`: on the local mesh, discovered when not given (the ingress, every workload's
    sidecar, the service without a sidecar, every other Service selecting the hidden pods). On
    a cluster, list them: [{"name", "url", "path"?, "host"?, "kind": "ingress" | "sidecar" |
    "no-sidecar" | "service", "via"?, "caller_labels"?}].

    `testers_must_reach` false: the testers' gaps are reported, not counted ("no one but the
    testers sees it", true before a dark launch exists as after).

    Returns hidden (bool), findings (how many of leaks, tester_gaps, unidentified, unanswered,
    not_checked), each as sentences naming the path ("no-sidecar client via Service reviews ->
    reviews-v2: 7 of 20 requests"), and per entry what was sent and who answered. Check it
    with {"type": "range", "range": [0, 0], "target": "findings"}.
    """
    with boundary():
        check, given = _dark_launch_arguments(locals())
        return leaks.check_dark_launch(
            Kube.connect(secrets),
            check,
            namespace,
            path=path,
            ingress_path=ingress_path,
            via=via or [],
            entries=given,
        )


def _dark_launch_arguments(arguments: Mapping[str, Any]) -> tuple[leaks.Check, list[Entry] | None]:
    """The check and the given entries, every argument checked (before any request)."""
    service, version = arguments["service"], arguments["hidden_version"]
    check = leaks.Check(
        service=_kubernetes_name("service", service),
        hidden_version=checks.text("hidden_version", version),
        hidden_name=(
            f"{service}-{version}"
            if arguments["hidden_name"] is None
            else checks.text("hidden_name", arguments["hidden_name"])
        ),
        testers=leaks.parse_testers(arguments["testers"]),
        served_by=_served_by(arguments["served_by"]),
        requests_per_entry=checks.whole(
            "requests_per_entry", arguments["requests_per_entry"], 1, leaks.MAX_REQUESTS_PER_ENTRY
        ),
        timeout_s=checks.seconds("timeout_s", arguments["timeout_s"]),
        concurrency=checks.whole("concurrency", arguments["concurrency"], 1, 100),
        testers_must_reach=checks.flag("testers_must_reach", arguments["testers_must_reach"]),
    )
    parse_namespace(arguments["namespace"])
    path = arguments["path"]
    for field in ("path", "ingress_path"):
        value = arguments[field]
        if value is not None and (not isinstance(value, str) or not value.startswith("/")):
            raise InvalidInput(field, f"must start with '/', not {value!r}", "/reviews/0")
    via = arguments["via"]
    if via is not None and (
        not isinstance(via, list) or not all(isinstance(v, str) and v for v in via)
    ):
        raise InvalidInput("via", f"must be a list of service names, not {via!r}")
    entries = arguments["entries"]
    return check, None if entries is None else parse_entries(entries, path)


_ARGUMENT_CHECKS["dark_launch_leaks"] = _dark_launch_arguments


def _kubernetes_name(field: str, value: Any) -> str:
    if not is_namespace(value):  # a Service's name is a DNS-1123 label, as a namespace's
        raise InvalidInput(field, f"{value!r} is not a Kubernetes name (DNS-1123 label)")
    return str(value)


def _served_by(pattern: Any) -> re.Pattern[str]:
    try:
        compiled = re.compile(pattern)
    except (re.error, TypeError) as error:
        raise InvalidInput("served_by", f"is not a regular expression: {error}") from None
    if compiled.groups < 1:
        raise InvalidInput(
            "served_by",
            "has no group: group 1 must capture the server's name",
            leaks.PODNAME_PATTERN,
        )
    return compiled


# ---------------------------------------------------------------- canary analysis (canary.py)

_EXPECTED = (None, "pass", "fail")


def _comparison(arguments: Mapping[str, Any]) -> canary.Comparison:
    """The canary probes' arguments, checked: nothing is asked of anyone."""
    if arguments.get("expect") not in _EXPECTED:
        raise InvalidInput(
            "expect", f"{arguments['expect']!r} is neither 'pass' nor 'fail'", "or leave it out"
        )
    criteria = canary.Criteria(
        arguments["min_requests"],
        arguments["max_error_ratio_delta"],
        arguments["max_latency_ratio"],
        arguments["confidence"],
    )
    return canary.Comparison(
        arguments["service"],
        arguments["canary_version"],
        arguments["baseline_version"],
        arguments["namespace"],
        arguments["reporter"],
        arguments["window"],
        criteria,
        arguments["calls_to"],
    )


def _analysis(arguments: Mapping[str, Any]) -> canary.Analysis:
    comparison = _comparison(arguments)
    url = prometheus_source.url(arguments["prometheus_url"] or "", arguments["secrets"])
    analysis = canary.analyse_canary(url, comparison)
    for reason in analysis.reasons:
        logger.info("canary %s of %s: %s", comparison.canary_version, comparison.service, reason)
    return analysis


@needs(prometheus_source.needs)
def canary_analysis(
    service: str,
    canary_version: str,
    baseline_version: str,
    reporter: str,
    namespace: str = "default",
    window: str = "1m",
    prometheus_url: str = None,
    min_requests: int = 100,
    max_error_ratio_delta: float = 0.01,
    max_latency_ratio: float = 1.5,
    confidence: float = 0.95,
    calls_to: str = None,
    expect: str = None,
    secrets: dict = None,
) -> dict:
    """Canary analysis: `canary_version` of `service` against `baseline_version` over the last
    `window`, from Istio's metrics in the Prometheus at `prometheus_url` (empty: the local
    mesh's). `reporter` must be chosen: "source" (the caller's proxy, which also counts what it
    failed itself: injected aborts, timeouts it gave up on) or "destination" (the workload's
    proxy: only requests that reached it, as Flagger's checks see them).

    Errors (5xx, and 0: no answer) by a two-proportion z-test; latency by a Mann-Whitney U test
    on the histogram buckets. The canary fails when a test is significant at `confidence` and
    the difference exceeds `max_error_ratio_delta` (error ratio, absolute) or
    `max_latency_ratio` (p50 or p99, canary over baseline). Fewer than `min_requests` requests
    for either version: "insufficient", never "pass". With `calls_to` (e.g. "ratings"), the
    versions' calls to that service are compared instead (by source_version): a version that
    hides its dependency's failures behind a 200 shows them there.

    Returns {"verdict": "pass" | "fail" | "insufficient", "reasons", "canary" and "baseline"
    (requests, errors, error_ratio, error_ratio_interval, latency_ms p50/p99), "tests" (each
    test, its statistic and p_value), "unattributed" (source only: requests the caller failed
    before a version was chosen), ...}.

    `expect` ("pass" or "fail"), for an experiment's method, where Chaos Toolkit checks no
    tolerance: the probe fails, and the run's verdict with it, when the verdict is another
    ("insufficient" always is), e.g. "fail" to assert that the analysis flags a broken canary.
    """
    with boundary():
        analysis = _analysis(locals())
        if expect is not None and analysis.verdict != expect:
            raise canary.UnexpectedVerdict(
                f"the canary analysis of {service} {canary_version} against {baseline_version} "
                f"({analysis.compared}) says {analysis.verdict}, not {expect}: "
                + ("; ".join(analysis.reasons) or "no test flagged the canary")
            )
        return analysis.to_json()


@needs(prometheus_source.needs)
def canary_is_healthy(
    service: str,
    canary_version: str,
    baseline_version: str,
    reporter: str,
    namespace: str = "default",
    window: str = "1m",
    prometheus_url: str = None,
    min_requests: int = 100,
    max_error_ratio_delta: float = 0.01,
    max_latency_ratio: float = 1.5,
    confidence: float = 0.95,
    calls_to: str = None,
    secrets: dict = None,
) -> bool:
    """canary_analysis, judged: True when the canary passes, False when the analysis flags it.
    Too few requests to judge is neither: the probe fails (naming the counts), so neither
    tolerance true nor false can be met by a canary nobody measured. In a steady-state
    hypothesis, tolerance true is the canary gate; tolerance false asserts that the analysis
    flags the canary."""
    with boundary():
        analysis = _analysis({**locals(), "expect": None})
        if analysis.verdict == "insufficient":
            raise canary.InsufficientData(
                "too few requests to judge the canary: " + "; ".join(analysis.reasons)
            )
        return analysis.verdict == "pass"


_ARGUMENT_CHECKS["canary_analysis"] = _comparison
_ARGUMENT_CHECKS["canary_is_healthy"] = _comparison
