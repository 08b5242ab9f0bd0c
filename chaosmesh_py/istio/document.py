"""JSON documents as the API server holds them: canonical form, content digests, merge patches.

A Kubernetes API server written in Go decodes a custom resource's numbers as float64 and
encodes them back without a fraction when they are integral: ``100.0`` written comes back as
``100``. Anything compared or hashed across a round trip through the server goes through
``canonical`` first, so the two spellings are one value.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from typing import Any

DIGEST_HEX = 12


def canonical(value: Any) -> Any:
    """``value`` with integral floats as ints, recursively: what survives a trip through Go."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Mapping):
        return {str(k): canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [canonical(v) for v in value]
    return value


def same(a: Any, b: Any) -> bool:
    """Equal as the API server would hold them."""
    return bool(canonical(a) == canonical(b))


def digest(purpose: str, run_id: str, content: Any) -> str:
    """A short hash binding ``content`` to ``run_id`` (``purpose`` keeps digests of different
    kinds of things apart)."""
    text = json.dumps([purpose, run_id, canonical(content)], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:DIGEST_HEX]


def merge_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON merge patch (RFC 7386) that turns ``old`` into ``new``: changed keys, removed
    keys as null, lists whole. Sent with a resourceVersion precondition, it yields exactly
    ``new``."""
    patch: dict[str, Any] = {}
    for key in old.keys() - new.keys():
        patch[key] = None
    for key, value in new.items():
        if key not in old:
            patch[key] = copy.deepcopy(value)
        elif isinstance(value, Mapping) and isinstance(old[key], Mapping):
            inner = merge_patch(old[key], value)
            if inner:
                patch[key] = inner
        elif old[key] != value or type(old[key]) is not type(value):
            patch[key] = copy.deepcopy(value)
    return patch
