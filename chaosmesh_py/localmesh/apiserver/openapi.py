"""`/openapi/v2` and `/openapi/v3`, published as a real kube-apiserver publishes them.

kubectl (1.27 and later) reads `/openapi/v3` before `apply`, `create` and `replace`: the index
(`{"paths": {"apis/batch/v1": {"serverRelativeURL": "/openapi/v3/apis/batch/v1?hash=..."}}}`)
and then the group-version's document. If the PATCH operation of the kind (found by its
`x-kubernetes-group-version-kind`) takes a `fieldValidation` query parameter, kubectl leaves
validation to the server (it sends `fieldValidation=Strict` and shows the server's 400/422); if
that PATCH operation accepts `application/strategic-merge-patch+json`, a repeated `kubectl apply`
computes its strategic merge patch from the component schema that carries the kind's
`x-kubernetes-group-version-kind`. Without `/openapi/v3`, kubectl falls back to `/openapi/v2`,
which it reads only as protobuf: that is answered 406 here (the JSON document is served to
`Accept: application/json`), so kubectl's fallback fails as against a server without OpenAPI.

Built-in kinds' schemas come from the client's models (`models`, shared types as `$ref`s, with
Kubernetes' patch strategies and merge keys, so kubectl's strategic merge patches are the ones it
sends a cluster), custom kinds' from their CRDs.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
from typing import Any

from chaosmesh_py.localmesh.apiserver.discovery import KUBERNETES_VERSION
from chaosmesh_py.localmesh.apiserver.errors import JsonDict
from chaosmesh_py.localmesh.apiserver.models import go_type_name, model_schema, referenced_models
from chaosmesh_py.localmesh.apiserver.resources import Registry, ResourceType

META = "io.k8s.apimachinery.pkg.apis.meta.v1"
_META_MODELS = frozenset(
    referenced_models("V1ObjectMeta")
    + referenced_models("V1Status")
    + referenced_models("V1DeleteOptions")
    + ["V1ListMeta", "V1LabelSelector", "V1LabelSelectorRequirement"]
)
_CORE_MODELS = frozenset(
    referenced_models("V1PodTemplateSpec") + referenced_models("V1PersistentVolumeClaim")
)
_PATCH_TYPES = (
    "application/apply-patch+yaml",
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
)
_QUERY = {
    "dryRun": "When present, indicates that modifications should not be persisted.",
    "fieldManager": "fieldManager is a name associated with the actor or entity that is making"
    " these changes.",
    "fieldValidation": "fieldValidation instructs the server on how to handle objects in the"
    " request containing unknown or duplicate fields. Valid values are: Ignore, Warn (the"
    " default), Strict.",
}


def _package(group: str) -> str:
    """`io.k8s.api.batch.v1` for batch, `io.k8s.api.core.v1` for the core group."""
    return f"io.k8s.api.{group.split('.', maxsplit=1)[0] if group else 'core'}.v1"


def _crd_package(rt: ResourceType, version: str) -> str:
    """`io.istio.networking.v1` for networking.istio.io v1: the group reversed."""
    return ".".join([*reversed(rt.group.split(".")), version])


def _model_name(model: str, group: str) -> str:
    """The component name a real apiserver gives a built-in type."""
    if model in _META_MODELS:
        return f"{META}.{go_type_name(model)}"
    package = _package("") if model in _CORE_MODELS else _package(group)
    return f"{package}.{go_type_name(model)}"


def _gvk(rt: ResourceType, version: str) -> JsonDict:
    return {"group": rt.group, "kind": rt.kind, "version": version}


def _rename_refs(node: Any, names: dict[str, str]) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref", "")
        renamed = {key: _rename_refs(value, names) for key, value in node.items()}
        if ref.startswith("#/components/schemas/"):
            renamed["$ref"] = "#/components/schemas/" + names[ref.rpartition("/")[2]]
        return renamed
    if isinstance(node, list):
        return [_rename_refs(value, names) for value in node]
    return node


def _kind_schemas(rt: ResourceType, version: str) -> tuple[str, dict[str, JsonDict]]:
    """The kind's component name and every component it needs (itself included)."""
    meta_ref = {"$ref": f"#/components/schemas/{META}.ObjectMeta"}
    extension = {"x-kubernetes-group-version-kind": [_gvk(rt, version)]}
    if rt.custom:
        name = f"{_crd_package(rt, version)}.{rt.kind}"
        schema = rt.schema(version)
        root: JsonDict = copy.deepcopy(schema.openapi) if schema else {"type": "object"}
        root["properties"] = {**root.get("properties", {}), "metadata": meta_ref}
        components = {name: {**root, **extension}, **_model_components(["V1ObjectMeta"], "")}
        return name, components
    model = rt.model or f"V1{rt.kind}"
    components = _model_components(referenced_models(model), rt.group)
    name = _model_name(model, rt.group)
    components[name] = {**components[name], **extension}
    return name, components


def _model_components(models: list[str], group: str) -> dict[str, JsonDict]:
    everything = [m for model in models for m in referenced_models(model)]
    names = {model: _model_name(model, group) for model in everything}
    return {
        names[model]: _rename_refs(model_schema(model, expand=False), names) for model in everything
    }


def _parameter(name: str, where: str = "query") -> JsonDict:
    described = {"description": _QUERY[name]} if name in _QUERY else {}
    schema = {"type": "string", "uniqueItems": True}
    return {"name": name, "in": where, **described, "required": where == "path", "schema": schema}


def _operation(
    rt: ResourceType, version: str, action: str, *, verb: str, body: str | None, answer: str
) -> JsonDict:
    ref = {"$ref": f"#/components/schemas/{answer}"}
    operation: JsonDict = {
        "tags": [f"{rt.group or 'core'}_{version}"],
        "description": f"{action} {rt.kind}",
        "operationId": f"{verb}{rt.kind}",
        "responses": {
            "200": {"description": "OK", "content": {"application/json": {"schema": ref}}}
        },
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": _gvk(rt, version),
    }
    if action in ("post", "put", "patch"):
        operation["parameters"] = [
            _parameter(q) for q in ("dryRun", "fieldManager", "fieldValidation")
        ]
    if body is not None:
        types: tuple[str, ...] = (
            _PATCH_TYPES if action == "patch" else ("application/json", "application/yaml")
        )
        if action == "patch" and rt.custom:
            types = tuple(t for t in types if "strategic" not in t)
        schema = {"$ref": f"#/components/schemas/{body}"}
        operation["requestBody"] = {
            "content": {t: {"schema": schema} for t in types},
            "required": True,
        }
    return operation


def _paths(rt: ResourceType, version: str, kind_name: str) -> JsonDict:
    prefix = f"/apis/{rt.group}/{version}" if rt.group else f"/api/{version}"
    scope = "/namespaces/{namespace}" if rt.namespaced else ""
    scope_parameters = [_parameter("namespace", "path")] if rt.namespaced else []
    patch = f"{META}.Patch"
    collection = {
        "get": _operation(rt, version, "list", verb="list", body=None, answer=kind_name + "List"),
        "post": _operation(rt, version, "post", verb="create", body=kind_name, answer=kind_name),
        "parameters": scope_parameters,
    }
    item = {
        "get": _operation(rt, version, "get", verb="read", body=None, answer=kind_name),
        "put": _operation(rt, version, "put", verb="replace", body=kind_name, answer=kind_name),
        "patch": _operation(rt, version, "patch", verb="patch", body=patch, answer=kind_name),
        "delete": _operation(
            rt, version, "delete", verb="delete", body=None, answer=f"{META}.Status"
        ),
        "parameters": [_parameter("name", "path"), *scope_parameters],
    }
    base = f"{prefix}{scope}/{rt.plural}"
    paths = {base: collection, base + "/{name}": item}
    if rt.has_status:
        paths[base + "/{name}/status"] = {
            key: value
            for key, value in item.items()
            if key in ("get", "put", "patch", "parameters")
        }
    return paths


def _list_schema(kind_name: str, rt: ResourceType, version: str) -> JsonDict:
    return {
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "items": {"type": "array", "items": {"$ref": f"#/components/schemas/{kind_name}"}},
            "metadata": {"$ref": f"#/components/schemas/{META}.ListMeta"},
        },
        "x-kubernetes-group-version-kind": [{**_gvk(rt, version), "kind": rt.kind + "List"}],
    }


def _info() -> JsonDict:
    return {"title": "Kubernetes", "version": KUBERNETES_VERSION["gitVersion"]}


class OpenApi:
    """The OpenAPI documents of one server's registry, built once (the registry never changes)."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def _served(self, key: str) -> list[tuple[ResourceType, str]]:
        return [
            (rt, version)
            for rt in self.registry.types
            for version in rt.versions
            if _group_version_key(rt, version) == key
        ]

    @functools.cached_property
    def _v3_documents(self) -> dict[str, bytes]:
        keys = sorted(
            {_group_version_key(rt, v) for rt in self.registry.types for v in rt.versions}
        )
        documents = {}
        for key in keys:
            paths: JsonDict = {}
            components: dict[str, JsonDict] = _model_components(
                ["V1Status", "V1DeleteOptions", "V1ListMeta"], ""
            )
            components[f"{META}.Patch"] = {
                "type": "object",
                "description": "Patch is provided to give a concrete name and type to the"
                " Kubernetes PATCH request body.",
            }
            for rt, version in self._served(key):
                name, schemas = _kind_schemas(rt, version)
                components.update(schemas)
                components[name + "List"] = _list_schema(name, rt, version)
                paths.update(_paths(rt, version, name))
            document = {
                "openapi": "3.0.0",
                "info": _info(),
                "paths": paths,
                "components": {"schemas": dict(sorted(components.items()))},
            }
            documents[key] = json.dumps(document, separators=(",", ":")).encode()
        return documents

    def v3_index(self) -> JsonDict:
        return {
            "paths": {
                key: {
                    "serverRelativeURL": f"/openapi/v3/{key}?hash="
                    + hashlib.sha512(body).hexdigest().upper()
                }
                for key, body in self._v3_documents.items()
            }
        }

    def v3_document(self, key: str) -> bytes | None:
        """The document of `api/v1` or `apis/<group>/<version>`, None when not served."""
        return self._v3_documents.get(key)

    @functools.cached_property
    def v2_document(self) -> bytes:
        """One Swagger 2.0 document for everything served, `#/definitions/...` references."""
        paths: JsonDict = {}
        definitions: JsonDict = {}
        for body in self._v3_documents.values():
            document = json.loads(body)
            for path, item in document["paths"].items():
                paths[path] = _to_v2(item)
            for name, schema in document["components"]["schemas"].items():
                definitions[name] = _to_v2(schema)
        swagger = {
            "swagger": "2.0",
            "info": _info(),
            "paths": paths,
            "definitions": dict(sorted(definitions.items())),
        }
        return json.dumps(swagger, separators=(",", ":")).encode()


def _group_version_key(rt: ResourceType, version: str) -> str:
    return f"apis/{rt.group}/{version}" if rt.group else f"api/{version}"


def _v2_response(answer: JsonDict) -> JsonDict:
    content: JsonDict = answer.get("content") or {}
    schemas = [media.get("schema", {}) for media in content.values()]
    return {
        "description": answer.get("description", ""),
        "schema": _to_v2(schemas[0] if schemas else {}),
    }


def _to_v2(node: Any) -> Any:
    """An OpenAPI v3 fragment in Swagger 2.0 terms: refs to definitions, parameters' schema
    types inlined, request bodies as `body` parameters, v3-only keywords dropped (as the
    apiserver drops them from CRD schemas when publishing v2)."""
    if isinstance(node, list):
        return [_to_v2(value) for value in node]
    if not isinstance(node, dict):
        return node
    out: JsonDict = {}
    wrapped = node.get("allOf")
    if isinstance(wrapped, list) and len(wrapped) == 1 and "$ref" in wrapped[0]:
        node = {**{k: v for k, v in node.items() if k != "allOf"}, **wrapped[0]}
    for key, value in node.items():
        if key in ("nullable", "anyOf", "oneOf", "not", "allOf"):
            continue
        if key == "$ref":
            out[key] = value.replace("#/components/schemas/", "#/definitions/")
        elif key == "requestBody":
            schema = next(iter(value["content"].values()))["schema"]
            body = {"name": "body", "in": "body", "required": True, "schema": _to_v2(schema)}
            out["parameters"] = [*out.get("parameters", ()), body]
            out["consumes"] = list(value["content"])
        elif key == "parameters" and isinstance(value, list):
            converted = [
                {**{k: v for k, v in p.items() if k != "schema"}, **p.get("schema", {})}
                if isinstance(p, dict) and "in" in p
                else _to_v2(p)
                for p in value
            ]
            out[key] = [*converted, *out.get(key, ())]
        elif key == "responses":
            out[key] = {code: _v2_response(answer) for code, answer in value.items()}
        else:
            out[key] = _to_v2(value)
    return out
