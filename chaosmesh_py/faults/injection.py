"""Injecting and removing owned faults on a cluster: targets, guards, and the write loop.

This is the layer between the thin Chaos Toolkit surface (actions, rollbacks, probes, control)
and the pure edits (``chaosmesh_py.istio.route_copy``): it finds the VirtualService, refuses
protected namespaces, records the resource on the run before writing, and drives ``Kube.update``.
Everything here raises the project's errors; nothing returns a failure as a value.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from chaosmesh_py.engine import ledger, verify
from chaosmesh_py.engine.run import DEFAULT_TTL_S, Run
from chaosmesh_py.errors import (
    ApiError,
    Forbidden,
    InvalidInput,
    NotFound,
    OwnedByAnotherRun,
    ProtectedNamespace,
    Rejected,
    TargetNotFound,
    Unauthorized,
    shown,
)
from chaosmesh_py.istio import fault, route_copy, status
from chaosmesh_py.kube import Kube, ResourceKind, ResourceRef, virtual_service_kind

PROTECTED_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease", "istio-system"})

# Configuration keys an experiment may set.
ALLOW_NAMESPACES_KEY = "chaosmesh_allow_namespaces"
TTL_KEY = "chaosmesh_ttl_s"
ISTIO_VERSION_KEY = "chaosmesh_istio_api_version"
VERIFY_TIMEOUT_KEY = "chaosmesh_verify_timeout_s"
DEFAULT_VERIFY_TIMEOUT_S = 10.0
MAX_VERIFY_TIMEOUT_S = 600.0
MAX_TTL_S = 30 * 24 * 3600

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


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
    if not isinstance(namespace, str) or not _DNS1123_LABEL.match(namespace):
        raise InvalidInput("namespace", f"{namespace!r} is not a namespace name")
    return namespace


def parse_target(
    namespace: object, virtual_service: object, host: object, settings: Settings
) -> Target:
    """Check a target's names before any request: malformed names and protected namespaces."""
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
    if (virtual_service is None) == (host is None):
        raise InvalidInput(
            "virtual_service/host",
            "give exactly one of them",
            'e.g. virtual_service: "ratings", or host: "ratings"',
        )
    if virtual_service is not None and (
        not isinstance(virtual_service, str) or not _DNS1123_SUBDOMAIN.match(virtual_service)
    ):
        raise InvalidInput("virtual_service", f"{virtual_service!r} is not a resource name")
    if host is not None and (not isinstance(host, str) or not host):
        raise InvalidInput("host", f"{host!r} is not a host name")
    return Target(namespace, virtual_service, host)


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

    def plan(current: dict[str, Any]) -> dict[str, Any] | None:
        patch = route_copy.plan_injection(current, injection, allow_other_runs)
        if patch is not None:
            run.touch(kube, ref, verify_url)
            run.ledger.intent(
                ledger.INJECT, kube.host, ref, patch, prior=current, verify_url=verify_url
            )
        return patch

    with _outcome_recorded(run.ledger, ledger.INJECT, kube.host, ref) as recorded:
        try:
            outcome = kube.update(ref, plan)
        except NotFound as error:
            raise not_found(kube, ref) from error
        recorded["routes"] = [
            r["name"] for r in route_copy.run_routes(outcome.resource, run.run_id)
        ]
    names = route_copy.copy_names(outcome.resource, injection)
    report: dict[str, Any] = {
        "run_id": run.run_id,
        "virtual_service": f"{ref.namespace}/{ref.name}",
        "fault": injection.fault.to_istio(),
        "routes": [r["name"] for r in route_copy.run_routes(outcome.resource, run.run_id)],
        # This injection's own copies and where they send traffic: what its hits are counted on.
        "fault_routes": names,
        "destinations": _destinations(outcome.resource, names, ref.namespace),
        "expires": _owned_expiry(outcome.resource, run.run_id),
        "api_attempts": outcome.attempts,
    }
    if verify_timeout_s > 0:
        expected = verify.Expectation(
            routes=tuple(names),
            present=True,
            fault=injection.fault,
            host=_first_host(outcome.resource),
            headers=injection.headers,
            path=_request_path(outcome.resource, names[0]),
            source_labels=injection.source_labels,
            gateways=tuple(outcome.resource["spec"].get("gateways") or ()),
        )
        try:
            report["effect"] = _verify(
                kube, expected, verify_timeout_s, verify_url, ref=ref, written=outcome.resource
            )
        except verify.FaultNotObserved:
            remove(kube, ref, run.run_id, only=names, run_ledger=run.ledger)
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
) -> dict[str, Any]:
    """Remove every route and annotation ``run_id`` put on ``ref`` (or only the routes named
    in ``only``); a no-op when none is left. Writes are recorded in ``run_ledger`` if given;
    ``listed`` is the resource as just listed, to save a read.

    ``fence`` first changes the resource's version (``route_copy.plan_fence``): a write of the run
    that may still be in flight then fails its precondition instead of landing after this
    removal looked. Needed when the ledger does not know how the last injection ended.
    With a verification time box, also wait until the data plane no longer has the routes.
    """
    if fence:
        try:
            listed = kube.update(
                ref, lambda current: route_copy.plan_fence(current, run_id)
            ).resource
        except NotFound:
            return {"virtual_service": f"{ref.namespace}/{ref.name}", "removed": [], "gone": True}
    removed: list[dict[str, Any]] = []

    def plan(current: dict[str, Any]) -> dict[str, Any] | None:
        patch = route_copy.plan_removal(current, run_id, only)
        if patch is not None:
            # Kept when a later read finds them gone: a lost answer still removed them.
            removed[:] = [
                r
                for r in route_copy.run_routes(current, run_id)
                if only is None or r["name"] in only
            ]
            if run_ledger is not None:
                ledger.best_effort(lambda: run_ledger.intent(ledger.REMOVE, kube.host, ref, patch))
        return patch

    with _outcome_recorded(run_ledger, ledger.REMOVE, kube.host, ref) as recorded:
        try:
            outcome = kube.update(ref, plan, current=listed)
        except NotFound:
            # The resource is gone, and every fault with it.
            recorded["gone"] = True
            return {"virtual_service": f"{ref.namespace}/{ref.name}", "removed": [], "gone": True}
        recorded["routes"] = [r["name"] for r in removed] if outcome.wrote else []
    report: dict[str, Any] = {
        "virtual_service": f"{ref.namespace}/{ref.name}",
        "removed": recorded["routes"],
        "api_attempts": outcome.attempts,
    }
    if verify_timeout_s > 0 and report["removed"]:
        expected = verify.Expectation(
            routes=tuple(report["removed"]),
            present=False,
            # On the local mesh no fault counter may move; by request, the signature of the
            # fault removed must be gone.
            fault=None if verify_url is None else fault.from_istio(removed[0].get("fault", {})),
            host=_first_host(outcome.resource),
            headers=_exact_headers(removed[0]),
            # Faults that were there before ours would blur the evidence of ours being gone.
            traffic=not any(r.get("fault") for r in route_copy.user_routes(outcome.resource)),
        )
        report["effect"] = _verify(
            kube, expected, verify_timeout_s, verify_url, ref=ref, written=outcome.resource
        )
    return report


def remove_for_run(
    kube: Kube, ref: ResourceRef, run: Run, verify_timeout_s: float = 0.0, fence: bool = False
) -> dict[str, Any]:
    """``remove`` for one of the run's resources, checked where its faults were checked; the
    run then forgets the resource."""
    report = remove(
        kube,
        ref,
        run.run_id,
        verify_timeout_s=verify_timeout_s,
        verify_url=run.verify_url(kube, ref),
        run_ledger=run.ledger,
        fence=fence,
    )
    run.forget(kube, ref)
    return report


# Answers that mean the server applied nothing.
Refused = Rejected | Unauthorized | Forbidden | NotFound | OwnedByAnotherRun


@contextmanager
def _outcome_recorded(
    run_ledger: ledger.Ledger | None, op: str, api: str, ref: ResourceRef
) -> Iterator[dict[str, Any]]:
    """Record how the write went: applied (with what the caller adds to the dict), or failed
    with the error; the ledger then tells a later rollback what may be in place."""
    recorded: dict[str, Any] = {}
    try:
        yield recorded
    except BaseException as error:
        if run_ledger is not None:
            # Only a refusal is known to have changed nothing; a lost answer or an interrupt
            # may still land (see ``remove``'s fence).
            refused = isinstance(error, InvalidInput | Refused)
            result = ledger.FAILED if refused else ledger.UNKNOWN
            text = _error_text(error)
            ledger.best_effort(lambda: run_ledger.outcome(op, api, ref, result, error=text))
        raise
    if run_ledger is not None:
        ledger.best_effort(lambda: run_ledger.outcome(op, api, ref, ledger.APPLIED, **recorded))


def _error_text(error: BaseException) -> str:
    return str(error) or type(error).__name__


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
    generation = int((written.get("metadata") or {}).get("generation") or 0)

    def rejection() -> str | None:
        try:
            return status.rejection(kube.get(ref), generation)
        except ApiError:  # gone or unreachable: the wait for Envoy says what it sees
            return None

    return verify.verify_on_local_mesh(mesh, expected, timeout_s, rejection)


def _exact_headers(route: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """The header conditions of a fault copy's first match entry."""
    return dict(((route.get("match") or [{}])[0]).get("headers") or {})


def _destinations(
    resource: Mapping[str, Any], route_names: Collection[str], namespace: str
) -> list[str]:
    """The services the named routes send traffic to, as Istio's metrics name them."""
    return sorted(
        {
            _qualified(str(destination.get("destination", {}).get("host", "")), namespace)
            for route in resource["spec"]["http"]
            if route.get("name") in route_names
            for destination in route.get("route") or []
        }
    )


def _first_host(resource: Mapping[str, Any]) -> str:
    return str((resource.get("spec", {}).get("hosts") or [""])[0])


def _request_path(resource: Mapping[str, Any], route_name: str) -> str:
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
        for owner in route_copy.ownerships(resource):
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


def _owned_expiry(resource: Mapping[str, Any], run_id: str) -> str | None:
    owner = route_copy.ownership_of(resource, run_id)
    return owner.expires_at.isoformat() if owner else None


def not_found(kube: Kube, ref: ResourceRef) -> TargetNotFound:
    """The error for a VirtualService that is not there, listing those that are."""
    try:
        existing = _listing(kube.list(ref.kind, ref.namespace))
    except NotFound:
        existing = "(none: the namespace or the kind does not exist)"
    if existing == "(none)":
        existing = f"(none: does namespace {ref.namespace!r} exist?)"
    return TargetNotFound(
        "virtual_service",
        f"no VirtualService {ref.name!r} in namespace {ref.namespace!r}",
        f"existing: {existing}",
    )


def _listing(resources: Collection[Mapping[str, Any]]) -> str:
    if not resources:
        return "(none)"
    return ", ".join(
        f"{r['metadata']['name']} (hosts {', '.join(r.get('spec', {}).get('hosts') or [])})"
        for r in resources
    )


def _serves(resource: Mapping[str, Any], host: str, namespace: str) -> bool:
    wanted = _qualified(host, namespace)
    return any(
        _qualified(h, namespace) == wanted for h in resource.get("spec", {}).get("hosts") or []
    )


def _qualified(host: str, namespace: str) -> str:
    # Istio reads a host without dots as a service in the VirtualService's namespace.
    return host if "." in host else f"{host}.{namespace}.svc.cluster.local"
