"""Owned objects: a whole object a run creates (an AuthorizationPolicy that denies, an EnvoyFilter),
carrying the run's owner record, and deleted again as a whole.

The object is named ``chaosmesh-<run>-<digest>``, the digest taken over the run id and its
content (group, kind, namespace, spec): creating the same object twice finds it already there,
and an object whose record someone removed still proves itself ours while its content is what
we wrote. Removal deletes it with preconditions on the uid and resourceVersion read when its
ownership was last judged (``chaosmesh_py.engine.ownership``): an object someone else created in
its place, or changed meanwhile, is judged again, never deleted blind. Objects chaosmesh did not
create are never touched.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from chaosmesh_py.errors import InvalidInput, shown
from chaosmesh_py.istio import document, inbound_fault, validation
from chaosmesh_py.istio.owner_record import (
    OwnerRecord,
    owned_name,
    owner_key,
    record_of,
    self_certifies,
)

PURPOSE = "owned-object"
MANAGED_BY = {"app.kubernetes.io/managed-by": "chaosmesh"}
# Where a kind keeps what it says: Istio's kinds in ``spec``, a ConfigMap in ``data``.
_CONTENT_FIELDS = {"ConfigMap": "data"}


def content_field(kind: str) -> str:
    """The top-level field holding what an object of ``kind`` says (``spec``, or ``data``)."""
    return _CONTENT_FIELDS.get(kind, "spec")


def build(
    run_id: str,
    *,
    api_version: str,
    kind: str,
    namespace: str,
    spec: Mapping[str, Any],
    expires_at: datetime,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The object to create: its self-certifying name, the owner record, ``labels`` and
    ``annotations`` beside chaosmesh's own (Istio's ``istio.io/dry-run``), and ``spec`` (a
    ConfigMap's ``data``).

    Raises InvalidInput when Istio would refuse it (checked here, before anything is sent).
    """
    if not isinstance(spec, Mapping):
        raise InvalidInput("spec", f"must be an object, got {shown(spec)}")
    content = _content(api_version, kind, namespace, spec)
    name = owned_name(run_id, document.digest(PURPOSE, run_id, content))
    record = OwnerRecord(run_id, expires_at, owns_object=True)
    body = {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {**(labels or {}), **MANAGED_BY},
            "annotations": {**(annotations or {}), owner_key(run_id): record.to_annotation()},
        },
        content_field(kind): copy.deepcopy(dict(spec)),
    }
    errors = validation.admission_errors(kind, body)
    if errors:
        raise InvalidInput("spec", f"Istio would reject the {kind}: " + "; ".join(errors))
    return body


def describe(obj: Mapping[str, Any]) -> str | None:
    """What an owned object does, for people (rollback, reap, halt), when its kind says."""
    if obj.get("kind") == "EnvoyFilter":
        return inbound_fault.describe_spec(obj.get("spec") or {})
    if obj.get("kind") == "ConfigMap":
        # A request to the local mesh (chaosmesh_py.security.certificates): what it asked for.
        data = obj.get("data") or {}
        if "state" in data and "selector" in data:
            return f"certificate {data['state']} for pods {data['selector']}"
    return None


def owner_of(obj: Mapping[str, Any], run_id: str) -> bool:
    """The object is ``run_id``'s by its record."""
    record = record_of(obj, run_id)
    return record is not None and record.owns_object


def proven_owner(obj: Mapping[str, Any]) -> str | None:
    """The run that created ``obj``, when its name proves it (its record may be gone)."""
    metadata = obj.get("metadata", {})
    content = _content(
        str(obj.get("apiVersion", "")),
        str(obj.get("kind", "")),
        str(metadata.get("namespace", "")),
        obj.get(content_field(str(obj.get("kind", "")))) or {},
    )
    return self_certifies(str(metadata.get("name", "")), PURPOSE, content)


def _content(api_version: str, kind: str, namespace: str, spec: Mapping[str, Any]) -> Any:
    # The group, not the version: the same object is served at several versions.
    group = api_version.rpartition("/")[0]
    return {"group": group, "kind": kind, "namespace": namespace, "spec": spec}
