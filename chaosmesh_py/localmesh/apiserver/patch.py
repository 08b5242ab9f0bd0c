"""PATCH bodies: content types and how each one is applied to the current object.

- `application/merge-patch+json`: RFC 7386 (null deletes, objects merge, anything else replaces).
- `application/json-patch+json`: RFC 6902 via jsonpatch. A malformed patch is 400; an operation
  that cannot apply (a failing `test`, a missing path) is 422.
- `application/apply-patch+yaml`: a simplified server-side apply, merging the applied
  configuration like a merge patch (no field ownership, no removal of fields a manager dropped).
- `application/strategic-merge-patch+json`: only for built-in kinds, merging the lists their
  schema marks mergeable by key (`strategic`); custom resources answer 415 like a real apiserver.
"""

from __future__ import annotations

import copy
import enum
import json
from typing import Any

import jsonpatch
import jsonpointer
import yaml

from chaosmesh_py.localmesh.apiserver import strategic
from chaosmesh_py.localmesh.apiserver.errors import ApiError, bad_request, unsupported_media_type


class PatchType(enum.Enum):
    MERGE = "application/merge-patch+json"
    JSON = "application/json-patch+json"
    STRATEGIC = "application/strategic-merge-patch+json"
    APPLY = "application/apply-patch+yaml"


def patch_type(content_type: str, custom_resource: bool) -> PatchType:
    """The patch type of a Content-Type header; 415 for anything else."""
    media = content_type.partition(";")[0].strip().lower()
    for kind in PatchType:
        if media == kind.value and not (kind is PatchType.STRATEGIC and custom_resource):
            return kind
    raise unsupported_media_type(media)


def decode_patch(kind: PatchType, body: bytes) -> Any:
    """Parse the body: YAML for apply (JSON is YAML too), JSON otherwise; 400 when unreadable."""
    try:
        if kind is PatchType.APPLY:
            return yaml.safe_load(body.decode("utf-8"))
        return json.loads(body)
    except (ValueError, yaml.YAMLError) as error:
        raise bad_request(f"error decoding patch: {error}") from error


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch; returns a new value, the inputs are not modified."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def invalid_patch(patched: Any, reason: str) -> ApiError:
    """The 422 a real apiserver gives when a patch applies but its result is unusable."""
    shown = json.dumps(patched, separators=(",", ":"))
    return ApiError(
        422,
        "Invalid",
        f' "" is invalid: patch: Invalid value: {json.dumps(shown)}: {reason}',
        {"causes": [{"reason": "FieldValueInvalid", "message": reason, "field": "patch"}]},
    )


_OPERAND = {"add": "value", "replace": "value", "test": "value", "move": "from", "copy": "from"}


def check_json_patch(patch: Any) -> None:
    """400 unless `patch` is a well-formed RFC 6902 document (a list of known operations)."""
    if not isinstance(patch, list):
        raise bad_request("invalid JSON patch: the body must be a list of operations")
    for operation in patch:
        if not isinstance(operation, dict) or operation.get("op") not in (*_OPERAND, "remove"):
            raise bad_request(f"invalid JSON patch: unknown operation {json.dumps(operation)}")
        pointers = [operation.get("path")]
        if _OPERAND.get(operation["op"]) == "from":
            pointers.append(operation.get("from"))
        elif operation["op"] != "remove" and "value" not in operation:
            raise bad_request(f"invalid JSON patch: missing value in {json.dumps(operation)}")
        if not all(isinstance(p, str) and (p == "" or p.startswith("/")) for p in pointers):
            raise bad_request(f"invalid JSON patch: bad JSON pointer in {json.dumps(operation)}")


def apply_patch(
    kind: PatchType, current: dict[str, Any], patch: Any, schema: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Apply a decoded patch to a copy of `current`; the result is always a JSON object.
    `schema` says which lists a strategic merge patch merges (see `strategic`)."""
    if kind is PatchType.JSON:
        check_json_patch(patch)
        try:
            patched = jsonpatch.JsonPatch(patch).apply(current)
        except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as error:
            raise ApiError(422, "Invalid", f"the patch could not be applied: {error}") from error
    elif kind is PatchType.STRATEGIC:
        patched = strategic.merge(current, patch, schema)
    else:
        patched = merge_patch(current, patch)
    if not isinstance(patched, dict):
        raise invalid_patch(patched, "the patched object is not a JSON object")
    return patched
