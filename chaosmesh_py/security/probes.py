"""Chaos Toolkit probes for security (``chaosmesh_py.security.probes``): a policy behaviour
matrix from real requests, and posture checks."""

# No `from __future__ import annotations`: `chaos discover` reads the activities' annotations
# as types (a string annotation would be shown to users as "object").

from collections.abc import Callable, Mapping
from typing import Any

from chaosmesh_py.engine.access import needs, nothing
from chaosmesh_py.engine.activity import boundary
from chaosmesh_py.security import matrix, matrix_traffic, mesh_view, posture

# Per probe: what refuses its arguments (bound, defaults applied) before any request.
_ARGUMENT_CHECKS: dict[str, Callable[[Mapping[str, Any]], object]] = {}


def check_arguments(
    probe: str, arguments: Mapping[str, Any], configuration: Mapping[str, Any] | None
) -> None:
    """Raise InvalidInput if ``probe`` would refuse ``arguments`` (bound, defaults applied)."""
    check = _ARGUMENT_CHECKS.get(probe)
    if check is not None:
        check(arguments)


__all__: list[str] = []

# ------------------------------------------------------------ policy behaviour matrix
# (docs/security.md, "The policy matrix")

__all__ += ["policy_matrix"]


@needs(nothing)  # HTTP through the local mesh's sidecars, and its published info
def policy_matrix(
    sources: list,
    destinations: list,
    expect: dict,
    requests: list = None,
    tokens: list = None,
    issuer: str = None,
    audiences: list = None,
    subject: str = "chaosmesh-matrix",
    claims: dict = None,
    signing_key_file: str = None,
    signing_key_secret: str = None,
    token_header: str = "Authorization",
    concurrency: int = 4,
    timeout_s: float = 5.0,
    fail_on_difference: bool = True,
    secrets: dict = None,
) -> dict:
    """Send one real request per cell of sources x destinations x requests x tokens and compare
    each answer with `expect`.

    sources: workload names ("productpage-v1": the request leaves through its sidecar, with its
    identity) and/or "outside" (a client without a sidecar: plain text to the pod address of a
    workload destination, or to a service's ClusterIP). destinations: services ("ratings") or
    workloads. requests: [{"method": "GET", "path": "/", "headers": {...}}] (default one GET /).
    tokens: states among valid, expired, wrong-issuer, wrong-audience, bad-signature and none
    (default ["none"]), minted per run and sent as `token_header` (Bearer for Authorization);
    signed with the local mesh's issuer unless `issuer` with `signing_key_secret` (the name of
    a secret holding an RSA/EC private key, PEM or JWK) or `signing_key_file` is given.
    expect: {"default": OUTCOME, "rules": [{"source": ..., "destination": ..., "method": ...,
    "path": ..., "token": ..., "outcome": OUTCOME}]}, each rule field a value or a list, later
    rules winning; OUTCOME is "allowed", "401", "403", "reset" or an HTTP status.
    Returns cells, matched, differs (each differing cell: source, destination, method, path,
    token, expected, got, status, reason: Envoy's 401/403 body or what the socket saw),
    outcomes (cells per outcome got), observed (every cell), seconds, cells_per_s,
    tls_handshakes (completed by the local mesh's Envoy meanwhile, both sides of each; pooled
    connections make them fewer than the cells; null when unreadable) and waited_for_drain_s
    (before the first request, until no connection accepted under a replaced configuration
    could answer a cell). A difference fails the probe unless `fail_on_difference` is false; a
    matrix whose requests could not be sent always fails.
    Tokens are never returned nor logged: cells name the state.
    """
    with boundary():
        parsed = matrix.parse({**locals()})
        return matrix.judged(parsed, matrix_traffic.run(parsed, secrets))


_ARGUMENT_CHECKS["policy_matrix"] = matrix.parse

# ------------------------------------------------------------ posture checks
# (docs/security.md, "Posture checks")
# Each reads the namespace's Pods and the security.istio.io policies of the namespace and of the
# root namespace, and (measure: true) sends real requests where the mesh lets it: on the local
# mesh a plain-text GET to each pod's own address and a GET without a token to each service.
# Each returns its findings (kind, namespace, where, message, fix, measured, evidence): an empty
# list is healthy (tolerance [[]] in a steady state); `expect` ({"findings": n or [low, high]})
# makes the probe itself fail when the count is otherwise (a method probe is not judged).
# `selector` ({"app": "productpage"}) keeps the workloads carrying those labels; the policies
# and the callers considered stay the namespace's.

__all__ += [
    "mtls_only_rules_on_plaintext",
    "never_matching_policies",
    "plaintext_acceptors",
    "security_posture",
    "unenforced_request_authentication",
]


@needs(mesh_view.needs)
def plaintext_acceptors(
    namespace: str = "default",
    root_namespace: str = "istio-system",
    selector: dict = None,
    measure: bool = True,
    path: str = "/",
    timeout_s: float = 3.0,
    expect: dict = None,
    configuration: dict = None,
    secrets: dict = None,
) -> list:
    """The workloads of `namespace` that accept plain text (a client without a sidecar). On the
    local mesh measured: a plain-text GET `path` at each pod's own address (an answer of any
    status means plain text got in; a reset means STRICT refused it). On a cluster predicted
    from the PeerAuthentications (measured: false); a pod without a sidecar accepts anything."""
    with boundary():
        return posture.run("plaintext_acceptor", _arguments(locals()), secrets)


@needs(mesh_view.needs)
def unenforced_request_authentication(
    namespace: str = "default",
    root_namespace: str = "istio-system",
    selector: dict = None,
    url: str = None,
    measure: bool = True,
    path: str = "/",
    timeout_s: float = 3.0,
    expect: dict = None,
    configuration: dict = None,
    secrets: dict = None,
) -> list:
    """The missing-token trap: each workload a RequestAuthentication selects where a request
    with NO token still passes, because no AuthorizationPolicy requires a request principal.
    Measured with a GET without a token at `url` (given: where a request reaches the
    workloads `selector` keeps) or, on the local mesh, at the workload's service; predicted
    otherwise (or when `url` gives no answer) with Istio's authorization semantics for the
    namespace's callers and a plain-text client."""
    with boundary():
        return posture.run("unenforced_request_authentication", _arguments(locals()), secrets)


@needs(mesh_view.needs)
def mtls_only_rules_on_plaintext(
    namespace: str = "default",
    root_namespace: str = "istio-system",
    selector: dict = None,
    measure: bool = True,
    path: str = "/",
    timeout_s: float = 3.0,
    expect: dict = None,
    configuration: dict = None,
    secrets: dict = None,
) -> list:
    """ISTIO-SECURITY-2021-004: enforced ALLOW rules with notPrincipals / notNamespaces (or DENY
    rules with principals / namespaces, and the source.* conditions alike) on workloads that
    accept plain text, where a plain-text caller gets what the rule meant to refuse it. Each
    finding names the identity refused over mTLS and answered over plain text; on the local
    mesh a real plain-text GET shows it (measured: true when it got through)."""
    with boundary():
        return posture.run("mtls_only_rule_on_plaintext", _arguments(locals()), secrets)


@needs(mesh_view.needs)
def never_matching_policies(
    namespace: str = "default",
    root_namespace: str = "istio-system",
    expect: dict = None,
    configuration: dict = None,
    secrets: dict = None,
) -> list:
    """AuthorizationPolicies (of `namespace` and the root namespace) with rules that can never
    match: a selector no pod carries, principals / namespaces / service accounts no pod runs
    as, another trust domain, methods that are no HTTP method, ports no selected pod serves, a
    value both required and excluded; each finding says why."""
    with boundary():
        return posture.run("never_matching_policy", _arguments(locals()), secrets)


@needs(mesh_view.needs)
def security_posture(
    namespace: str = "default",
    root_namespace: str = "istio-system",
    selector: dict = None,
    measure: bool = True,
    path: str = "/",
    timeout_s: float = 3.0,
    expect: dict = None,
    configuration: dict = None,
    secrets: dict = None,
) -> dict:
    """Every posture check at once, as `chaosmesh security posture --json`: "workloads" (per
    workload: principal, accepts_plaintext, measured, predicted_mode, evidence), "findings"
    (all checks') and "summary" (findings, by_kind); `expect` counts every finding."""
    with boundary():
        return posture.run_report(_arguments(locals()), secrets)


def _arguments(arguments: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in arguments.items() if k not in ("configuration", "secrets")}


def _check_posture(arguments: Mapping[str, Any]) -> None:
    mesh_view.check_request(arguments)
    posture.check_expect(arguments.get("expect"))


for _probe in (
    "plaintext_acceptors",
    "unenforced_request_authentication",
    "mtls_only_rules_on_plaintext",
    "never_matching_policies",
    "security_posture",
):
    _ARGUMENT_CHECKS[_probe] = _check_posture
