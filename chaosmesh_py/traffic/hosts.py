"""What the mesh knows about hosts and subsets, read from the API before a routing edit writes.

- Subsets: the DestinationRules that apply to a host define its subsets
  (``chaosmesh_py.istio.routing.subsets_for``: the client's namespace, then the service's, then
  the root namespace, honouring exportTo). An unknown subset is an error listing those that
  exist; a host no DestinationRule covers says so, since Istio would answer 503 (no cluster) to
  every request routed to a subset of it.
- Hosts: a host named in an edit (``destination_host``, ``mirror_host``) must be a Service
  (``<name>.<namespace>.svc.cluster.local``, or a short name in the VirtualService's namespace)
  or a host of a ServiceEntry in the VirtualService's namespace. A Service is asked for by name
  (GET); only when it is not there are Services and ServiceEntries listed, for the error's
  "known: ...". The local mesh's API serves its services as Service objects, so it is read
  the same way as a cluster.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from chaosmesh_py.engine.access import Access, on
from chaosmesh_py.errors import ApiError, NotFound, TargetNotFound
from chaosmesh_py.istio import routing
from chaosmesh_py.kube import SERVICE, Kube, ResourceKind, ResourceRef


def destination_rule_kind(version: str = "v1") -> ResourceKind:
    return ResourceKind("networking.istio.io", version, "destinationrules", "DestinationRule")


def service_entry_kind(version: str = "v1") -> ResourceKind:
    return ResourceKind("networking.istio.io", version, "serviceentries", "ServiceEntry")


def check_subsets(
    kube: Kube,
    fqdn: str,
    subsets: Iterable[str],
    namespace: str,
    *,
    field_name: str,
    version: str,
) -> routing.Subsets:
    """The subsets defined for ``fqdn`` seen from ``namespace``; InvalidInput naming
    ``field_name`` when one of ``subsets`` is not among them or no DestinationRule applies."""
    wanted = list(subsets)
    rules = _destination_rules(kube, fqdn, namespace, version)
    defined = routing.subsets_for(fqdn, namespace, rules)
    searched = ", ".join(_searched_namespaces(fqdn, namespace))
    if defined is None:
        raise TargetNotFound(
            field_name,
            f"no DestinationRule defines subsets for {fqdn} (searched namespaces {searched}), "
            f"so Istio has no cluster for subset {wanted[0]!r}",
            f"create a DestinationRule for host {fqdn} with subset(s) {', '.join(wanted)}",
        )
    missing = routing.missing_subsets(wanted, defined)
    if missing:
        raise TargetNotFound(
            field_name,
            f"host {fqdn} has no subset {', '.join(repr(m) for m in missing)} "
            f"(DestinationRule {', '.join(defined.rules)} defines "
            f"{', '.join(defined.names) or 'none'})",
            "use one of those, or add the subset to the DestinationRule first",
        )
    return defined


def check_host(kube: Kube, host: str, namespace: str, *, field_name: str, version: str) -> str:
    """``host`` qualified as Istio reads it; TargetNotFound listing the known hosts when no
    Service or ServiceEntry has it."""
    fqdn = routing.qualified(host, namespace)
    service_ns = routing.service_namespace(fqdn)
    if service_ns is not None:
        try:
            kube.get(ResourceRef(SERVICE, service_ns, fqdn.split(".", 1)[0]))
            return fqdn
        except NotFound:
            pass
        services = _listed_services(kube, service_ns)
    else:
        services = []
    entries = _service_entry_hosts(kube, namespace, version)
    if fqdn in entries or host in entries:
        return fqdn
    known = sorted(set(services) | set(entries))
    raise TargetNotFound(
        field_name,
        f"unknown host {host!r} ({fqdn}): no Service or ServiceEntry in namespace "
        f"{namespace!r} has it",
        f"known: {', '.join(known) or '(none)'}",
    )


def needs(
    namespace: str, hosts: Iterable[str | None], subsets_checked: bool, version: str = "v1"
) -> list[Access]:
    """What these checks ask of the API, for the action's ``@needs``."""
    found: list[Access] = []
    named = [routing.qualified(h, namespace) for h in hosts if h is not None]
    if subsets_checked:
        for where in dict.fromkeys(
            [namespace, *(routing.service_namespace(h) for h in named), routing.ROOT_NAMESPACE]
        ):
            if where is not None:
                found += on(destination_rule_kind(version), ["list"], where)
    if named:
        found += on(service_entry_kind(version), ["list"], namespace)
        for fqdn in named:
            service_ns = routing.service_namespace(fqdn)
            if service_ns is not None:
                found += on(SERVICE, ["get", "list"], service_ns)
    return found


def _searched_namespaces(fqdn: str, namespace: str) -> list[str]:
    order = [namespace, routing.service_namespace(fqdn), routing.ROOT_NAMESPACE]
    return list(dict.fromkeys(n for n in order if n))


def _destination_rules(kube: Kube, fqdn: str, namespace: str, version: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for where in _searched_namespaces(fqdn, namespace):
        try:
            found += kube.list(destination_rule_kind(version), where)
        except NotFound:
            continue  # no such namespace: no rule there
    return found


def _listed_services(kube: Kube, namespace: str) -> list[str]:
    """The Services of ``namespace`` as FQDNs, for an error message; empty when unreadable."""
    try:
        listed = kube.list(SERVICE, namespace)
    except ApiError:
        return []
    return [f"{s['metadata']['name']}.{namespace}.{routing.CLUSTER_DOMAIN}" for s in listed]


def _service_entry_hosts(kube: Kube, namespace: str, version: str) -> list[str]:
    try:
        entries = kube.list(service_entry_kind(version), namespace)
    except NotFound:
        return []
    return [str(h) for entry in entries for h in entry.get("spec", {}).get("hosts") or []]
