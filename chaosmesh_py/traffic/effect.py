"""Effect verification for routing edits: the data plane sends traffic where the copy says.

(Interface placeholder: the data-plane checks land in the next commit.)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chaosmesh_py.engine.verify import FaultNotObserved
from chaosmesh_py.istio import route_copy
from chaosmesh_py.kube import Kube, ResourceRef


class EditNotObserved(FaultNotObserved):
    """The data plane did not show the routing edit within the time box."""


def verify_edit(
    kube: Kube,
    ref: ResourceRef,
    written: Mapping[str, Any],
    request: route_copy.Injection,
    *,
    timeout_s: float,
    verify_url: str | None,
) -> dict[str, Any]:
    return {"checked": "no: not yet implemented", "time_to_effect_s": None}
