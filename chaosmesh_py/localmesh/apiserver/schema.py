"""A CRD version's structural schema: pruning, JSON Schema validation and CEL rules.

The CRD's `openAPIV3Schema` is OpenAPI 3.0 with Kubernetes extensions; jsonschema validates plain
JSON Schema, so `to_json_schema` converts it: drop `description` and `x-kubernetes-*`,
`nullable: true` -> `type: [T, "null"]`, `x-kubernetes-int-or-string` -> anyOf integer/string,
`format: int32/uint32/int64` -> bounds (Kubernetes checks those formats, jsonschema does not).

Pruning walks the original (structural) schema, as the apiserver does before validating, and
reports each dropped field as a path such as `spec.http[0].fault.delay.fixed_delay`.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterator
from typing import Any

import jsonschema
from jsonschema.exceptions import ValidationError

from chaosmesh_py.localmesh.apiserver.cel import CelRule, evaluate_rules
from chaosmesh_py.localmesh.apiserver.errors import FieldError, JsonDict, show_value

# ObjectMeta fields a client may send; anything else under metadata is pruned like unknown fields.
OBJECT_META_FIELDS = frozenset(
    {
        "name",
        "generateName",
        "namespace",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "labels",
        "annotations",
        "ownerReferences",
        "finalizers",
        "managedFields",
        "selfLink",
    }
)

FORMAT_BOUNDS = {
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
    "int64": (-(2**63), 2**63 - 1),
}

# JSON Schema keywords whose value is a schema, or a list of schemas.
_SCHEMA_KEYWORDS = ("items", "not")
_SCHEMA_LIST_KEYWORDS = ("oneOf", "anyOf", "allOf")


def to_json_schema(node: JsonDict) -> JsonDict:
    """Convert one OpenAPI v3 (Kubernetes flavour) schema node to JSON Schema."""
    out: JsonDict = {}
    for key, value in node.items():
        if key == "description" or key.startswith("x-kubernetes-") or key == "nullable":
            continue
        if key == "properties":
            out[key] = {name: to_json_schema(sub) for name, sub in value.items()}
        elif key in _SCHEMA_KEYWORDS or (key == "additionalProperties" and isinstance(value, dict)):
            out[key] = to_json_schema(value)
        elif key in _SCHEMA_LIST_KEYWORDS:
            out[key] = [to_json_schema(sub) for sub in value]
        else:
            out[key] = value
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        either = [{"type": "integer"}, {"type": "string"}]
        out = {"allOf": [out, {"anyOf": either}]} if "anyOf" in out else {**out, "anyOf": either}
    if node.get("format") in FORMAT_BOUNDS:
        low, high = FORMAT_BOUNDS[node["format"]]
        out["minimum"] = max(out.get("minimum", low), low)
        out["maximum"] = min(out.get("maximum", high), high)
    if node.get("nullable"):
        if "type" in out:
            out["type"] = [out["type"], "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    return out


def _child_schemas(node: JsonDict) -> Iterator[JsonDict]:
    for key in ("properties",):
        yield from node.get(key, {}).values()
    for key in ("additionalProperties", *_SCHEMA_KEYWORDS):
        if isinstance(node.get(key), dict):
            yield node[key]
    for key in _SCHEMA_LIST_KEYWORDS:
        yield from node.get(key, ())


def _collect_rules(node: JsonDict, rules: set[str]) -> None:
    for rule in node.get("x-kubernetes-validations", ()):
        rules.add(rule["rule"])
    for child in _child_schemas(node):
        _collect_rules(child, rules)


def _is_time(value: object) -> bool:
    """A metav1.Time / MicroTime: RFC 3339 with a zone (Go's time.RFC3339Nano parse)."""
    if not isinstance(value, str) or not re.fullmatch(
        r"\d{4}-\d\d-\d\dT.+(Z|[+-]\d\d:\d\d)", value
    ):
        return False
    try:
        datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


_TIME_FORMAT = jsonschema.FormatChecker(formats=())
_TIME_FORMAT.checks("date-time")(_is_time)


class Schema:
    """One version's schema, converted and with its CEL rules compiled, ready to use.

    `times` checks `format: date-time` values (built-in kinds' Time and MicroTime fields,
    which the apiserver's decoder refuses unless they parse).
    """

    def __init__(self, openapi: JsonDict, *, times: bool = False) -> None:
        self.openapi = openapi
        self.validator = jsonschema.Draft7Validator(
            to_json_schema(openapi), format_checker=_TIME_FORMAT if times else None
        )
        rules: set[str] = set()
        _collect_rules(openapi, rules)
        # Compiling up front fails fast on a rule shape the CEL layer cannot handle.
        self.rules = {text: CelRule.compile(text) for text in sorted(rules)}

    def prune(self, obj: JsonDict) -> list[str]:
        """Drop unknown fields from `obj` in place; return their paths."""
        unknown: list[str] = []
        metadata = obj.get("metadata")
        if isinstance(metadata, dict):
            for key in [k for k in metadata if k not in OBJECT_META_FIELDS]:
                unknown.append(f"metadata.{key}")
                del metadata[key]
        reserved: JsonDict = {k: obj.pop(k) for k in ("apiVersion", "kind", "metadata") if k in obj}
        _prune(obj, self.openapi, "", unknown)
        rest = dict(obj)
        obj.clear()
        obj.update(reserved, **rest)
        return unknown

    def validate(self, obj: JsonDict) -> list[FieldError]:
        """Schema errors; if there are none, CEL rule failures (as the rules assume valid types)."""
        body = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")}
        errors = [_field_error(e) for e in self.validator.iter_errors(body)]
        if errors:
            return sorted(errors, key=lambda e: e.field)
        return evaluate_rules(body, self.openapi, "", self.rules)

    def decoding_errors(self, obj: JsonDict) -> list[tuple[str, Any, str]]:
        """(field, value, "type" or "format") of each value a Go decoder could not read into a
        built-in kind's struct: the apiserver refuses those before validating (400)."""
        body = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")}
        found = [
            (field_path(e), e.instance, str(e.validator))
            for e in self.validator.iter_errors(body)
            if e.validator in ("type", "format", "anyOf")
        ]
        return sorted(found, key=lambda e: e[0])


def _prune(value: Any, schema: JsonDict, path: str, unknown: list[str]) -> None:
    """Prune `value`, described by `schema`, in place, appending the paths of dropped fields."""
    if isinstance(value, dict):
        properties = schema.get("properties")
        additional = schema.get("additionalProperties")
        for key in list(value):
            if properties is not None and key in properties:
                child, child_path = properties[key], f"{path}.{key}".lstrip(".")
            elif isinstance(additional, dict):
                child, child_path = additional, f"{path}[{key}]"
            elif additional is True or schema.get("x-kubernetes-preserve-unknown-fields"):
                continue
            else:
                unknown.append(f"{path}.{key}".lstrip("."))
                del value[key]
                continue
            if value[key] is None and not child.get("nullable"):
                del value[key]  # the apiserver drops nulls of non-nullable fields, silently
            else:
                _prune(value[key], child, child_path, unknown)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, element in enumerate(value):
            _prune(element, schema["items"], f"{path}[{index}]", unknown)


def field_path(error: ValidationError) -> str:
    """`spec.http[0].fault` from a jsonschema error; its schema path tells map keys apart."""
    instance = list(error.absolute_path)
    keywords = list(error.absolute_schema_path)
    path, i, k = "", 0, 0
    while k < len(keywords) and i < len(instance):
        keyword = keywords[k]
        if keyword == "properties":
            path += f".{instance[i]}"
            i, k = i + 1, k + 2
        elif keyword in ("items", "additionalProperties"):
            path += f"[{instance[i]}]"
            i, k = i + 1, k + 1
        else:
            k += 1
    for token in instance[i:]:
        path += f"[{token}]" if isinstance(token, int) else f".{token}"
    return path.lstrip(".")


_JSON_TYPES = {str: "string", bool: "boolean", int: "integer", float: "number", dict: "object"}


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    return _JSON_TYPES.get(type(value), "array" if isinstance(value, list) else "string")


def _field_error(error: ValidationError) -> FieldError:
    """Map a jsonschema error to the reason and wording of Kubernetes' OpenAPI validation."""
    field, value, expected = field_path(error), error.instance, error.validator_value
    in_body = f"{field or '<root>'} in body"
    shown = show_value(value)
    match error.validator:
        case "type":
            typ = _json_type(value)
            wanted = expected if isinstance(expected, str) else ",".join(expected)
            return FieldError(
                "FieldValueTypeInvalid",
                field,
                f'Invalid value: "{typ}": {in_body} must be of type {wanted}: "{typ}"',
            )
        case "required":
            missing = next((p for p in expected if p not in value), expected[0])
            return FieldError(
                "FieldValueRequired", f"{field}.{missing}".lstrip("."), "Required value"
            )
        case "enum":
            supported = ", ".join(show_value(v) for v in expected)
            return FieldError(
                "FieldValueNotSupported",
                field,
                f"Unsupported value: {shown}: supported values: {supported}",
            )
        case "format":
            return FieldError(
                "FieldValueTypeInvalid",
                field,
                f"Invalid value: {shown}: {in_body} must be of type {expected}",
            )
        case "maxLength":
            return FieldError(
                "FieldValueTooLong", field, f"Too long: may not be more than {expected} bytes"
            )
        case "maxItems" | "maxProperties":
            return FieldError(
                "FieldValueTooMany",
                field,
                f"Too many: {len(value)}: must have at most {expected} items",
            )
        case "oneOf":
            valid = sum(jsonschema.Draft7Validator(sub).is_valid(value) for sub in expected)
            detail = (
                f"must validate one and only one schema (oneOf). Found {valid} valid alternatives"
            )
            return FieldError("FieldValueInvalid", field, f"Invalid value: {shown}: {detail}")
    wording = {
        "minimum": f"should be greater than or equal to {expected}",
        "maximum": f"should be less than or equal to {expected}",
        "minLength": f"should be at least {expected} chars long",
        "minItems": f"should have at least {expected} items",
        "minProperties": f"should have at least {expected} properties",
        "pattern": f"should match '{expected}'",
        "anyOf": "must validate at least one schema (anyOf)",
        "not": "must not validate the schema (not)",
    }.get(str(error.validator), error.message)
    return FieldError("FieldValueInvalid", field, f"Invalid value: {shown}: {in_body} {wording}")
