"""Owned routing edits: route_to_version, shift_traffic and mirror_traffic, from arguments to a
verified route copy.

A routing edit is a route copy (``chaosmesh_py.istio.route_copy``) whose change is new
destinations or a mirror (``chaosmesh_py.istio.routing``) instead of a fault, so it is written,
owned, expired and removed exactly as faults are (``chaosmesh_py.faults.injection``: targets,
settings, the owned-edit loop; rollback, reap, halt and the control find every copy by the run's
owner record). What is particular to routing:

1. checks before any write: the arguments (``prepare``, no request), then against the API
   (``check_against_api``): a named ``destination_host`` / ``mirror_host`` exists, and every
   subset is defined by a DestinationRule for the host it is used with
   (``chaosmesh_py.traffic.hosts``);
2. the effect in the data plane (``chaosmesh_py.traffic.effect``): Envoy carries the copy with
   the destinations or mirror it should have, and real requests land where it sends them. When
   the effect is never seen, the copies are removed again and the error raised.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from chaosmesh_py.engine import redaction, verify
from chaosmesh_py.engine.access import Access
from chaosmesh_py.engine.kinds import ROUTE_COPY, edit_verbs
from chaosmesh_py.engine.run import run_for
from chaosmesh_py.errors import InvalidInput, NotFound
from chaosmesh_py.faults import injection
from chaosmesh_py.istio import route_copy, routing
from chaosmesh_py.kube import Kube, ResourceRef, virtual_service_kind
from chaosmesh_py.traffic import effect, hosts

ROUTE_TO_VERSION = "route_to_version"
SHIFT_TRAFFIC = "shift_traffic"
MIRROR_TRAFFIC = "mirror_traffic"


def _route_to_version(arguments: Mapping[str, Any]) -> routing.Destinations:
    subset = routing.parse_subset(arguments["subset"])
    return routing.Destinations(
        ((subset, 100),), routing.parse_host(arguments["destination_host"], "destination_host")
    )


def _shift_traffic(arguments: Mapping[str, Any]) -> routing.Destinations:
    weights = routing.parse_weights(arguments["weights"])
    return routing.Destinations(
        weights, routing.parse_host(arguments["destination_host"], "destination_host")
    )


def _mirror_traffic(arguments: Mapping[str, Any]) -> routing.Mirror:
    percentage = routing.parse_mirror_percentage(arguments["percentage"])
    subset, host = arguments["subset"], arguments["mirror_host"]
    if subset is None and host is None:
        raise InvalidInput(
            "subset/mirror_host",
            "say where to mirror to",
            'give subset (of the route\'s own host, e.g. "v3"), mirror_host, or both',
        )
    return routing.Mirror(
        percentage,
        None if subset is None else routing.parse_subset(subset),
        routing.parse_host(host, "mirror_host"),
    )


_CHANGES: dict[str, Callable[[Mapping[str, Any]], routing.RoutingChange]] = {
    ROUTE_TO_VERSION: _route_to_version,
    SHIFT_TRAFFIC: _shift_traffic,
    MIRROR_TRAFFIC: _mirror_traffic,
}


@dataclass(frozen=True)
class Prepared:
    """An edit's arguments, checked: where, which routes and requests, and the change."""

    action: str
    targeting: injection.Targeting
    change: routing.RoutingChange

    @property
    def injection(self) -> route_copy.Injection:
        return self.targeting.injection(self.change)

    @property
    def subset_field(self) -> str:
        return "weights" if self.action == SHIFT_TRAFFIC else "subset"


def prepare(action: str, arguments: Mapping[str, Any]) -> Prepared:
    """Every check that needs no API request, in the order users read the arguments: the
    configuration, the change, then the target and narrowing."""
    settings = injection.Settings.from_configuration(arguments["configuration"])
    change = _CHANGES[action](arguments)
    return Prepared(action, injection.parse_targeting(arguments, settings), change)


def check_against_api(
    kube: Kube, ref: ResourceRef, resource: Mapping[str, Any], prepared: Prepared
) -> None:
    """The checks that read the cluster, before any write: hosts named exist, subsets are
    defined for the hosts they are used with."""
    change = prepared.change
    version = ref.kind.version
    named_field = "destination_host" if isinstance(change, routing.Destinations) else "mirror_host"
    if change.host is not None:
        hosts.check_host(kube, change.host, ref.namespace, field_name=named_field, version=version)
    wanted = _subsets_wanted(change)
    if not wanted:
        return  # a mirror to a host as a whole
    targets = route_copy.targeted_routes(resource, prepared.injection)
    by_host: dict[str, None] = {}
    for route in targets:
        host = change.host
        if host is None:
            route_hosts = routing.destination_hosts(route)
            if len(route_hosts) != 1:
                continue  # planning names the problem (several hosts: name one)
            host = route_hosts[0]
        by_host[routing.qualified(host, ref.namespace)] = None
    for fqdn in by_host:
        hosts.check_subsets(
            kube, fqdn, wanted, ref.namespace, field_name=prepared.subset_field, version=version
        )


def _subsets_wanted(change: routing.RoutingChange) -> list[str]:
    if isinstance(change, routing.Destinations):
        return [subset for subset, _ in change.weights]
    return [] if change.subset is None else [change.subset]


def edit(action: str, arguments: Mapping[str, Any]) -> dict[str, Any]:
    """Run one routing action: checks, the owned write, the effect."""
    # The ledger keeps no secret: the control remembers the experiment's; without it, these.
    redaction.remember(arguments["secrets"])
    prepared = prepare(action, arguments)
    targeting = prepared.targeting
    settings = targeting.settings
    kube = Kube.connect(arguments["secrets"])
    ref = injection.resolve(kube, targeting.target, settings.kind)
    try:
        current = kube.read(ref)
    except NotFound as error:
        raise injection.not_found(kube, ref) from error
    check_against_api(kube, ref, current, prepared)
    run = run_for(arguments["configuration"])
    request = prepared.injection
    written = injection.write_copies(
        kube,
        ref,
        request,
        run,
        allow_other_runs=targeting.allow_other_runs,
        verify_url=targeting.verify_url,
        just_read=current,
    )
    report: dict[str, Any] = {
        "run_id": run.run_id,
        "virtual_service": f"{ref.namespace}/{ref.name}",
        "routes": written.copies,
        "edit": {
            "action": action,
            **prepared.change.to_json(),
            **({"headers": dict(request.headers)} if request.headers else {}),
            **({"source_labels": dict(request.source_labels)} if request.source_labels else {}),
            "description": [route_copy.describe_copy(written.resource, n) for n in written.copies],
        },
        "expires": injection.owned_expiry(written.resource, run.run_id),
        "api_attempts": written.attempts,
        "api_conflicts": written.conflicts,
        "api_rereads": written.rereads,
        "time_to_effect_s": None,
    }
    skipped = route_copy.skipped_routes(written.resource, request)
    if skipped:
        report["skipped_routes"] = [s.to_json() for s in skipped]
    if settings.verify_timeout_s <= 0:
        report["verification"] = {
            "checked": "no: verification is off (chaosmesh_verify_timeout_s is 0)"
        }
        return report
    try:
        verification = effect.verify_edit(
            kube,
            ref,
            written.resource,
            request,
            timeout_s=settings.verify_timeout_s,
            verify_url=targeting.verify_url,
        )
    except verify.FaultNotObserved:  # EditNotObserved, or Envoy rejected the copies
        injection.remove(kube, ref, run.run_id, only=written.copies, run_ledger=run.ledger, run=run)
        raise
    report["verification"] = verification
    report["time_to_effect_s"] = verification.get("time_to_effect_s")
    return report


def edit_needs(arguments: Mapping[str, Any]) -> list[Access]:
    """What a routing action asks of the API: the VirtualService (as faults), the
    DestinationRules that define subsets, and the Services / ServiceEntries of named hosts."""
    namespace = str(arguments["namespace"])
    named = arguments.get("destination_host") or arguments.get("mirror_host")
    checks_subsets = bool(arguments.get("weights") or arguments.get("subset"))
    version = virtual_service_kind().version
    return injection.target_needs(arguments, edit_verbs(ROUTE_COPY)) + hosts.needs(
        namespace, [named], checks_subsets, version
    )
