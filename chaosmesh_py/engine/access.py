"""What an activity asks of the Kubernetes API, declared next to the activity.

Each Chaos Toolkit activity of this project says, with ``@needs(...)`` on its function, which
API requests it (and the control's rollback of what it did) makes, as a function of its
arguments: ``inject_delay(virtual_service="ratings", namespace="shop")`` gets and patches that
one VirtualService; with ``host`` instead it also lists VirtualServices in the namespace to find
it. ``chaosmesh gameday render`` reads these declarations to write the least RBAC a game day
needs in a cluster (``chaosmesh_py.gameday.rbac``); an activity with no declaration is refused
there, never granted a wildcard, and a declaration raises InvalidInput for arguments that
cannot work in a cluster (e.g. the local mesh's own Prometheus).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from chaosmesh_py.kube import ResourceKind


@dataclass(frozen=True, order=True)
class Access:
    """One kind of request: ``verb`` on ``resource`` of API ``group`` in ``namespace`` (None:
    across all namespaces), on the object ``name`` only (RBAC's resourceNames) or on any."""

    verb: str
    group: str
    resource: str
    namespace: str | None
    name: str | None = None

    def __str__(self) -> str:
        resource = f"{self.resource}.{self.group}" if self.group else self.resource
        if self.name is not None:
            resource += f" {self.name!r}"
        where = "across all namespaces" if self.namespace is None else f"in {self.namespace!r}"
        return f"{self.verb} {resource} {where}"


def on(
    kind: ResourceKind, verbs: Iterable[str], namespace: str | None, name: str | None = None
) -> list[Access]:
    return [Access(verb, kind.group, kind.plural, namespace, name) for verb in verbs]


# An activity's arguments (Chaos Toolkit's, with the function's defaults filled in and
# configuration substituted) -> what it will ask of the API.
Needs = Callable[[Mapping[str, Any]], Iterable[Access]]

F = TypeVar("F", bound=Callable[..., Any])

_declared: dict[str, Needs] = {}


def needs(declare: Needs) -> Callable[[F], F]:
    """Declare what the decorated activity asks of the API. The function itself is returned
    unchanged: Chaos Toolkit sees the same signature and docstring."""

    def register(function: F) -> F:
        _declared[f"{function.__module__}.{function.__qualname__}"] = declare
        return function

    return register


def declared(module: str, function: str) -> Needs | None:
    """The declaration of ``module.function``, importing the module to find it; None when the
    module, the function or its declaration does not exist."""
    key = f"{module}.{function}"
    if key not in _declared:
        try:
            importlib.import_module(module)
        except ImportError:
            return None
    return _declared.get(key)


def nothing(arguments: Mapping[str, Any]) -> list[Access]:
    """For activities that never call the Kubernetes API (HTTP, Prometheus, Envoy's admin)."""
    return []
