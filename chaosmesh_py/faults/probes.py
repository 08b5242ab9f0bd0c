"""Chaos Toolkit probes: which faults are in place, read from the cluster."""

import logging

from chaosmesh_py.engine import vanished
from chaosmesh_py.engine.access import needs, on
from chaosmesh_py.engine.activity import boundary
from chaosmesh_py.engine.run import run_for
from chaosmesh_py.errors import NotFound
from chaosmesh_py.faults import injection
from chaosmesh_py.istio import route_copy
from chaosmesh_py.istio.owner_record import record_of
from chaosmesh_py.kube import Kube, virtual_service_kind

logger = logging.getLogger("chaostoolkit")

__all__ = [
    "fault_is_injected",
    "list_owned_faults",
]


@needs(lambda arguments: injection.target_needs(arguments, ["get"]))
def fault_is_injected(
    virtual_service: str = None,
    host: str = None,
    namespace: str = "default",
    configuration: dict = None,
    secrets: dict = None,
) -> bool:
    """True when the VirtualService (by name, or by a `host` it serves, in `namespace`) carries
    this run's fault routes and owner annotation, as the API server holds it now.

    This reads the Istio resource; whether the data plane applies it is a separate question,
    answered by probing traffic. When another writer (a rollout controller) removed the fault,
    the log says which, when and, where the API names it, who.
    """
    with boundary():
        settings = injection.Settings.from_configuration(configuration)
        target = injection.parse_target(namespace, virtual_service, host, settings)
        run = run_for(configuration)
        kube = Kube.connect(secrets)
        ref = injection.resolve(kube, target, settings.kind)
        try:
            resource = kube.get(ref)
        except NotFound as error:
            raise injection.not_found(kube, ref) from error
        owner = record_of(resource, run.run_id)
        present = {r.get("name") for r in route_copy.run_routes(resource, run.run_id)}
        live = owner is not None and bool(present) and set(owner.routes) <= present
        why = None if live else vanished.explain(run.run_id, ref)
        if why is not None:  # the False a probe returns cannot say it: the log does
            logger.warning(f"chaosmesh: fault_is_injected: no, {why}")
        return live


# Without a namespace: every namespace (a ClusterRole).
@needs(lambda arguments: on(virtual_service_kind(), ["list"], arguments["namespace"]))
def list_owned_faults(
    namespace: str = None, configuration: dict = None, secrets: dict = None
) -> list:
    """Every fault any chaosmesh run holds, across all namespaces (or only `namespace`): run id,
    VirtualService, route names, expiry and whether it has expired. An empty list means no
    chaos is in place."""
    with boundary():
        settings = injection.Settings.from_configuration(configuration)
        if namespace is not None:
            injection.parse_namespace(namespace)
        return injection.owned_faults(Kube.connect(secrets), settings.kind, namespace)
