"""Server-side printing: the `meta.k8s.io/v1` Table that `kubectl get` asks for.

kubectl sends `Accept: application/json;as=Table;v=v1;g=meta.k8s.io, ...` and prints the columns
the server chose. Built-in kinds get the columns of kube-apiserver's printers
(pkg/printers/internalversion: CronJob's SCHEDULE, TIMEZONE, SUSPEND, ...), custom kinds their
CRD's `additionalPrinterColumns` (simple JSONPaths such as `.spec.hosts`), both with NAME first.
Ages are worded as apimachinery's `duration.HumanDuration` ("5m", "3d4h").
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from chaosmesh_py.localmesh.apiserver.errors import JsonDict
from chaosmesh_py.localmesh.apiserver.resources import ResourceType

TABLE_MEDIA = "as=Table"


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    cell: Callable[[JsonDict], Any]
    priority: int = 0  # 1: shown with `-o wide` only


def human_duration(seconds: float) -> str:
    """apimachinery's duration.HumanDuration."""
    whole = int(seconds)
    if whole < -1:
        return "<invalid>"
    if whole < 120:
        return f"{max(whole, 0)}s"
    minutes, hours = whole // 60, whole // 3600
    if minutes < 10:
        return f"{minutes}m{whole % 60}s" if whole % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d{hours % 24}h" if hours % 24 else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    years, days = hours // 24 // 365, (hours // 24) % 365
    if hours < 24 * 365 * 8 and days:
        return f"{years}y{days}d"
    return f"{years}y"


def _since(timestamp: Any) -> str:
    if not isinstance(timestamp, str):
        return "<unknown>"
    try:
        then = datetime.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return "<unknown>"
    return human_duration((datetime.datetime.now(datetime.UTC) - then).total_seconds())


def _get(obj: Any, *path: str) -> Any:
    for step in path:
        obj = obj.get(step) if isinstance(obj, dict) else None
    return obj


def _or_none(value: Any) -> Any:
    return "<none>" if value in (None, "", []) else value


def _age(obj: JsonDict) -> str:
    return _since(_get(obj, "metadata", "creationTimestamp"))


def _pod(template: Any) -> JsonDict:
    found = _get(template, "spec")
    return found if isinstance(found, dict) else {}


def _containers(pod: JsonDict, field: str) -> str:
    return ",".join(str(c.get(field, "")) for c in pod.get("containers") or ()) or "<none>"


def _subjects(obj: JsonDict, kind: str) -> str:
    names = [
        f"{s.get('namespace', '')}/{s.get('name')}" if kind == "ServiceAccount" else s.get("name")
        for s in obj.get("subjects") or ()
        if s.get("kind") == kind
    ]
    return ", ".join(str(n) for n in names)


def _job_template_pod(obj: JsonDict) -> JsonDict:
    return _pod(_get(obj, "spec", "jobTemplate", "spec", "template"))


def _service_ports(obj: JsonDict) -> str:
    ports = _get(obj, "spec", "ports") or ()
    return ",".join(f"{p.get('port')}/{p.get('protocol', 'TCP')}" for p in ports) or "<none>"


def _selector(obj: JsonDict) -> str:
    selector = _get(obj, "spec", "selector") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(selector.items())) or "<none>"


def _pod_ready(obj: JsonDict) -> str:
    statuses = _get(obj, "status", "containerStatuses") or ()
    containers = _get(obj, "spec", "containers") or ()
    return f"{sum(1 for c in statuses if c.get('ready'))}/{len(containers)}"


def _pod_status(obj: JsonDict) -> str:
    """kubectl's STATUS: Terminating once deleted, a waiting container's reason, else the phase."""
    if _get(obj, "metadata", "deletionTimestamp"):
        return "Terminating"
    for container in _get(obj, "status", "containerStatuses") or ():
        reason = _get(container, "state", "waiting", "reason")
        if reason:
            return str(reason)
    return str(_get(obj, "status", "phase") or "Pending")


def _restarts(obj: JsonDict) -> int:
    return sum(
        int(c.get("restartCount") or 0) for c in _get(obj, "status", "containerStatuses") or ()
    )


def _endpoint_addresses(obj: JsonDict) -> str:
    """kubectl's ENDPOINTS: ip:port of the ready addresses, the first three and a count."""
    found = [
        f"{address.get('ip')}:{port.get('port')}"
        for subset in obj.get("subsets") or ()
        for address in subset.get("addresses") or ()
        for port in subset.get("ports") or ()
    ]
    if not found:
        return "<none>"
    shown = ",".join(found[:3])
    return shown + (f" + {len(found) - 3} more..." if len(found) > 3 else "")


def _label_selector(obj: JsonDict) -> str:
    labels = _get(obj, "spec", "selector", "matchLabels") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or "<none>"


_AGE = Column("Age", "string", _age)
# A pod template's containers and images (`-o wide`), for the kinds that carry one.
_TEMPLATE_CONTAINERS = (
    Column(
        "Containers", "string", lambda o: _containers(_pod(_get(o, "spec", "template")), "name"), 1
    ),
    Column(
        "Images", "string", lambda o: _containers(_pod(_get(o, "spec", "template")), "image"), 1
    ),
)
_BINDING = (
    Column(
        "Role", "string", lambda o: f"{_get(o, 'roleRef', 'kind')}/{_get(o, 'roleRef', 'name')}"
    ),
    _AGE,
    Column("Users", "string", lambda o: _subjects(o, "User"), 1),
    Column("Groups", "string", lambda o: _subjects(o, "Group"), 1),
    Column("ServiceAccounts", "string", lambda o: _subjects(o, "ServiceAccount"), 1),
)
_ROLE = (Column("Created At", "date", lambda o: _get(o, "metadata", "creationTimestamp")),)
BUILTIN_COLUMNS: dict[tuple[str, str], tuple[Column, ...]] = {
    ("", "Namespace"): (Column("Status", "string", lambda o: _get(o, "status", "phase")), _AGE),
    ("", "ConfigMap"): (
        Column(
            "Data", "integer", lambda o: len(o.get("data") or {}) + len(o.get("binaryData") or {})
        ),
        _AGE,
    ),
    ("", "ServiceAccount"): (
        Column("Secrets", "string", lambda o: len(o.get("secrets") or ())),
        _AGE,
    ),
    # kubectl's: the cluster IP shows "<none>", the double allocates none.
    ("", "Service"): (
        Column("Type", "string", lambda o: _get(o, "spec", "type") or "ClusterIP"),
        Column("Cluster-IP", "string", lambda o: _or_none(_get(o, "spec", "clusterIP"))),
        Column("External-IP", "string", lambda o: "<none>"),
        Column("Port(s)", "string", _service_ports),
        _AGE,
        Column("Selector", "string", _selector, 1),
    ),
    ("", "Pod"): (
        Column("Ready", "string", _pod_ready),
        Column("Status", "string", _pod_status),
        Column("Restarts", "string", _restarts),
        _AGE,
        Column("IP", "string", lambda o: _or_none(_get(o, "status", "podIP")), 1),
        Column("Node", "string", lambda o: _or_none(_get(o, "spec", "nodeName")), 1),
    ),
    ("", "Endpoints"): (Column("Endpoints", "string", _endpoint_addresses), _AGE),
    ("apps", "Deployment"): (
        Column(
            "Ready",
            "string",
            lambda o: (
                f"{_get(o, 'status', 'readyReplicas') or 0}/{_get(o, 'spec', 'replicas') or 0}"
            ),
        ),
        Column("Up-to-date", "integer", lambda o: _get(o, "status", "updatedReplicas") or 0),
        Column("Available", "integer", lambda o: _get(o, "status", "availableReplicas") or 0),
        _AGE,
        *_TEMPLATE_CONTAINERS,
        Column("Selector", "string", _label_selector, 1),
    ),
    ("apps", "ReplicaSet"): (
        Column("Desired", "integer", lambda o: _get(o, "spec", "replicas") or 0),
        Column("Current", "integer", lambda o: _get(o, "status", "replicas") or 0),
        Column("Ready", "integer", lambda o: _get(o, "status", "readyReplicas") or 0),
        _AGE,
    ),
    ("", "PersistentVolumeClaim"): (
        Column("Status", "string", lambda o: _get(o, "status", "phase") or "Pending"),
        Column("Volume", "string", lambda o: _get(o, "spec", "volumeName") or ""),
        Column("Capacity", "string", lambda o: _get(o, "status", "capacity", "storage") or ""),
        Column("Access Modes", "string", lambda o: ""),
        Column("StorageClass", "string", lambda o: _or_none(_get(o, "spec", "storageClassName"))),
        Column(
            "VolumeAttributesClass",
            "string",
            lambda o: _or_none(_get(o, "spec", "volumeAttributesClassName")),
        ),
        _AGE,
        Column("VolumeMode", "string", lambda o: _get(o, "spec", "volumeMode"), 1),
    ),
    ("coordination.k8s.io", "Lease"): (
        Column("Holder", "string", lambda o: _get(o, "spec", "holderIdentity") or ""),
        _AGE,
    ),
    ("batch", "CronJob"): (
        Column("Schedule", "string", lambda o: _get(o, "spec", "schedule")),
        Column("Timezone", "string", lambda o: _or_none(_get(o, "spec", "timeZone"))),
        Column("Suspend", "boolean", lambda o: "True" if _get(o, "spec", "suspend") else "False"),
        Column("Active", "integer", lambda o: len(_get(o, "status", "active") or ())),
        Column(
            "Last Schedule",
            "string",
            lambda o: _since(t) if (t := _get(o, "status", "lastScheduleTime")) else "<none>",
        ),
        _AGE,
        Column("Containers", "string", lambda o: _containers(_job_template_pod(o), "name"), 1),
        Column("Images", "string", lambda o: _containers(_job_template_pod(o), "image"), 1),
        Column("Selector", "string", lambda o: "<none>", 1),
    ),
    ("batch", "Job"): (
        # Nothing runs the double's Jobs: they stay as a real apiserver shows a new Job.
        Column("Status", "string", lambda o: "Running"),
        Column(
            "Completions",
            "string",
            lambda o: (
                f"{_get(o, 'status', 'succeeded') or 0}/{_get(o, 'spec', 'completions') or 1}"
            ),
        ),
        Column("Duration", "string", lambda o: ""),
        _AGE,
        *_TEMPLATE_CONTAINERS,
    ),
    ("rbac.authorization.k8s.io", "Role"): _ROLE,
    ("rbac.authorization.k8s.io", "ClusterRole"): _ROLE,
    ("rbac.authorization.k8s.io", "RoleBinding"): _BINDING,
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"): _BINDING,
}


def _json_path(path: str) -> Callable[[JsonDict], Any]:
    """A CRD printer column's JSONPath (`.spec.hosts`, `.status.conditions[0].type`)."""
    steps = [s for s in re.split(r"\.|\[(\d+)\]", path.strip().lstrip("{").rstrip("}")) if s]

    def cell(obj: JsonDict) -> Any:
        value: Any = obj
        for step in steps:
            if isinstance(value, list) and step.isdigit() and int(step) < len(value):
                value = value[int(step)]
            elif isinstance(value, dict):
                value = value.get(step)
            else:
                return None
        return value

    return cell


def crd_columns(columns: Sequence[JsonDict]) -> tuple[Column, ...]:
    found = [_crd_column(column) for column in columns]
    if not any(c.name == "Age" for c in found):
        found.append(_AGE)
    return tuple(found)


def _crd_column(column: JsonDict) -> Column:
    path = _json_path(str(column.get("jsonPath", "")))
    kind = str(column.get("type", "string"))

    def cell(obj: JsonDict) -> Any:
        value = path(obj)
        return _since(value) if kind == "date" else value

    return Column(str(column["name"]), kind, cell, int(column.get("priority", 0)))


def _cell(value: Any) -> Any:
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(",", ":"))
    return "<none>" if value is None else value


def columns_of(rt: ResourceType, version: str) -> tuple[Column, ...]:
    if rt.custom:
        return crd_columns(rt.printer_columns.get(version, ()))
    return BUILTIN_COLUMNS.get((rt.group, rt.kind), (_AGE,))


def table(
    columns: Sequence[Column], objects: Sequence[JsonDict], resource_version: str
) -> JsonDict:
    """The Table of `objects` (one object for a GET)."""
    definitions = [
        {"name": "Name", "type": "string", "format": "name", "description": "", "priority": 0}
    ] + [
        {"name": c.name, "type": c.type, "format": "", "description": "", "priority": c.priority}
        for c in columns
    ]
    rows = [
        {
            "cells": [obj["metadata"]["name"], *(_cell(c.cell(obj)) for c in columns)],
            "object": {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": obj["metadata"],
            },
        }
        for obj in objects
    ]
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": definitions,
        "rows": rows,
    }
