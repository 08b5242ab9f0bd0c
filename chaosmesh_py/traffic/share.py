"""The observed share of a service's requests per version: what users got, not what the
VirtualService's weights say, with a confidence interval on each share.

Two ways to count, one answer (``ObservedShare``):

- over a window, from Istio's metrics: ``sum by (destination_version) (increase(
  istio_requests_total{reporter, destination_service_name, destination_service_namespace}
  [window]))`` (``chaosmesh_py.observe.prometheus``, question ``requests_by_version``). The same
  query on a cluster and on the local mesh. ``increase`` extrapolates to the window's edges, so
  counts are rounded estimates; the window should span at least four scrape intervals.
- over a number of requests, on the local mesh: send them (``chaosmesh_py.observe.load``) and
  read Envoy before and after. Every request is attributed to the workload that answered it:
  the request counter the local mesh's access logger keeps (tagged with the upstream cluster
  and host; what ``istio_requests_total`` is made from, without waiting for a scrape) gives the
  requests *routed* to each endpoint, and each endpoint's ``rq_total`` in ``/clusters`` the
  upstream requests it *received*. The difference is the copies a mirror policy sent it (and
  retries, which the routes under test should not have): reported as ``mirrored``, never in the
  share, since no user got those answers.

A version is the ``version`` label of the workload that answered (Istio's
``destination_version``); ``unknown`` when no workload did (a fault's abort, no route). The
counters count every caller's requests to the service, not only the probe's own: measure on a
quiet service, or read the share as that of all traffic in the meantime.

Too few requests say nothing: below ``min_requests`` a request count is refused before anything
is sent, and a window with fewer is reported ``sufficient: false`` (``share_is_within`` is then
False, never a pass).
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from chaosmesh_py import checks
from chaosmesh_py.engine.envoy_admin import EnvoyAdmin
from chaosmesh_py.errors import InvalidInput, NotFound
from chaosmesh_py.kube import Kube
from chaosmesh_py.observe import prometheus
from chaosmesh_py.observe.envoy_stats import REQUEST_COUNTER, REQUEST_STATS_SCOPE, VERIFIER_TAG
from chaosmesh_py.observe.exposition import parse_text
from chaosmesh_py.observe.load import MAX_CONCURRENCY, MAX_REQUESTS, LoadSpec, run_load
from chaosmesh_py.observe.statistics import wilson_interval, z_for

DEFAULT_MIN_REQUESTS = 100
UNKNOWN_VERSION = "unknown"
METHOD_PROMETHEUS = "prometheus"
METHOD_ENVOY = "envoy_counters"
# Envoy counts a request when it ends and a mirror's copy when it starts: read until two
# readings this far apart agree, for at most SETTLE_TIMEOUT_S.
SETTLE_INTERVAL_S = 0.1
SETTLE_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class VersionCount:
    """Requests one version answered, and the mirrored copies it received besides."""

    version: str
    requests: int
    mirrored: int = 0


@dataclass(frozen=True)
class ObservedShare:
    """Requests per version of one service, and each version's share with its interval."""

    service: str
    namespace: str
    method: str
    counts: tuple[VersionCount, ...]
    confidence: float
    min_requests: int
    # How the counts were taken: window and reporter, or the requests sent and their answers.
    measured: Mapping[str, Any] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(count.requests for count in self.counts)

    @property
    def sufficient(self) -> bool:
        return self.total >= self.min_requests

    def requests_of(self, version: str) -> int:
        return sum(count.requests for count in self.counts if count.version == version)

    def share_of(self, version: str) -> float:
        return self.requests_of(version) / self.total if self.total else 0.0

    def interval_of(self, version: str) -> tuple[float, float]:
        return wilson_interval(self.requests_of(version), self.total, self.confidence)

    def to_json(self) -> dict[str, Any]:
        versions = {}
        for count in sorted(self.counts, key=lambda count: count.version):
            low, high = self.interval_of(count.version)
            share = self.share_of(count.version)
            versions[count.version] = {
                "requests": count.requests,
                "share": share,
                "percent": round(100.0 * share, 3),
                "interval": [low, high],
                "interval_percent": [round(100.0 * low, 3), round(100.0 * high, 3)],
                "mirrored": count.mirrored,
            }
        document: dict[str, Any] = {
            "service": self.service,
            "namespace": self.namespace,
            "method": self.method,
            "total": self.total,
            "versions": versions,
            "confidence": self.confidence,
            "sufficient": self.sufficient,
            "min_requests": self.min_requests,
            **self.measured,
        }
        if not self.sufficient:
            document["reason"] = (
                f"{self.total} request(s) counted, fewer than min_requests = {self.min_requests}:"
                " too few to say what share each version gets"
            )
            if self.measured.get("sent"):
                document["reason"] += (
                    f"; {self.measured['sent']} were sent to {self.measured.get('url')}: does"
                    f" that URL reach {self.service}?"
                )
        return document


@dataclass(frozen=True)
class ShareQuery:
    """What to count and how sure to be; checked whole before any request is made."""

    service: str
    namespace: str = "default"
    window: str | None = None
    requests: int | None = None
    url: str | None = None
    headers: Mapping[str, str] | None = None
    reporter: str = "source"
    confidence: float = 0.95
    min_requests: int = DEFAULT_MIN_REQUESTS
    concurrency: int = 10
    timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if (self.window is None) == (self.requests is None):
            raise InvalidInput(
                "window/requests",
                "give exactly one: a window of Istio's metrics, or a number of requests to send",
                'e.g. "window": "1m", or "requests": 1000 (local mesh)',
            )
        z_for(self.confidence)  # its own InvalidInput, naming the field
        checks.whole("min_requests", self.min_requests, 1, MAX_REQUESTS)
        if self.requests is not None:
            checks.whole("requests", self.requests, 1, MAX_REQUESTS)
            checks.whole("concurrency", self.concurrency, 1, MAX_CONCURRENCY)
            if self.requests < self.min_requests:
                raise InvalidInput(
                    "requests",
                    f"{self.requests} is fewer than min_requests = {self.min_requests}, too few "
                    "to say what share each version gets (10 % of 100 requests is 10 ± 6)",
                    f"send at least {self.min_requests}; for ±1 percentage point around 10 %, "
                    "about 3,500 (95 %)",
                )
        elif self.url is not None or self.headers:
            raise InvalidInput(
                "url/headers",
                "only apply when requests are sent; a window counts the traffic there was",
                "drop them, or give requests instead of window",
            )


def observed_share(
    query: ShareQuery, prometheus_url: str, secrets: dict[str, Any] | None
) -> ObservedShare:
    """Count ``query``: from Prometheus over its window, or by sending its requests through the
    local mesh. ``prometheus_url`` must already be resolved (an empty one is the caller's to
    turn into the local mesh's)."""
    if query.window is not None:
        return _from_prometheus(query, prometheus_url)
    return _from_envoy(query, secrets)


def share_is_within(
    observed: ObservedShare, version: str, percent: float, tolerance_pp: float
) -> bool:
    """True when enough requests were counted and ``version``'s observed share is within
    ``percent`` ± ``tolerance_pp`` percentage points."""
    check_percent(percent, tolerance_pp)
    if not observed.sufficient:
        return False
    observed_percent = 100.0 * observed.share_of(version)
    # A hair of slack: 10.0 ± 1 must hold at exactly 9.0 % despite binary fractions.
    return abs(observed_percent - percent) <= tolerance_pp + 1e-9


def check_percent(percent: float, tolerance_pp: float) -> None:
    for name, value in (("percent", percent), ("tolerance_pp", tolerance_pp)):
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
            raise InvalidInput(name, f"must be a number, got {value!r}", "e.g. 10")
        if not 0 <= value <= 100:
            raise InvalidInput(name, f"must be between 0 and 100, got {value}", "e.g. 10")


# --- from Istio's metrics ---------------------------------------------------------------------


def _from_prometheus(query: ShareQuery, url: str) -> ObservedShare:
    assert query.window is not None
    promql = prometheus.istio_promql(
        "requests_by_version", query.service, query.namespace, query.window, query.reporter
    )
    counts = Counter[str]()
    for series in prometheus.query(url, promql):
        value = series["value"]
        if math.isfinite(value):
            counts[series["metric"].get("destination_version") or UNKNOWN_VERSION] += round(value)
    return ObservedShare(
        query.service,
        query.namespace,
        METHOD_PROMETHEUS,
        tuple(VersionCount(version, n) for version, n in sorted(counts.items()) if n > 0),
        query.confidence,
        query.min_requests,
        {"window": query.window, "reporter": query.reporter, "promql": promql},
    )


# --- by sending requests through the local mesh -----------------------------------------------


@dataclass(frozen=True)
class _Reading:
    routed: Counter[str]  # per version: requests whose answer came from it
    received: Counter[str]  # per version: every upstream request it got


def _from_envoy(query: ShareQuery, secrets: dict[str, Any] | None) -> ObservedShare:
    mesh = Kube.connect(secrets).local_mesh()
    if mesh is None:
        raise NotFound(
            "observed_share with requests counts through the local mesh's Envoy, and this API "
            "is a cluster's: give window (Istio's metrics in Prometheus) instead"
        )
    service = mesh["services"].get(query.service)
    if service is None or query.namespace != mesh.get("namespace", query.namespace):
        raise InvalidInput(
            "service",
            f"no service {query.service!r} in namespace {query.namespace!r} on the local mesh",
            f"one of {sorted(mesh['services'])} in {mesh.get('namespace')!r}",
        )
    spec = LoadSpec(
        query.url or service["url"] + "/",
        "GET",
        dict(query.headers or {}),
        requests=query.requests,
        concurrency=query.concurrency,
        timeout_s=query.timeout_s,
    )
    versions = _versions_by_address(mesh)
    with EnvoyAdmin(mesh["envoy_admin_socket"]) as admin:
        before = _read(admin, service["fqdn"], versions)
        sent = run_load(spec).to_json()
        after = _settled(admin, service["fqdn"], versions)
    routed = after.routed - before.routed
    received = after.received - before.received
    counts = tuple(
        VersionCount(version, routed[version], max(0, received[version] - routed[version]))
        for version in sorted(routed.keys() | received.keys())
        if routed[version] or received[version]
    )
    return ObservedShare(
        query.service,
        query.namespace,
        METHOD_ENVOY,
        counts,
        query.confidence,
        query.min_requests,
        {"url": spec.url, "sent": sent["requests"], "statuses": sent["statuses"]},
    )


def _versions_by_address(mesh: Mapping[str, Any]) -> dict[str, str]:
    """``127.0.0.1:<port>`` of each workload's endpoint in Envoy (its pod's inbound, or its app
    where the mesh has no inbound sidecars) -> its version label."""
    return {
        str(url).removeprefix("http://"): workload["labels"].get("version", UNKNOWN_VERSION)
        for workload in mesh["workloads"].values()
        for url in (workload.get("app_url"), workload.get("pod_url"))
        if url
    }


def _settled(admin: EnvoyAdmin, fqdn: str, versions: Mapping[str, str]) -> _Reading:
    reading = _read(admin, fqdn, versions)
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while time.monotonic() < deadline:
        time.sleep(SETTLE_INTERVAL_S)
        again = _read(admin, fqdn, versions)
        if again == reading:
            break
        reading = again
    return reading


def _read(admin: EnvoyAdmin, fqdn: str, versions: Mapping[str, str]) -> _Reading:
    return _Reading(_routed(admin, fqdn, versions), _received(admin, fqdn, versions))


def _is_service_cluster(cluster: str, fqdn: str) -> bool:
    """``outbound|<port>|<subset>|<fqdn>``: any port, any subset (or none)."""
    parts = cluster.split("|")
    return len(parts) == 4 and parts[0] == "outbound" and parts[3] == fqdn


def _routed(admin: EnvoyAdmin, fqdn: str, versions: Mapping[str, str]) -> Counter[str]:
    """Requests to the service's clusters that ended, by the version whose endpoint answered
    (the access logger's counter; chaosmesh's own verifier's requests left out)."""
    text = admin.get(
        "/stats/prometheus",
        {"usedonly": "", "filter": rf"^{REQUEST_STATS_SCOPE}\.{REQUEST_COUNTER}\."},
    ).decode()
    counts = Counter[str]()
    for sample in parse_text(text):
        labels = dict(sample.labels)
        if not _is_service_cluster(labels.get("upstream_cluster", ""), fqdn):
            continue
        if labels.get(VERIFIER_TAG, "") not in ("", "-"):
            continue
        version = versions.get(labels.get("upstream_host", ""), UNKNOWN_VERSION)
        counts[version] += int(sample.value)
    return counts


def _received(admin: EnvoyAdmin, fqdn: str, versions: Mapping[str, str]) -> Counter[str]:
    """Upstream requests each endpoint of the service's clusters got (``/clusters``' per-host
    ``rq_total``: routed requests, their retries, and mirrored copies)."""
    counts = Counter[str]()
    for cluster in admin.get_json("/clusters", {"format": "json"}).get("cluster_statuses", []):
        if not _is_service_cluster(str(cluster.get("name", "")), fqdn):
            continue
        for host in cluster.get("host_statuses", []):
            socket_address = host.get("address", {}).get("socket_address", {})
            address = f"{socket_address.get('address')}:{socket_address.get('port_value')}"
            for stat in host.get("stats", []):
                if stat.get("name") == "rq_total":
                    # Envoy's JSON leaves a zero value out and writes uint64 as a string.
                    counts[versions.get(address, UNKNOWN_VERSION)] += int(stat.get("value", 0))
    return counts


@contextmanager
def copies_counted(mesh: Mapping[str, Any], fqdn: str) -> Iterator[Counter[str]]:
    """Per version, the upstream requests the service's endpoints received beyond those they
    answered (mirrored copies, and retries) while the block ran, on the local mesh: the counter
    yielded is filled when the block ends, once Envoy's counters settle."""
    versions = _versions_by_address(mesh)
    copies = Counter[str]()
    with EnvoyAdmin(mesh["envoy_admin_socket"]) as admin:
        before = _read(admin, fqdn, versions)
        yield copies
        after = _settled(admin, fqdn, versions)
    received = after.received - before.received
    routed = after.routed - before.routed
    copies.update({v: received[v] - routed[v] for v in received if received[v] > routed[v]})
