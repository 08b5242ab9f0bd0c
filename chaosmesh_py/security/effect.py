"""Whether a security change shows in the data plane: each selected pod's inbound sidecar, as
Envoy holds it, and real requests.

    local mesh   mTLS       the pod's inbound filter chains (STRICT: TLS only; PERMISSIVE: TLS
                            and plain text; DISABLE: plain text only), then a plain-text request
                            to the pod's address: reset under STRICT, answered otherwise
                 DENY       the policy in the pod's RBAC filter (``ns[N]-policy[P]-rule[i]``;
                            dry-run: in its shadow rules); with ``verify``, a request from a
                            workload's sidecar: 403 ``RBAC: access denied`` (dry-run: answered,
                            and the pods' shadow-denied counters moved)
                 JWT        the issuer among the pod's jwt_authn providers (and the DENY of a
                            required token in its RBAC filter)
                 JWKS       the keys installed for the issuer changed (istiod's fetch failed: a
                            key nobody holds)
    cluster      the object is in the API; istiod pushes it. The result says the data plane was
                 not checked (a cluster's sidecars are not this process's to read).

A change never seen within the time box raises FaultNotObserved; the action then removes it.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from chaosmesh_py.engine.envoy_admin import EnvoyAdmin, EnvoyAdminError, inbound_listener
from chaosmesh_py.engine.verify import VERIFIER_HEADER, FaultNotObserved
from chaosmesh_py.istio import security_validation as rules
from chaosmesh_py.istio.peer_authentication import effective_mtls
from chaosmesh_py.kube import Kube
from chaosmesh_py.observe.inbound_hits import inbound_pods

if TYPE_CHECKING:
    from chaosmesh_py.security.changes import DenyChange, JwtRequirement, MtlsChange

POLL_S = 0.05
REQUEST_TIMEOUT_S = 2.0
RBAC_FILTER = "envoy.filters.http.rbac"
JWT_FILTER = "envoy.filters.http.jwt_authn"
DENIED_BODY = "RBAC: access denied"


def off() -> dict[str, Any]:
    return {"verified": False, "checked": "no: verification is off (timeout 0)"}


def on_cluster(what: str) -> dict[str, Any]:
    return {
        "verified": False,
        "checked": f"the {what} is in the API; on a cluster istiod pushes it to the sidecars, "
        "which this process cannot read: not checked in the data plane (probe it with requests)",
    }


def secure_mesh(kube: Kube) -> Mapping[str, Any] | str | None:
    """The local mesh's info when it serves inbound security; None on a cluster; a reason
    (str) when this local mesh has no inbound security to check."""
    mesh = kube.local_mesh()
    if mesh is None:
        return None
    workloads = mesh.get("workloads") or {}
    if not any("principal" in w for w in workloads.values()):
        return (
            "no: this local mesh publishes no workload identities (it predates inbound mTLS "
            "and authorization): the object is in the API only"
        )
    return mesh


def scoped_pods(
    mesh: Mapping[str, Any], namespace: str, labels: Mapping[str, str] | None
) -> dict[str, Any]:
    """The mesh's pods with an inbound sidecar that a policy in ``namespace`` selecting
    ``labels`` applies to (the root namespace: every pod)."""
    if namespace != rules.ROOT_NAMESPACE and mesh.get("namespace") != namespace:
        return {}
    return inbound_pods(mesh, labels or {})


# --------------------------------------------------------------------------- mTLS


def verify_mtls(
    kube: Kube,
    change: MtlsChange,
    timeout_s: float,
    peer_authentications: Callable[[], list[dict[str, Any]]],
) -> dict[str, Any]:
    """``peer_authentications``: those of the pods' namespace and the root namespace, read
    after the write: what each pod's mode now is follows Istio's precedence
    (``istio.peer_authentication.effective_mtls``), so a pod a workload policy governs is
    checked against that policy's mode, and reported as not reached by the change."""
    if timeout_s == 0:
        return off()
    mesh = secure_mesh(kube)
    if mesh is None:
        return on_cluster("PeerAuthentication")
    if isinstance(mesh, str):
        return {"verified": False, "checked": mesh}
    pods = scoped_pods(mesh, change.where.namespace, change.where.labels)
    if not pods:
        return {"verified": False, "checked": "no pod of the local mesh is in the scope"}
    policies = peer_authentications()
    namespace = str(mesh.get("namespace"))
    expected = {
        name: effective_mtls(
            policies, namespace, w.get("labels") or {}, port=w.get("container_port")
        )
        for name, w in pods.items()
    }
    governed = {
        name: mode
        for name, mode in expected.items()
        if mode != change.port_modes.get(int(pods[name].get("container_port") or 0), change.mode)
    }
    deadline = time.monotonic() + timeout_s
    with EnvoyAdmin(mesh["envoy_admin_socket"]) as admin:
        _until(
            lambda: {
                name
                for name, mode in expected.items()
                if _chain_modes(admin, pods[name]) != _CHAINS[mode]
            },
            deadline,
            "the inbound filter chains never showed the mode for",
        )
    answered = {}
    for name, mode in sorted(expected.items()):
        url = pods[name].get("pod_url")
        if not url:
            continue
        answered[name] = _until_plain_text(url, refused=mode == "STRICT", deadline=deadline)
    effect: dict[str, Any] = {
        "verified": True,
        "checked": "each pod's inbound filter chains in Envoy's configuration, then a "
        "plain-text request to each pod's address (refused under STRICT, answered otherwise)",
        "pods": expected,
        "plain_text": answered,
    }
    if governed:
        # Another policy decides these pods' mode (a workload's over a namespace's): as Istio.
        effect["governed_by_another_policy"] = governed
    return effect


# transport protocols of an inbound listener's chains per mode (listener_inbound.go)
_CHAINS = {
    "STRICT": frozenset({"tls"}),
    "PERMISSIVE": frozenset({"tls", "raw_buffer"}),
    "DISABLE": frozenset({"raw_buffer"}),
}


def _chain_modes(admin: EnvoyAdmin, workload: Mapping[str, Any]) -> frozenset[str]:
    found = set()
    for chain in _listener(admin, workload).get("filter_chains", []):
        protocol = (chain.get("filter_chain_match") or {}).get("transport_protocol")
        found.add("tls" if protocol == "tls" else "raw_buffer")
    return frozenset(found)


def _until_plain_text(url: str, *, refused: bool, deadline: float) -> str:
    while True:
        status = _plain_request(url)
        if (status is None) == refused:
            return "refused" if status is None else f"answered {status}"
        if time.monotonic() > deadline:
            raise FaultNotObserved(
                f"a plain-text request to {url} was "
                + ("answered" if status is not None else "refused")
                + (
                    " although the mode is STRICT"
                    if refused
                    else " although plain text is accepted"
                )
            )
        time.sleep(POLL_S)


def _plain_request(url: str, path: str = "/") -> int | None:
    """One plain-text GET to a pod's address: its status, or None when the connection was reset
    or closed before an answer (a STRICT inbound waits for a TLS handshake)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(
        parts.hostname or "", parts.port, timeout=REQUEST_TIMEOUT_S
    )
    try:
        connection.request("GET", path, headers={VERIFIER_HEADER: "security-change"})
        return connection.getresponse().status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        connection.close()


# ---------------------------------------------------------------- authorization, JWT


def verify_policy(kube: Kube, change: DenyChange, name: str, timeout_s: float) -> dict[str, Any]:
    if timeout_s == 0:
        return off()
    mesh = secure_mesh(kube)
    if mesh is None:
        return on_cluster("AuthorizationPolicy")
    if isinstance(mesh, str):
        return {"verified": False, "checked": mesh}
    namespace = change.where.namespace
    pods = scoped_pods(mesh, namespace, change.where.labels)
    marker = f"ns[{namespace}]-policy[{name}]-rule"
    deadline = time.monotonic() + timeout_s
    with EnvoyAdmin(mesh["envoy_admin_socket"]) as admin:
        _until(
            lambda: {p for p in pods if not _rbac_holds(admin, pods[p], marker, change.dry_run)},
            deadline,
            "the DENY policy never showed in the RBAC filter of",
        )
        effect: dict[str, Any] = {
            "verified": True,
            "checked": "the policy in each selected pod's inbound RBAC filter"
            + (" (shadow rules: dry-run)" if change.dry_run else ""),
            "pods": sorted(pods),
        }
        if change.verify is not None:
            effect["request"] = _verify_request(admin, mesh, pods, change, deadline)
            effect["checked"] += ", then a request from " + change.verify.source
    return effect


def _rbac_holds(admin: EnvoyAdmin, workload: Mapping[str, Any], marker: str, shadow: bool) -> bool:
    for http_filter in _http_filters(admin, workload):
        if http_filter.get("name") != RBAC_FILTER:
            continue
        config = http_filter.get("typed_config") or {}
        policies = (config.get("shadow_rules" if shadow else "rules") or {}).get("policies") or {}
        if any(marker in key for key in policies):
            return True
    return False


def _verify_request(
    admin: EnvoyAdmin,
    mesh: Mapping[str, Any],
    pods: Mapping[str, Any],
    change: DenyChange,
    deadline: float,
) -> dict[str, Any]:
    assert change.verify is not None
    request = change.verify
    workloads = mesh.get("workloads") or {}
    services = mesh.get("services") or {}
    if request.source not in workloads or request.service not in services:
        raise FaultNotObserved(
            f"verify: the local mesh has no workload {request.source!r} or no service "
            f"{request.service!r} (workloads: {', '.join(sorted(workloads))}; services: "
            f"{', '.join(sorted(services))})"
        )
    url = workloads[request.source]["sidecar_url"] + request.path
    host = services[request.service]["host"]
    prefixes = [str(w["inbound_stat_prefix"]) for w in pods.values()]
    before = _shadow_denied(admin, prefixes)
    while True:
        status, body = _through_sidecar(url, host)
        if change.dry_run:
            moved = _shadow_denied(admin, prefixes) - before
            if status != 403 and moved > 0:
                return {"status": status, "shadow_denied": moved, "as_expected": True}
        elif status == 403 and DENIED_BODY in body:
            return {"status": status, "body": DENIED_BODY, "as_expected": True}
        if time.monotonic() > deadline:
            raise FaultNotObserved(
                f"a request from {request.source} to {request.service}{request.path} was "
                f"answered {status} {body[:80]!r}: "
                + ("not shadow-denied" if change.dry_run else "not denied")
            )
        time.sleep(POLL_S)


def _shadow_denied(admin: EnvoyAdmin, prefixes: list[str]) -> int:
    stats = admin.counters(r"\.rbac\..*shadow_denied$")
    return sum(
        value
        for key, value in stats.items()
        if any(key.startswith(f"http.{prefix}.rbac.") for prefix in prefixes)
    )


def _through_sidecar(url: str, host: str) -> tuple[int | None, str]:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(
        parts.hostname or "", parts.port, timeout=REQUEST_TIMEOUT_S
    )
    try:
        connection.request(
            "GET", parts.path or "/", headers={"Host": host, VERIFIER_HEADER: "security-change"}
        )
        response = connection.getresponse()
        return response.status, response.read().decode(errors="replace")
    except (OSError, http.client.HTTPException) as error:
        return None, str(error)
    finally:
        connection.close()


def verify_jwt(kube: Kube, change: JwtRequirement, timeout_s: float) -> dict[str, Any]:
    if timeout_s == 0:
        return off()
    mesh = secure_mesh(kube)
    if mesh is None:
        return on_cluster("RequestAuthentication")
    if isinstance(mesh, str):
        return {"verified": False, "checked": mesh}
    pods = scoped_pods(mesh, change.where.namespace, change.where.labels)
    deadline = time.monotonic() + timeout_s
    with EnvoyAdmin(mesh["envoy_admin_socket"]) as admin:
        _until(
            lambda: {p for p in pods if change.issuer not in _issuers(admin, pods[p])},
            deadline,
            f"no jwt_authn provider for {change.issuer!r} showed on",
        )
    return {
        "verified": True,
        "checked": "the issuer among each selected pod's inbound jwt_authn providers",
        "pods": sorted(pods),
    }


def _providers(admin: EnvoyAdmin, workload: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    for http_filter in _http_filters(admin, workload):
        if http_filter.get("name") == JWT_FILTER:
            yield from ((http_filter.get("typed_config") or {}).get("providers") or {}).values()


def _issuers(admin: EnvoyAdmin, workload: Mapping[str, Any]) -> set[str]:
    return {str(p.get("issuer")) for p in _providers(admin, workload)}


def jwks_installed(kube: Kube, namespace: str, issuer: str) -> str | None:
    """A digest of the keys the local mesh's sidecars hold for ``issuer`` (None: none, or not
    a local mesh): what a JWKS outage must change."""
    mesh = secure_mesh(kube)
    if not isinstance(mesh, Mapping):
        return None
    with EnvoyAdmin(mesh["envoy_admin_socket"]) as admin:
        return _keys_digest(admin, scoped_pods(mesh, namespace, None), issuer)


def _keys_digest(admin: EnvoyAdmin, pods: Mapping[str, Any], issuer: str) -> str | None:
    held = sorted(
        json.dumps(p.get("local_jwks") or p.get("remote_jwks") or {}, sort_keys=True)
        for workload in pods.values()
        for p in _providers(admin, workload)
        if p.get("issuer") == issuer
    )
    return hashlib.sha256("\n".join(held).encode()).hexdigest()[:16] if held else None


def verify_jwks_replaced(
    kube: Kube, namespace: str, issuer: str, before: str | None, timeout_s: float
) -> dict[str, Any]:
    if timeout_s == 0:
        return off()
    mesh = secure_mesh(kube)
    if mesh is None:
        return on_cluster("jwksUri override")
    if isinstance(mesh, str):
        return {"verified": False, "checked": mesh}
    pods = scoped_pods(mesh, namespace, None)
    deadline = time.monotonic() + timeout_s
    with EnvoyAdmin(mesh["envoy_admin_socket"]) as admin:
        _until(
            lambda: set() if _keys_digest(admin, pods, issuer) not in (before, None) else {issuer},
            deadline,
            "the sidecars kept the keys they had (if the jwksUri was unreachable already, they "
            "hold the key nobody holds already: nothing to rehearse) for",
        )
    return {
        "verified": True,
        "checked": "the keys the sidecars hold for the issuer changed: the local istiod's fetch "
        "failed and it installed a key nobody holds (every token of the issuer is refused)",
    }


# --------------------------------------------------------------------- after a removal


def verify_removed(
    kube: Kube,
    removed: list[dict[str, Any]],
    timeout_s: float,
    peer_authentications: Callable[[], list[dict[str, Any]]],
) -> dict[str, Any]:
    """Wait until the local mesh's sidecars no longer show what a removal took away: deleted
    policies out of every RBAC filter, each pod's chains at the mode Istio's precedence now
    gives (a PeerAuthentication deleted or restored), no expired workload certificate (a
    certificate request deleted). Never raises: the result says what was, or was not, seen."""
    if not removed:
        return {"verified": True, "checked": "nothing of the run was left to remove"}
    if timeout_s == 0:
        return off()
    mesh = secure_mesh(kube)
    if mesh is None:
        return on_cluster("removal")
    if isinstance(mesh, str):
        return {"verified": False, "checked": mesh}
    pods = scoped_pods(mesh, str(mesh.get("namespace")), None)
    # Release.resource reads "AuthorizationPolicy <namespace>/<name>".
    deleted = [
        entry["resource"].split()[-1].split("/")
        for entry in removed
        if entry.get("kind") == "AuthorizationPolicy" and entry.get("deleted")
    ]
    markers = [f"ns[{namespace}]-policy[{name}]-rule" for namespace, name in deleted]
    modes = any(entry.get("kind") == "PeerAuthentication" for entry in removed)
    certificates = any(entry.get("kind") == "ConfigMap" for entry in removed)
    policies = peer_authentications() if modes else []
    mesh_namespace = str(mesh.get("namespace"))

    def left() -> set[str]:
        with EnvoyAdmin(mesh["envoy_admin_socket"]) as admin:
            still = {
                f"{name}: {marker}"
                for name, workload in pods.items()
                for marker in markers
                if _rbac_holds(admin, workload, marker, shadow=False)
                or _rbac_holds(admin, workload, marker, shadow=True)
            }
            for name, workload in pods.items() if modes else ():
                mode = effective_mtls(
                    policies,
                    mesh_namespace,
                    workload.get("labels") or {},
                    port=workload.get("container_port"),
                )
                if _chain_modes(admin, workload) != _CHAINS[mode]:
                    still.add(f"{name}: inbound not yet {mode}")
            if certificates and _any_expired(admin):
                still.add("an expired workload certificate")
            return still

    try:
        _until(left, time.monotonic() + timeout_s, "the sidecars still show")
    except FaultNotObserved as error:
        return {"verified": False, "checked": f"no: {error}"}
    return {
        "verified": True,
        "checked": "the removed policies gone from each pod's RBAC filter, each pod's inbound "
        "chains at the mode Istio's precedence now gives, no expired workload certificate",
    }


def _any_expired(admin: EnvoyAdmin) -> bool:
    try:
        document = admin.get_json("/certs")
    except EnvoyAdminError:
        return False
    now = time.time()
    for certificate in document.get("certificates") or []:
        for chain in certificate.get("cert_chain") or []:
            spiffe = any(
                str(s.get("uri", "")).startswith("spiffe://")
                for s in chain.get("subject_alt_names") or []
            )
            if spiffe and expired(chain, now):
                return True
    return False


def expired(chain: Mapping[str, Any], now: float) -> bool:
    """An Envoy ``/certs`` chain entry whose notAfter is at or before ``now`` (a timestamp)."""
    text = str(chain.get("expiration_time") or "")
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() <= now
    except ValueError:
        return False


# --------------------------------------------------------------------------- Envoy


def _listener(admin: EnvoyAdmin, workload: Mapping[str, Any]) -> Mapping[str, Any]:
    return inbound_listener(admin, workload)


def _http_filters(admin: EnvoyAdmin, workload: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    filters = []
    for chain in _listener(admin, workload).get("filter_chains", []):
        for network_filter in chain.get("filters", []):
            filters += (network_filter.get("typed_config") or {}).get("http_filters", [])
    return filters


def _until(waiting: Callable[[], set[str]], deadline: float, problem: str) -> None:
    """Poll until ``waiting()`` names nothing; FaultNotObserved naming what is left."""
    while True:
        left = waiting()
        if not left:
            return
        if time.monotonic() > deadline:
            raise FaultNotObserved(f"{problem} {', '.join(sorted(left))} in time")
        time.sleep(POLL_S)
