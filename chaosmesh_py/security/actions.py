"""Chaos Toolkit actions for security changes (``chaosmesh_py.security.actions``).

Each action checks its arguments before any request, writes through the engine's ownership
path (owner record, ledger before the write, expiry), verifies its effect in the data plane
and is removed exactly by the control, ``rollback``, ``reap`` and ``halt``.
"""

# No `from __future__ import annotations`: `chaos discover` reads the activities' annotations
# as types (a string annotation would be shown to users as "object").

from collections.abc import Callable, Mapping
from typing import Any

from chaosmesh_py.engine.activity import check_action_arguments

# Per action: what refuses its arguments (bound, defaults applied) before any request.
# The control and `chaos validate` call check_arguments on an experiment's arguments.
_ARGUMENT_CHECKS: dict[str, Callable[[Mapping[str, Any]], object]] = {}


def check_arguments(
    action: str, arguments: dict[str, Any], configuration: dict[str, Any] | None
) -> None:
    """Raise InvalidInput if ``action`` would refuse ``arguments``; sends nothing."""
    check_action_arguments(
        globals()[action], _ARGUMENT_CHECKS.get(action), arguments, configuration
    )


__all__: list[str] = []

# ------------------------------------------------------- policy changes (mTLS, deny, JWT)
# (docs/security.md, "Reversible security changes")
# The logic is in chaosmesh_py.security.changes; the data-plane checks in security.effect.

from chaosmesh_py.engine.access import needs  # noqa: E402
from chaosmesh_py.engine.activity import boundary  # noqa: E402
from chaosmesh_py.security import changes  # noqa: E402

__all__ += ["deny_requests", "make_jwks_unreachable", "require_jwt", "set_mtls_mode"]


@needs(changes.mtls_needs)
def set_mtls_mode(
    mode: str,
    namespace: str = "default",
    workload_labels: dict = None,
    port_modes: dict = None,
    configuration: dict = None,
    secrets: dict = None,
) -> dict:
    """Set the mutual-TLS mode ("STRICT", "PERMISSIVE" or "DISABLE") for the run: of
    `namespace` (the root namespace "istio-system": the whole mesh, allowed in the
    configuration's chaosmesh_allow_namespaces), or of the pods `workload_labels` select there
    (at least one Pod), with `port_modes` ({"9080": "DISABLE"}) for single ports of those pods.

    Istio applies the oldest PeerAuthentication of a scope, so a second one would change
    nothing: where one of the same scope exists its mode is overridden (restored exactly at
    rollback, only where it still holds ours; a later value of another writer stays, reported
    as a conflict); else a PeerAuthentication the run owns is created (deleted at rollback).
    Then waits until the data plane shows it: on the local mesh each pod's inbound filter
    chains, and a plain-text request to each pod (reset under STRICT, answered otherwise); on a
    cluster the result says only the API was checked. Returns the run id, what was created or
    overridden, the pods and the effect.
    """
    with boundary():
        return changes.set_mtls_mode(locals())


@needs(changes.deny_needs)
def deny_requests(
    destination_labels: dict = None,
    namespace: str = "default",
    sources: dict = None,
    paths: list = None,
    methods: list = None,
    dry_run: bool = False,
    verify: dict = None,
    configuration: dict = None,
    secrets: dict = None,
) -> dict:
    """Deny requests for the run with an AuthorizationPolicy (action DENY) the run owns, in
    `namespace`, on the pods `destination_labels` select (at least one Pod; none: every
    workload of the namespace). Narrow it with `sources`, Istio's source fields ({"principals":
    ["cluster.local/ns/bookinfo/sa/bookinfo-reviews"]}, namespaces, ipBlocks, their not-forms,
    requestPrincipals), `paths` (["/ratings/*"]) and `methods` (["GET"]); with none, every
    request to those pods is denied. `dry_run` writes Istio's istio.io/dry-run annotation: the
    policy is evaluated and counted, never enforced.

    Waits until each pod's inbound RBAC filter holds the policy (local mesh); with `verify`
    ({"from": "reviews-v2", "to": "ratings", "path": "/ratings/0"}), a request from that
    workload's sidecar is answered 403 "RBAC: access denied" (dry-run: answered as before, and
    the shadow-denied counters moved). Deleted at rollback, by the control, reap and halt.
    """
    with boundary():
        return changes.deny_requests(locals())


@needs(changes.jwt_needs)
def require_jwt(
    workload_labels: dict,
    issuer: str,
    namespace: str = "default",
    jwks: dict = None,
    jwks_uri: str = None,
    audiences: list = None,
    forward_original_token: bool = False,
    from_headers: list = None,
    require_token: bool = True,
    configuration: dict = None,
    secrets: dict = None,
) -> dict:
    """Require a JWT from `issuer` on the pods `workload_labels` select in `namespace`: a
    RequestAuthentication the run owns (keys from `jwks`, a JWKS given inline, or fetched from
    `jwks_uri`; `audiences`, `forward_original_token`, `from_headers` as Istio's JWTRule) and,
    with `require_token` (the default), the DENY policy Istio's docs give for "a token is
    required" (notRequestPrincipals ["*"]). A RequestAuthentication alone refuses an invalid
    token but lets a request with no token through. Waits until each pod's jwt_authn filter
    knows the issuer (local mesh). Both objects are deleted at rollback.
    """
    with boundary():
        return changes.require_jwt(locals())


@needs(changes.jwks_needs)
def make_jwks_unreachable(
    request_authentication: str,
    namespace: str = "default",
    issuer: str = None,
    configuration: dict = None,
    secrets: dict = None,
) -> dict:
    """Point the `jwksUri` of a RequestAuthentication's rule (the one for `issuer`; may be left
    out when it has one rule) at an address nobody serves, for the run: istiod's fetch fails
    and it installs a key nobody holds, so every token of that issuer is refused (401). Refused
    for a rule whose keys are inline (`jwks`): nothing is fetched. The URI it replaced (or its
    absence) is restored exactly at rollback. Waits until the sidecars' keys for the issuer
    changed (local mesh).
    """
    with boundary():
        return changes.make_jwks_unreachable(locals())


_ARGUMENT_CHECKS["set_mtls_mode"] = changes.prepare_mtls
_ARGUMENT_CHECKS["deny_requests"] = changes.prepare_deny
_ARGUMENT_CHECKS["require_jwt"] = changes.prepare_jwt
_ARGUMENT_CHECKS["make_jwks_unreachable"] = changes.prepare_jwks_outage

# ------------------------------------------------------- certificates (local mesh)
# (docs/security.md, "Certificates")

from chaosmesh_py.security import certificates  # noqa: E402

__all__ += ["expire_certificate", "rotate_certificate"]


@needs(certificates.needs)
def expire_certificate(
    workload_labels: dict,
    namespace: str = "default",
    configuration: dict = None,
    secrets: dict = None,
) -> dict:
    """Expire the workload certificate of the pods `workload_labels` select in `namespace`, on
    the local mesh only (a cluster: refused before any write): it is re-issued with notAfter in
    the past, so every peer refuses the handshake. Waits until Envoy's /certs shows it; a fresh
    certificate is issued at rollback (the run's request, a ConfigMap, deleted).
    """
    with boundary():
        return certificates.change_certificate(locals(), certificates.EXPIRED)


@needs(certificates.needs)
def rotate_certificate(
    workload_labels: dict,
    namespace: str = "default",
    configuration: dict = None,
    secrets: dict = None,
) -> dict:
    """Rotate the workload certificate of the pods `workload_labels` select (local mesh only):
    a new key and certificate, same identity, as istio-agent does before expiry. Waits until
    Envoy's /certs shows a new serial number.
    """
    with boundary():
        return certificates.change_certificate(locals(), certificates.ROTATED)


_ARGUMENT_CHECKS["expire_certificate"] = certificates.prepare
_ARGUMENT_CHECKS["rotate_certificate"] = certificates.prepare
