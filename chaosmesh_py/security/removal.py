"""Removing a run's security changes now (``remove_security_changes``), as an experiment's
rollbacks ask: the control, ``chaosmesh rollback``, reap and halt remove them too, through the
engine, without this module."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chaosmesh_py.engine.access import Access, on
from chaosmesh_py.engine.kinds import editable_kinds
from chaosmesh_py.engine.run import run_for
from chaosmesh_py.faults import injection
from chaosmesh_py.istio import security_validation as rules
from chaosmesh_py.kube import CONFIG_MAP, Kube
from chaosmesh_py.security import changes

KINDS = (
    changes.PEER_AUTHENTICATION,
    changes.AUTHORIZATION_POLICY,
    changes.REQUEST_AUTHENTICATION,
    CONFIG_MAP,
)


def remove_security_changes(
    namespace: object, configuration: Mapping[str, Any] | None, secrets: Mapping[str, Any] | None
) -> dict[str, Any]:
    settings = injection.Settings.from_configuration(configuration)
    checked = injection.allowed_namespace(namespace, settings)
    run = run_for(configuration)
    kube = Kube.connect(secrets)
    removed = changes.remove(kube, run, checked, KINDS)
    # A mesh-wide change lives in the root namespace (which the run could write only with its
    # configuration's leave): removed with the namespace's own.
    root = rules.ROOT_NAMESPACE
    if checked != root and any(r.namespace == root and r.kind in KINDS for _, r in run.touched()):
        removed += changes.remove(kube, run, root, KINDS)
    return {"run_id": run.run_id, "removed": removed}


def needs(arguments: Mapping[str, Any]) -> list[Access]:
    namespace = str(arguments.get("namespace") or "default")
    found: list[Access] = []
    for kind in KINDS:
        editable = next(k for k in editable_kinds() if k.kind == kind)
        found += on(kind, editable.cleanup_verbs(), namespace)
    return found
