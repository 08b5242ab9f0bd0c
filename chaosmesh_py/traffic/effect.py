"""Effect verification for routing edits: the data plane sends traffic where the copy says.

An accepted write proves only that the API server holds the copy. On the local mesh (its API
publishes the mesh's ConfigMap, ``Kube.local_mesh``) Envoy itself is read, through its admin:

1. config: every sidecar that should carry the copy holds a route of that name
   (``chaosmesh_py.engine.verify.wait_for_config``; a rejection in the resource's status fails
   at once), and Envoy's route does what the copy says: the cluster, or the weighted clusters
   with their weights, or the mirror policy with its fraction
   (``outbound|<port>|<subset>|<host>``, as istiod names them);
2. traffic: real requests through a sidecar that carries the copy, with the narrowing headers,
   while Envoy's per-cluster counters (``cluster.<name>.upstream_rq_total``) are read:
   - route_to_version: every verifying request is counted on the subset's cluster;
   - shift_traffic: every subset with a weight above 0 is reached;
   - mirror_traffic: the mirror's cluster counts requests (the users' answers still come from
     the route's own destinations: the mirror's are discarded by Envoy).
   The counters are Envoy's, shared by every request: other traffic to the same subset at the
   same moment could be counted too; the report gives both what was sent and what was counted.

The time to effect is from the end of the write to the first verifying request counted where
the copy sends it. When the effect is never seen within the time box, EditNotObserved (the
caller removes the copies again).

On a cluster no Envoy can be read from here. Given ``verify_url`` (a URL whose requests take the
edited route), requests with the narrowing headers are sent and their answers reported: that
the route answers at all. Which version answered, or whether a mirror received a copy, cannot be
seen from outside the mesh; the observed-share probe (Istio's metrics by destination_version)
measures it, and the report says so.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import requests

from chaosmesh_py.engine import verify
from chaosmesh_py.engine.envoy_admin import EnvoyAdmin
from chaosmesh_py.faults import injection
from chaosmesh_py.istio import route_copy, routing
from chaosmesh_py.istio.string_match import NoMatchingValue
from chaosmesh_py.kube import Kube, ResourceRef

# Requests route_to_version sends: each must land on the subset.
LANDING_REQUESTS = 5
# The most requests a shift or a mirror check sends before giving up (with the time box).
MAX_REQUESTS = 5_000
# How often (in requests) the counters are read while waiting for a rare subset or mirror.
READ_EVERY = 10
REQUEST_TIMEOUT_S = 2.0
URL_REQUESTS = 5


class EditNotObserved(verify.FaultNotObserved):
    """The data plane did not show the routing edit within the time box."""


@dataclass(frozen=True)
class Cluster:
    """An Envoy cluster as istiod names it: ``outbound|<port>|<subset>|<fqdn>``."""

    subset: str
    fqdn: str

    @classmethod
    def parse(cls, name: str) -> Cluster | None:
        parts = name.split("|")
        if len(parts) != 4 or parts[0] != "outbound":
            return None
        return cls(parts[2], parts[3])

    def shown(self) -> str:
        return f"{self.fqdn} {self.subset or '(all)'}"


def verify_edit(
    kube: Kube,
    ref: ResourceRef,
    written: Mapping[str, Any],
    request: route_copy.Injection,
    *,
    timeout_s: float,
    verify_url: str | None,
) -> dict[str, Any]:
    """Wait until the data plane shows the edit; the report's times are seconds from now."""
    copies = route_copy.copy_names(written, request)
    if verify_url is not None:
        return _by_request(verify_url, request)
    mesh = kube.local_mesh()
    if mesh is None:
        return {
            "checked": "no: a cluster's data plane cannot be read from here; give verify_url "
            "to check that the route answers, and measure who answers with the observed "
            "share probe",
            "time_to_effect_s": None,
        }
    expected = verify.Expectation(
        routes=tuple(copies),
        present=True,
        fault=None,
        host=injection.first_host(written),
        headers=request.headers,
        path=injection.request_path(written, copies[0]),
        source_labels=request.source_labels,
        gateways=tuple(written["spec"].get("gateways") or ()),
    )
    change = request.change
    if not isinstance(change, routing.Destinations | routing.Mirror):
        raise TypeError(f"verify_edit checks routing edits, not a {change.kind}")
    wanted = {name: _wanted(written, name, str(ref.namespace)) for name in copies}
    with EnvoyAdmin(str(mesh["envoy_admin_socket"])) as admin:
        return _on_local_mesh(
            admin,
            mesh,
            expected,
            wanted,
            _traffic(change, list(wanted.values())),
            timeout_s=timeout_s,
            rejection=injection.rejection_check(kube, ref, written),
        )


@dataclass(frozen=True)
class _Wanted:
    """What Envoy should do for one copy: send to ``clusters`` (with weights), and mirror."""

    clusters: tuple[tuple[Cluster, int], ...]  # where traffic goes, with its weight
    # Where it is mirrored, with the percentage: a mirror the route had, then ours.
    mirrors: tuple[tuple[Cluster, float], ...]


def _wanted(written: Mapping[str, Any], name: str, namespace: str) -> _Wanted:
    route = next(r for r in written["spec"]["http"] if r.get("name") == name)

    def cluster(destination: Mapping[str, Any]) -> Cluster:
        host = routing.qualified(str(destination.get("host", "")), namespace)
        return Cluster(str(destination.get("subset") or ""), host)

    clusters = tuple(
        (cluster(d.get("destination") or {}), int(d.get("weight", 100)))
        for d in route.get("route") or []
        if int(d.get("weight", 100)) > 0
    )
    mirrors: list[tuple[Cluster, float]] = []
    if route.get("mirror"):
        value = (route.get("mirrorPercentage") or {}).get("value", 100)
        mirrors.append((cluster(route["mirror"]), float(value)))
    for mirror in route.get("mirrors") or []:
        value = (mirror.get("percentage") or {}).get("value", 100)
        mirrors.append((cluster(mirror.get("destination") or {}), float(value)))
    return _Wanted(clusters, tuple(mirrors))


LANDS, REACHES, MIRRORED = "lands", "reaches", "mirrored"


@dataclass(frozen=True)
class _Traffic:
    """What the verifying requests must show. They take one copy, the first whose match they
    meet, so this holds for whichever they take:
    - ``lands``: every request counted on one of ``targets`` (one subset; or copies of routes
      to different hosts);
    - ``reaches``: every one of ``targets`` counts requests (the weighted subsets);
    - ``mirrored``: one of ``targets`` (our mirror) counts requests, beyond those the requests
      themselves account for when it is also one of ``primaries`` (where requests go)."""

    kind: str
    targets: tuple[Cluster, ...]
    primaries: frozenset[Cluster] = frozenset()


def _traffic(change: routing.RoutingChange, wanted: Sequence[_Wanted]) -> _Traffic:
    if isinstance(change, routing.Mirror):
        ours = tuple(dict.fromkeys(w.mirrors[-1][0] for w in wanted))
        primaries = frozenset(c for w in wanted for c, _ in w.clusters)
        return _Traffic(MIRRORED, ours, primaries)
    targets = tuple(dict.fromkeys(c for w in wanted for c, _ in w.clusters))
    alike = all(w.clusters == wanted[0].clusters for w in wanted)
    if alike and len(targets) > 1:
        return _Traffic(REACHES, targets)
    return _Traffic(LANDS, targets)


def _on_local_mesh(
    admin: EnvoyAdmin,
    mesh: Mapping[str, Any],
    expected: verify.Expectation,
    wanted: Mapping[str, _Wanted],
    traffic: _Traffic,
    *,
    timeout_s: float,
    rejection: verify.RejectionCheck,
) -> dict[str, Any]:
    started = time.monotonic()
    deadline = started + timeout_s
    holding = verify.should_hold(mesh, expected)
    if not holding:
        raise EditNotObserved(
            f"no workload of the mesh has the labels {dict(expected.source_labels)}: "
            "no request can ever take the edited route"
        )
    try:
        holders = verify.wait_for_config(admin, expected, holding, deadline, rejection)
    except verify.DataPlaneRejected:
        raise
    except verify.FaultNotObserved:
        raise EditNotObserved(
            f"the routes {list(expected.routes)} never reached Envoy's configuration "
            f"in {timeout_s:g}s"
        ) from None
    _check_envoy_routes(admin, holders, wanted)
    report: dict[str, Any] = {
        "checked": "local mesh: Envoy config and requests",
        "config_s": time.monotonic() - started,
        "envoy_routes": "as written: "
        + "; ".join(dict.fromkeys(_shown_wanted(w) for w in wanted.values())),
    }
    workload = verify.calling_workload(mesh, holders)
    try:
        headers = verify.request_headers(expected.headers)
    except NoMatchingValue as error:
        report.update(traffic=f"{error}; config check only", time_to_effect_s=None)
        return report
    if workload is None:  # only the ingress carries it: a VirtualService bound to gateways
        report.update(
            traffic="no sidecar carries the route; config check only", time_to_effect_s=None
        )
        return report
    name, caller = workload
    headers["Host"] = verify.authority(mesh, expected.host)
    sender = _Sender(admin, f"{caller['sidecar_url']}{expected.path}", headers, traffic)
    counted = sender.run(started, deadline)
    report.update(
        traffic=f"{counted.sent} request(s) through {name}'s sidecar",
        requests_sent=counted.sent,
        answers=dict(counted.statuses),
        counted={c.shown(): n for c, n in counted.by_cluster.items()},
        time_to_effect_s=counted.effect_s,
    )
    return report


def _check_envoy_routes(
    admin: EnvoyAdmin, holders: Sequence[str], wanted: Mapping[str, _Wanted]
) -> None:
    """Envoy's route of each copy does what the copy says, in every holder."""
    by_config = verify.routes_by_config(admin)
    for config in holders:
        for route in by_config.get(config, []):
            expected = wanted.get(str(route.get("name")))
            if expected is None:
                continue
            action = route.get("route") or {}
            if action.get("cluster"):
                found_clusters = [(Cluster.parse(str(action["cluster"])), 100)]
            else:
                found_clusters = [
                    (Cluster.parse(str(c.get("name", ""))), int(c.get("weight", 0)))
                    for c in (action.get("weighted_clusters") or {}).get("clusters") or []
                ]
            found_mirrors = [
                Cluster.parse(str(p.get("cluster", "")))
                for p in action.get("request_mirror_policies") or []
            ]
            if sorted(found_clusters, key=repr) != sorted(expected.clusters, key=repr) or any(
                mirror not in found_mirrors for mirror, _ in expected.mirrors
            ):
                raise EditNotObserved(
                    f"Envoy's route {route.get('name')} in {config} sends to "
                    f"{_shown_clusters(found_clusters)} mirroring to "
                    f"{[m.shown() for m in found_mirrors if m] or 'nothing'}, not as written: "
                    f"{_shown_wanted(expected)}"
                )


def _shown_clusters(clusters: Sequence[tuple[Cluster | None, int]]) -> str:
    return ", ".join(f"{c.shown() if c else '?'} ({w})" for c, w in clusters) or "nothing"


def _shown_wanted(wanted: _Wanted) -> str:
    text = "to " + _shown_clusters(wanted.clusters)
    if wanted.mirrors:
        text += ", mirroring " + ", ".join(f"{p:g}% to {c.shown()}" for c, p in wanted.mirrors)
    return text


@dataclass
class _Counted:
    """What a traffic check sent, what came back, and what Envoy counted where."""

    sent: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    by_cluster: dict[Cluster, int] = field(default_factory=dict)
    effect_s: float | None = None


class _Sender:
    """Requests through one sidecar, and Envoy's per-cluster request counters around them."""

    def __init__(
        self, admin: EnvoyAdmin, url: str, headers: Mapping[str, str], traffic: _Traffic
    ) -> None:
        self.admin = admin
        self.url = url
        self.headers = dict(headers)
        self.traffic = traffic
        self.watched = list(dict.fromkeys([*traffic.targets, *sorted(traffic.primaries, key=repr)]))
        self.session = requests.Session()

    def _counts(self) -> dict[Cluster, int]:
        pattern = "|".join(
            re.escape("cluster.outbound|") + "[0-9]*" + re.escape(f"|{c.subset}|{c.fqdn}")
            for c in self.watched
        )
        counts = dict.fromkeys(self.watched, 0)
        for name, value in self.admin.counters(f"({pattern})\\.upstream_rq_total$").items():
            cluster = Cluster.parse(
                name.removeprefix("cluster.").removesuffix(".upstream_rq_total")
            )
            if cluster in counts:
                counts[cluster] += value
        return counts

    def _send(self, counted: _Counted) -> None:
        counted.sent += 1
        try:
            answer = self.session.get(self.url, headers=self.headers, timeout=REQUEST_TIMEOUT_S)
            counted.statuses[str(answer.status_code)] += 1
        except requests.RequestException as error:
            counted.statuses[type(error).__name__] += 1

    def run(self, started: float, deadline: float) -> _Counted:
        counted = _Counted()
        try:
            if self.traffic.kind == LANDS:
                return self._every_request_lands(counted, started, deadline)
            return self._until_reached(counted, started, deadline)
        finally:
            self.session.close()

    def _every_request_lands(self, counted: _Counted, started: float, deadline: float) -> _Counted:
        targets = self.traffic.targets
        before = self._counts()
        while counted.sent < LANDING_REQUESTS and time.monotonic() < deadline:
            self._send(counted)
            deltas = _deltas(before, self._counts())
            if counted.effect_s is None and any(deltas[c] > 0 for c in targets):
                counted.effect_s = time.monotonic() - started
        counted.by_cluster = _deltas(before, self._counts())
        landed = sum(counted.by_cluster[c] for c in targets)
        if counted.sent < LANDING_REQUESTS or landed < counted.sent:
            where = " or ".join(c.shown() for c in targets)
            raise EditNotObserved(
                f"{counted.sent} request(s) to {self.url} through the edited route, "
                f"{landed} counted on {where} (answers: {dict(counted.statuses)})"
            )
        return counted

    def _shown(self, counted: _Counted, deltas: Mapping[Cluster, int]) -> set[Cluster]:
        """The targets the counts show reached. A mirror on a cluster the requests may also
        go to (another copy's, or the route's own destination) is shown by counts beyond one
        per request sent: each request has exactly one primary destination."""
        if self.traffic.kind != MIRRORED:
            return {c for c in self.traffic.targets if deltas[c] > 0}
        beyond_requests = sum(deltas[c] for c in self.watched) - counted.sent
        return {
            c
            for c in self.traffic.targets
            if (beyond_requests > 0 if c in self.traffic.primaries else deltas[c] > 0)
        }

    def _until_reached(self, counted: _Counted, started: float, deadline: float) -> _Counted:
        # A mirror: any copy's mirror seen is the edit seen; weights: every subset reached.
        wanted = 1 if self.traffic.kind == MIRRORED else len(self.traffic.targets)
        before = self._counts()
        while counted.sent < MAX_REQUESTS and time.monotonic() < deadline:
            self._send(counted)
            if counted.sent % READ_EVERY and counted.sent > 1:
                continue
            deltas = _deltas(before, self._counts())
            reached = self._shown(counted, deltas)
            if reached and counted.effect_s is None:
                counted.effect_s = time.monotonic() - started
            if len(reached) >= wanted:
                counted.by_cluster = deltas
                return counted
        counted.by_cluster = _deltas(before, self._counts())
        reached = self._shown(counted, counted.by_cluster)
        missing = [c.shown() for c in self.traffic.targets if c not in reached]
        raise EditNotObserved(
            f"{counted.sent} request(s) to {self.url} through the edited route never reached "
            f"{', '.join(missing)} (counted: "
            f"{ {c.shown(): n for c, n in counted.by_cluster.items()} })"
        )


def _deltas(before: Mapping[Cluster, int], after: Mapping[Cluster, int]) -> dict[Cluster, int]:
    return {cluster: after[cluster] - before.get(cluster, 0) for cluster in after}


def _by_request(url: str, request: route_copy.Injection) -> dict[str, Any]:
    """Requests to ``url`` with the narrowing headers: what can be seen from outside."""
    try:
        headers = verify.request_headers(request.headers)
    except NoMatchingValue as error:
        return {"checked": f"no: {error}", "time_to_effect_s": None}
    statuses: Counter[str] = Counter()
    with requests.Session() as session:
        for _ in range(URL_REQUESTS):
            try:
                answer = session.get(url, headers=headers, timeout=REQUEST_TIMEOUT_S)
                statuses[str(answer.status_code)] += 1
            except requests.RequestException as error:
                statuses[type(error).__name__] += 1
    return {
        "checked": f"requests to {url}: answered as listed; which version answered (or whether "
        "a mirror got a copy) cannot be seen from outside the mesh: measure it with the "
        "observed share probe",
        "requests_sent": URL_REQUESTS,
        "answers": dict(statuses),
        "time_to_effect_s": None,
    }
