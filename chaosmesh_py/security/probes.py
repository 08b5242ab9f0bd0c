"""Chaos Toolkit probes for security (``chaosmesh_py.security.probes``): a policy behaviour
matrix from real requests, and posture checks."""

# No `from __future__ import annotations`: `chaos discover` reads the activities' annotations
# as types (a string annotation would be shown to users as "object").

from collections.abc import Callable, Mapping
from typing import Any

from chaosmesh_py.engine.access import needs, nothing
from chaosmesh_py.engine.activity import boundary
from chaosmesh_py.security import matrix, matrix_traffic

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
