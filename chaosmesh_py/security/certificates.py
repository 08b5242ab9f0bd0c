"""A workload's certificate expired or rotated, on the local mesh (docs/security.md,
"Certificates").

The local mesh's CA issues each pod's workload certificate through file-based SDS; it watches
ConfigMaps labelled ``security.chaosmesh.io/certificate: "true"`` (data ``selector``: a JSON
object of pod labels, ``state``: "expired" | "rotated") and, while one exists, keeps the
selected pods' certificates in that state: expired (re-issued with notAfter in the past, so
peers refuse the handshake) or rotated (a new key and certificate, same identity). Deleting it
re-issues fresh ones. The ConfigMap is an owned object (``ownership.create_object``), so the
control, rollback, reap and halt delete it like any other.

On a cluster istio-agent renews certificates from istiod and chaosmesh has no hand in it: the
action refuses, before any write.

Verified through Envoy's ``/certs``: the certificate whose URI SAN is each pod's SPIFFE id has
expired (``expiration_time`` in the past), or its serial number changed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from chaosmesh_py.engine import ownership, redaction
from chaosmesh_py.engine.access import Access, on
from chaosmesh_py.engine.envoy_admin import EnvoyAdmin, EnvoyAdminError
from chaosmesh_py.engine.kinds import CERTIFICATE_LABEL, OWNED_OBJECT, edit_verbs
from chaosmesh_py.engine.run import run_for
from chaosmesh_py.engine.verify import FaultNotObserved
from chaosmesh_py.errors import InvalidInput
from chaosmesh_py.faults import injection
from chaosmesh_py.kube import CONFIG_MAP, POD, Kube, ResourceRef
from chaosmesh_py.observe.pods import selected_pods
from chaosmesh_py.security import effect
from chaosmesh_py.security.changes import Where, where_of

EXPIRED = "expired"
ROTATED = "rotated"
POLL_S = 0.05


def prepare(arguments: Mapping[str, Any]) -> Where:
    """Every check that needs no request."""
    return where_of(arguments, "workload_labels", "pods whose certificate changes")


def change_certificate(arguments: Mapping[str, Any], state: str) -> dict[str, Any]:
    redaction.remember(arguments.get("secrets"))
    where = prepare(arguments)
    assert where.labels is not None
    kube = Kube.connect(arguments.get("secrets"))
    if kube.local_mesh() is None:
        raise InvalidInput(
            "workload_labels",
            f"certificates can be {state} only on the local mesh: on a cluster istio-agent "
            "renews them from istiod and chaosmesh has no hand in it (nothing was written)",
            "run this against `chaosmesh local up`; on a cluster rehearse the outage with "
            "set_mtls_mode or deny_requests",
        )
    pods = selected_pods(kube, where.namespace, where.labels, would="no certificate would change")
    run = run_for(arguments.get("configuration"))
    mesh = effect.secure_mesh(kube)
    identities = _identities(mesh, where) if isinstance(mesh, Mapping) else {}
    before = _serials(mesh, identities) if isinstance(mesh, Mapping) else {}
    started = time.monotonic()
    created = ownership.create_object(
        kube,
        run,
        kind=CONFIG_MAP,
        namespace=where.namespace,
        spec={"selector": json.dumps(dict(where.labels), sort_keys=True), "state": state},
        expires_at=injection.expiry(where.settings),
        labels={CERTIFICATE_LABEL: "true"},
    )
    try:
        verified = _verify(mesh, identities, state, before, where.settings.verify_timeout_s)
    except FaultNotObserved:
        ref = ResourceRef(CONFIG_MAP, where.namespace, created["name"])
        ownership.release(kube, ref, run.run_id, run_ledger=run.ledger)
        raise
    return {
        "run_id": run.run_id,
        "config_map": f"{where.namespace}/{created['name']}",
        "state": state,
        "pods": pods,
        "expires": created["expires"],
        "effect": verified,
        "time_to_effect_s": round(time.monotonic() - started, 3),
    }


def _identities(mesh: Mapping[str, Any], where: Where) -> dict[str, str]:
    """Each selected pod's SPIFFE id, as the local mesh publishes its principal."""
    pods = effect.scoped_pods(mesh, where.namespace, where.labels)
    return {name: f"spiffe://{w['principal']}" for name, w in pods.items() if w.get("principal")}


def _certificates(admin: EnvoyAdmin) -> list[Mapping[str, Any]]:
    try:
        document = admin.get_json("/certs")
    except EnvoyAdminError:
        return []
    return [
        chain
        for certificate in document.get("certificates") or []
        for chain in certificate.get("cert_chain") or []
    ]


def _of(chains: list[Mapping[str, Any]], identity: str) -> list[Mapping[str, Any]]:
    return [
        c for c in chains if any(s.get("uri") == identity for s in c.get("subject_alt_names") or [])
    ]


def _serials(mesh: Mapping[str, Any], identities: Mapping[str, str]) -> dict[str, set[str]]:
    with EnvoyAdmin(mesh["envoy_admin_socket"]) as admin:
        chains = _certificates(admin)
    return {
        name: {str(c.get("serial_number")) for c in _of(chains, identity)}
        for name, identity in identities.items()
    }


def _shows(chains: list[Mapping[str, Any]], identity: str, state: str, before: set[str]) -> bool:
    mine = _of(chains, identity)
    if state == EXPIRED:
        now = time.time()
        return bool(mine) and all(effect.expired(c, now) for c in mine)
    return bool(mine) and not {str(c.get("serial_number")) for c in mine} & before


def _verify(
    mesh: Mapping[str, Any] | str | None,
    identities: Mapping[str, str],
    state: str,
    before: Mapping[str, set[str]],
    timeout_s: float,
) -> dict[str, Any]:
    if timeout_s == 0:
        return effect.off()
    if not isinstance(mesh, Mapping):
        return {"verified": False, "checked": mesh or "not a local mesh"}
    if not identities:
        return {"verified": False, "checked": "no selected pod of the local mesh has an identity"}
    deadline = time.monotonic() + timeout_s
    with EnvoyAdmin(mesh["envoy_admin_socket"]) as admin:
        while True:
            chains = _certificates(admin)
            waiting = {
                name
                for name, identity in identities.items()
                if not _shows(chains, identity, state, before.get(name, set()))
            }
            if not waiting:
                break
            if time.monotonic() > deadline:
                raise FaultNotObserved(
                    f"Envoy's /certs never showed the certificate {state} for "
                    f"{', '.join(sorted(waiting))} within {timeout_s:g} s"
                )
            time.sleep(POLL_S)
    return {
        "verified": True,
        "checked": f"Envoy's /certs: each pod's workload certificate (by its SPIFFE id) {state}"
        + (" (notAfter in the past)" if state == EXPIRED else " (a new serial number)"),
        "identities": dict(identities),
    }


def needs(arguments: Mapping[str, Any]) -> list[Access]:
    namespace = str(arguments.get("namespace") or "default")
    return on(POD, ["list"], namespace) + on(CONFIG_MAP, edit_verbs(OWNED_OBJECT), namespace)
