"""Chaos Toolkit rollbacks for routing edits: remove exactly what this run added.

Routing edits are route copies like faults, so removal is the faults' removal
(``chaosmesh_py.faults.injection.remove_for_run``): this run's copies and its owner record go,
and nothing else; weights, routes and mirrors that others wrote meanwhile (a rollout
controller's steps) stay as they are now, never as they were before the run. Idempotent: twice,
after a partial edit, or on a VirtualService deleted meanwhile is safe.
"""

from chaosmesh_py.engine.access import needs
from chaosmesh_py.engine.activity import boundary
from chaosmesh_py.faults import injection

__all__ = ["remove_routing"]


@needs(injection.removal_needs)
def remove_routing(
    virtual_service: str = None,
    host: str = None,
    namespace: str = "default",
    configuration: dict = None,
    secrets: dict = None,
) -> list:
    """Remove this run's routing edits (and any other route copy of the run) from the
    VirtualService `virtual_service` (or the one serving `host`) in `namespace`; with neither,
    from every resource the run wrote to. Returns one entry per VirtualService with the names
    of the routes removed (empty when there was nothing left to remove).
    """
    with boundary():
        return injection.remove_targeted(virtual_service, host, namespace, configuration, secrets)
