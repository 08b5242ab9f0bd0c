"""The resource types the double serves: CustomResourceDefinitions read from files, plus the
core kinds Namespace and ConfigMap.

A `ResourceType` is one kind (VirtualService) with all its served versions. Versions of the Istio
kinds differ only in `apiVersion` (no conversion webhook), so objects are stored once, in the
storage version, and answered in whatever version was asked for.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from chaosmesh_py.localmesh.apiserver.core import CONFIG_MAP_SCHEMA, config_map_errors
from chaosmesh_py.localmesh.apiserver.errors import FieldError, JsonDict
from chaosmesh_py.localmesh.apiserver.schema import Schema

VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class ResourceType:
    """One served kind. `group` is "" for the core API (Namespace, ConfigMap).

    `custom` marks a CustomResourceDefinition's kind: no strategic merge patch (415), no
    unconditional update. `generation` says whether `metadata.generation` counts spec changes
    (CRDs and workload kinds such as CronJob do; ConfigMap, Lease, RBAC kinds do not).
    `validate(new, old)` holds a built-in kind's own rules beyond its schema (422); `old` is
    None on create. `model` names a built-in kind's root model in the `kubernetes` client
    (its schema's source; see `models`).
    """

    group: str
    kind: str
    plural: str
    singular: str
    namespaced: bool
    versions: tuple[str, ...]  # served, most preferred first
    storage_version: str
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    has_status: bool = False
    # A `scale` subresource (autoscaling/v1 Scale over spec.replicas): Deployment, ReplicaSet.
    scale: bool = False
    custom: bool = False
    generation: bool = False
    path_segment_names: bool = False  # RBAC kinds: `system:viewer` is a valid name
    model: str | None = None
    # A CRD's additionalPrinterColumns by version (built-in kinds' columns are in `tables`).
    printer_columns: Mapping[str, tuple[JsonDict, ...]] = field(
        default_factory=dict, compare=False, hash=False
    )
    schemas: Mapping[str, Schema] = field(default_factory=dict, compare=False, hash=False)
    validate: Callable[[JsonDict, JsonDict | None], list[FieldError]] | None = field(
        default=None, compare=False, hash=False
    )

    @property
    def qualified_kind(self) -> str:
        return f"{self.kind}.{self.group}" if self.group else self.kind

    def api_version(self, version: str) -> str:
        return f"{self.group}/{version}" if self.group else version

    def schema(self, version: str) -> Schema | None:
        return self.schemas.get(version)


def version_priority(version: str) -> tuple[int, int, int, str]:
    """Sort key for Kubernetes version preference: v2 > v1 > v1beta2 > v1alpha1 > other."""
    match = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", version)
    if not match:
        return (3, 0, 0, version)
    stability = {None: 0, "beta": 1, "alpha": 2}[match.group(2)]
    return (stability, -int(match.group(1)), -int(match.group(3) or 0), version)


NAMESPACE = ResourceType(
    group="",
    kind="Namespace",
    plural="namespaces",
    singular="namespace",
    namespaced=False,
    versions=("v1",),
    storage_version="v1",
    short_names=("ns",),
    has_status=True,
)

CONFIG_MAP = ResourceType(
    group="",
    kind="ConfigMap",
    plural="configmaps",
    singular="configmap",
    namespaced=True,
    versions=("v1",),
    storage_version="v1",
    short_names=("cm",),
    schemas={"v1": Schema(CONFIG_MAP_SCHEMA)},
    validate=config_map_errors,
)


def resource_type_from_crd(crd: Mapping[str, Any]) -> ResourceType:
    spec = crd["spec"]
    names = spec["names"]
    served = [v for v in spec["versions"] if v.get("served", True)]
    schemas = {
        v["name"]: Schema(v.get("schema", {}).get("openAPIV3Schema", {"type": "object"}))
        for v in served
    }
    return ResourceType(
        group=spec["group"],
        kind=names["kind"],
        plural=names["plural"],
        singular=names.get("singular", names["kind"].lower()),
        namespaced=spec.get("scope", "Namespaced") == "Namespaced",
        versions=tuple(sorted(schemas, key=version_priority)),
        storage_version=next(v["name"] for v in spec["versions"] if v.get("storage")),
        short_names=tuple(names.get("shortNames", ())),
        categories=tuple(names.get("categories", ())),
        has_status=any("status" in v.get("subresources", {}) for v in served),
        custom=True,
        generation=True,
        printer_columns={v["name"]: tuple(v.get("additionalPrinterColumns") or ()) for v in served},
        schemas=schemas,
    )


def load_crds(paths: Iterable[Path]) -> list[ResourceType]:
    """Every CustomResourceDefinition in the given multi-document YAML files."""
    return [
        rt
        for path in paths
        for rt in _load_crd_file(Path(path).resolve(), Path(path).stat().st_mtime_ns)
    ]


@functools.lru_cache(maxsize=8)
def _load_crd_file(path: Path, mtime_ns: int) -> tuple[ResourceType, ...]:
    """Parsed once per file version: servers share the (read-only) types and schemas."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: 10x faster on 870 kB
    with path.open(encoding="utf-8") as stream:
        documents = list(yaml.load_all(stream, Loader=loader))
    return tuple(
        resource_type_from_crd(d)
        for d in documents
        if isinstance(d, dict) and d.get("kind") == "CustomResourceDefinition"
    )


def permissive_istio_types() -> list[ResourceType]:
    """The fallback without CRD files: the three networking kinds, any content accepted.

    Schema validation, pruning and CEL are then off; only the webhook checks run.
    """
    schema = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    kinds = [
        ("VirtualService", "virtualservices", "vs"),
        ("DestinationRule", "destinationrules", "dr"),
        ("Gateway", "gateways", "gw"),
    ]
    versions = ("v1", "v1beta1", "v1alpha3")
    return [
        ResourceType(
            group="networking.istio.io",
            kind=kind,
            plural=plural,
            singular=kind.lower(),
            namespaced=True,
            versions=versions,
            storage_version="v1",
            short_names=(short,),
            categories=("istio-io", "networking-istio-io"),
            has_status=True,
            custom=True,
            generation=True,
            schemas={v: Schema(schema) for v in versions},
        )
        for kind, plural, short in kinds
    ]


class Registry:
    """Lookup of resource types by URL (group, version, plural) and by (apiVersion, kind)."""

    def __init__(self, types: Sequence[ResourceType]) -> None:
        self.types = (NAMESPACE, CONFIG_MAP, *types)
        self._by_plural = {(t.group, t.plural): t for t in self.types}
        self._by_kind = {(t.group, t.kind): t for t in self.types}

    def by_plural(self, group: str, version: str, plural: str) -> ResourceType | None:
        found = self._by_plural.get((group, plural))
        return found if found is not None and version in found.versions else None

    def by_api_version(self, api_version: str, kind: str) -> tuple[ResourceType, str] | None:
        group, _, version = api_version.rpartition("/")
        found = self._by_kind.get((group, kind))
        return (found, version) if found is not None and version in found.versions else None

    def groups(self) -> dict[str, list[str]]:
        """Named API groups (not core) and their served versions, most preferred first."""
        groups: dict[str, set[str]] = {}
        for t in self.types:
            if t.group:
                groups.setdefault(t.group, set()).update(t.versions)
        return {g: sorted(v, key=version_priority) for g, v in sorted(groups.items())}
