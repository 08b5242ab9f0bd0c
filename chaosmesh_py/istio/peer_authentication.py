"""PeerAuthentication as istiod resolves it for one workload and port. Pure: no I/O.

After istiod's ``pilot/pkg/model/authentication.go`` and ``pilot/pkg/security/authn``
(``ComposePeerAuthentication``):

- Three levels: the mesh (a policy without a selector in the root namespace, ``istio-system``),
  the namespace (one without a selector in the workload's namespace), the workload (one in the
  workload's namespace whose ``selector.matchLabels`` all match its labels). A selector with no
  labels selects like no selector: the policy is namespace (or mesh) wide.
- At each level the oldest policy wins (``creationTimestamp``, then name).
- Levels apply mesh, then namespace, then workload: a level's ``mtls.mode`` replaces what came
  before unless it is ``UNSET`` (or absent), which inherits. Nothing set at all: PERMISSIVE.
- ``portLevelMtls`` is read from the workload-level policy only (istiod ignores it on a policy
  without a selector); a port's mode ``UNSET`` inherits the workload's resolved mode.

The same answer drives the local mesh's inbound filter chains (``chaosmesh_py.localmesh``) and
the posture probes, so there is one place for it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

STRICT = "STRICT"
PERMISSIVE = "PERMISSIVE"
DISABLE = "DISABLE"
UNSET = "UNSET"
MODES = (STRICT, PERMISSIVE, DISABLE)
ROOT_NAMESPACE = "istio-system"


def effective_mtls(
    peer_authentications: Sequence[Mapping[str, Any]],
    namespace: str,
    labels: Mapping[str, str],
    port: int | None = None,
    root_namespace: str = ROOT_NAMESPACE,
) -> str:
    """ "STRICT", "PERMISSIVE" or "DISABLE": the mode istiod applies to the inbound ``port``
    (any port when None) of a workload in ``namespace`` carrying ``labels``."""
    ordered = sorted(peer_authentications, key=_age)
    mesh = _first(ordered, lambda p: _namespace(p) == root_namespace and not _match_labels(p))
    namespace_wide = _first(ordered, lambda p: _namespace(p) == namespace and not _match_labels(p))
    workload = _first(
        ordered,
        lambda p: (
            _namespace(p) == namespace
            and bool(_match_labels(p))
            and all(labels.get(key) == value for key, value in _match_labels(p).items())
        ),
    )
    mode = PERMISSIVE
    for level in (mesh, namespace_wide, workload):
        if level is not None:
            mode = _mode((_spec(level).get("mtls") or {}), mode)
    if workload is not None and port is not None:
        port_levels = _spec(workload).get("portLevelMtls") or {}
        for key, setting in port_levels.items():
            if str(key) == str(port):
                mode = _mode(setting or {}, mode)
    return mode


def namespace_mtls(
    peer_authentications: Sequence[Mapping[str, Any]],
    namespace: str,
    root_namespace: str = ROOT_NAMESPACE,
) -> str:
    """The mode of ``namespace`` with workload policies left out: what istiod's auto mTLS
    infers for a service there (``BestEffortInferServiceMTLSMode``: mesh and namespace level
    only, since a Service does not know which workload policies its pods carry)."""
    without_selectors = [p for p in peer_authentications if not _match_labels(p)]
    return effective_mtls(without_selectors, namespace, {}, None, root_namespace)


def _mode(mtls: Mapping[str, Any], inherited: str) -> str:
    mode = str(mtls.get("mode") or UNSET).upper()
    return mode if mode in MODES else inherited


def _first(policies: Sequence[Mapping[str, Any]], wanted: Any) -> Mapping[str, Any] | None:
    return next((policy for policy in policies if wanted(policy)), None)


def _spec(policy: Mapping[str, Any]) -> Mapping[str, Any]:
    return policy.get("spec") or {}


def _match_labels(policy: Mapping[str, Any]) -> Mapping[str, str]:
    """The selector's labels; empty for a namespace- or mesh-wide policy."""
    return dict((_spec(policy).get("selector") or {}).get("matchLabels") or {})


def _namespace(resource: Mapping[str, Any]) -> str:
    return str((resource.get("metadata") or {}).get("namespace") or "default")


def _age(resource: Mapping[str, Any]) -> tuple[str, str]:
    metadata = resource.get("metadata") or {}
    return str(metadata.get("creationTimestamp") or ""), str(metadata.get("name") or "")
