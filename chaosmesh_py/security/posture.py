"""Posture checks: what a namespace's security policies let through, each finding measured with
a real request where the mesh lets us send one, else predicted from the policies (and marked so).

- ``plaintext_acceptors``: workloads that answer a client without a sidecar. On the local mesh a
  plain-text GET goes to each pod's own address (its inbound, where PeerAuthentication
  applies); on a cluster the mode comes from the PeerAuthentications
  (``istio.peer_authentication.effective_mtls``), and a pod without a sidecar accepts anything.
- ``unenforced_request_authentication``: a RequestAuthentication rejects a bad token but lets a
  request with *no* token through unless an AuthorizationPolicy requires a request principal
  (istio.io's authn and jwt tasks). Predicted with ``istio.authorization.decide`` for the
  namespace's own callers; measured with a request without a token.
- ``mtls_only_rules_on_plaintext``: ISTIO-SECURITY-2021-004. An enforced rule whose mTLS-only
  field lets plain text through (``istio.authorization.plaintext_bypass``) on a workload that
  accepts plain text: the identity the author meant to refuse is refused over mTLS and answered
  over plain text; measured with a plain-text request to the pod.
- ``never_matching_policies``: rules that cannot match anything that runs: a selector no pod
  carries, principals / namespaces / service accounts no pod runs as, a trust domain other
  than the mesh's, methods that are no HTTP method, ports no selected pod serves, a value both
  required and excluded.

Every check reads the namespace's Pods and the security.istio.io policies of the namespace and
of the root namespace through ``chaosmesh_py.kube``; nothing is written.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chaosmesh_py.errors import ChaosMeshError, InvalidInput, shown
from chaosmesh_py.istio import authorization as authz
from chaosmesh_py.istio.identity import principal
from chaosmesh_py.istio.peer_authentication import effective_mtls
from chaosmesh_py.kube import Kube
from chaosmesh_py.security.mesh_view import (
    Finding,
    MeshView,
    Request,
    Workload,
    check_request,
    read,
    send,
)
from chaosmesh_py.security.never_matching import never_matching_policies


@dataclass(frozen=True)
class PlaintextSeen:
    workload: Workload
    accepts: bool
    measured: bool
    evidence: str
    predicted_mode: str


def plaintext_status(view: MeshView, request: Request) -> list[PlaintextSeen]:
    """Per workload: does it accept plain text, and how we know (measured once per view)."""
    if "plaintext" not in view.measured:
        view.measured["plaintext"] = _plaintext_status(view, request)
    seen: list[PlaintextSeen] = view.measured["plaintext"]
    return seen


def _plaintext_status(view: MeshView, request: Request) -> list[PlaintextSeen]:
    seen = []
    for workload in request.chosen(view.workloads):
        modes = _predicted_modes(view, workload)
        predicted = "no sidecar" if not workload.sidecar else ", ".join(sorted(set(modes.values())))
        predicts_plain = not workload.sidecar or any(m != "STRICT" for m in modes.values())
        if request.measure and workload.pod_url:
            answer = send(workload.pod_url, request.path, request.timeout_s)
            evidence = f"a plain-text GET {request.path} at the pod's address: {answer}"
            if answer.answered != predicts_plain:
                evidence += f" (the PeerAuthentications predict {predicted})"
            seen.append(PlaintextSeen(workload, answer.answered, True, evidence, predicted))
            continue
        if not workload.sidecar:
            evidence = "no sidecar: nothing asks for a certificate"
        else:
            evidence = "PeerAuthentication mode " + ", ".join(
                f"{mode} on port {port}" if port else mode for port, mode in modes.items()
            )
        seen.append(PlaintextSeen(workload, predicts_plain, False, evidence, predicted))
    return seen


def _predicted_modes(view: MeshView, workload: Workload) -> dict[int | None, str]:
    ports: Iterable[int | None] = workload.ports or (None,)
    return {
        port: effective_mtls(
            view.peer_authentications,
            workload.namespace,
            workload.labels,
            port,
            root_namespace=view.root_namespace,
        )
        for port in ports
    }


def plaintext_acceptors(view: MeshView, request: Request) -> list[Finding]:
    findings = []
    for seen in plaintext_status(view, request):
        if not seen.accepts:
            continue
        name = seen.workload.name
        if seen.workload.sidecar:
            message = (
                f"{name} accepts plain text: a client without a sidecar reaches it with no "
                "identity, and rules on principals or namespaces never match it"
            )
            fix = (
                "a PeerAuthentication with mtls.mode STRICT selecting it (istio.io's "
                "mtls-migration task: first move every client into the mesh)"
            )
        else:
            message = f"{name} has no sidecar: anyone reaches it, and no Istio policy applies"
            fix = "inject the sidecar (the namespace labelled istio-injection=enabled, a restart)"
        findings.append(
            Finding(
                kind="plaintext_acceptor",
                namespace=seen.workload.namespace,
                where=name,
                message=message,
                fix=fix,
                measured=seen.measured,
                evidence=seen.evidence,
            )
        )
    return findings


def unenforced_request_authentication(view: MeshView, request: Request) -> list[Finding]:
    findings = []
    policies = view.policies()
    for resource in view.request_authentications:
        meta = resource.get("metadata") or {}
        key = f"{meta.get('namespace')}/{meta.get('name')}"
        issuers = [str(r.get("issuer")) for r in (resource.get("spec") or {}).get("jwtRules") or []]
        for workload in request.chosen(view.workloads):
            if not authz.resource_selects(
                resource, workload.namespace, workload.labels, view.root_namespace
            ):
                continue
            passing = _tokenless_callers(view, policies, workload, request.path)
            answer = None
            url = request.url or workload.service_url
            if request.measure and url:
                answer = send(url, "" if request.url else request.path, request.timeout_s)
            if answer is not None and answer.answered:
                if not answer.let_through:
                    continue
                evidence = f"a GET without a token at {url}: {answer}"
            elif passing:
                evidence = "predicted: a request without a token from " + ", ".join(passing)
                evidence += " is allowed by the AuthorizationPolicies"
                if answer is not None:
                    evidence += f" ({url} gave {answer})"
            else:
                continue
            findings.append(
                Finding(
                    kind="unenforced_request_authentication",
                    namespace=workload.namespace,
                    where=workload.name,
                    message=f"RequestAuthentication {key} (issuers {', '.join(issuers) or '-'}) "
                    f"rejects bad tokens on {workload.name}, but a request with no token passes: "
                    "no AuthorizationPolicy requires a request principal",
                    fix="an AuthorizationPolicy selecting it with action ALLOW and "
                    'from.source.requestPrincipals ["*"] (or action DENY with '
                    'notRequestPrincipals ["*"])',
                    measured=answer is not None and answer.answered,
                    evidence=evidence,
                )
            )
    return findings


def _tokenless_callers(
    view: MeshView, policies: Sequence[authz.AuthorizationPolicy], workload: Workload, path: str
) -> list[str]:
    """Which of the namespace's callers (by identity) and a plain-text client the policies let
    reach ``workload`` at ``path`` without a token."""
    callers: dict[str, str | None] = {w.principal: w.principal for w in view.workloads}
    callers["a plain-text client"] = None
    allowed = []
    for label, peer in callers.items():
        facts = authz.RequestFacts(
            namespace=workload.namespace,
            labels=workload.labels,
            port=workload.ports[0] if workload.ports else None,
            source_principal=peer,
            path=path,
        )
        if authz.decide(policies, facts, root_namespace=view.root_namespace).allowed:
            allowed.append(label)
    return allowed


def mtls_only_rules_on_plaintext(view: MeshView, request: Request) -> list[Finding]:
    accepting = {s.workload.name: s for s in plaintext_status(view, request) if s.accepts}
    policies = view.policies()
    findings = []
    for policy in policies:
        if policy.dry_run or policy.action not in ("ALLOW", "DENY"):
            continue
        uses = authz.plaintext_bypass(policy)
        for workload in request.chosen(view.workloads) if uses else ():
            seen = accepting.get(workload.name)
            if seen is None or not authz.selects(
                policy, workload.namespace, workload.labels, view.root_namespace
            ):
                continue
            shown_bypass = _bypass(view, policies, policy, workload, request, uses=uses)
            if shown_bypass is None:
                continue  # other policies refuse plain text there anyway
            evidence, measured = shown_bypass
            fields = ", ".join(sorted({f"rule {i} {name}" for i, name in uses}))
            findings.append(
                Finding(
                    kind="mtls_only_rule_on_plaintext",
                    namespace=workload.namespace,
                    where=f"AuthorizationPolicy {policy.key} on {workload.name}",
                    message=f"{policy.action} {policy.key} uses mTLS-only fields ({fields}) on "
                    f"{workload.name}, which accepts plain text ({seen.evidence}): those fields "
                    "never match plain text, so a plain-text caller gets through "
                    "(ISTIO-SECURITY-2021-004)",
                    fix="STRICT mTLS for the workload (a PeerAuthentication), or rewrite the "
                    "rule as ALLOW with positive principals/namespaces or DENY with their "
                    "not-forms, which refuse plain text",
                    measured=measured,
                    evidence=evidence,
                )
            )
    return findings


def _bypass(
    view: MeshView,
    policies: Sequence[authz.AuthorizationPolicy],
    policy: authz.AuthorizationPolicy,
    workload: Workload,
    request: Request,
    *,
    uses: Sequence[tuple[int, str]],
) -> tuple[str, bool] | None:
    """(evidence, measured) for the first rule through which the identity it meant to refuse
    is refused over mTLS and answered over plain text; None when no rule lets that happen."""
    for index, _ in uses:
        rule = policy.rules[index]
        identity = _refused_identity(policy, rule, view.namespace)
        method, path = _example_operation(rule, request.path)
        over_mtls, over_plain = (
            authz.decide(
                policies,
                authz.RequestFacts(
                    namespace=workload.namespace,
                    labels=workload.labels,
                    port=workload.ports[0] if workload.ports else None,
                    source_principal=peer,
                    source_namespace=identity.split("/")[2],
                    method=method,
                    path=path,
                ),
                root_namespace=view.root_namespace,
            )
            for peer in (identity, None)
        )
        if over_mtls.allowed or not over_plain.allowed:
            continue
        evidence = (
            f"{identity} is refused over mTLS ({over_mtls.reason}) but its {method} {path} "
            f"is answered over plain text ({over_plain.reason})"
        )
        if not (request.measure and workload.pod_url and method == "GET"):
            return evidence, False
        answer = send(workload.pod_url, path, request.timeout_s)
        return f"{evidence}; a plain-text GET {path} at the pod: {answer}", answer.let_through
    return None


def _example_operation(rule: authz.Rule, default_path: str) -> tuple[str, str]:
    """A method and path the rule's first operation covers (GET and ``default_path`` where it
    names none): the request the bypass is shown with."""
    fields = {values.name: values for values in (rule.operations[0] if rule.operations else ())}
    methods = fields["methods"].values if "methods" in fields else ()
    paths = [p for p in (fields["paths"].values if "paths" in fields else ()) if p != "*"]
    path = default_path
    if paths:
        path = re.sub(r"\{\*\*?\}", "x", paths[0]).replace("*", "x")
        path = path if path.startswith("/") else default_path
    return (methods[0] if methods else "GET"), path


def _refused_identity(policy: authz.AuthorizationPolicy, rule: authz.Rule, namespace: str) -> str:
    """A principal the author meant ``rule`` to refuse, from the field that bypasses, made
    concrete (a wildcard's part filled in)."""
    for values in rule.fields():
        names = values.values if policy.action == "DENY" else values.not_values
        for value in names:
            concrete = value.replace("*", "x")
            if values.name in ("principals", "source.principal"):
                return concrete
            if values.name in ("namespaces", "source.namespace"):
                return principal(concrete, "default")
            if values.name in ("serviceAccounts", "source.serviceAccount"):
                ns, _, sa = concrete.rpartition("/")
                return principal(ns or policy.namespace, sa)
            if values.name == "trustDomains":
                return f"{concrete}/ns/{namespace}/sa/default"
    return principal(namespace, "default")


# ------------------------------------------------------------------ everything at once

CHECKS = {
    "plaintext_acceptor": plaintext_acceptors,
    "unenforced_request_authentication": unenforced_request_authentication,
    "mtls_only_rule_on_plaintext": mtls_only_rules_on_plaintext,
    "never_matching_policy": never_matching_policies,
}


def posture_report(view: MeshView, request: Request) -> dict[str, Any]:
    findings = [f.to_json() for check in CHECKS.values() for f in check(view, request)]
    counts = {kind: sum(1 for f in findings if f["kind"] == kind) for kind in CHECKS}
    return {
        "namespace": view.namespace,
        "root_namespace": view.root_namespace,
        "local_mesh": view.local,
        "workloads": [
            {
                "workload": s.workload.name,
                "principal": s.workload.principal,
                "accepts_plaintext": s.accepts,
                "measured": s.measured,
                "predicted_mode": s.predicted_mode,
                "evidence": s.evidence,
            }
            for s in plaintext_status(view, request)
        ],
        "findings": findings,
        "summary": {"findings": len(findings), "by_kind": counts},
    }


def held(findings: list[dict[str, Any]], expect: object) -> list[dict[str, Any]]:
    """``findings`` when their number is as ``expect`` says ({"findings": n or [low, high]});
    NotAsExpected naming them otherwise."""
    if expect is None:
        return findings
    low, high = check_expect(expect)
    if not low <= len(findings) <= high:
        wanted = f"{low}" if low == high else f"[{low}, {high}]"
        listed = "; ".join(f"{f['where']}: {f['evidence']}" for f in findings) or "none"
        raise NotAsExpected(f"{len(findings)} findings, expected {wanted} ({listed})")
    return findings


def check_expect(expect: object) -> tuple[int, int]:
    if expect is None:
        return 0, 1 << 30
    value = expect.get("findings") if isinstance(expect, dict) else None
    if not isinstance(expect, dict) or set(expect) != {"findings"}:
        raise InvalidInput(
            "expect",
            f"must be {{'findings': n or [low, high]}}, got {shown(expect)}",
            'e.g. {"findings": 0}',
        )
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value, value
    if (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)
        and value[0] <= value[1]
    ):
        return value[0], value[1]
    raise InvalidInput(
        "expect.findings", f"must be a count or [low, high], got {shown(value)}", "e.g. 0 or [1, 5]"
    )


class NotAsExpected(ChaosMeshError):
    """The findings were not as the experiment's ``expect`` said: the probe fails."""


def run(
    check: str, arguments: Mapping[str, Any], secrets: Mapping[str, Any] | None
) -> list[dict[str, Any]]:
    """Check the arguments, read the mesh, run one check: its findings, as ``expect`` says."""
    request = check_request(arguments)
    check_expect(arguments.get("expect"))
    view = read(Kube.connect(secrets), request)
    return held([f.to_json() for f in CHECKS[check](view, request)], arguments.get("expect"))


def run_report(arguments: Mapping[str, Any], secrets: Mapping[str, Any] | None) -> dict[str, Any]:
    """Every check: the report, its findings as ``expect`` says."""
    request = check_request(arguments)
    check_expect(arguments.get("expect"))
    report = posture_report(read(Kube.connect(secrets), request), request)
    held(report["findings"], arguments.get("expect"))
    return report
