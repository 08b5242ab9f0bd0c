"""Built-in kinds beyond Namespace and ConfigMap, with the rules a real apiserver applies.

Served: coordination.k8s.io/v1 Lease; batch/v1 CronJob and Job; v1 ServiceAccount and
PersistentVolumeClaim; rbac.authorization.k8s.io/v1 Role, RoleBinding, ClusterRole and
ClusterRoleBinding. Their structure comes from the `kubernetes` client's models (`models`); their
own rules (beyond structure) follow k8s.io/kubernetes pkg/apis/*/validation, for what a user
writing manifests by hand or rendering them would hit: the cases and wording here are those of
`ValidateLease`, `ValidateCronJob`, `ValidatePolicyRule`, `ValidateRoleBinding`, ... .
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chaosmesh_py.localmesh.apiserver.errors import FieldError, JsonDict, show_value
from chaosmesh_py.localmesh.apiserver.models import model_schema
from chaosmesh_py.localmesh.apiserver.resources import ResourceType
from chaosmesh_py.localmesh.apiserver.schema import Schema

Rules = Callable[[JsonDict, JsonDict | None], list[FieldError]]


def invalid(field: str, value: Any, why: str) -> FieldError:
    return FieldError("FieldValueInvalid", field, f"Invalid value: {show_value(value)}: {why}")


def required(field: str, why: str = "") -> FieldError:
    return FieldError("FieldValueRequired", field, "Required value" + (f": {why}" if why else ""))


def forbidden(field: str, why: str) -> FieldError:
    return FieldError("FieldValueForbidden", field, f"Forbidden: {why}")


def not_supported(field: str, value: Any, supported: list[str]) -> FieldError:
    shown = ", ".join(show_value(s) for s in supported)
    return FieldError(
        "FieldValueNotSupported",
        field,
        f"Unsupported value: {show_value(value)}: supported values: {shown}",
    )


def _spec(obj: JsonDict) -> JsonDict:
    spec = obj.get("spec")
    return spec if isinstance(spec, dict) else {}


# -- coordination.k8s.io ----------------------------------------------------------------------

LEASE_STRATEGIES = ["OldestEmulationVersion"]


def lease_errors(new: JsonDict, old: JsonDict | None) -> list[FieldError]:
    """ValidateLeaseSpec: durations positive, transitions not negative, a known strategy, and
    a preferred holder only with a strategy. holderIdentity is free text."""
    spec, problems = _spec(new), []
    duration = spec.get("leaseDurationSeconds")
    if duration is not None and duration <= 0:
        problems.append(invalid("spec.leaseDurationSeconds", duration, "must be greater than 0"))
    transitions = spec.get("leaseTransitions")
    if transitions is not None and transitions < 0:
        problems.append(
            invalid("spec.leaseTransitions", transitions, "must be greater than or equal to 0")
        )
    strategy = spec.get("strategy")
    if strategy is not None and strategy not in LEASE_STRATEGIES:
        problems.append(not_supported("spec.strategy", strategy, LEASE_STRATEGIES))
    if spec.get("preferredHolder") and not strategy:
        problems.append(
            forbidden("spec.preferredHolder", "may only be specified if `strategy` is defined")
        )
    return problems


def builtin_type(
    group: str,
    kind: str,
    plural: str,
    *,
    namespaced: bool = True,
    short_names: tuple[str, ...] = (),
    categories: tuple[str, ...] = (),
    has_status: bool = False,
    generation: bool = False,
    validate: Rules | None = None,
) -> ResourceType:
    model = f"V1{kind}"
    return ResourceType(
        group=group,
        kind=kind,
        plural=plural,
        singular=kind.lower(),
        namespaced=namespaced,
        versions=("v1",),
        storage_version="v1",
        short_names=short_names,
        categories=categories,
        has_status=has_status,
        generation=generation,
        model=model,
        schemas={"v1": Schema(model_schema(model), times=True)},
        validate=validate,
    )


LEASE = builtin_type("coordination.k8s.io", "Lease", "leases", validate=lease_errors)

BUILTIN_TYPES = (LEASE,)
