"""Chaos Toolkit probes: what faults are in place, read from the cluster."""

from chaosmesh_py import edit, envoy_stats, injection
from chaosmesh_py.activity import boundary
from chaosmesh_py.errors import InvalidInput, NotFound
from chaosmesh_py.kube import Kube
from chaosmesh_py.run import run_for

__all__ = ["envoy_counters", "fault_is_injected", "list_owned_faults"]


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
    answered by probing traffic.
    """
    with boundary():
        settings = injection.Settings.from_configuration(configuration)
        target = injection.parse_target(namespace, virtual_service, host, settings)
        run = run_for(configuration)
        kube = Kube.connect(secrets)
        resource = kube.get(injection.resolve(kube, target, settings.kind))
        owner = edit.ownership_of(resource, run.run_id)
        present = {r.get("name") for r in edit.run_routes(resource, run.run_id)}
        return owner is not None and bool(present) and set(owner.routes) <= present


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


def envoy_counters(workload: str = None, service: str = None, secrets: dict = None) -> dict:
    """Local mesh only: Envoy's counters for a calling `workload`'s sidecar (requests,
    responses_5xx, aborts_injected, delays_injected) and/or for a destination `service`, all
    its subsets summed (requests, responses_5xx, retries, timeouts, pending_overflows,
    connection_overflows, ejections). Counters only grow: compare two readings, e.g. with a
    jsonpath tolerance on `service.retries`. On a cluster, ask Prometheus instead.
    """
    with boundary():
        if workload is None and service is None:
            raise InvalidInput("workload/service", "give at least one of them")
        mesh = Kube.connect(secrets).local_mesh()
        if mesh is None:
            raise NotFound("envoy_counters reads the local mesh's Envoy; this API is a cluster's")
        admin = mesh["envoy_admin_url"]
        counters: dict = {}
        if workload is not None:
            if workload not in mesh["workloads"]:
                raise InvalidInput(
                    "workload", f"no workload {workload!r}", f"one of {sorted(mesh['workloads'])}"
                )
            stat_prefix = mesh["workloads"][workload]["stat_prefix"]
            counters["workload"] = envoy_stats.sidecar_counters(admin, stat_prefix)
        if service is not None:
            if service not in mesh["services"]:
                raise InvalidInput(
                    "service", f"no service {service!r}", f"one of {sorted(mesh['services'])}"
                )
            fqdn = mesh["services"][service]["fqdn"]
            counters["service"] = envoy_stats.service_counters(admin, fqdn)
        return counters
