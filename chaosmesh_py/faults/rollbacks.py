"""Chaos Toolkit rollbacks: remove exactly what this run injected.

``remove_faults`` deletes this run's route copies and its owner annotation and nothing else:
routes and faults that were there before, and edits others made during the experiment, stay.
It is idempotent: calling it twice, after a partial injection, or on a VirtualService that was
deleted meanwhile is safe and reports what it removed.
"""

from chaosmesh_py.engine.access import needs
from chaosmesh_py.engine.activity import boundary
from chaosmesh_py.faults import injection

__all__ = ["remove_faults"]


@needs(injection.removal_needs)
def remove_faults(
    virtual_service: str = None,
    host: str = None,
    namespace: str = "default",
    configuration: dict = None,
    secrets: dict = None,
) -> list:
    """Remove every fault this run injected.

    With `virtual_service` (or a `host` it serves) in `namespace`, only that VirtualService is
    cleaned; with neither, every resource this run wrote to during the experiment. Another
    run's faults, earlier faults and everybody else's routes are left as they are. Returns one
    entry per VirtualService with the names of the routes removed (empty when there was
    nothing left to remove).
    """
    with boundary():
        return injection.remove_targeted(virtual_service, host, namespace, configuration, secrets)
