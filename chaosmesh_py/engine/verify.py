"""Effect verification: confirm the data plane does what the resource now says.

An accepted write proves only that the API server holds the fault. Istio may not have pushed it
yet (clusters report p90 convergence of 1.5-4.5 s), the route may match no traffic, a caller may
have no sidecar. So after an injection the fault must be seen firing, and after a rollback it
must be seen gone, within a time box; the measured time-to-effect goes into the activity's
output, hence the journal.

On the local mesh (its API publishes the mesh's ConfigMap, ``Kube.local_mesh``) the check reads
Envoy itself, through its owner-only admin socket (``chaosmesh_py.engine.envoy_admin``):
1. config: Envoy's admin ``config_dump`` holds the fault routes (or no longer does); when Envoy
   rejected the configuration, the resource's status says why (``chaosmesh_py.istio.status``)
   and the check fails at once with Envoy's reason;
2. traffic: real requests through a sidecar that carries the route, with the headers the fault
   matches, until Envoy's fault counters move (or, after rollback, a request passes untouched).
   A delay is seen the moment Envoy starts holding the request: no need to wait it out.

A header narrowing by prefix or regex is checked with a value derived from it
(``chaosmesh_py.istio.string_match``); only when none can be derived does the check stop at the
configuration, and the report says why. Every request the check sends carries
``VERIFIER_HEADER``, so that what the fault hit counts only the experiment's own traffic
(``chaosmesh_py.observe.hits``); a check by request reports how many of its requests showed
the fault (``fault_shown``), for the same reason.

On a cluster there is no Envoy admin to read from here. Given a ``verify_url`` (a URL whose
requests take the faulted route: the service's address from a pod in the mesh, or an ingress URL
bound to the VirtualService), the check sends real requests there, with the headers the fault
matches, until one shows the fault's signature (the abort status; a response at least as slow as
the delay) or, after a rollback, until one comes back without it. Without one, the report says
the data plane was not checked, and why.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import requests

from chaosmesh_py.engine.envoy_admin import EnvoyAdmin
from chaosmesh_py.errors import ChaosMeshError
from chaosmesh_py.istio.fault import Delay, Fault
from chaosmesh_py.istio.string_match import NoMatchingValue, matching_value

POLL_S = 0.005
# How often the resource's status is read for a rejection while waiting for Envoy's config.
REJECTION_POLL_S = 0.05
# Marks the requests of the check, so that they are not counted among the fault's hits.
VERIFIER_HEADER = "x-chaosmesh-verifier"
HOLD_S = 0.5  # the longest a request of the check waits for its answer on the local mesh

# Why the data plane rejected the configuration just written, or None (it did not, or not yet).
RejectionCheck = Callable[[], str | None]


class FaultNotObserved(ChaosMeshError):
    """The data plane did not show the change within the time box."""


class DataPlaneRejected(FaultNotObserved):
    """The data plane refused the configuration; the message quotes its reason."""


@dataclass(frozen=True)
class Expectation:
    """What the data plane should show: ``routes`` present (with ``fault`` firing) or gone."""

    routes: tuple[str, ...]
    present: bool
    fault: Fault | None  # a removal on the local mesh: None, no fault of either kind may fire
    host: str
    headers: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    path: str = "/"
    traffic: bool = True  # False: faults of others on the same routes would blur the evidence
    source_labels: Mapping[str, str] = field(default_factory=dict)
    gateways: tuple[str, ...] = ()  # the VirtualService's; empty means the mesh only


def verify_on_local_mesh(
    mesh: Mapping[str, Any],
    expected: Expectation,
    timeout_s: float,
    rejection: RejectionCheck | None = None,
) -> dict[str, Any]:
    """Wait for Envoy to reflect ``expected``; the report's times are seconds from now.

    ``rejection`` is asked now and then while Envoy lacks the change: a reason fails the wait
    at once (DataPlaneRejected).
    """
    with EnvoyAdmin(str(mesh["envoy_admin_socket"])) as admin:
        return _verify_on_local_mesh(admin, mesh, expected, timeout_s, rejection)


def _verify_on_local_mesh(
    admin: EnvoyAdmin,
    mesh: Mapping[str, Any],
    expected: Expectation,
    timeout_s: float,
    rejection: RejectionCheck | None,
) -> dict[str, Any]:
    started = time.monotonic()
    deadline = started + timeout_s
    holding = should_hold(mesh, expected)
    if expected.present and not holding:
        raise FaultNotObserved(
            f"no workload of the mesh has the labels {dict(expected.source_labels)}: "
            "the fault can never fire"
        )
    holders = wait_for_config(admin, expected, holding, deadline, rejection)
    config_s = time.monotonic() - started
    report: dict[str, Any] = {
        "checked": "local mesh: Envoy config and requests",
        "config_s": config_s,
    }
    workload = calling_workload(mesh, holders if expected.present else None)
    if not expected.traffic:
        report["traffic"] = "the routes carry faults of their own; config check only"
        return report
    if workload is None:
        report["traffic"] = "no sidecar routes to this host; config check only"
        return report
    name, caller = workload
    try:
        headers = request_headers(expected.headers)
    except NoMatchingValue as error:
        report["traffic"] = f"{error}; config check only"
        return report
    headers["Host"] = authority(mesh, expected.host)
    probe = _TrafficProbe(
        admin=admin,
        url=f"{caller['sidecar_url']}{expected.path}",
        headers=headers,
        counters=tuple(
            f"http.{caller['stat_prefix']}.fault.{kind}s_injected"
            for kind in ((expected.fault.kind,) if expected.fault else ("delay", "abort"))
        ),
    )
    if expected.fault is not None:
        requests_sent = _until_fault_fires(probe, expected.fault, deadline)
    else:
        requests_sent = _passes_untouched(probe, deadline)
    report.update(
        traffic=f"{requests_sent} request(s) through {name}'s sidecar",
        traffic_s=time.monotonic() - started,
    )
    return report


def should_hold(mesh: Mapping[str, Any], expected: Expectation) -> set[str]:
    """The route configurations that must carry the routes: the ingress's for a VirtualService
    bound only to gateways, else every sidecar whose workload has the source labels."""
    if expected.gateways and "mesh" not in expected.gateways:
        return {"ingress"}
    return {
        workload["route_config"]
        for workload in mesh.get("workloads", {}).values()
        if all(workload["labels"].get(k) == v for k, v in expected.source_labels.items())
    }


def wait_for_config(
    admin: EnvoyAdmin,
    expected: Expectation,
    should_hold: set[str],
    deadline: float,
    rejection: RejectionCheck | None,
) -> list[str]:
    """Route configurations holding any of the routes, once every one that should has them
    (injection), or none at all has (removal)."""
    wanted = set(expected.routes)
    next_rejection_check = time.monotonic()
    while True:
        holders = [name for name, routes in route_names_by_config(admin).items() if wanted & routes]
        if should_hold.issubset(holders) if expected.present else not holders:
            return holders
        if rejection is not None and time.monotonic() >= next_rejection_check:
            reason = rejection()
            if reason is not None:
                raise DataPlaneRejected(reason)
            next_rejection_check = time.monotonic() + REJECTION_POLL_S
        if time.monotonic() > deadline:
            state = "never reached" if expected.present else "never left"
            raise FaultNotObserved(
                f"the fault routes {sorted(wanted)} {state} Envoy's configuration in time"
            )
        time.sleep(POLL_S)


def route_names_by_config(admin: EnvoyAdmin) -> dict[str, set[str]]:
    return {
        config: {str(route.get("name", "")) for route in routes}
        for config, routes in routes_by_config(admin).items()
    }


def routes_by_config(admin: EnvoyAdmin) -> dict[str, list[dict[str, Any]]]:
    """Envoy's routes as it holds them, by route configuration (sidecar or ingress)."""
    dump = admin.get_json("/config_dump", {"resource": "dynamic_route_configs"})
    found = {}
    for entry in dump.get("configs", []):
        config = entry.get("route_config", {})
        found[str(config.get("name", ""))] = [
            route for host in config.get("virtual_hosts", []) for route in host.get("routes", [])
        ]
    return found


def calling_workload(
    mesh: Mapping[str, Any], holders: list[str] | None
) -> tuple[str, Mapping[str, Any]] | None:
    """A workload whose sidecar has the route (any sidecar when checking a removal)."""
    for name, workload in sorted(mesh.get("workloads", {}).items()):
        if holders is None or workload.get("route_config") in holders:
            return name, workload
    return None


def request_headers(narrowing: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    """Headers a request needs to meet the narrowing, plus the verifier's mark.

    Raises NoMatchingValue, naming the header, when no value can be derived for one.
    """
    headers = {VERIFIER_HEADER: "1"}
    for name, condition in narrowing.items():
        try:
            headers[name] = matching_value(condition)
        except NoMatchingValue as error:
            raise NoMatchingValue(f"header {name}: {error}") from None
    return headers


def authority(mesh: Mapping[str, Any], host: str) -> str:
    service = mesh.get("services", {}).get(host.split(".", 1)[0], {})
    return str(service.get("host", host))


@dataclass(frozen=True)
class _TrafficProbe:
    """Requests through one sidecar, and the Envoy counter that says a fault fired."""

    admin: EnvoyAdmin
    url: str
    headers: Mapping[str, str]
    counters: tuple[str, ...]

    def fired(self) -> int:
        values = self.admin.counters("|".join(f"^{c}$" for c in self.counters))
        return sum(value for name, value in values.items() if name in self.counters)

    def send(self, timeout_s: float) -> threading.Thread:
        """Fire a request in the background: a delayed one need not be waited for."""

        def call() -> None:
            with contextlib.suppress(requests.RequestException):
                requests.get(self.url, headers=dict(self.headers), timeout=timeout_s)

        thread = threading.Thread(target=call, daemon=True, name="verify-request")
        thread.start()
        return thread


def _until_fault_fires(probe: _TrafficProbe, fault: Fault, deadline: float) -> int:
    sent = 0
    while time.monotonic() < deadline:
        before = probe.fired()
        # Not held for the whole delay: once it started, the request has shown what it had to,
        # and one held on would be waited for when the run counts what its faults hit.
        request = probe.send(timeout_s=min(max(deadline - time.monotonic(), 0.1), HOLD_S))
        sent += 1
        # Envoy counts a fault when it starts applying it: a delayed request is still held.
        while True:
            if probe.fired() > before:
                return sent
            if not request.is_alive() or time.monotonic() > deadline:
                break
            time.sleep(POLL_S)
    raise FaultNotObserved(
        f"the fault is in Envoy's configuration, but {sent} request(s) to {probe.url} "
        f"({fault.describe()}) never showed it in {', '.join(probe.counters)}"
    )


def _passes_untouched(probe: _TrafficProbe, deadline: float) -> int:
    before = probe.fired()
    wait_s = max(deadline - time.monotonic(), 0.1)
    probe.send(timeout_s=wait_s).join(wait_s)
    if probe.fired() > before:
        raise FaultNotObserved(
            f"the fault routes left Envoy's configuration, but a request to {probe.url} "
            "still met a fault"
        )
    return 1


def verify_by_request(url: str, expected: Expectation, timeout_s: float) -> dict[str, Any]:
    """Requests to ``url`` until one shows (or, for a removal, lacks) the fault's signature."""
    fault = expected.fault
    if fault is None:
        return {"checked": "no: requests cannot show a fault that is not known"}
    try:
        headers = request_headers(expected.headers)
    except NoMatchingValue as error:
        return {"checked": f"no: requests cannot show this fault ({error})"}
    held_s = fault.fixed_delay_ms / 1000 if isinstance(fault, Delay) else 0.0
    started = time.monotonic()
    # A delay can only be seen by waiting it out: the time box starts after it.
    deadline = started + timeout_s + held_s
    sent = 0
    shown = 0  # the check's own requests the fault hit: not the experiment's
    while time.monotonic() < deadline:
        sent += 1
        showed = _shows(fault, url, headers, held_s, deadline)
        shown += showed
        if showed == expected.present:
            return {
                "checked": f"requests to {url}",
                "traffic": f"{sent} request(s)",
                "traffic_s": time.monotonic() - started,
                "fault_shown": shown,
            }
        time.sleep(POLL_S)
    state = "never showed" if expected.present else "still showed"
    raise FaultNotObserved(f"{sent} request(s) to {url} {state} the fault ({fault.describe()})")


def _shows(
    fault: Fault, url: str, headers: Mapping[str, str], held_s: float, deadline: float
) -> bool:
    started = time.monotonic()
    try:
        answer = requests.get(url, headers=dict(headers), timeout=max(deadline - started, 0.1))
    except requests.RequestException:
        return False
    if isinstance(fault, Delay):
        # Envoy's timer may fire a hair early; anything near the delay is the delay.
        return time.monotonic() - started >= 0.95 * held_s
    if fault.http_status is not None:
        return answer.status_code == fault.http_status
    return "grpc-status" in answer.headers
