"""Chaos Toolkit rollbacks: remove exactly what this run injected.

``remove_faults`` deletes this run's route copies and its owner annotation and nothing else:
routes and faults that were there before, and edits others made during the experiment, stay.
It is idempotent: calling it twice, after a partial injection, or on a VirtualService that was
deleted meanwhile is safe and reports what it removed.
"""

from collections.abc import Mapping
from typing import Any

from chaosmesh_py.engine.access import Access, needs
from chaosmesh_py.engine.activity import boundary
from chaosmesh_py.engine.kinds import ROUTE_COPY, edit_verbs
from chaosmesh_py.engine.run import run_for
from chaosmesh_py.faults import injection
from chaosmesh_py.kube import Kube

__all__ = ["remove_faults"]


def _removal_needs(arguments: Mapping[str, Any]) -> list[Access]:
    if arguments["virtual_service"] is None and arguments["host"] is None:
        return []  # only what the run's injections wrote to: their needs cover it
    return injection.target_needs(arguments, edit_verbs(ROUTE_COPY))


@needs(_removal_needs)
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
        settings = injection.Settings.from_configuration(configuration)
        run = run_for(configuration)
        if virtual_service is None and host is None:
            return [
                injection.remove_for_run(kube, ref, run, settings.verify_timeout_s)
                for kube, ref in run.touched()
            ]
        target = injection.parse_target(namespace, virtual_service, host, settings)
        kube = Kube.connect(secrets)
        ref = injection.resolve(kube, target, settings.kind)
        return [injection.remove_for_run(kube, ref, run, settings.verify_timeout_s)]
