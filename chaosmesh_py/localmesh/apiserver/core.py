"""Built-in kinds of the core API beyond Namespace: ConfigMap, validated as a real apiserver does.

A local mesh publishes what its clients need to know about it (where Envoy's admin is, its
instance id) in a ConfigMap, read with an ordinary GET: clients learn what they talk to through
the Kubernetes API, never through a private path. The rules follow
k8s.io/kubernetes pkg/apis/core/validation `ValidateConfigMap` and `ValidateConfigMapUpdate`:
keys of `data` and `binaryData` are config keys (`[-._a-zA-Z0-9]+`, at most 253 characters, not
"." or ".." nor starting with ".."), a key may not be in both, `binaryData` values are base64,
the whole payload is at most 1 MiB, and an `immutable` ConfigMap keeps its data and stays
immutable.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from chaosmesh_py.localmesh.apiserver.errors import FieldError, JsonDict
from chaosmesh_py.localmesh.apiserver.meta import too_long

# corev1.MaxSecretSize, which ValidateConfigMap applies to a ConfigMap's data too.
MAX_CONFIG_MAP_BYTES = 1024 * 1024
_CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_KEY_RULE = (
    "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. "
    "'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
)

CONFIG_MAP_SCHEMA: JsonDict = {
    "type": "object",
    "properties": {
        "apiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "metadata": {"type": "object"},
        "data": {"type": "object", "additionalProperties": {"type": "string"}},
        "binaryData": {"type": "object", "additionalProperties": {"type": "string"}},
        "immutable": {"type": "boolean"},
    },
}


def _key_errors(field: str, key: str) -> list[FieldError]:
    def invalid(why: str) -> FieldError:
        return FieldError("FieldValueInvalid", field, f'Invalid value: "{key}": {why}')

    problems = []
    if len(key) > 253:
        problems.append(invalid("must be no more than 253 characters"))
    if not _CONFIG_KEY.match(key):
        problems.append(invalid(_KEY_RULE))
    if key in (".", ".."):
        problems.append(invalid(f"must not be '{key}'"))
    elif key.startswith(".."):
        problems.append(invalid("must not start with '..'"))
    return problems


def config_map_errors(new: JsonDict, old: JsonDict | None) -> list[FieldError]:
    """What a real apiserver refuses in a ConfigMap write (422), beyond name and metadata."""
    data: dict[str, Any] = new.get("data") or {}
    binary: dict[str, Any] = new.get("binaryData") or {}
    problems: list[FieldError] = []
    size = 0
    for key, value in data.items():
        problems += _key_errors(f"data[{key}]", key)
        size += len(str(value).encode())
    for key, value in binary.items():
        field = f"binaryData[{key}]"
        problems += _key_errors(field, key)
        if key in data:
            problems.append(
                FieldError(
                    "FieldValueInvalid",
                    field,
                    f'Invalid value: "{key}": duplicate of key present in data',
                )
            )
        try:
            size += len(base64.b64decode(str(value), validate=True))
        except (binascii.Error, ValueError):
            problems.append(
                FieldError("FieldValueInvalid", field, "Invalid value: illegal base64 data")
            )
    if size > MAX_CONFIG_MAP_BYTES:
        problems.append(too_long("", MAX_CONFIG_MAP_BYTES))
    if old is not None and old.get("immutable"):
        why = "Forbidden: field is immutable when `immutable` is set"
        for field in ("data", "binaryData"):
            if new.get(field) != old.get(field):
                problems.append(FieldError("FieldValueForbidden", field, why))
        if not new.get("immutable"):
            problems.append(FieldError("FieldValueForbidden", "immutable", why))
    return problems
