"""Injecting and removing owned faults on a cluster: targets, guards, and the write loop.

This is the layer between the thin Chaos Toolkit surface (actions, rollbacks, probes, control)
and the pure route copies (``chaosmesh_py.istio.route_copy``): it finds the VirtualService,
refuses protected namespaces, writes through the engine's owned-edit loop
(``chaosmesh_py.engine.ownership``: ledger intent before the write, outcome after) and checks the
data plane. Everything here raises the project's errors; nothing returns a failure as a value.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from chaosmesh_py import checks
from chaosmesh_py.engine import evidence, ledger, ownership, verify
from chaosmesh_py.engine.access import Access, on
from chaosmesh_py.engine.kinds import ROUTE_COPY, edit_verbs
from chaosmesh_py.engine.run import DEFAULT_TTL_S, Run, run_for, run_id_from
from chaosmesh_py.errors import (
    ApiError,
    Forbidden,
    InvalidInput,
    NotFound,
    ProtectedNamespace,
    TargetNotFound,
    shown,
)
from chaosmesh_py.istio import fault, narrowing, route_copy, routing, status
from chaosmesh_py.istio.owner_record import record_of, records
from chaosmesh_py.kube import Kube, ResourceKind, ResourceRef, names, virtual_service_kind

PROTECTED_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease", "istio-system"})

# Configuration keys an experiment may set.
ALLOW_NAMESPACES_KEY = "chaosmesh_allow_namespaces"
TTL_KEY = "chaosmesh_ttl_s"
ISTIO_VERSION_KEY = "chaosmesh_istio_api_version"
VERIFY_TIMEOUT_KEY = "chaosmesh_verify_timeout_s"
DEFAULT_VERIFY_TIMEOUT_S = 10.0
MAX_VERIFY_TIMEOUT_S = 600.0
MAX_TTL_S = 30 * 24 * 3600


@dataclass(frozen=True)
class Target:
    """Which VirtualService: by name, or the one in ``namespace`` whose hosts include ``host``."""

    namespace: str
    virtual_service: str | None = None
    host: str | None = None


@dataclass(frozen=True)
class Settings:
    """What an experiment's configuration says about how faults are written."""

    kind: ResourceKind
    ttl_s: int
    # None: any namespace but the protected ones. A list: only those, protected ones included.
    allowed_namespaces: frozenset[str] | None
    verify_timeout_s: float = DEFAULT_VERIFY_TIMEOUT_S

    @classmethod
    def from_configuration(cls, configuration: Mapping[str, Any] | None) -> Settings:
        configuration = configuration or {}
        ttl_s = configuration.get(TTL_KEY, DEFAULT_TTL_S)
        if isinstance(ttl_s, str) and ttl_s.strip().isdigit():
            raise InvalidInput(
                TTL_KEY, f"must be a number, got the string {shown(ttl_s)}", "write it unquoted"
            )
        if isinstance(ttl_s, bool) or not isinstance(ttl_s, int) or not 1 <= ttl_s <= MAX_TTL_S:
            raise InvalidInput(
                TTL_KEY,
                f"must be a whole number of seconds from 1 to {MAX_TTL_S} (30 days), "
                f"got {shown(ttl_s)}",
                f"faults should expire soon after the experiment; the default is {DEFAULT_TTL_S}",
            )
        allowed = configuration.get(ALLOW_NAMESPACES_KEY)
        if allowed is not None and (
            not isinstance(allowed, list) or not all(isinstance(n, str) for n in allowed)
        ):
            raise InvalidInput(
                ALLOW_NAMESPACES_KEY,
                f"must be a list of namespace names, got {shown(allowed)}",
                'e.g. ["bookinfo", "staging"]',
            )
        version = configuration.get(ISTIO_VERSION_KEY, "v1")
        if version not in ("v1", "v1beta1", "v1alpha3"):
            raise InvalidInput(
                ISTIO_VERSION_KEY,
                f"{version!r} is not an Istio networking version",
                "use v1 (Istio 1.22+), v1beta1 or v1alpha3",
            )
        verify_timeout_s = configuration.get(VERIFY_TIMEOUT_KEY, DEFAULT_VERIFY_TIMEOUT_S)
        if (
            isinstance(verify_timeout_s, bool)
            or not isinstance(verify_timeout_s, int | float)
            or not 0 <= verify_timeout_s <= MAX_VERIFY_TIMEOUT_S  # also refuses NaN
        ):
            raise InvalidInput(
                VERIFY_TIMEOUT_KEY,
                f"must be a number of seconds from 0 to {MAX_VERIFY_TIMEOUT_S:g}, "
                f"got {shown(verify_timeout_s)}",
                "0 turns effect verification off",
            )
        return cls(
            virtual_service_kind(version),
            ttl_s,
            None if allowed is None else frozenset(allowed),
            float(verify_timeout_s),
        )


def parse_namespace(namespace: object) -> str:
    return names.parse_namespace(namespace)


def parse_target(
    namespace: object, virtual_service: object, host: object, settings: Settings
) -> Target:
    """Check a target's names before any request: malformed names and protected namespaces."""
    namespace = allowed_namespace(namespace, settings)
    if (virtual_service is None) == (host is None):
        raise InvalidInput(
            "virtual_service/host",
            "give exactly one of them",
            'e.g. virtual_service: "ratings", or host: "ratings"',
        )
    if virtual_service is not None and (
        not isinstance(virtual_service, str) or not names.is_resource_name(virtual_service)
    ):
        raise InvalidInput("virtual_service", f"{virtual_service!r} is not a resource name")
    if host is not None and (not isinstance(host, str) or not host):
        raise InvalidInput("host", f"{host!r} is not a host name")
    return Target(namespace, virtual_service, host)


def allowed_namespace(namespace: object, settings: Settings) -> str:
    """A namespace an edit may be made in: well formed, not protected unless the configuration
    allows it, and among the allowed ones when the configuration lists them."""
    namespace = parse_namespace(namespace)
    allowed = settings.allowed_namespaces
    if allowed is not None and namespace not in allowed:
        raise ProtectedNamespace(
            "namespace",
            f"{namespace!r} is not in configuration {ALLOW_NAMESPACES_KEY} "
            f"({', '.join(sorted(allowed)) or 'empty'})",
            "add it there, or target one of those namespaces",
        )
    if namespace in PROTECTED_NAMESPACES and allowed is None:
        raise ProtectedNamespace(
            "namespace",
            f"{namespace!r} is protected: faults there can take down the cluster or the mesh",
            f"allow it explicitly: list it (with every other namespace this experiment may "
            f'touch) in configuration {ALLOW_NAMESPACES_KEY}, e.g. ["{namespace}"]',
        )
    return namespace


@dataclass(frozen=True)
class Targeting:
    """What an edit action's targeting arguments say (every route-copy action takes them):
    which VirtualService, which routes, which requests, and how the effect is checked."""

    settings: Settings
    target: Target
    run_id: str
    route_name: str | None
    route_index: int | None
    headers: Mapping[str, Mapping[str, str]]
    source_labels: Mapping[str, str]
    verify_url: str | None
    allow_other_runs: bool

    def injection(self, change: route_copy.Change) -> route_copy.Injection:
        return route_copy.Injection(
            run_id=self.run_id,
            change=change,
            expires_at=expiry(self.settings),
            route_name=self.route_name,
            route_index=self.route_index,
            headers=self.headers,
            source_labels=self.source_labels,
        )


def parse_verify_url(value: object) -> str | None:
    """An http(s) URL whose requests take the edited route, or None."""
    if value is not None and (
        not isinstance(value, str) or not value.startswith(("http://", "https://"))
    ):
        raise InvalidInput("verify_url", f"{shown(value)} is not an http(s) URL")
    return value


def parse_targeting(arguments: Mapping[str, Any], settings: Settings) -> Targeting:
    """Check the targeting arguments of a route-copy action before any request, in the order
    users read them: namespace, virtual_service / host, route_name / route_index, verify_url,
    allow_other_runs, headers, source_labels."""
    target = parse_target(
        arguments["namespace"], arguments["virtual_service"], arguments["host"], settings
    )
    route_name, route_index = narrowing.parse_route_choice(
        arguments["route_name"], arguments["route_index"]
    )
    verify_url = parse_verify_url(arguments["verify_url"])
    checks.flag("allow_other_runs", arguments["allow_other_runs"])
    return Targeting(
        settings=settings,
        target=target,
        # The id only: checking arguments must not start a run (and its ledger).
        run_id=run_id_from(arguments["configuration"]),
        route_name=route_name,
        route_index=route_index,
        headers=narrowing.parse_headers(arguments["headers"]),
        source_labels=narrowing.parse_source_labels(arguments["source_labels"]),
        verify_url=verify_url,
        allow_other_runs=arguments["allow_other_runs"],
    )


def resolve(kube: Kube, target: Target, kind: ResourceKind) -> ResourceRef:
    """The VirtualService the target names. By host, it must be the only one serving it."""
    if target.virtual_service is not None:
        return ResourceRef(kind, target.namespace, target.virtual_service)
    assert target.host is not None
    candidates = kube.list(kind, target.namespace)
    serving = [vs for vs in candidates if _serves(vs, target.host, target.namespace)]
    if len(serving) == 1:
        return ResourceRef(kind, target.namespace, serving[0]["metadata"]["name"])
    listing = _listing(candidates)
    if not serving:
        raise TargetNotFound(
            "host",
            f"no VirtualService in namespace {target.namespace!r} serves {target.host!r}",
            f"existing: {listing}",
        )
    names = ", ".join(vs["metadata"]["name"] for vs in serving)
    raise InvalidInput(
        "host",
        f"{target.host!r} is served by several VirtualServices ({names})",
        "name one with virtual_service",
    )


@dataclass(frozen=True)
class Written:
    """A route-copy injection as the API holds it after the write: the resource, and the
    injection's own copies in it (in route order)."""

    resource: dict[str, Any]
    copies: list[str]
    attempts: int
    # 409s met (another writer between our read and our write) and reads after the first.
    conflicts: int = 0
    rereads: int = 0
    # The injection's copies built on another copy of the run (composed), with that copy's name.
    composed: dict[str, str] = field(default_factory=dict)


def write_copies(
    kube: Kube,
    ref: ResourceRef,
    injection: route_copy.Injection,
    run: Run,
    *,
    allow_other_runs: bool = False,
    verify_url: str | None = None,
    just_read: dict[str, Any] | None = None,
) -> Written:
    """Add the injection's copies to ``ref`` through the owned-edit loop (ledger intent, the
    write with its resourceVersion, re-planning on 409, the outcome): whatever the change.
    ``just_read``: the object as the caller has just read it (saves a read)."""
    try:
        outcome = ownership.apply_edit(
            kube,
            ref,
            run,
            lambda current: route_copy.plan_injection(current, injection, allow_other_runs),
            verify_url=verify_url,
            just_read=just_read,
        )
    except NotFound as error:
        raise not_found(kube, ref) from error
    copies = route_copy.copy_names(outcome.resource, injection)
    return Written(
        outcome.resource,
        copies,
        outcome.attempts,
        outcome.conflicts,
        outcome.rereads,
        route_copy.composed_copies(outcome.resource, injection),
    )


def inject(
    kube: Kube,
    ref: ResourceRef,
    injection: route_copy.Injection,
    run: Run,
    *,
    allow_other_runs: bool = False,
    verify_timeout_s: float = 0.0,
    verify_url: str | None = None,
) -> dict[str, Any]:
    """Add the injection's fault copies to ``ref``, then see them take effect.

    Returns a journal-friendly report. When the data plane never shows the fault, the fault is
    removed again and FaultNotObserved raised: an experiment must not go on believing it.
    """
    chosen = injection.change
    if not isinstance(chosen, fault.Delay | fault.Abort):
        raise TypeError(f"inject writes faults; {chosen.kind} edits go through write_copies")
    written = write_copies(
        kube, ref, injection, run, allow_other_runs=allow_other_runs, verify_url=verify_url
    )
    resource, copies = written.resource, written.copies
    report: dict[str, Any] = {
        "run_id": run.run_id,
        "virtual_service": f"{ref.namespace}/{ref.name}",
        "fault": chosen.to_istio(),
        "routes": [r["name"] for r in route_copy.run_routes(resource, run.run_id)],
        # This injection's own copies and where they send traffic: what its hits are counted on.
        "fault_routes": copies,
        # Copies that carry this fault on top of the run's earlier edit of the route (its name).
        "composed": written.composed,
        "destinations": _destinations(resource, copies, ref.namespace),
        "expires": owned_expiry(resource, run.run_id),
        "api_attempts": written.attempts,
        # Another writer (a rollout controller) changing the object meanwhile: each 409 was
        # re-read and re-planned, its change kept.
        "api_conflicts": written.conflicts,
        "api_rereads": written.rereads,
    }
    skipped = route_copy.skipped_routes(resource, injection)
    if skipped:
        report["skipped_routes"] = [s.to_json() for s in skipped]
    if verify_timeout_s > 0:
        expected = verify.Expectation(
            routes=tuple(copies),
            present=True,
            fault=chosen,
            host=first_host(resource),
            headers=injection.headers,
            path=request_path(resource, copies[0]),
            source_labels=injection.source_labels,
            gateways=tuple(resource["spec"].get("gateways") or ()),
        )
        try:
            report["effect"] = _verify(
                kube, expected, verify_timeout_s, verify_url, ref=ref, written=resource
            )
        except verify.FaultNotObserved:
            remove(kube, ref, run.run_id, only=copies, run_ledger=run.ledger, run=run)
            raise
    return report


def remove(
    kube: Kube,
    ref: ResourceRef,
    run_id: str,
    *,
    verify_timeout_s: float = 0.0,
    verify_url: str | None = None,
    only: Collection[str] | None = None,
    run_ledger: ledger.Ledger | None = None,
    listed: dict[str, Any] | None = None,
    fence: bool = False,
    extra: ledger.Recorded | None = None,
    run: Run | None = None,
) -> dict[str, Any]:
    """Remove everything ``run_id`` holds on ``ref``, as recorded (``ownership.release``: its
    route copies, and whatever else the run's record names there), or only the copies named in
    ``only``; a no-op when nothing is left. ``extra`` adds what the run's ledger names there.
    With a verification time box, also wait until the data plane no longer has the copies.
    ``run`` (the run's own removal) remembers the object as the removal left it: the rollback
    evidence's "after" (``chaosmesh_py.engine.evidence``).
    """
    released = ownership.release(
        kube,
        ref,
        run_id,
        run_ledger=run_ledger,
        listed=listed,
        fence=fence,
        only_routes=None if only is None else list(only),
        extra=extra,
    )
    if run is not None:
        if released.deleted or released.gone:
            run.remember_after(kube, ref, evidence.ABSENT)
        elif released.final is not None:
            run.remember_after(kube, ref, evidence.spec_of(released.final))
    report = released.to_json()
    if ref.kind.kind == "VirtualService":
        report["virtual_service"] = f"{ref.namespace}/{ref.name}"
        del report["resource"]
    removed = released.route_copies
    if verify_timeout_s > 0 and removed and released.final is not None:
        resource = released.final
        expected = verify.Expectation(
            routes=tuple(released.routes),
            present=False,
            # On the local mesh no fault counter may move; by request, the signature of the
            # fault removed must be gone.
            fault=None if verify_url is None else fault.from_istio(removed[0].get("fault", {})),
            host=first_host(resource),
            headers=_exact_headers(removed[0]),
            # Faults that were there before ours would blur the evidence of ours being gone.
            traffic=not any(r.get("fault") for r in route_copy.user_routes(resource)),
        )
        report["effect"] = _verify(
            kube, expected, verify_timeout_s, verify_url, ref=ref, written=resource
        )
    return report


def remove_for_run(
    kube: Kube,
    ref: ResourceRef,
    run: Run,
    verify_timeout_s: float = 0.0,
    *,
    fence: bool = False,
    extra: ledger.Recorded | None = None,
) -> dict[str, Any]:
    """``remove`` for one of the run's resources (of any kind), checked where its faults were
    checked; the run then forgets the resource."""
    report = remove(
        kube,
        ref,
        run.run_id,
        verify_timeout_s=verify_timeout_s,
        verify_url=run.verify_url(kube, ref),
        run_ledger=run.ledger,
        fence=fence,
        extra=extra,
        run=run,
    )
    run.forget(kube, ref)
    return report


def remove_targeted(
    virtual_service: object,
    host: object,
    namespace: object,
    configuration: Mapping[str, Any] | None,
    secrets: Mapping[str, Any] | None,
) -> list[dict[str, Any]]:
    """A rollback activity's removal: everything the run holds on the VirtualService named (or
    serving ``host``), or with neither on every resource the run wrote to."""
    settings = Settings.from_configuration(configuration)
    run = run_for(configuration)
    if virtual_service is None and host is None:
        return [
            remove_for_run(kube, ref, run, settings.verify_timeout_s) for kube, ref in run.touched()
        ]
    target = parse_target(namespace, virtual_service, host, settings)
    kube = Kube.connect(secrets)
    ref = resolve(kube, target, settings.kind)
    return [remove_for_run(kube, ref, run, settings.verify_timeout_s)]


def removal_needs(arguments: Mapping[str, Any]) -> list[Access]:
    """What ``remove_targeted`` asks of the API, for a rollback's ``@needs``."""
    if arguments["virtual_service"] is None and arguments["host"] is None:
        return []  # only what the run's edits wrote to: their needs cover it
    return target_needs(arguments, edit_verbs(ROUTE_COPY))


def _verify(
    kube: Kube,
    expected: verify.Expectation,
    timeout_s: float,
    verify_url: str | None,
    *,
    ref: ResourceRef,
    written: Mapping[str, Any],
) -> dict[str, Any]:
    """Check the data plane; ``written`` is the resource as our write left it."""
    if verify_url is not None:
        return verify.verify_by_request(verify_url, expected, timeout_s)
    mesh = kube.local_mesh()
    if mesh is None:
        return {
            "checked": "no: a cluster's data plane cannot be read from here; "
            "give verify_url to check with requests"
        }
    return verify.verify_on_local_mesh(
        mesh, expected, timeout_s, rejection_check(kube, ref, written)
    )


def rejection_check(
    kube: Kube, ref: ResourceRef, written: Mapping[str, Any]
) -> verify.RejectionCheck:
    """Why the data plane refused ``written`` (the resource as our write left it), read from
    the resource's status while waiting for Envoy; None while it has not."""
    generation = int((written.get("metadata") or {}).get("generation") or 0)

    def rejection() -> str | None:
        try:
            return status.rejection(kube.get(ref), generation)
        except ApiError:  # gone or unreachable: the wait for Envoy says what it sees
            return None

    return rejection


def _exact_headers(route: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """The header conditions of a fault copy's first match entry."""
    return dict(((route.get("match") or [{}])[0]).get("headers") or {})


def _destinations(
    resource: Mapping[str, Any], route_names: Collection[str], namespace: str
) -> list[str]:
    """The services the named routes send traffic to, as Istio's metrics name them."""
    return sorted(
        {
            routing.qualified(str(destination.get("destination", {}).get("host", "")), namespace)
            for route in resource["spec"]["http"]
            if route.get("name") in route_names
            for destination in route.get("route") or []
        }
    )


def first_host(resource: Mapping[str, Any]) -> str:
    return str((resource.get("spec", {}).get("hosts") or [""])[0])


def request_path(resource: Mapping[str, Any], route_name: str) -> str:
    """A path the route matches: its first uri exact or prefix, else "/"."""
    route = next(r for r in resource["spec"]["http"] if r.get("name") == route_name)
    uri = ((route.get("match") or [{}])[0]).get("uri") or {}
    return str(uri.get("exact") or uri.get("prefix") or "/")


def owned_faults(
    kube: Kube, kind: ResourceKind, namespace: str | None = None
) -> list[dict[str, Any]]:
    """Every run's faults on every VirtualService in ``namespace`` (all namespaces when None)."""
    now = datetime.now(UTC)
    found = []
    for resource in kube.list(kind, namespace):
        metadata = resource["metadata"]
        for owner in records(resource):
            found.append(
                {
                    "run_id": owner.run_id,
                    "virtual_service": f"{metadata['namespace']}/{metadata['name']}",
                    "routes": [r["name"] for r in route_copy.run_routes(resource, owner.run_id)],
                    "expires": owner.expires_at.isoformat(),
                    "expired": owner.expired(now),
                }
            )
    return found


def expiry(settings: Settings) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=settings.ttl_s)


def owned_expiry(resource: Mapping[str, Any], run_id: str) -> str | None:
    owner = record_of(resource, run_id)
    return owner.expires_at.isoformat() if owner else None


def not_found(kube: Kube, ref: ResourceRef) -> TargetNotFound:
    """The error for a VirtualService that is not there, listing those that are."""
    try:
        existing = _listing(kube.list(ref.kind, ref.namespace))
    except NotFound:
        existing = "(none: the namespace or the kind does not exist)"
    except Forbidden:
        # Least RBAC (a game day's, chaosmesh_py.gameday.rbac) grants get by name, not list:
        # the missing object is still the news.
        existing = f"(not shown: these credentials may not list {ref.kind.resource})"
    if existing == "(none)":
        existing = f"(none: does namespace {ref.namespace!r} exist?)"
    return TargetNotFound(
        "virtual_service",
        f"no VirtualService {ref.name!r} in namespace {ref.namespace!r}",
        f"existing: {existing}",
    )


def target_needs(arguments: Mapping[str, Any], verbs: Collection[str]) -> list[Access]:
    """What an activity aimed at ``virtual_service`` (or ``host``) in ``namespace`` asks of
    the API with ``verbs`` on it: by host, a list of the namespace first to find it."""
    kind = virtual_service_kind()
    namespace = str(arguments["namespace"])
    name = arguments.get("virtual_service")
    if name is None:
        return on(kind, ["list"], namespace) + on(kind, verbs, namespace)
    return on(kind, verbs, namespace, str(name))


def _listing(resources: Collection[Mapping[str, Any]]) -> str:
    if not resources:
        return "(none)"
    return ", ".join(
        f"{r['metadata']['name']} (hosts {', '.join(r.get('spec', {}).get('hosts') or [])})"
        for r in resources
    )


def _serves(resource: Mapping[str, Any], host: str, namespace: str) -> bool:
    wanted = routing.qualified(host, namespace)
    return any(
        routing.qualified(h, namespace) == wanted
        for h in resource.get("spec", {}).get("hosts") or []
    )
