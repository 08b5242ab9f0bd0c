"""What each fault hit: the experiment's requests that met it, counted by the data plane.

A fault can be injected and seen live and still meet none of the experiment's traffic: narrowed
to a header the probes never send, or put on a route the page never takes. Such a run tested
nothing. So the control counts, for each fault of the run, the requests it hit from the start of
the method until the run's rollback, and writes the counts into the journal
(``chaosmesh.faults``), where the verdict reads them (``chaosmesh_py.verdict.rules``).

How, by what the run wrote its faults through:

    local mesh   Envoy's own request counter per route (``envoy_stats.route_requests``): the
                 requests that took one of the fault's routes and ended with its flag (DI for a
                 delay, FI for an abort). Exact. The effect check's own requests carry
                 ``VERIFIER_HEADER`` and are left out. Envoy counts a request when it ends, so
                 after a delay the count waits (at most the longest delay) until no delay holds
                 a request: a page whose probe gave up before the delay ran out still counts.
    cluster      Istio's ``istio_requests_total`` (``reporter="source"``: the caller's proxy,
                 where Istio applies faults) through the Prometheus that configuration
                 ``chaosmesh_prometheus_url`` names: how much the requests to the fault's
                 destination services with its flag grew between the method's start and the
                 rollback, less the effect check's own requests that showed the fault. An
                 approximation: Istio's metrics have no route label, so another fault of the
                 same kind on the same service counts too, and a proxy restart (its counters
                 reset) undercounts. The count waits for a scrape after the rollback and the
                 longest delay, by Prometheus's clock (at most ``PROMETHEUS_WAIT_S`` more); a
                 count of 0 without one is "unknown".
    otherwise    "unknown", and why: the verdict treats it like an unverified fault.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from chaosmesh_py.engine.envoy_admin import EnvoyAdmin, EnvoyAdminError
from chaosmesh_py.errors import ChaosMeshError, InvalidInput, shown
from chaosmesh_py.istio import fault as istio_fault
from chaosmesh_py.kube import Kube
from chaosmesh_py.observe import envoy_stats, prometheus
from chaosmesh_py.observe.envoy_stats import FAULT_FLAGS, RouteRequests

logger = logging.getLogger("chaostoolkit")

PROMETHEUS_URL_KEY = "chaosmesh_prometheus_url"
PROMETHEUS_WAIT_S = 60.0
RELEASE_S = 1.0  # a request a delay let go reaches its destination and ends within this
UNKNOWN = "unknown"
_FQDN = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


@dataclass(frozen=True)
class Injected:
    """One fault a method injected, as its action reported it."""

    activity: str
    virtual_service: str
    kind: str  # "delay" or "abort"
    routes: tuple[str, ...]
    destinations: tuple[str, ...] = ()
    verifier_hits: int = 0  # requests of a check by request that showed the fault
    held_s: float = 0.0  # how long a delay holds a request
    # Copies later edits of the run composed onto the fault's routes: they carry it too.
    composed_routes: tuple[str, ...] = ()

    @property
    def counted_routes(self) -> tuple[str, ...]:
        return (*self.routes, *self.composed_routes)


@dataclass(frozen=True)
class Count:
    """What one fault hit; ``hits`` None when that cannot be known (``counted`` says why)."""

    fault: Injected
    hits: int | None
    counted: str
    requests: int | None = None  # requests that took its routes (local mesh only)
    by_route: Mapping[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "activity": self.fault.activity,
            "virtual_service": self.fault.virtual_service,
            "fault": self.fault.kind,
            "routes": list(self.fault.routes),
            **(
                {"composed_routes": list(self.fault.composed_routes)}
                if self.fault.composed_routes
                else {}
            ),
            "hits": UNKNOWN if self.hits is None else self.hits,
            "requests": self.requests,
            "by_route": dict(self.by_route),
            "counted": self.counted,
        }


@dataclass(frozen=True)
class Start:
    """The counters when the method started: its time, and each local mesh's route counts."""

    at: float  # Unix seconds
    baselines: Mapping[str, Mapping[str, RouteRequests]] = field(default_factory=dict)


def prometheus_url(configuration: Mapping[str, Any] | None) -> str | None:
    """Configuration ``chaosmesh_prometheus_url``, checked; None when not set (or empty, as an
    environment variable's default may leave it)."""
    url = (configuration or {}).get(PROMETHEUS_URL_KEY)
    if url is None or url == "":
        return None
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise InvalidInput(
            PROMETHEUS_URL_KEY,
            f"{shown(url)} is not an http(s) URL",
            "the Prometheus that scrapes the mesh's Istio metrics, e.g. http://prometheus:9090",
        )
    return url


def start(kube: Kube | None, route_prefix: str) -> Start:
    """Read the counters the method starts from; a local mesh's only if ``kube`` is one."""
    started = Start(time.time())
    mesh = _local_mesh(kube)
    if kube is None or mesh is None:
        return started
    try:
        with _admin(mesh) as admin:
            counts = envoy_stats.route_requests(admin, route_prefix)
    except (EnvoyAdminError, ValueError) as error:
        # Route names are new to a run unless its id is reused: counting from 0 is then right.
        logger.debug(f"chaosmesh: no hit baseline from Envoy: {error}")
        return started
    return Start(started.at, {kube.host: counts})


def count(
    faults: Sequence[Injected],
    apis: Sequence[Kube],
    started: Start | None,
    *,
    route_prefix: str,
    prometheus_url: str | None,
    removal_hits: Mapping[str, int] | None = None,
) -> list[Count]:
    """What each fault hit since ``started``, through the APIs the run wrote to. Never raises.

    ``removal_hits``: per VirtualService, the requests of removal checks by request that still
    showed a fault (a cluster's count leaves them out).
    """
    if not faults:
        return []
    if started is None:
        return [Count(f, None, "not counted: the method's start was not recorded") for f in faults]
    meshes = [(kube.host, _local_mesh(kube)) for kube in apis]
    if meshes and all(mesh is not None for _, mesh in meshes):
        try:
            return _count_on_local_meshes(faults, meshes, started, route_prefix)
        except (EnvoyAdminError, ValueError) as error:
            return [Count(f, None, f"Envoy's counters could not be read: {error}") for f in faults]
    if prometheus_url is None:
        why = (
            f"not counted: a cluster's requests are counted through Prometheus; set "
            f"configuration {PROMETHEUS_URL_KEY} to one that scrapes the mesh's Istio metrics"
        )
        return [Count(f, None, why) for f in faults]
    removal_hits = removal_hits or {}
    return [
        _count_by_prometheus(prometheus_url, f, started.at, removal_hits.get(f.virtual_service, 0))
        for f in faults
    ]


def injected_faults(
    runs: Iterable[Any], actions_module: str, composing_modules: Sequence[str] = ()
) -> list[Injected]:
    """The faults that a journal's ``run`` entries show injected by ``actions_module``.

    A later edit of the same route by the run (a fault, or a routing edit of
    ``composing_modules``) is composed onto the fault's copy: a new copy, in front, carrying the
    fault too (``chaosmesh_py.istio.route_copy``). The requests the fault meets from then on
    take that copy, so it is counted as the fault's too, unless the later edit is a fault of the
    same kind, which replaces it there."""
    found: list[Injected] = []
    for entry in runs:
        if not isinstance(entry, dict) or entry.get("status") != "succeeded":
            continue
        activity = entry.get("activity") or {}
        output = entry.get("output")
        module = (activity.get("provider") or {}).get("module")
        if module not in (actions_module, *composing_modules) or not isinstance(output, dict):
            continue
        injected = istio_fault.from_istio(output.get("fault") or {})
        found = _composed_onto(found, output, None if injected is None else injected.kind)
        if module != actions_module:
            continue
        effect = output.get("effect")
        effect = effect if isinstance(effect, dict) else {}
        found.append(
            Injected(
                activity=str(activity.get("name", "?")),
                virtual_service=str(output.get("virtual_service", "?")),
                kind="delay" if isinstance(injected, istio_fault.Delay) else "abort",
                routes=tuple(output.get("fault_routes") or output.get("routes") or ()),
                destinations=tuple(output.get("destinations") or ()),
                verifier_hits=int(effect.get("fault_shown") or 0),
                held_s=injected.fixed_delay_ms / 1000
                if isinstance(injected, istio_fault.Delay)
                else 0.0,
            )
        )
    return found


def _composed_onto(
    faults: list[Injected], output: Mapping[str, Any], kind: str | None
) -> list[Injected]:
    """``faults`` with the copies an edit's ``output`` composed onto their routes added."""
    composed = output.get("composed")
    if not isinstance(composed, dict) or not composed:
        return faults
    where = str(output.get("virtual_service", "?"))
    extended = []
    for fault in faults:
        added = tuple(
            str(new)
            for new, base in composed.items()
            if base in fault.counted_routes and new not in fault.counted_routes
        )
        carries_it = fault.virtual_service == where and fault.kind != kind and added
        extended.append(
            replace(fault, composed_routes=(*fault.composed_routes, *added))
            if carries_it
            else fault
        )
    return extended


def removal_checks(reports: Iterable[Any]) -> dict[str, int]:
    """Per VirtualService, the requests of removal checks that still showed a fault, from
    removal reports (``remove_faults`` outputs, the control's rollback)."""
    totals: dict[str, int] = {}
    for report in reports:
        if isinstance(report, dict) and isinstance(report.get("effect"), dict):
            name = str(report.get("virtual_service"))
            totals[name] = totals.get(name, 0) + int(report["effect"].get("fault_shown") or 0)
    return totals


def _count_on_local_meshes(
    faults: Sequence[Injected],
    meshes: Sequence[tuple[str, Mapping[str, Any] | None]],
    started: Start,
    route_prefix: str,
) -> list[Count]:
    held_s = max(f.held_s for f in faults)
    since: dict[str, RouteRequests] = {}
    for host, mesh in meshes:
        assert mesh is not None
        with _admin(mesh) as admin:
            _until_nothing_held(admin, held_s)
            counted = envoy_stats.route_requests(admin, route_prefix)
        baseline = started.baselines.get(host, {})
        for route, now in counted.items():
            grown = now - baseline.get(route, RouteRequests())
            before = since.get(route, RouteRequests())
            since[route] = RouteRequests(
                before.requests + grown.requests,
                before.delayed + grown.delayed,
                before.aborted + grown.aborted,
            )
    counts = []
    for fault in faults:
        by_route: dict[str, int] = {}
        taken = 0
        for name in fault.counted_routes:
            # Envoy names a route of a named match entry "<route>.<match>".
            mine = [c for r, c in since.items() if r == name or r.startswith(f"{name}.")]
            taken += sum(c.requests for c in mine)
            by_route[name] = sum(c.delayed if fault.kind == "delay" else c.aborted for c in mine)
        counts.append(
            Count(
                fault,
                sum(by_route.values()),
                "local mesh: Envoy's request counters of the fault's routes, from the start of "
                f"the method to the rollback, requests ended with flag {FAULT_FLAGS[fault.kind]}"
                " (the effect check's own left out)",
                requests=taken,
                by_route=by_route,
            )
        )
    return counts


def _until_nothing_held(admin: EnvoyAdmin, held_s: float) -> None:
    """Wait until no delay holds a request (at most ``held_s``), then until the requests it
    let go have ended (at most ``RELEASE_S``): Envoy counts a request when it ends."""
    if held_s <= 0:
        return
    for busy, most_s in (
        (envoy_stats.requests_held, held_s),
        (envoy_stats.active_requests, RELEASE_S),
    ):
        deadline = time.monotonic() + most_s
        while busy(admin) > 0 and time.monotonic() < deadline:
            time.sleep(0.05)


def _count_by_prometheus(url: str, fault: Injected, since: float, removal_hits: int) -> Count:
    destinations = [d for d in fault.destinations if _FQDN.match(d)]
    if not destinations:
        return Count(fault, None, "not counted: the injection reported no destination service")
    flag = FAULT_FLAGS[fault.kind]
    flagged = f'response_flags=~"(.*,)?{flag}(,.*)?"'
    try:
        fresh = _wait_for_scrape(url, destinations, settle_s=fault.held_s)
        if fresh is None:
            return Count(
                fault,
                None,
                f"not counted: Prometheus at {url} has no istio_requests_total to "
                f"{', '.join(destinations)}: does it scrape the mesh?",
            )
        before = after = 0.0
        for destination in destinations:
            selector = f'reporter="source",destination_service="{destination}",{flagged}'
            promql = f"sum(istio_requests_total{{{selector}}})"
            before += prometheus.query_value(url, promql, at=since, default=0)
            after += prometheus.query_value(url, promql, default=0)
    except ChaosMeshError as error:
        return Count(fault, None, f"Prometheus at {url} could not answer: {error}")
    own = fault.verifier_hits + removal_hits
    hits = max(int(after - before) - own, 0)
    how = (
        f"cluster: Prometheus {url}, istio_requests_total to {', '.join(destinations)} with flag "
        f"{flag} (reporter source) from the start of the method to the rollback, less {own} "
        "request(s) of the effect check; by service, not route (Istio has no route label)"
    )
    if not fresh:
        if hits == 0:
            return Count(
                fault,
                None,
                f"not counted: Prometheus at {url} did not scrape in {PROMETHEUS_WAIT_S:g} s "
                "after the rollback",
            )
        how += f"; at least: no scrape came in {PROMETHEUS_WAIT_S:g} s after the rollback"
    return Count(fault, hits, how)


def _wait_for_scrape(url: str, destinations: Sequence[str], settle_s: float) -> bool | None:
    """Whether Prometheus scraped the destinations' series ``settle_s`` from now (by its own
    clock: the time requests held by a delay need to end), waiting for it up to
    ``PROMETHEUS_WAIT_S`` more; None when it has no such series at all by then."""
    names = "|".join(re.escape(d).replace("\\", "\\\\") for d in destinations)
    selector = f'reporter="source",destination_service=~"{names}"'
    after = prometheus.query_value(url, "time()") + settle_s
    deadline = time.monotonic() + settle_s + PROMETHEUS_WAIT_S
    while True:
        results = prometheus.query(url, f"max(timestamp(istio_requests_total{{{selector}}}))")
        if results and results[0]["value"] >= after:
            return True
        if time.monotonic() > deadline:
            return False if results else None
        time.sleep(0.5)


def _local_mesh(kube: Kube | None) -> Mapping[str, Any] | None:
    if kube is None:
        return None
    try:
        return kube.local_mesh()
    except ChaosMeshError:
        return None


def _admin(mesh: Mapping[str, Any]) -> EnvoyAdmin:
    return EnvoyAdmin(str(mesh["envoy_admin_socket"]))
