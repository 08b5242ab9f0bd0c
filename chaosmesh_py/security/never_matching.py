"""Authorization rules that can never match what runs (``never_matching_policies``, a posture
check): a selector no pod carries, principals / namespaces / service accounts no pod runs as, a
trust domain other than the mesh's, methods that are no HTTP method (they are case-sensitive),
ports no selected pod serves, a value both required and excluded. Each finding says why; a
wildcard value is never judged (what it matches is a guess), nor a namespace we may not read.
"""

from __future__ import annotations

from collections.abc import Sequence

from chaosmesh_py.istio import authorization as authz
from chaosmesh_py.istio.identity import TRUST_DOMAIN
from chaosmesh_py.security.mesh_view import Finding, MeshView, Request, Workload

# Attributes every request has: a ['*'] in their not-form excludes them all.
ALWAYS_PRESENT = frozenset(
    {"methods", "paths", "ports", "hosts", "ipBlocks", "remoteIpBlocks"}
    | {"source.ip", "remote.ip", "destination.ip", "destination.port"}
)


_EVIDENCE = "read from the policy, the namespace's pods and the mesh's trust domain"


def never_matching_policies(view: MeshView, request: Request) -> list[Finding]:
    del request  # nothing to send: this one reads configuration only
    findings = []
    for resource in view.authorization_policies:
        policy = authz.parse(resource)
        if policy.bound_to_gateway or policy.action == "CUSTOM":
            continue
        # A root-namespace policy may select pods of namespaces not read here: what they
        # serve is unknown, so its ports are not judged.
        selected = [
            w
            for w in view.workloads
            if policy.namespace == view.namespace
            and authz.selects(policy, w.namespace, w.labels, view.root_namespace)
        ]
        reasons: list[str] = []
        all_dead = True  # False: only some rules are dead, the policy still matches
        if policy.selector is not None and policy.namespace == view.namespace and not selected:
            reasons.append(
                f"its selector {dict(policy.selector)} matches no pod of {view.namespace}"
            )
        elif not policy.rules and policy.action != "ALLOW":
            reasons.append(f"a {policy.action} policy without rules matches nothing")
        else:
            for index, rule in enumerate(policy.rules):
                why = _dead_rule(view, policy, rule, selected)
                if why:
                    reasons.append(f"rule {index}: {'; '.join(why)}")
            all_dead = len(reasons) == len(policy.rules)
        if reasons:
            findings.append(_never_finding(policy, reasons, all_dead=all_dead))
    return findings + _unapplied_authentication(view)


def _unapplied_authentication(view: MeshView) -> list[Finding]:
    """PeerAuthentications and RequestAuthentications of the namespace whose selector no pod
    carries, and port-level mTLS modes for ports no selected pod serves."""
    findings = []
    for kind, resources in (
        ("PeerAuthentication", view.peer_authentications),
        ("RequestAuthentication", view.request_authentications),
    ):
        for resource in resources:
            metadata, spec = resource.get("metadata") or {}, resource.get("spec") or {}
            selector = (spec.get("selector") or {}).get("matchLabels")
            if metadata.get("namespace") != view.namespace or not selector:
                continue
            key = f"{metadata.get('namespace')}/{metadata.get('name')}"
            selected = [
                w
                for w in view.workloads
                if authz.resource_selects(resource, w.namespace, w.labels, view.root_namespace)
            ]
            served = {p for w in selected for p in w.ports}
            unserved = [
                str(port)
                for port in (spec.get("portLevelMtls") or {})
                if served
                and all(w.ports for w in selected)
                and not (str(port).isdigit() and int(port) in served)
            ]
            if selected and not unserved:
                continue
            why = (
                f"its selector {dict(selector)} matches no pod of {view.namespace}"
                if not selected
                else f"portLevelMtls names ports {unserved} no selected pod serves "
                f"(they serve {sorted(served)})"
            )
            findings.append(
                Finding(
                    kind="never_matching_policy",
                    namespace=view.namespace,
                    where=f"{kind} {key}",
                    message=f"{kind} {key} applies to nothing: {why}",
                    fix="select the pods by labels they carry (kubectl get pods --show-labels)"
                    if not selected
                    else "name the container ports the pods serve",
                    measured=False,
                    evidence=_EVIDENCE,
                )
            )
    return findings


def _never_finding(
    policy: authz.AuthorizationPolicy, reasons: list[str], all_dead: bool
) -> Finding:
    effect = {
        "ALLOW": "it allows nothing: requests to the workloads it selects are denied unless "
        "another ALLOW policy matches (with a selector no pod carries: it applies to none)",
        "DENY": "it denies nothing",
        "AUDIT": "it audits nothing",
    }[policy.action]
    why = "; ".join(reasons)
    return Finding(
        kind="never_matching_policy",
        namespace=policy.namespace,
        where=f"AuthorizationPolicy {policy.key}",
        message=(
            f"{policy.action} {policy.key} can never match ({why}): {effect}"
            if all_dead
            else f"{policy.action} {policy.key} has rules that can never match ({why})"
        ),
        fix="name what runs (the pods' labels, service accounts and namespaces: kubectl get "
        "pods -o wide --show-labels), HTTP methods in upper case and ports the pods serve; or "
        "delete what is not meant to match",
        measured=False,
        evidence=_EVIDENCE,
    )


def _dead_rule(
    view: MeshView,
    policy: authz.AuthorizationPolicy,
    rule: authz.Rule,
    selected: Sequence[Workload],
) -> list[str]:
    """Why ``rule`` can never match (empty: it can)."""
    why: list[str] = []
    source_why = [_dead_entry(view, policy, entry, selected) for entry in rule.sources]
    if source_why and all(source_why):
        why.extend(w for ws in source_why for w in ws)
    operation_why = [_dead_entry(view, policy, entry, selected) for entry in rule.operations]
    if operation_why and all(operation_why):
        why.extend(w for ws in operation_why for w in ws)
    for condition in rule.conditions:
        why.extend(_dead_values(view, policy, condition, selected))
    return why


def _dead_entry(
    view: MeshView,
    policy: authz.AuthorizationPolicy,
    entry: Sequence[authz.Values],
    selected: Sequence[Workload],
) -> list[str]:
    return [w for values in entry for w in _dead_values(view, policy, values, selected)]


def _dead_values(
    view: MeshView,
    policy: authz.AuthorizationPolicy,
    values: authz.Values,
    selected: Sequence[Workload],
) -> list[str]:
    """Why no request can satisfy ``values`` (a field or a condition); empty when one can."""
    excluded = set(values.not_values)
    if values.values and set(values.values) <= excluded:
        return [f"{values.name} {list(values.values)} are all excluded by its not-form"]
    if "*" in excluded and values.name in ALWAYS_PRESENT:
        # Elsewhere ['*'] is an idiom: notRequestPrincipals ['*'] matches requests without a
        # token, notPrincipals ['*'] plain text.
        return [f"{authz.field_label(values, negative=True)} ['*'] excludes every request"]
    if not values.values:
        return []
    reasons = [_value_cannot_match(view, policy, values.name, v, selected) for v in values.values]
    if all(reasons):
        return [r for r in reasons if r]
    return []


def _value_cannot_match(
    view: MeshView,
    policy: authz.AuthorizationPolicy,
    name: str,
    value: str,
    selected: Sequence[Workload],
) -> str:
    if name == "methods":
        if value not in authz.HTTP_METHODS:
            hint = (
                f" (methods are case-sensitive: {value.upper()})"
                if value.upper() in authz.HTTP_METHODS
                else ""
            )
            return f"method {value!r} is no HTTP method{hint}"
        return ""
    if name in ("ports", "destination.port"):
        served = {p for w in selected for p in w.ports}
        if not value.isdigit() or not 0 < int(value) < 65536:
            return f"port {value!r} is no port number"
        if served and all(w.ports for w in selected) and int(value) not in served:
            return f"port {value} is served by no selected pod (they serve {sorted(served)})"
        return ""
    if "*" in value.strip("*") or value.startswith("*") or value.endswith("*"):
        return ""  # a wildcard: whether something matches is a guess
    if name in ("principals", "source.principal"):
        if value.startswith("spiffe://"):
            return f"principal {value!r} never matches: istiod adds spiffe:// itself"
        parts = value.split("/")
        if len(parts) != 5 or parts[1] != "ns" or parts[3] != "sa":
            return (
                f"principal {value!r} is not of the form <trust domain>/ns/<namespace>/sa/<account>"
            )
        if parts[0] != TRUST_DOMAIN:
            return (
                f"principal {value!r} is of trust domain {parts[0]!r}, "
                f"the mesh's is {TRUST_DOMAIN!r}"
            )
        return _no_pod_runs_as(view, parts[2], parts[4], f"principal {value!r}")
    if name in ("namespaces", "source.namespace"):
        return _no_pod_runs_as(view, value, None, f"namespace {value!r}")
    if name in ("serviceAccounts", "source.serviceAccount"):
        namespace, _, account = value.rpartition("/")
        return _no_pod_runs_as(
            view, namespace or policy.namespace, account, f"service account {value!r}"
        )
    if name == "trustDomains" and value != TRUST_DOMAIN:
        return f"trust domain {value!r} is not the mesh's ({TRUST_DOMAIN!r})"
    return ""


def _no_pod_runs_as(view: MeshView, namespace: str, account: str | None, what: str) -> str:
    pods = view.pods_in(namespace)
    if pods is None:
        return ""  # not readable: unknown, not a finding
    if account is None:
        return "" if pods else f"{what}: no pod runs in namespace {namespace!r}"
    accounts = {str((p.get("spec") or {}).get("serviceAccountName") or "default") for p in pods}
    if namespace == view.namespace:
        accounts |= {w.service_account for w in view.workloads}
    if account in accounts:
        return ""
    running = sorted(accounts) or "none"
    return f"{what}: no pod of {namespace!r} runs as {account!r} (they run as {running})"
