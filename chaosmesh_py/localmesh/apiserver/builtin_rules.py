"""The own rules of built-in kinds (422 when broken), after k8s.io/kubernetes pkg/apis/*/validation:
Lease (coordination), PersistentVolumeClaim (core), Role, ClusterRole, RoleBinding and
ClusterRoleBinding (rbac). batch's CronJob and Job are in `batch`. Each function takes the new
object and the stored one (None on create), as `ResourceType.validate` does.
"""

from __future__ import annotations

import json
import re
from typing import Any

from chaosmesh_py.localmesh.apiserver.errors import FieldError, JsonDict, show_value
from chaosmesh_py.localmesh.apiserver.meta import (
    DNS1123_LABEL,
    DNS1123_SUBDOMAIN,
    QUALIFIED_NAME_RULE,
    SUBDOMAIN_RULE,
    path_segment_errors,
    qualified_name,
)


def invalid(field: str, value: Any, why: str) -> FieldError:
    return FieldError("FieldValueInvalid", field, f"Invalid value: {show_value(value)}: {why}")


def required(field: str, why: str = "") -> FieldError:
    return FieldError("FieldValueRequired", field, "Required value" + (f": {why}" if why else ""))


def forbidden(field: str, why: str) -> FieldError:
    return FieldError("FieldValueForbidden", field, f"Forbidden: {why}")


def duplicate(field: str, value: Any) -> FieldError:
    return FieldError("FieldValueDuplicate", field, f"Duplicate value: {show_value(value)}")


def not_found(field: str, value: Any) -> FieldError:
    return FieldError("FieldValueNotFound", field, f"Not found: {show_value(value)}")


def not_supported(field: str, value: Any, supported: list[str]) -> FieldError:
    shown = ", ".join(show_value(s) for s in supported)
    return FieldError(
        "FieldValueNotSupported",
        field,
        f"Unsupported value: {show_value(value)}: supported values: {shown}",
    )


def label_errors(field: str, name: Any) -> list[FieldError]:
    """A DNS-1123 label (container, volume and port names)."""
    if isinstance(name, str) and len(name) <= 63 and DNS1123_LABEL.match(name):
        return []
    why = (
        "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-',"
        " and must start and end with an alphanumeric character"
    )
    return [invalid(field, name, why)]


def spec_of(obj: JsonDict | None) -> JsonDict:
    spec = (obj or {}).get("spec")
    return spec if isinstance(spec, dict) else {}


# -- coordination.k8s.io ----------------------------------------------------------------------

LEASE_STRATEGIES = ["OldestEmulationVersion"]


def lease_errors(new: JsonDict, old: JsonDict | None) -> list[FieldError]:
    """ValidateLeaseSpec: durations positive, transitions not negative, a known strategy, and
    a preferred holder only with a strategy. holderIdentity is free text."""
    spec, problems = spec_of(new), []
    duration = spec.get("leaseDurationSeconds")
    if duration is not None and duration <= 0:
        problems.append(invalid("spec.leaseDurationSeconds", duration, "must be greater than 0"))
    transitions = spec.get("leaseTransitions")
    if transitions is not None and transitions < 0:
        why = "must be greater than or equal to 0"
        problems.append(invalid("spec.leaseTransitions", transitions, why))
    strategy = spec.get("strategy")
    if strategy is not None and "/" in str(strategy):  # a custom strategy: a qualified name
        if not qualified_name(str(strategy)):
            problems.append(invalid("spec.strategy", strategy, QUALIFIED_NAME_RULE))
    elif strategy is not None and strategy not in LEASE_STRATEGIES:
        problems.append(not_supported("spec.strategy", strategy, LEASE_STRATEGIES))
    if spec.get("preferredHolder") and not strategy:
        why = "may only be specified if `strategy` is defined"
        problems.append(forbidden("spec.preferredHolder", why))
    return problems


# -- core: Service ----------------------------------------------------------------------------

SERVICE_TYPES = ["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"]
PROTOCOLS = ["TCP", "UDP", "SCTP"]


def service_errors(new: JsonDict, old: JsonDict | None) -> list[FieldError]:
    """The part of ValidateService a Service the mesh routes to depends on: its type, and ports
    (at least one unless headless or ExternalName; each in 1-65535, a known protocol, named
    uniquely when there are several)."""
    spec = spec_of(new)
    spec.setdefault("type", "ClusterIP")
    problems: list[FieldError] = []
    if spec["type"] not in SERVICE_TYPES:
        problems.append(not_supported("spec.type", spec["type"], SERVICE_TYPES))
    ports = spec.get("ports") or []
    if not ports and spec.get("clusterIP") != "None" and spec["type"] != "ExternalName":
        problems.append(required("spec.ports"))
    names: set[str] = set()
    for index, port in enumerate(ports):
        at = f"spec.ports[{index}]"
        number = port.get("port")
        if not isinstance(number, int) or not 1 <= number <= 65535:
            problems.append(invalid(f"{at}.port", number, "must be between 1 and 65535, inclusive"))
        port.setdefault("protocol", "TCP")
        if port["protocol"] not in PROTOCOLS:
            problems.append(not_supported(f"{at}.protocol", port["protocol"], PROTOCOLS))
        name = port.get("name") or ""
        if len(ports) > 1 and not name:
            problems.append(required(f"{at}.name"))
        elif name and name in names:
            problems.append(duplicate(f"{at}.name", name))
        names.add(name)
    return problems


# -- core: PersistentVolumeClaim --------------------------------------------------------------

ACCESS_MODES = ["ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"]
VOLUME_MODES = ["Block", "Filesystem"]
_QUANTITY = re.compile(r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$")
_SUFFIX = {"": 1, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18, "m": 1e-3}
_SUFFIX |= {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}


def quantity(value: Any) -> float | None:
    """A resource.Quantity's value, or None when it does not parse."""
    text = str(value)
    found = _QUANTITY.match(text)
    if found is None:
        return None
    number, suffix = found.groups()
    try:
        if suffix in _SUFFIX:
            return float(number) * _SUFFIX[suffix]
        return float(text)  # a decimal exponent, 1e3
    except ValueError:
        return None


def pvc_errors(new: JsonDict, old: JsonDict | None) -> list[FieldError]:
    """ValidatePersistentVolumeClaim(Update): access modes, a positive storage request, and a
    spec that is immutable after creation except the storage request (expansion)."""
    spec = spec_of(new)
    spec.setdefault("volumeMode", "Filesystem")
    problems: list[FieldError] = []
    modes = spec.get("accessModes") or []
    if not modes:
        problems.append(required("spec.accessModes", "at least 1 access mode is required"))
    for mode in modes:
        if mode not in ACCESS_MODES:
            problems.append(not_supported("spec.accessModes", mode, ACCESS_MODES))
    if "ReadWriteOncePod" in modes and len(modes) > 1:
        why = "may not use ReadWriteOncePod with other access modes"
        problems.append(forbidden("spec.accessModes", why))
    if spec.get("volumeMode") not in VOLUME_MODES:
        problems.append(not_supported("spec.volumeMode", spec.get("volumeMode"), VOLUME_MODES))
    requests = (spec.get("resources") or {}).get("requests") or {}
    for name, value in requests.items():
        if quantity(value) is None:
            why = f"quantities must match the regular expression '{_QUANTITY.pattern}'"
            problems.append(invalid(f"spec.resources.requests[{name}]", value, why))
    if "storage" not in requests:
        problems.append(required("spec.resources[storage]"))
    elif (quantity(requests["storage"]) or 0) <= 0:
        why = "must be greater than zero"
        problems.append(invalid("spec.resources[storage]", requests["storage"], why))
    if old is not None and _without_request(spec) != _without_request(spec_of(old)):
        why = (
            "spec is immutable after creation except resources.requests and"
            " volumeAttributesClassName for bound claims"
        )
        problems.append(forbidden("spec", why))
    return problems


def _without_request(spec: JsonDict) -> JsonDict:
    resources = {k: v for k, v in (spec.get("resources") or {}).items() if k != "requests"}
    return {**spec, "resources": resources, "volumeAttributesClassName": None}


# -- rbac.authorization.k8s.io ----------------------------------------------------------------

RBAC_GROUP = "rbac.authorization.k8s.io"


def _policy_rule_errors(rule: JsonDict, path: str, namespaced: bool) -> list[FieldError]:
    problems: list[FieldError] = []
    if not rule.get("verbs"):
        problems.append(required(f"{path}.verbs", "verbs must contain at least one value"))
    urls = rule.get("nonResourceURLs") or []
    if urls:
        # Go prints the list as `[]string{"/healthz"}`.
        shown = "[]string{" + ", ".join(json.dumps(str(u)) for u in urls) + "}"
        field = f"{path}.nonResourceURLs"
        if namespaced:
            why = "namespaced rules cannot apply to non-resource URLs"
            problems.append(
                FieldError("FieldValueInvalid", field, f"Invalid value: {shown}: {why}")
            )
        if rule.get("apiGroups") or rule.get("resources") or rule.get("resourceNames"):
            why = "rules cannot apply to both regular resources and non-resource URLs"
            problems.append(
                FieldError("FieldValueInvalid", field, f"Invalid value: {shown}: {why}")
            )
        return problems
    if not rule.get("apiGroups"):
        why = "resource rules must supply at least one api group"
        problems.append(required(f"{path}.apiGroups", why))
    if not rule.get("resources"):
        why = "resource rules must supply at least one resource"
        problems.append(required(f"{path}.resources", why))
    return problems


def _rules_errors(obj: JsonDict, namespaced: bool) -> list[FieldError]:
    return [
        problem
        for index, rule in enumerate(obj.get("rules") or ())
        for problem in _policy_rule_errors(rule, f"rules[{index}]", namespaced)
    ]


def role_errors(new: JsonDict, old: JsonDict | None) -> list[FieldError]:
    return _rules_errors(new, namespaced=True)


def cluster_role_errors(new: JsonDict, old: JsonDict | None) -> list[FieldError]:
    return _rules_errors(new, namespaced=False)


def _subject_errors(subject: JsonDict, path: str, namespaced: bool) -> list[FieldError]:
    problems: list[FieldError] = []
    name, kind, group = subject.get("name"), subject.get("kind"), subject.get("apiGroup") or ""
    if not name:
        problems.append(required(f"{path}.name"))
    if kind == "ServiceAccount":
        if name and (len(name) > 253 or not DNS1123_SUBDOMAIN.match(name)):
            problems.append(invalid(f"{path}.name", name, SUBDOMAIN_RULE))
        if group:
            problems.append(not_supported(f"{path}.apiGroup", group, [""]))
        if not namespaced and not subject.get("namespace"):
            problems.append(required(f"{path}.namespace"))
    elif kind in ("User", "Group"):
        if group != RBAC_GROUP:
            problems.append(not_supported(f"{path}.apiGroup", group, [RBAC_GROUP]))
    else:
        problems.append(not_supported(f"{path}.kind", kind, ["ServiceAccount", "User", "Group"]))
    return problems


def _go_role_ref(ref: Any) -> str:
    ref = ref if isinstance(ref, dict) else {}
    fields = ", ".join(
        f"{go}:{show_value(ref.get(key, ''))}"
        for go, key in (("APIGroup", "apiGroup"), ("Kind", "kind"), ("Name", "name"))
    )
    return f"rbac.RoleRef{{{fields}}}"


def _binding_errors(
    new: JsonDict, old: JsonDict | None, kinds: list[str], namespaced: bool
) -> list[FieldError]:
    found = new.get("roleRef")
    ref: JsonDict = found if isinstance(found, dict) else {}
    problems: list[FieldError] = []
    if ref.get("apiGroup") != RBAC_GROUP:
        problems.append(not_supported("roleRef.apiGroup", ref.get("apiGroup", ""), [RBAC_GROUP]))
    if ref.get("kind") not in kinds:
        problems.append(not_supported("roleRef.kind", ref.get("kind", ""), kinds))
    if not ref.get("name"):
        problems.append(required("roleRef.name"))
    else:
        problems += path_segment_errors("roleRef.name", ref["name"])
    for index, subject in enumerate(new.get("subjects") or ()):
        problems += _subject_errors(subject, f"subjects[{index}]", namespaced)
    if old is not None and old.get("roleRef") != new.get("roleRef"):
        shown = _go_role_ref(new.get("roleRef"))
        problems.append(
            FieldError(
                "FieldValueInvalid", "roleRef", f"Invalid value: {shown}: cannot change roleRef"
            )
        )
    return problems


def role_binding_errors(new: JsonDict, old: JsonDict | None) -> list[FieldError]:
    return _binding_errors(new, old, ["Role", "ClusterRole"], namespaced=True)


def cluster_role_binding_errors(new: JsonDict, old: JsonDict | None) -> list[FieldError]:
    return _binding_errors(new, old, ["ClusterRole"], namespaced=False)
