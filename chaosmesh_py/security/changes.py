"""Owned, reversible security changes: an mTLS mode, a DENY policy, a required JWT, a JWKS made
unreachable (docs/security.md, "Reversible security changes").

Each change is one of the engine's forms, never a new one:

- **owned objects** (``chaosmesh_py.engine.ownership.create_object``): a PeerAuthentication
  for a scope that has none, the DENY AuthorizationPolicy of ``deny_requests``, the
  RequestAuthentication and its "token required" DENY policy of ``require_jwt``. Deleted at
  rollback with uid + resourceVersion preconditions.
- **field overrides** (``ownership.override_field``): the mode of the PeerAuthentication that
  already governs a scope (Istio applies the *oldest* policy of a scope, so a second one would
  change nothing), and a RequestAuthentication rule's ``jwksUri``. Restored exactly, only where
  the field still holds ours; another writer's later value stays, reported as a conflict.

Every argument is checked before any request (``prepare_*``, registered as the actions'
argument checks), then the cluster before any write (the selector picks at least one Pod, the
RequestAuthentication and its rule exist). The effect is then verified in the data plane
(``chaosmesh_py.security.effect``); a change never seen is removed again and the action fails.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from chaosmesh_py import checks
from chaosmesh_py.engine import ownership, redaction
from chaosmesh_py.engine.access import Access, on
from chaosmesh_py.engine.kinds import (
    FIELD_OVERRIDE,
    OWNED_OBJECT,
    edit_verbs,
    editable_kinds,
    sweep_selector,
)
from chaosmesh_py.engine.run import Run, run_for
from chaosmesh_py.engine.verify import FaultNotObserved
from chaosmesh_py.errors import InvalidInput, NotFound, OwnedByAnotherRun, TargetNotFound, shown
from chaosmesh_py.faults import injection
from chaosmesh_py.istio import security_validation as rules
from chaosmesh_py.istio.inbound_fault import parse_labels
from chaosmesh_py.istio.owner_record import records
from chaosmesh_py.kube import POD, Kube, ResourceKind, ResourceRef, names
from chaosmesh_py.observe.pods import selected_pods
from chaosmesh_py.security import effect


def security_kind(kind: str) -> ResourceKind:
    return next(k.kind for k in editable_kinds() if k.kind.kind == kind)


PEER_AUTHENTICATION = security_kind("PeerAuthentication")
AUTHORIZATION_POLICY = security_kind("AuthorizationPolicy")
REQUEST_AUTHENTICATION = security_kind("RequestAuthentication")
# A jwksUri nobody serves: port 1 on the loopback refuses at once, wherever istiod runs, and
# the path says who wrote it.
UNREACHABLE_JWKS_URI = "http://127.0.0.1:1/chaosmesh/unreachable/jwks.json"


# ----------------------------------------------------------------- arguments (no request)


@dataclass(frozen=True)
class Where:
    """What every change shares: the configuration's settings, the namespace, the pods."""

    settings: injection.Settings
    namespace: str
    labels: Mapping[str, str] | None  # None: every workload of the namespace (or the mesh)


@dataclass(frozen=True)
class MtlsChange:
    where: Where
    mode: str
    port_modes: Mapping[int, str] = field(default_factory=dict)

    def spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"mtls": {"mode": self.mode}}
        if self.where.labels:
            spec["selector"] = {"matchLabels": dict(self.where.labels)}
        if self.port_modes:
            spec["portLevelMtls"] = self.port_level()
        return spec

    def port_level(self) -> dict[str, Any]:
        return {str(port): {"mode": mode} for port, mode in sorted(self.port_modes.items())}


@dataclass(frozen=True)
class VerifyRequest:
    """A request the action sends on the local mesh to see its effect: from a workload's
    sidecar (its identity, mTLS) to a service."""

    source: str
    service: str
    path: str = "/"


@dataclass(frozen=True)
class DenyChange:
    where: Where
    sources: Mapping[str, Sequence[str]]
    paths: Sequence[str]
    methods: Sequence[str]
    dry_run: bool
    verify: VerifyRequest | None

    def spec(self) -> dict[str, Any]:
        rule: dict[str, Any] = {}
        if self.sources:
            rule["from"] = [{"source": {k: list(v) for k, v in self.sources.items()}}]
        operation: dict[str, Any] = {}
        if self.paths:
            operation["paths"] = list(self.paths)
        if self.methods:
            operation["methods"] = list(self.methods)
        if operation:
            rule["to"] = [{"operation": operation}]
        # An empty rule matches every request: Istio's way to deny everything to the pods.
        return _selected({"action": "DENY", "rules": [rule]}, self.where.labels)

    def annotations(self) -> dict[str, str]:
        return {rules.DRY_RUN_ANNOTATION: "true"} if self.dry_run else {}


@dataclass(frozen=True)
class JwtRequirement:
    where: Where
    issuer: str
    jwks: str | None
    jwks_uri: str | None
    audiences: Sequence[str]
    forward_original_token: bool
    from_headers: Sequence[str]
    require_token: bool

    def request_authentication(self) -> dict[str, Any]:
        rule: dict[str, Any] = {"issuer": self.issuer}
        if self.jwks is not None:
            rule["jwks"] = self.jwks
        if self.jwks_uri is not None:
            rule["jwksUri"] = self.jwks_uri
        if self.audiences:
            rule["audiences"] = list(self.audiences)
        if self.forward_original_token:
            rule["forwardOriginalToken"] = True
        if self.from_headers:
            rule["fromHeaders"] = [{"name": name} for name in self.from_headers]
        return _selected({"jwtRules": [rule]}, self.where.labels)

    def token_required(self) -> dict[str, Any]:
        """Istio's documented "a token is required" policy (the jwt task): DENY what carries no
        request principal. An ALLOW would not restrict a workload that already has ALLOWs."""
        rule = {"from": [{"source": {"notRequestPrincipals": ["*"]}}]}
        return _selected({"action": "DENY", "rules": [rule]}, self.where.labels)


@dataclass(frozen=True)
class JwksOutage:
    settings: injection.Settings
    namespace: str
    request_authentication: str
    issuer: str | None


def _selected(spec: dict[str, Any], labels: Mapping[str, str] | None) -> dict[str, Any]:
    return {"selector": {"matchLabels": dict(labels)}, **spec} if labels else spec


def where_of(arguments: Mapping[str, Any], labels_field: str, required: str = "") -> Where:
    """The settings, namespace and labels of a change; ``required`` (what the labels are for)
    refuses a change without labels."""
    settings = injection.Settings.from_configuration(arguments.get("configuration"))
    namespace = injection.allowed_namespace(arguments.get("namespace", "default"), settings)
    value = arguments.get(labels_field)
    if value is None and required:
        raise InvalidInput(labels_field, f"must name the {required}", 'e.g. {"app": "ratings"}')
    labels = None if value is None else parse_labels(value, labels_field)
    return Where(settings, namespace, labels)


def prepare_mtls(arguments: Mapping[str, Any]) -> MtlsChange:
    mode = rules.parse_mtls_mode(arguments.get("mode"))
    where = where_of(arguments, "workload_labels")
    port_modes = rules.parse_port_modes(arguments.get("port_modes"), where.labels is not None)
    if where.labels and where.namespace == rules.ROOT_NAMESPACE:
        raise InvalidInput(
            "workload_labels",
            f"a policy in the root namespace {rules.ROOT_NAMESPACE!r} is mesh-wide: Istio "
            "ignores a selector there",
            "give the workloads' own namespace, or leave workload_labels out for the mesh",
        )
    return MtlsChange(where, mode, port_modes)


def prepare_deny(arguments: Mapping[str, Any]) -> DenyChange:
    where = where_of(arguments, "destination_labels")
    sources = rules.parse_sources(arguments.get("sources"))
    paths = rules.parse_paths(arguments.get("paths"))
    methods = rules.parse_methods(arguments.get("methods"))
    dry_run = checks.flag("dry_run", arguments.get("dry_run", False))
    return DenyChange(
        where, sources, paths, methods, dry_run, parse_verify(arguments.get("verify"))
    )


def parse_verify(value: object) -> VerifyRequest | None:
    example = '{"from": "reviews-v2", "to": "ratings", "path": "/ratings/0"}'
    if value is None:
        return None
    if not isinstance(value, Mapping) or set(value) - {"from", "to", "path"}:
        raise InvalidInput(
            "verify", f"must be a map with from, to and path, got {shown(value)}", example
        )
    source = checks.text("verify.from", value.get("from"))
    service = checks.text("verify.to", value.get("to"))
    path = value.get("path", "/")
    if not isinstance(path, str) or not path.startswith("/"):
        raise InvalidInput("verify.path", f"must start with '/', got {shown(path)}", example)
    return VerifyRequest(source, service, path)


def prepare_jwt(arguments: Mapping[str, Any]) -> JwtRequirement:
    where = where_of(arguments, "workload_labels", "workloads that require a token")
    issuer = rules.parse_issuer(arguments.get("issuer"))
    jwks, jwks_uri = arguments.get("jwks"), arguments.get("jwks_uri")
    if jwks is not None and jwks_uri is not None:
        raise InvalidInput("jwks/jwks_uri", "give one of them, not both")
    return JwtRequirement(
        where,
        issuer,
        None if jwks is None else rules.parse_jwks(jwks),
        None if jwks_uri is None else rules.parse_url(jwks_uri, "jwks_uri"),
        rules.parse_audiences(arguments.get("audiences")),
        checks.flag("forward_original_token", arguments.get("forward_original_token", False)),
        rules.parse_header_names(arguments.get("from_headers")),
        checks.flag("require_token", arguments.get("require_token", True)),
    )


def prepare_jwks_outage(arguments: Mapping[str, Any]) -> JwksOutage:
    settings = injection.Settings.from_configuration(arguments.get("configuration"))
    namespace = injection.allowed_namespace(arguments.get("namespace", "default"), settings)
    name = arguments.get("request_authentication")
    if not names.is_resource_name(name):
        raise InvalidInput(
            "request_authentication", f"{shown(name)} is not a resource name", 'e.g. "jwt-example"'
        )
    issuer = arguments.get("issuer")
    if issuer is not None:
        issuer = rules.parse_issuer(issuer)
    return JwksOutage(settings, namespace, str(name), issuer)


# ------------------------------------------------------------------------ the writes


def set_mtls_mode(arguments: Mapping[str, Any]) -> dict[str, Any]:
    redaction.remember(arguments.get("secrets"))
    change = prepare_mtls(arguments)
    kube = Kube.connect(arguments.get("secrets"))
    pods = _pods(kube, change.where, "the policy would apply to nothing")
    run = run_for(arguments.get("configuration"))
    governing = _governing_policy(kube, change.where, run.run_id)
    started = time.monotonic()
    report: dict[str, Any] = {"run_id": run.run_id, "mode": change.mode, "pods": pods}
    if change.port_modes:
        report["port_modes"] = {str(p): m for p, m in sorted(change.port_modes.items())}
    if governing is None:
        created = _create(kube, run, PEER_AUTHENTICATION, change.where, change.spec())
        report.update(created=created["resource"], expires=created["expires"])
        undo = _deleting(kube, run, created, PEER_AUTHENTICATION)
    else:
        ref = ResourceRef(PEER_AUTHENTICATION, change.where.namespace, governing)
        expires = injection.expiry(change.where.settings)
        written = [
            ownership.override_field(
                kube, ref, run, path=("spec", "mtls", "mode"), value=change.mode, expires_at=expires
            )
        ]
        if change.port_modes:
            written.append(
                ownership.override_field(
                    kube,
                    ref,
                    run,
                    path=("spec", "portLevelMtls"),
                    value=change.port_level(),
                    expires_at=expires,
                )
            )
        report["overridden"] = f"{ref.namespace}/{ref.name}"
        report["why"] = (
            "a PeerAuthentication of this scope exists and Istio applies the oldest one: its "
            "mode is set for the run and restored after"
        )
        report["fields"] = [
            {"field": w["field"], "wrote": w["wrote"], "replaced": w.get("replaced")}
            for w in written
        ]
        report["expires"] = written[0]["expires"]
        undo = _restoring(kube, run, ref)
    try:
        report["effect"] = effect.verify_mtls(
            kube,
            change,
            change.where.settings.verify_timeout_s,
            lambda: [
                *listed(kube, PEER_AUTHENTICATION, _mesh_namespace(kube, change.where)),
                *listed(kube, PEER_AUTHENTICATION, rules.ROOT_NAMESPACE),
            ],
        )
    except FaultNotObserved:
        undo()
        raise
    report["time_to_effect_s"] = round(time.monotonic() - started, 3)
    return report


def deny_requests(arguments: Mapping[str, Any]) -> dict[str, Any]:
    redaction.remember(arguments.get("secrets"))
    change = prepare_deny(arguments)
    kube = Kube.connect(arguments.get("secrets"))
    pods = _pods(kube, change.where, "the DENY policy would deny nothing", "destination_labels")
    run = run_for(arguments.get("configuration"))
    started = time.monotonic()
    created = _create(
        kube,
        run,
        AUTHORIZATION_POLICY,
        change.where,
        change.spec(),
        annotations=change.annotations(),
    )
    name = created["name"]
    try:
        verified = effect.verify_policy(
            kube, change, name, timeout_s=change.where.settings.verify_timeout_s
        )
    except FaultNotObserved:
        _deleting(kube, run, created, AUTHORIZATION_POLICY)()
        raise
    return {
        "run_id": run.run_id,
        "authorization_policy": created["resource"],
        "dry_run": change.dry_run,
        "spec": change.spec(),
        "pods": pods,
        "expires": created["expires"],
        "effect": verified,
        "time_to_effect_s": round(time.monotonic() - started, 3),
    }


def require_jwt(arguments: Mapping[str, Any]) -> dict[str, Any]:
    redaction.remember(arguments.get("secrets"))
    change = prepare_jwt(arguments)
    kube = Kube.connect(arguments.get("secrets"))
    pods = _pods(kube, change.where, "no workload would require a token")
    run = run_for(arguments.get("configuration"))
    started = time.monotonic()
    undo = []
    try:
        authentication = _create(
            kube, run, REQUEST_AUTHENTICATION, change.where, change.request_authentication()
        )
        undo.append(_deleting(kube, run, authentication, REQUEST_AUTHENTICATION))
        report: dict[str, Any] = {
            "run_id": run.run_id,
            "request_authentication": authentication["resource"],
            "issuer": change.issuer,
            "pods": pods,
            "expires": authentication["expires"],
        }
        if change.require_token:
            policy = _create(kube, run, AUTHORIZATION_POLICY, change.where, change.token_required())
            undo.append(_deleting(kube, run, policy, AUTHORIZATION_POLICY))
            report["authorization_policy"] = policy["resource"]
        report["effect"] = effect.verify_jwt(
            kube, change, timeout_s=change.where.settings.verify_timeout_s
        )
    except FaultNotObserved:
        for step in reversed(undo):
            step()
        raise
    report["time_to_effect_s"] = round(time.monotonic() - started, 3)
    return report


def make_jwks_unreachable(arguments: Mapping[str, Any]) -> dict[str, Any]:
    redaction.remember(arguments.get("secrets"))
    outage = prepare_jwks_outage(arguments)
    kube = Kube.connect(arguments.get("secrets"))
    ref = ResourceRef(REQUEST_AUTHENTICATION, outage.namespace, outage.request_authentication)
    try:
        current = kube.read(ref)
    except NotFound:
        existing = [
            r["metadata"]["name"] for r in listed(kube, REQUEST_AUTHENTICATION, outage.namespace)
        ]
        raise TargetNotFound(
            "request_authentication",
            f"no RequestAuthentication {outage.request_authentication!r} in namespace "
            f"{outage.namespace!r}",
            f"existing: {', '.join(existing) or '(none)'}",
        ) from None
    rule = _jwt_rule(current, outage)
    run = run_for(arguments.get("configuration"))
    _refuse_other_runs(current, run.run_id)
    issuer = str(rule["issuer"])
    before = effect.jwks_installed(kube, outage.namespace, issuer)
    started = time.monotonic()
    written = ownership.override_field(
        kube,
        ref,
        run,
        path=("spec", "jwtRules", {"issuer": issuer}, "jwksUri"),
        value=UNREACHABLE_JWKS_URI,
        expires_at=injection.expiry(outage.settings),
    )
    try:
        verified = effect.verify_jwks_replaced(
            kube, outage.namespace, issuer, before, timeout_s=outage.settings.verify_timeout_s
        )
    except FaultNotObserved:
        _restoring(kube, run, ref)()
        raise
    return {
        "run_id": run.run_id,
        "request_authentication": f"{ref.namespace}/{ref.name}",
        "issuer": issuer,
        "field": written["field"],
        "wrote": written["wrote"],
        "replaced": written.get("replaced"),
        "expires": written["expires"],
        "effect": verified,
        "time_to_effect_s": round(time.monotonic() - started, 3),
    }


def _mesh_namespace(kube: Kube, where: Where) -> str:
    """Where the pods a policy in ``where.namespace`` reaches live: the root namespace's
    policies reach the local mesh's own namespace."""
    mesh = kube.local_mesh() or {}
    if where.namespace == rules.ROOT_NAMESPACE:
        return str(mesh.get("namespace") or where.namespace)
    return where.namespace


def _jwt_rule(resource: Mapping[str, Any], outage: JwksOutage) -> Mapping[str, Any]:
    where = f"RequestAuthentication {outage.namespace}/{outage.request_authentication}"
    jwt_rules = [r for r in (resource.get("spec") or {}).get("jwtRules") or [] if r]
    issuers = [str(r.get("issuer")) for r in jwt_rules]
    if outage.issuer is not None:
        chosen = [r for r in jwt_rules if r.get("issuer") == outage.issuer]
        if not chosen:
            raise TargetNotFound(
                "issuer",
                f"{where} has no rule for issuer {outage.issuer!r}",
                f"its issuers: {', '.join(issuers) or '(none)'}",
            )
    elif len(jwt_rules) != 1:
        raise InvalidInput(
            "issuer",
            f"{where} has {len(jwt_rules)} rules: say which issuer's keys to cut off",
            f"its issuers: {', '.join(issuers) or '(none)'}",
        )
    else:
        chosen = jwt_rules
    rule = chosen[0]
    if rule.get("jwks"):
        raise InvalidInput(
            "request_authentication",
            f"{where} carries the keys of {rule.get('issuer')!r} inline (jwks): istiod fetches "
            "nothing for it, so there is nothing to make unreachable",
            "rehearse this on a rule with jwksUri (or with none: istiod then discovers it)",
        )
    return dict(rule)


def _pods(kube: Kube, where: Where, would: str, field_name: str = "workload_labels") -> list[str]:
    if where.labels is None:
        return []
    return selected_pods(kube, where.namespace, where.labels, field=field_name, would=would)


def _create(
    kube: Kube,
    run: Run,
    kind: ResourceKind,
    where: Where,
    spec: Mapping[str, Any],
    *,
    annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    created = ownership.create_object(
        kube,
        run,
        kind=kind,
        namespace=where.namespace,
        spec=spec,
        expires_at=injection.expiry(where.settings),
        annotations=annotations,
    )
    # What people read: namespace/name, as the other changes report their objects.
    return {
        **created,
        "namespace": where.namespace,
        "resource": f"{where.namespace}/{created['name']}",
    }


def _deleting(kube: Kube, run: Run, created: Mapping[str, Any], kind: ResourceKind) -> Any:
    ref = ResourceRef(kind, created["namespace"], created["name"])
    return lambda: ownership.release(kube, ref, run.run_id, run_ledger=run.ledger)


def _restoring(kube: Kube, run: Run, ref: ResourceRef) -> Any:
    return lambda: ownership.release(kube, ref, run.run_id, run_ledger=run.ledger, only_fields=True)


def _governing_policy(kube: Kube, where: Where, run_id: str) -> str | None:
    """The PeerAuthentication Istio applies to the scope now, when there is one: the oldest of
    the namespace's policies without a selector (a namespace or the mesh), or the oldest whose
    selector picks every pod ``where.labels`` pick (a workload)."""
    same_scope = []
    for policy in listed(kube, PEER_AUTHENTICATION, where.namespace):
        selector = ((policy.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        if (where.labels is None and not selector) or (
            where.labels and selector and all(where.labels.get(k) == v for k, v in selector.items())
        ):
            same_scope.append(policy)
    if not same_scope:
        return None
    oldest = min(
        same_scope,
        key=lambda p: (str(p["metadata"].get("creationTimestamp", "")), p["metadata"]["name"]),
    )
    _refuse_other_runs(oldest, run_id)
    return str(oldest["metadata"]["name"])


def _refuse_other_runs(resource: Mapping[str, Any], run_id: str) -> None:
    others = sorted({r.run_id for r in records(resource) if r.run_id != run_id})
    if others:
        metadata = resource.get("metadata", {})
        raise OwnedByAnotherRun(
            f"{resource.get('kind')} {metadata.get('namespace')}/{metadata.get('name')} carries "
            f"changes of run(s) {', '.join(others)}; wait for them to end or roll them back"
        )


def listed(kube: Kube, kind: ResourceKind, namespace: str) -> list[dict[str, Any]]:
    """The objects of ``kind`` in ``namespace`` a change or its removal may concern (of
    ConfigMaps, only certificate requests); none when the kind or namespace is not served."""
    try:
        return kube.list(kind, namespace, sweep_selector(kind))
    except NotFound:
        return []


# ------------------------------------------------------------------------- RBAC


def mtls_needs(arguments: Mapping[str, Any]) -> list[Access]:
    namespace = str(arguments.get("namespace") or "default")
    found = on(PEER_AUTHENTICATION, ["list"], namespace)
    found += on(PEER_AUTHENTICATION, edit_verbs(FIELD_OVERRIDE), namespace)
    found += on(PEER_AUTHENTICATION, edit_verbs(OWNED_OBJECT), namespace)
    if arguments.get("workload_labels") is not None:
        found += on(POD, ["list"], namespace)
    return found


def deny_needs(arguments: Mapping[str, Any]) -> list[Access]:
    namespace = str(arguments.get("namespace") or "default")
    found = on(AUTHORIZATION_POLICY, edit_verbs(OWNED_OBJECT), namespace)
    if arguments.get("destination_labels") is not None:
        found += on(POD, ["list"], namespace)
    return found


def jwt_needs(arguments: Mapping[str, Any]) -> list[Access]:
    namespace = str(arguments.get("namespace") or "default")
    found = on(POD, ["list"], namespace)
    found += on(REQUEST_AUTHENTICATION, edit_verbs(OWNED_OBJECT), namespace)
    if arguments.get("require_token", True) is not False:
        found += on(AUTHORIZATION_POLICY, edit_verbs(OWNED_OBJECT), namespace)
    return found


def jwks_needs(arguments: Mapping[str, Any]) -> list[Access]:
    namespace = str(arguments.get("namespace") or "default")
    name = arguments.get("request_authentication")
    return on(
        REQUEST_AUTHENTICATION,
        edit_verbs(FIELD_OVERRIDE),
        namespace,
        None if name is None else str(name),
    )
