"""Chaos Toolkit actions: inject Istio faults as owned, exactly removable edits.

Each action validates every argument before it sends anything, then adds a copy of each
targeted route, carrying the extra match and the fault, directly before the original (see
``chaosmesh_py.istio.route_copy``). Roll back with
``chaosmesh_py.faults.rollbacks.remove_faults``, or declare the ``chaosmesh_py.control`` control
and every fault of the run is removed when the experiment ends, whatever its status.
"""

import inspect
from collections.abc import Callable
from typing import Any

from chaosmesh_py.engine import redaction
from chaosmesh_py.engine.access import needs
from chaosmesh_py.engine.activity import boundary
from chaosmesh_py.engine.kinds import ROUTE_COPY, edit_verbs
from chaosmesh_py.engine.run import run_for
from chaosmesh_py.faults import injection
from chaosmesh_py.istio import fault, route_copy
from chaosmesh_py.istio.fault import Fault
from chaosmesh_py.kube import Kube

__all__ = ["inject_abort", "inject_delay"]


# A route copy on the VirtualService (by host: a list of the namespace finds it first); the
# control's rollback removes it the same way.
@needs(lambda arguments: injection.target_needs(arguments, edit_verbs(ROUTE_COPY)))
def inject_delay(
    fixed_delay: str,
    percentage: float,
    virtual_service: str = None,
    host: str = None,
    namespace: str = "default",
    route_name: str = None,
    route_index: int = None,
    headers: dict = None,
    source_labels: dict = None,
    allow_other_runs: bool = False,
    verify_url: str = None,
    configuration: dict = None,
    secrets: dict = None,
) -> dict:
    """Delay requests to a VirtualService's routes by `fixed_delay` (e.g. "7s", "200ms").

    `percentage` (0.0001-100) of the matching requests are delayed; Istio injects nothing
    without it. Target the VirtualService by `virtual_service` name or by a `host` it serves, in
    `namespace`. Every HTTP route that forwards traffic is targeted unless `route_name` or
    `route_index` (counting the routes as written, from 0) picks one. `headers` narrows the
    fault to matching requests: {"end-user": "jason"} for an exact match, or
    {"end-user": {"prefix": "ja"}} (exact, prefix or regex). `source_labels` narrows it to
    callers whose pods carry those labels. The fault is applied by the calling side's sidecar.
    Refuses a VirtualService that carries another run's faults unless `allow_other_runs`.
    Then waits until the data plane shows the fault (Envoy's own config and a real request, on
    the local mesh; on a cluster, requests to `verify_url`, a URL whose traffic takes the
    faulted route) and fails, removing it again, if it never does.
    Returns the run id, the fault, the names of the routes added and the time to effect.
    """
    with boundary():
        return _inject(inject_delay.__name__, dict(locals()))


# As inject_delay.
@needs(lambda arguments: injection.target_needs(arguments, edit_verbs(ROUTE_COPY)))
def inject_abort(
    percentage: float,
    http_status: int = None,
    grpc_status: str = None,
    virtual_service: str = None,
    host: str = None,
    namespace: str = "default",
    route_name: str = None,
    route_index: int = None,
    headers: dict = None,
    source_labels: dict = None,
    allow_other_runs: bool = False,
    verify_url: str = None,
    configuration: dict = None,
    secrets: dict = None,
) -> dict:
    """Answer requests to a VirtualService's routes at once with an error, without calling it.

    Give exactly one of `http_status` (200-599, e.g. 503) or `grpc_status` (a gRPC code name,
    e.g. "UNAVAILABLE"). `percentage` (0.0001-100) of the matching requests are aborted; Istio
    injects nothing without it. Targeting and narrowing as for inject_delay: `virtual_service`
    or `host` in `namespace`, optional `route_name` / `route_index`, `headers`,
    `source_labels`, `allow_other_runs`, and `verify_url` to check the effect on a cluster. An
    injected abort is never retried by the caller's retry policy. Returns the run id, the
    fault, the names of the routes added and the time to effect.
    """
    with boundary():
        return _inject(inject_abort.__name__, dict(locals()))


_FAULTS: dict[str, Callable[[dict[str, Any]], Fault]] = {
    "inject_delay": lambda a: fault.parse_delay(a["fixed_delay"], a["percentage"]),
    "inject_abort": lambda a: fault.parse_abort(
        a["percentage"], a["http_status"], a["grpc_status"]
    ),
}


def check_arguments(
    action: str, arguments: dict[str, Any], configuration: dict[str, Any] | None
) -> None:
    """Raise InvalidInput if ``action`` would refuse ``arguments``; sends nothing."""
    bound = inspect.signature(globals()[action]).bind(**arguments)
    bound.apply_defaults()
    _prepare(action, {**bound.arguments, "configuration": configuration})


def _prepare(
    action: str, arguments: dict[str, Any]
) -> tuple[injection.Settings, injection.Target, route_copy.Injection]:
    """Every check that needs no API request, in the order users read the arguments."""
    settings = injection.Settings.from_configuration(arguments["configuration"])
    chosen = _FAULTS[action](arguments)
    targeting = injection.parse_targeting(arguments, settings)
    return settings, targeting.target, targeting.injection(chosen)


def _inject(action: str, arguments: dict[str, Any]) -> dict[str, Any]:
    # The ledger keeps no secret: the control remembers the experiment's; without it, these.
    redaction.remember(arguments["secrets"])
    settings, target, request = _prepare(action, arguments)
    kube = Kube.connect(arguments["secrets"])
    ref = injection.resolve(kube, target, settings.kind)
    run = run_for(arguments["configuration"])
    return injection.inject(
        kube,
        ref,
        request,
        run,
        allow_other_runs=arguments["allow_other_runs"],
        verify_timeout_s=settings.verify_timeout_s,
        verify_url=arguments["verify_url"],
    )
