"""Chaos Toolkit actions: routing edits (dark launch, canary step, mirror) as owned, exactly
removable route copies.

Each action checks every argument before it sends anything, then checks the cluster (named
hosts exist, subsets are defined by a DestinationRule) before it writes; it then adds a copy of
each targeted route, with the new destinations or the mirror, directly before the original
(see ``chaosmesh_py.istio.route_copy``; the original is never modified). Roll back with
``chaosmesh_py.traffic.rollbacks.remove_routing``, or declare the ``chaosmesh_py.control``
control and every copy of the run is removed when the experiment ends, whatever its status.
The logic is in ``chaosmesh_py.traffic.edits``.
"""

import inspect
from typing import Any

from chaosmesh_py.engine.access import needs
from chaosmesh_py.engine.activity import boundary
from chaosmesh_py.traffic import edits

__all__ = ["mirror_traffic", "route_to_version", "shift_traffic"]


# A route copy on the VirtualService (by host: a list of the namespace finds it first), the
# DestinationRules defining the subsets, and the Service / ServiceEntry of a named host.
@needs(edits.edit_needs)
def route_to_version(
    subset: str,
    virtual_service: str = None,
    host: str = None,
    namespace: str = "default",
    headers: dict = None,
    source_labels: dict = None,
    route_name: str = None,
    route_index: int = None,
    destination_host: str = None,
    allow_other_runs: bool = False,
    verify_url: str = None,
    configuration: dict = None,
    secrets: dict = None,
) -> dict:
    """Send a route's requests to one `subset` (a version) of its host: a dark launch.

    With `headers` ({"end-user": "jason"}, or {"end-user": {"prefix": "ja"}}) or `source_labels`
    only the matching requests go to the subset and everyone else is routed as before; without
    them, all of the route's traffic does. Target the VirtualService by `virtual_service` name
    or by a `host` it serves, in `namespace`; every HTTP route that forwards traffic is targeted
    unless `route_name` or `route_index` picks one. The subset is of the host the route sends
    to, or of `destination_host`. The subset must be defined by a DestinationRule for that host
    and a named host must exist (a Service or ServiceEntry); nothing is written otherwise.
    Refuses a VirtualService that carries another run's edits unless `allow_other_runs`.
    Then waits until the data plane routes to the subset (Envoy's config and real requests on
    the local mesh; requests to `verify_url` on a cluster), removing the edit if it never does.
    Returns the run id, the routes added, the edit, the time to effect and the verification.
    """
    with boundary():
        return edits.edit(edits.ROUTE_TO_VERSION, dict(locals()))


# As route_to_version.
@needs(edits.edit_needs)
def shift_traffic(
    weights: dict,
    virtual_service: str = None,
    host: str = None,
    namespace: str = "default",
    headers: dict = None,
    source_labels: dict = None,
    route_name: str = None,
    route_index: int = None,
    destination_host: str = None,
    allow_other_runs: bool = False,
    verify_url: str = None,
    configuration: dict = None,
    secrets: dict = None,
) -> dict:
    """Split a route's requests across subsets by weight: a canary step.

    `weights` maps each subset to a whole percentage, summing to 100: {"v1": 90, "v3": 10}.
    Targeting, narrowing (`headers`, `source_labels`: only matching requests are split),
    `destination_host`, the checks and the verification as for route_to_version; every
    weighted subset must be reached. Returns as route_to_version.
    """
    with boundary():
        return edits.edit(edits.SHIFT_TRAFFIC, dict(locals()))


# As route_to_version.
@needs(edits.edit_needs)
def mirror_traffic(
    percentage: float,
    subset: str = None,
    mirror_host: str = None,
    virtual_service: str = None,
    host: str = None,
    namespace: str = "default",
    headers: dict = None,
    source_labels: dict = None,
    route_name: str = None,
    route_index: int = None,
    allow_other_runs: bool = False,
    verify_url: str = None,
    configuration: dict = None,
    secrets: dict = None,
) -> dict:
    """Copy `percentage` % (above 0, at most 100) of a route's requests to a shadow: `subset`
    of the route's own host, or `mirror_host` (optionally with `subset`). Responses from the
    shadow are discarded; users keep getting the route's answers. Targeting, narrowing, the
    checks and the verification as for route_to_version (the mirror's own counters must move).
    Returns as route_to_version.
    """
    with boundary():
        return edits.edit(edits.MIRROR_TRAFFIC, dict(locals()))


def check_arguments(
    action: str, arguments: dict[str, Any], configuration: dict[str, Any] | None
) -> None:
    """Raise InvalidInput if ``action`` would refuse ``arguments``; sends nothing."""
    bound = inspect.signature(globals()[action]).bind(**arguments)
    bound.apply_defaults()
    edits.prepare(action, {**bound.arguments, "configuration": configuration})
