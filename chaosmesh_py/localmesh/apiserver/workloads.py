"""The workload kinds' own rules (422 when broken) and the Deployment's ``scale`` subresource.

After k8s.io/kubernetes pkg/apis/apps/validation and pkg/apis/core/validation, the part the
local mesh and chaostoolkit-kubernetes depend on: a Deployment or ReplicaSet needs a non-empty
selector that matches its template's labels (and may not change it), replicas >= 0, and a
template with at least one container; a Pod needs at least one container, each with a name and
an image; an Endpoints address needs an IP. Each rule function takes the new object and the
stored one (None on create), as ``ResourceType.validate`` does.

``kubectl scale`` reads the kind's scale subresource from discovery (``deployments/scale``,
kind ``autoscaling/v1`` Scale) and merge-patches ``{"spec": {"replicas": N}}`` onto it; the
double answers the Scale of the Deployment and writes the patched replicas to its spec.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from chaosmesh_py.localmesh.apiserver.builtin_rules import (
    forbidden,
    invalid,
    label_errors,
    required,
    spec_of,
)
from chaosmesh_py.localmesh.apiserver.errors import FieldError, JsonDict
from chaosmesh_py.localmesh.apiserver.patch import PatchType

if TYPE_CHECKING:
    from chaosmesh_py.localmesh.apiserver.resources import ResourceType
    from chaosmesh_py.localmesh.apiserver.store import Store, WriteOptions

SCALE_API_VERSION = "autoscaling/v1"


def selector_matches(selector: JsonDict, labels: dict[str, Any]) -> bool:
    """metav1.LabelSelectorAsSelector(selector).Matches(labels): matchLabels and the
    In / NotIn / Exists / DoesNotExist expressions."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression.get("key"), expression.get("operator")
        values = expression.get("values") or []
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


def _containers_errors(pod_spec: Any, at: str) -> list[FieldError]:
    containers = pod_spec.get("containers") if isinstance(pod_spec, dict) else None
    if not containers:
        return [required(f"{at}.containers")]
    problems: list[FieldError] = []
    for index, container in enumerate(containers):
        where = f"{at}.containers[{index}]"
        if not container.get("name"):
            problems.append(required(f"{where}.name"))
        else:
            problems += label_errors(f"{where}.name", container["name"])
        if not container.get("image"):
            problems.append(required(f"{where}.image"))
    return problems


def pod_errors(new: JsonDict, old: JsonDict | None) -> list[FieldError]:
    """ValidatePod(Update): containers; on update the spec may not change (the images aside,
    which the local mesh does not run anyway)."""
    spec = spec_of(new)
    problems = _containers_errors(spec, "spec")
    if old is not None and _without_images(spec) != _without_images(spec_of(old)):
        why = "pod updates may not change fields other than `spec.containers[*].image`"
        problems.append(forbidden("spec", why))
    return problems


def _without_images(spec: JsonDict) -> JsonDict:
    containers = [{**c, "image": None} for c in spec.get("containers") or []]
    return {**spec, "containers": containers}


def replicated_errors(new: JsonDict, old: JsonDict | None) -> list[FieldError]:
    """ValidateDeployment / ValidateReplicaSet: selector, template labels, replicas."""
    spec = spec_of(new)
    problems: list[FieldError] = []
    replicas = spec.setdefault("replicas", 1)
    if not isinstance(replicas, int) or replicas < 0:
        problems.append(invalid("spec.replicas", replicas, "must be greater than or equal to 0"))
    selector = spec.get("selector")
    template = spec.get("template") or {}
    labels = (template.get("metadata") or {}).get("labels") or {}
    if not isinstance(selector, dict):
        problems.append(required("spec.selector"))
    elif not selector.get("matchLabels") and not selector.get("matchExpressions"):
        problems.append(
            invalid("spec.selector", selector, f"empty selector is invalid for {_kind(new)}")
        )
    elif not selector_matches(selector, labels):
        problems.append(
            invalid(
                "spec.template.metadata.labels",
                labels,
                "`selector` does not match template `labels`",
            )
        )
    problems += _containers_errors(template.get("spec"), "spec.template.spec")
    if old is not None and selector != spec_of(old).get("selector"):
        problems.append(invalid("spec.selector", selector, "field is immutable"))
    return problems


def _kind(obj: JsonDict) -> str:
    return str(obj.get("kind") or "deployment").lower()


def endpoints_errors(new: JsonDict, old: JsonDict | None) -> list[FieldError]:
    """ValidateEndpoints: every address has an IP, every port a number in 1-65535."""
    problems: list[FieldError] = []
    for index, subset in enumerate(new.get("subsets") or []):
        at = f"subsets[{index}]"
        for field in ("addresses", "notReadyAddresses"):
            for position, address in enumerate(subset.get(field) or []):
                if not address.get("ip"):
                    problems.append(required(f"{at}.{field}[{position}].ip"))
        for position, port in enumerate(subset.get("ports") or []):
            number = port.get("port")
            if not isinstance(number, int) or not 1 <= number <= 65535:
                why = "must be between 1 and 65535, inclusive"
                problems.append(invalid(f"{at}.ports[{position}].port", number, why))
    return problems


# --- the scale subresource -------------------------------------------------------------------


def scale_of(obj: JsonDict) -> JsonDict:
    """The autoscaling/v1 Scale of a Deployment or ReplicaSet, as kube-apiserver answers it."""
    metadata = obj["metadata"]
    selector = (obj.get("spec") or {}).get("selector") or {}
    return {
        "apiVersion": SCALE_API_VERSION,
        "kind": "Scale",
        "metadata": {
            key: metadata[key]
            for key in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if key in metadata
        },
        "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 1)},
        "status": {
            "replicas": (obj.get("status") or {}).get("replicas", 0),
            "selector": ",".join(
                f"{key}={value}"
                for key, value in sorted((selector.get("matchLabels") or {}).items())
            ),
        },
    }


def replicas_patch(scale: Any) -> JsonDict:
    """The merge patch a written Scale makes on its object: its replicas (and, if the Scale
    carries one, its resourceVersion as a precondition)."""
    if not isinstance(scale, dict):
        raise ValueError("the Scale must be an object")
    replicas = (scale.get("spec") or {}).get("replicas")
    patch: JsonDict = {"spec": {"replicas": replicas}}
    version = (scale.get("metadata") or {}).get("resourceVersion")
    if version:
        patch["metadata"] = {"resourceVersion": version}
    return patch


def scale(
    store: Store,
    rt: ResourceType,
    *,
    version: str,
    namespace: str | None,
    name: str,
    change: Callable[[JsonDict], Any] | None,
    options: WriteOptions,
) -> JsonDict:
    """GET (``change`` None), PATCH or PUT of ``<plural>/<name>/scale``: the Scale after the
    change, whose replicas are written to the object's spec (a stale resourceVersion: 409)."""
    current = store.get(rt, version, namespace, name)
    if change is None:
        return scale_of(current)
    wanted = change(scale_of(current))
    result = store.patch(
        rt, version, namespace, name, replicas_patch(wanted), kind=PatchType.MERGE, options=options
    )
    return scale_of(result.object)
