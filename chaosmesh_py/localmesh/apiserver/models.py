"""Structural schemas of built-in kinds, derived from the installed `kubernetes` client's models.

Each generated model class lists every field of its Go type: `attribute_map` (Python name ->
JSON name) and `openapi_types` (Python name -> `str`, `int`, `List[V1Container]`, ...). Walking
them from a kind's root model gives the same field tree as Kubernetes' own OpenAPI, without
copying Kubernetes' OpenAPI files into the project, and it follows the client's version when the
client is upgraded. What the models do not say is filled in from a short table: which strings are
resource quantities and which `object`s are int-or-string (both accept a number or a string).

Objects are `additionalProperties: false` in spirit: the apiserver prunes (Warn) or refuses
(Strict) unknown fields of built-in kinds just as of structural CRDs, so the same pruning code
serves both.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

import kubernetes.client.models as client_models

from chaosmesh_py.localmesh.apiserver.errors import JsonDict

# (model, JSON field) of resource.Quantity values: the models type them "str", the apiserver
# also takes a number (`storage: 1`), as Quantity's OpenAPI v3 schema says (oneOf string/number).
_QUANTITIES = frozenset(
    {
        ("V1ResourceRequirements", "limits"),
        ("V1ResourceRequirements", "requests"),
        ("V1VolumeResourceRequirements", "limits"),
        ("V1VolumeResourceRequirements", "requests"),
        ("V1PodSpec", "overhead"),
        ("V1EmptyDirVolumeSource", "sizeLimit"),
        ("V1ResourceFieldSelector", "divisor"),
        ("V1PersistentVolumeClaimStatus", "allocatedResources"),
        ("V1PersistentVolumeClaimStatus", "capacity"),
    }
)
# (model, JSON field) of intstr.IntOrString values, which the models type "object".
_INT_OR_STRING = frozenset(
    {("V1HTTPGetAction", "port"), ("V1TCPSocketAction", "port"), ("V1ServicePort", "targetPort")}
)

# Lists that a strategic merge patch merges, with Kubernetes' struct tags (`patchStrategy`,
# `patchMergeKey`): (model, JSON field) -> (strategy, merge key or None for a set of scalars).
# Every other list is atomic. Published in /openapi/v3, applied by `strategic`.
_CONTAINER_LISTS = {
    "ports": ("merge", "containerPort"),
    "env": ("merge", "name"),
    "volumeMounts": ("merge", "mountPath"),
    "volumeDevices": ("merge", "devicePath"),
}
PATCH_STRATEGIES: dict[tuple[str, str], tuple[str, str | None]] = {
    ("V1ObjectMeta", "finalizers"): ("merge", None),
    ("V1ObjectMeta", "ownerReferences"): ("merge", "uid"),
    ("V1PodSpec", "volumes"): ("merge,retainKeys", "name"),
    ("V1PodSpec", "initContainers"): ("merge", "name"),
    ("V1PodSpec", "containers"): ("merge", "name"),
    ("V1PodSpec", "ephemeralContainers"): ("merge", "name"),
    ("V1PodSpec", "imagePullSecrets"): ("merge", "name"),
    ("V1PodSpec", "hostAliases"): ("merge", "ip"),
    ("V1PodSpec", "topologySpreadConstraints"): ("merge", "topologyKey"),
    ("V1PodSpec", "resourceClaims"): ("merge,retainKeys", "name"),
    ("V1PodSpec", "schedulingGates"): ("merge", "name"),
    **{("V1Container", field): strategy for field, strategy in _CONTAINER_LISTS.items()},
    **{("V1EphemeralContainer", field): strategy for field, strategy in _CONTAINER_LISTS.items()},
    ("V1ServiceAccount", "secrets"): ("merge", "name"),
    ("V1ServiceSpec", "ports"): ("merge", "port"),
    ("V1JobStatus", "conditions"): ("merge", "type"),
    ("V1PersistentVolumeClaimStatus", "conditions"): ("merge", "type"),
}

QUANTITY: JsonDict = {"anyOf": [{"type": "string"}, {"type": "number"}]}
INT_OR_STRING: JsonDict = {"x-kubernetes-int-or-string": True}
_SCALARS: dict[str, JsonDict] = {
    "str": {"type": "string"},
    "int": {"type": "integer", "format": "int64"},
    "float": {"type": "number", "format": "double"},
    "bool": {"type": "boolean"},
    "datetime": {"type": "string", "format": "date-time"},
    "date": {"type": "string", "format": "date"},
    "bytes": {"type": "string", "format": "byte"},
    # Free-form JSON (RawExtension, FieldsV1 and marker structs): anything goes.
    "object": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
}
# Go int64 fields among the served kinds (by JSON name); every other integer is an int32. The
# models say only "int"; the width bounds the value and names the Go type in a decode error.
INT64_FIELDS = frozenset(
    {
        "activeDeadlineSeconds",
        "deletionGracePeriodSeconds",
        "expirationSeconds",
        "fsGroup",
        "generation",
        "runAsGroup",
        "runAsUser",
        "startingDeadlineSeconds",
        "supplementalGroups",
        "terminationGracePeriodSeconds",
    }
)
_LIST = re.compile(r"^List\[(.+)\]$")
_DICT = re.compile(r"^Dict\[str, (.+)\]$")


def _openapi_types(cls: Any) -> dict[str, str]:
    """A model's field types, spelt as client 37 spells them: client 36 writes
    `list[V1Container]` and `dict[str, str]` where 37 writes `List[...]` and `Dict[str, ...]`."""
    return {
        attribute: _normal_type(type_name) for attribute, type_name in cls.openapi_types.items()
    }


def _normal_type(type_name: str) -> str:
    if type_name.startswith("list[") and type_name.endswith("]"):
        return f"List[{_normal_type(type_name[5:-1])}]"
    if type_name.startswith("dict[str, ") and type_name.endswith("]"):
        return f"Dict[str, {_normal_type(type_name[10:-1])}]"
    return type_name


def go_type_name(model: str) -> str:
    """`CronJobSpec` from `V1CronJobSpec`, `Subject` from `RbacV1Subject`: the Go type's name."""
    return re.sub(r"^(?:[A-Z][a-z]+)*V\d+(?:(?:alpha|beta)\d+)?", "", model) or model


def _type_schema(type_name: str, wrap: Callable[[str], JsonDict]) -> JsonDict:
    if (found := _LIST.match(type_name)) is not None:
        return {"type": "array", "items": _type_schema(found.group(1), wrap)}
    if (found := _DICT.match(type_name)) is not None:
        return {"type": "object", "additionalProperties": _type_schema(found.group(1), wrap)}
    if type_name in _SCALARS:
        return dict(_SCALARS[type_name])
    return wrap(type_name)


@functools.cache
def model_schema(model: str, expand: bool = True) -> JsonDict:
    """The OpenAPI v3 schema of one model, every nested model inlined (`expand`, to validate
    with) or as a `$ref` to `#/components/schemas/<model>` with the fields' descriptions and
    the required ones listed (to publish, for `kubectl explain`)."""
    cls = getattr(client_models, model)
    fields = getattr(cls, "model_fields", {})  # pydantic models (client 35+) describe fields
    properties: JsonDict = {}
    required: list[str] = []
    for attribute, type_name in _openapi_types(cls).items():
        name = cls.attribute_map[attribute]
        if (model, name) in _QUANTITIES:
            schema = _quantity_shape(type_name)
        elif (model, name) in _INT_OR_STRING:
            schema = dict(INT_OR_STRING)
        elif type_name in ("int", "List[int]") and name not in INT64_FIELDS:
            schema = _type_schema(type_name, model_schema)
            (schema.get("items") or schema)["format"] = "int32"
        elif expand:
            schema = _type_schema(type_name, model_schema)
        else:
            schema = _type_schema(type_name, lambda m: {"$ref": f"#/components/schemas/{m}"})
        if (model, name) in PATCH_STRATEGIES:
            strategy, merge_key = PATCH_STRATEGIES[model, name]
            schema["x-kubernetes-patch-strategy"] = strategy
            if merge_key is not None:
                schema["x-kubernetes-patch-merge-key"] = merge_key
        described = fields.get(attribute)
        if not expand and described is None and (text := _getter_description(cls, attribute)):
            if "$ref" in schema:
                schema = {"description": text, "allOf": [schema]}
            else:
                schema = {"description": text, **schema}
        if not expand and described is not None:
            if described.description and "$ref" in schema:
                # A reference's siblings are ignored in OpenAPI 3.0: the apiserver wraps it.
                schema = {"description": described.description, "allOf": [schema]}
            elif described.description:
                schema = {"description": described.description, **schema}
            if described.is_required():
                required.append(name)
        elif not expand and _setter_refuses_none(cls, attribute):
            required.append(name)
        properties[name] = schema
    if expand:
        return {"type": "object", "properties": properties}
    summary = (cls.__doc__ or "").strip().split("\n\n")[0].strip()
    published: JsonDict = {"description": summary} if summary else {}
    published |= {"type": "object", "properties": properties}
    return published | ({"required": required} if required else {})


def _getter_description(cls: Any, attribute: str) -> str:
    """Client 36's models (not pydantic) carry a field's description in its getter's
    docstring, between the "Gets the ..." line and ":return:"."""
    doc = getattr(getattr(cls, attribute, None), "__doc__", None) or ""
    paragraphs = [p.strip() for p in doc.split("\n\n")]
    described = [p for p in paragraphs[1:] if p and not p.startswith(":")]
    return described[0].removesuffix("# noqa: E501").strip() if described else ""


def _setter_refuses_none(cls: Any, attribute: str) -> bool:
    """Client 36's models (not pydantic) say a field is required only in its setter, which
    refuses None: read it there."""
    import inspect

    setter = getattr(getattr(cls, attribute, None), "fset", None)
    try:
        return setter is not None and "must not be `None`" in inspect.getsource(setter)
    except (OSError, TypeError):
        return False


def _quantity_shape(type_name: str) -> JsonDict:
    if type_name.startswith("Dict["):
        return {"type": "object", "additionalProperties": dict(QUANTITY)}
    return dict(QUANTITY)


def _go_type(type_name: str, field: str) -> str:
    if (found := _LIST.match(type_name)) is not None:
        return "[]" + _go_type(found.group(1), field)
    if (found := _DICT.match(type_name)) is not None:
        return "map[string]" + _go_type(found.group(1), field)
    if type_name == "int":
        return "int64" if field in INT64_FIELDS else "int32"
    scalars = {"str": "string", "bool": "bool", "float": "float64", "bytes": "[]uint8"}
    if type_name in scalars:
        return scalars[type_name]
    return "v1.Time" if "date" in type_name else "v1." + go_type_name(type_name)


def decode_error(root: str, path: str, value: Any) -> str:
    """The Go JSON decoder's complaint about a value of the wrong type at `path` (a field path
    such as `spec.jobTemplate.spec.template.spec.containers[0].image`), as the apiserver relays
    it for a built-in kind: `json: cannot unmarshal number into Go struct field
    Container.spec.jobTemplate.spec.template.spec.containers.image of type string`."""
    names = [n for n in re.sub(r"\[[^]]*\]", "", path).split(".") if n]
    model, type_name = root, root
    for name in names:
        cls = getattr(client_models, model, None)
        if cls is None:
            break
        by_json = {json_name: attr for attr, json_name in cls.attribute_map.items()}
        if name not in by_json:
            break
        type_name = _openapi_types(cls)[by_json[name]]
        inner = re.findall(r"[A-Za-z0-9]+", type_name)[-1]
        if name != names[-1]:
            model = inner
    json_type = {bool: "bool", int: "number", float: "number", str: "string"}.get(
        type(value), "array" if isinstance(value, list) else "object"
    )
    return (
        f"json: cannot unmarshal {json_type} into Go struct field"
        f" {go_type_name(model)}.{'.'.join(names)} of type {_go_type(type_name, names[-1])}"
    )


def referenced_models(model: str) -> list[str]:
    """`model` and every model it refers to, directly or not, in a stable order."""
    found: dict[str, None] = {}

    def visit(name: str) -> None:
        if name in found:
            return
        found[name] = None
        for type_name in _openapi_types(getattr(client_models, name)).values():
            for token in re.findall(r"[A-Za-z0-9]+", type_name):
                if token not in ("List", "Dict", "str") and token not in _SCALARS:
                    visit(token)

    visit(model)
    return list(found)
