"""Removing a run's security changes now (``remove_security_changes``), as an experiment's
rollbacks ask: the control, ``chaosmesh rollback``, reap and halt remove them too, through the
engine, without this module.

After the removal the data plane is watched until it no longer shows what was removed (local
mesh: the deleted policies gone from the pods' RBAC filters, each pod's inbound chains back to
the mode Istio's precedence now gives, no expired workload certificate left); the result says
what was seen. Pooled connections may carry the old filters for one more answer (the local
Envoy drains as Istio's sidecars do)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from chaosmesh_py.engine import ownership
from chaosmesh_py.engine.access import Access, on
from chaosmesh_py.engine.kinds import editable_kinds
from chaosmesh_py.engine.run import Run, run_for
from chaosmesh_py.faults import injection
from chaosmesh_py.istio import owned_object
from chaosmesh_py.istio import security_validation as rules
from chaosmesh_py.istio.owner_record import records
from chaosmesh_py.kube import CONFIG_MAP, Kube, ResourceKind, ResourceRef
from chaosmesh_py.security import changes, effect

KINDS = (
    changes.PEER_AUTHENTICATION,
    changes.AUTHORIZATION_POLICY,
    changes.REQUEST_AUTHENTICATION,
    CONFIG_MAP,
)


def remove(kube: Kube, run: Run, namespace: str | None, kinds: Sequence[ResourceKind]) -> list[Any]:
    """This run's objects of ``kinds`` deleted and its overrides there restored: in
    ``namespace`` (listed, found by record), and wherever the run wrote to them in this
    process (a mesh-wide policy in the root namespace). Others' objects are never touched."""
    wanted = {kind.kind for kind in kinds}
    refs: dict[ResourceRef, dict[str, Any] | None] = {}
    for ref_kube, ref in run.touched():
        here = namespace is None or ref.namespace == namespace
        if ref_kube.host == kube.host and ref.kind.kind in wanted and here:
            refs[ref] = None
    for kind in kinds if namespace is not None else ():
        for item in changes.listed(kube, kind, namespace or ""):
            if any(r.run_id == run.run_id for r in records(item)):
                refs[ResourceRef(kind, namespace or "", item["metadata"]["name"])] = item
    removed = []
    for ref, listed in sorted(refs.items(), key=lambda pair: str(pair[0])):
        released = ownership.release(kube, ref, run.run_id, run_ledger=run.ledger, listed=listed)
        if released.anything or released.conflicts:
            entry = {**released.to_json(), "kind": ref.kind.kind}
            if released.deleted and listed is not None:
                entry["what"] = owned_object.describe(listed)
            removed.append(entry)
    return removed


def remove_security_changes(
    namespace: object, configuration: Mapping[str, Any] | None, secrets: Mapping[str, Any] | None
) -> dict[str, Any]:
    settings = injection.Settings.from_configuration(configuration)
    checked = injection.allowed_namespace(namespace, settings)
    run = run_for(configuration)
    kube = Kube.connect(secrets)
    removed = remove(kube, run, checked, KINDS)
    # A mesh-wide change lives in the root namespace (which the run could write only with its
    # configuration's leave): removed with the namespace's own.
    root = rules.ROOT_NAMESPACE
    if checked != root and any(r.namespace == root and r.kind in KINDS for _, r in run.touched()):
        removed += remove(kube, run, root, KINDS)
    gone = effect.verify_removed(
        kube,
        removed,
        settings.verify_timeout_s,
        lambda: [
            *changes.listed(kube, changes.PEER_AUTHENTICATION, checked),
            *changes.listed(kube, changes.PEER_AUTHENTICATION, root),
        ],
    )
    return {"run_id": run.run_id, "removed": removed, "effect": gone}


def needs(arguments: Mapping[str, Any]) -> list[Access]:
    namespace = str(arguments.get("namespace") or "default")
    found: list[Access] = []
    for kind in KINDS:
        editable = next(k for k in editable_kinds() if k.kind == kind)
        found += on(kind, editable.cleanup_verbs(), namespace)
    return found
