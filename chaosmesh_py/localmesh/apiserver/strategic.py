"""Strategic merge patch for built-in kinds, after apimachinery's util/strategicpatch.

Like a JSON merge patch (null deletes, objects merge), except for lists a kind declares
mergeable, and for directives:

- a list with `x-kubernetes-patch-strategy: merge` and a `x-kubernetes-patch-merge-key` merges
  element by element on that key (a patch element with the key of an existing one is merged into
  it, a new one is appended); `{"<key>": v, "$patch": "delete"}` removes one;
- a mergeable list of scalars (`finalizers`) is a set union;
- `$setElementOrder/<field>` orders the merged list (kubectl's apply sends it);
  `$deleteFromPrimitiveList/<field>` removes scalars; `$retainKeys` (strategy `retainKeys`)
  drops the keys it does not list (a volume switching from emptyDir to configMap);
  `$patch: replace` replaces a map or list whole, `$patch: delete` deletes a map.

Every other list is atomic: the patch's list replaces the stored one. Which lists merge is read
from the kind's schema (`models` puts Kubernetes' patch strategies there), the same schema
published in /openapi/v3, from which kubectl computes the patches it sends.
"""

from __future__ import annotations

import copy
from typing import Any

from chaosmesh_py.localmesh.apiserver.errors import JsonDict, bad_request

STRATEGY = "x-kubernetes-patch-strategy"
MERGE_KEY = "x-kubernetes-patch-merge-key"
_ORDER = "$setElementOrder/"
_DELETE_FROM = "$deleteFromPrimitiveList/"


def _child(schema: JsonDict | None, key: str) -> JsonDict | None:
    if not schema:
        return None
    found = (schema.get("properties") or {}).get(key)
    if found is None and isinstance(schema.get("additionalProperties"), dict):
        found = schema["additionalProperties"]
    return found if isinstance(found, dict) else None


def _strip(value: Any) -> Any:
    """A patch value to store as it is: its directives removed."""
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if not k.startswith("$") and v is not None}
    if isinstance(value, list):
        return [
            _strip(v) for v in value if not (isinstance(v, dict) and v.get("$patch") == "delete")
        ]
    return copy.deepcopy(value)


def merge(original: Any, patch: Any, schema: JsonDict | None) -> Any:
    """The result of applying a strategic merge `patch` to `original` (neither is modified)."""
    if not isinstance(patch, dict):
        return _strip(patch)
    directive = patch.get("$patch")
    if directive == "replace":
        return _strip(patch)
    if directive == "delete":
        return None
    if directive is not None:
        raise bad_request(f"Unknown patch type: {directive} in map: {patch}")
    result: JsonDict = copy.deepcopy(original) if isinstance(original, dict) else {}
    retain = patch.get("$retainKeys")
    if retain is not None:
        if not isinstance(retain, list):
            raise bad_request("$retainKeys must be a list")
        result = {k: v for k, v in result.items() if k in retain}
    for key, value in patch.items():
        if key.startswith(_DELETE_FROM):
            field = key.removeprefix(_DELETE_FROM)
            if isinstance(result.get(field), list):
                result[field] = [v for v in result[field] if v not in (value or [])]
            continue
        if key.startswith("$"):
            continue
        if value is None:
            result.pop(key, None)
            continue
        child = _child(schema, key)
        if isinstance(value, list) and isinstance(result.get(key), list):
            result[key] = _merge_list(result[key], value, child)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            merged = merge(result[key], value, child)
            if merged is None:
                del result[key]
            else:
                result[key] = merged
        else:
            fresh = merge(None, value, child) if isinstance(value, dict) else _strip(value)
            if fresh is not None:
                result[key] = fresh
    for key, order in patch.items():
        if key.startswith(_ORDER) and isinstance(result.get(key.removeprefix(_ORDER)), list):
            field = key.removeprefix(_ORDER)
            result[field] = _ordered(result[field], order, _merge_key(_child(schema, field)))
    return result


def _merge_key(schema: JsonDict | None) -> str | None:
    return (schema or {}).get(MERGE_KEY)


def _merge_list(original: list[Any], patch: list[Any], schema: JsonDict | None) -> list[Any]:
    strategy = str((schema or {}).get(STRATEGY, ""))
    if any(isinstance(p, dict) and p.get("$patch") == "replace" for p in patch):
        return [_strip(p) for p in patch if not (isinstance(p, dict) and "$patch" in p)]
    if "merge" not in strategy.split(","):
        return [_strip(p) for p in patch]  # atomic
    key = _merge_key(schema)
    if key is None:  # a set of scalars
        return [*original, *(v for v in patch if v not in original)]
    items = (schema or {}).get("items")
    result = copy.deepcopy(original)
    for element in patch:
        if not isinstance(element, dict) or key not in element:
            raise bad_request(f"map: {element} does not contain declared merge key: {key}")
        position = next(
            (i for i, o in enumerate(result) if isinstance(o, dict) and o.get(key) == element[key]),
            None,
        )
        if element.get("$patch") == "delete":
            if position is not None:
                del result[position]
        elif position is None:
            result.append(merge(None, element, items))
        else:
            result[position] = merge(result[position], element, items)
    return result


def _ordered(merged: list[Any], order: Any, key: str | None) -> list[Any]:
    """`merged` in the order `$setElementOrder` gives; elements it does not name (the server's
    own) keep their place after the ones it names."""
    if not isinstance(order, list):
        return merged

    def identity(value: Any) -> Any:
        return value.get(key) if key is not None and isinstance(value, dict) else value

    wanted = [identity(o) for o in order]
    named = sorted(
        (m for m in merged if identity(m) in wanted), key=lambda m: wanted.index(identity(m))
    )
    return named + [m for m in merged if identity(m) not in wanted]
