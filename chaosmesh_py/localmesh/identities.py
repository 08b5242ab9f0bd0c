"""Each caller's certificate on the local mesh, and the certificate states set through the API.

The mesh keeps one certificate per caller (``chaosmesh_py.localmesh.mtls.callers``: each pod,
the ingress gateway, each namespace's entry listeners), issued by the local CA
(``chaosmesh_py.localmesh.ca``) when the caller first appears, and written with its key where
Envoy's file-based SDS reads it; a deleted pod's key is deleted once Envoy runs without it.
``ROOTCA`` is written once, at start.

Certificate states, through the API (what ``security`` experiments write, as owned objects):
a ConfigMap labelled ``security.chaosmesh.io/certificate: "true"`` in a namespace, with data

    selector   a JSON object of pod labels: the pods of that namespace carrying all of them
    state      "expired"  their certificates are re-issued with notAfter an hour in the past:
                          every peer refuses the handshake with them
               "rotated"  a new key and certificate each, same identity, valid

puts the selected pods' certificates in that state while it exists (expired wins when several
select a pod); deleting it re-issues fresh valid ones. A ConfigMap whose data cannot be read is
ignored, and the mesh logs why (the security actions check their input before writing one).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chaosmesh_py.localmesh.ca import LocalCA, WorkloadCertificate
from chaosmesh_py.localmesh.envoy import Envoy
from chaosmesh_py.localmesh.mtls import (
    Caller,
    Secrets,
    certificate_secret,
    root_secret,
    workload_caller,
)
from chaosmesh_py.localmesh.topology import Workload

log = logging.getLogger(__name__)

CERTIFICATE_LABEL = "security.chaosmesh.io/certificate"
VALID = "valid"
EXPIRED = "expired"
ROTATED = "rotated"
STATES = (EXPIRED, ROTATED)


@dataclass(frozen=True)
class Wanted:
    """The certificate a caller should hold: its state, and what asked for it (the ConfigMaps'
    uids): a new ask re-issues even in the same state (a second rotation)."""

    state: str = VALID
    asked_by: tuple[str, ...] = ()


class MeshIdentities:
    """The callers' certificates, kept as the topology and the certificate states want them."""

    def __init__(self, ca: LocalCA, envoy: Envoy) -> None:
        self.ca = ca
        self.envoy = envoy
        self._issued: dict[str, tuple[Wanted, WorkloadCertificate]] = {}
        self._current: set[str] = set()
        self._lock = threading.Lock()

    def start(self) -> None:
        self.envoy.write_secret(root_secret(self.ca.root_pem))

    def sync(self, callers: Iterable[Caller], wanted: Mapping[str, Wanted]) -> Secrets:
        """Issue what is missing or wanted otherwise; the secrets to translate with."""
        with self._lock:
            callers = list(callers)
            self._current = {caller.secret for caller in callers}
            for caller in callers:
                want = wanted.get(caller.secret, Wanted())
                issued = self._issued.get(caller.secret)
                if issued is not None and issued[0] == want:
                    continue
                certificate = self.ca.issue(caller.spiffe_id, expired=want.state == EXPIRED)
                self.envoy.write_secret(
                    certificate_secret(
                        caller.secret, certificate.certificate_pem, certificate.private_key_pem
                    )
                )
                self._issued[caller.secret] = (want, certificate)
                if issued is not None:
                    log.info(
                        f"certificate of {caller.secret} re-issued ({want.state}): serial "
                        f"{certificate.serial_hex}, not after {certificate.not_after.isoformat()}"
                    )
            versions = {name: cert.serial_hex for name, (_, cert) in self._issued.items()}
        return Secrets(self.envoy.sds_config_source, versions)

    def retire(self) -> None:
        """Forget the certificates of callers the last ``sync`` no longer had (a deleted pod's),
        and delete their keys from disk: call once Envoy runs a configuration without them."""
        with self._lock:
            for name in set(self._issued) - self._current:
                self.envoy.remove_secret(name)
                del self._issued[name]

    def certificate(self, secret: str) -> WorkloadCertificate | None:
        """The certificate ``secret`` holds now (its serial, validity), or None."""
        with self._lock:
            issued = self._issued.get(secret)
        return issued[1] if issued else None


def wanted_states(
    config_maps: Sequence[Mapping[str, Any]], workloads: Iterable[Workload]
) -> dict[str, Wanted]:
    """Per caller secret, the state the labelled ConfigMaps ask for (see the module)."""
    asks = [ask for ask in (_ask(c) for c in config_maps) if ask is not None]
    wanted: dict[str, Wanted] = {}
    for workload in workloads:
        matching = [
            (state, uid)
            for namespace, selector, state, uid in asks
            if namespace == workload.namespace and workload.matches(selector)
        ]
        if not matching:
            continue
        state = EXPIRED if any(s == EXPIRED for s, _ in matching) else ROTATED
        wanted[workload_caller(workload).secret] = Wanted(
            state, tuple(sorted(uid for s, uid in matching if s == state))
        )
    return wanted


def is_certificate_state(resource: Mapping[str, Any]) -> bool:
    labels = (resource.get("metadata") or {}).get("labels") or {}
    return str(labels.get(CERTIFICATE_LABEL, "")).lower() == "true"


def _ask(config_map: Mapping[str, Any]) -> tuple[str, dict[str, str], str, str] | None:
    if not is_certificate_state(config_map):
        return None
    metadata = config_map.get("metadata") or {}
    where = f"ConfigMap {metadata.get('namespace')}/{metadata.get('name')}"
    data = config_map.get("data") or {}
    state = str(data.get("state", ""))
    try:
        selector = json.loads(str(data.get("selector", "")))
    except ValueError:
        selector = None
    if state not in STATES or not isinstance(selector, dict) or not selector:
        log.warning(
            f"{where} is ignored: data.state must be one of {', '.join(STATES)} and "
            "data.selector a JSON object of pod labels"
        )
        return None
    return (
        str(metadata.get("namespace") or ""),
        {str(k): str(v) for k, v in selector.items()},
        state,
        str(metadata.get("uid") or ""),
    )
