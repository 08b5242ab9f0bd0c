"""Kubernetes' shapes of what the local deployment controller writes: pod statuses as a kubelet
reports them, owner references, conditions, the pod-template hash (``workloads``)."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from typing import Any

Json = dict[str, Any]
# apimachinery's rand.String alphabet: no vowels, no look-alikes.
ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
NODE = "local-mesh"
POD_IP = "127.0.0.1"
NO_APP = "LocalMeshHasNoSuchApp"


def pod_template_hash(template: Json) -> str:
    """A stable short hash of a pod template, spelt as Kubernetes spells its hashes."""
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).digest()
    number = int.from_bytes(digest[:8], "big")
    letters = []
    for _ in range(10):
        number, index = divmod(number, len(ALPHABET))
        letters.append(ALPHABET[index])
    return "".join(letters)


def timestamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def uid(obj: Json) -> str:
    return str(obj["metadata"]["uid"])


def owner_reference(obj: Json) -> Json:
    return {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "name": obj["metadata"]["name"],
        "uid": uid(obj),
        "controller": True,
        "blockOwnerDeletion": True,
    }


def controller_uid(obj: Json, kind: str) -> str | None:
    for reference in obj["metadata"].get("ownerReferences") or []:
        if reference.get("kind") == kind and reference.get("controller"):
            return str(reference.get("uid"))
    return None


def controller_name(obj: Json, kind: str) -> str:
    for reference in obj["metadata"].get("ownerReferences") or []:
        if reference.get("kind") == kind and reference.get("controller"):
            return str(reference.get("name"))
    return str(obj["metadata"]["name"])


def is_ready(pod: Json) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def condition(old: Mapping[str, Json], kind: str, holds: bool, reason: str, message: str) -> Json:
    """A condition whose times change only when its status does, as controllers keep them."""
    status = "True" if holds else "False"
    previous = old.get(kind) or {}
    same = previous.get("status") == status
    now = timestamp()
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastUpdateTime": previous.get("lastUpdateTime", now) if same else now,
        "lastTransitionTime": previous.get("lastTransitionTime", now) if same else now,
    }


def pending_status(pod: Json, runnable: bool) -> Json:
    waiting = (
        {"reason": "ContainerCreating"}
        if runnable
        else {"reason": NO_APP, "message": "the local mesh has no app for this pod's labels"}
    )
    now = timestamp()
    return {
        "phase": "Pending",
        "conditions": [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
            {"type": "Initialized", "status": "True", "lastTransitionTime": now},
            {"type": "ContainersReady", "status": "False", "lastTransitionTime": now},
            {"type": "Ready", "status": "False", "lastTransitionTime": now},
        ],
        "hostIP": POD_IP,
        "containerStatuses": [
            {
                "name": container.get("name", "app"),
                "ready": False,
                "started": False,
                "restartCount": 0,
                "image": container.get("image", ""),
                "imageID": "",
                "state": {"waiting": waiting},
            }
            for container in _containers(pod)
        ],
    }


def _containers(pod: Json) -> list[Json]:
    return list((pod.get("spec") or {}).get("containers") or [{"name": "app"}])


def running_status(pod: Json) -> Json:
    now = timestamp()
    started = {"running": {"startedAt": now}}
    return {
        "phase": "Running",
        "conditions": [
            {"type": kind, "status": "True", "lastTransitionTime": now}
            for kind in ("PodScheduled", "Initialized", "ContainersReady", "Ready")
        ],
        "hostIP": POD_IP,
        "podIP": POD_IP,
        "podIPs": [{"ip": POD_IP}],
        "startTime": now,
        "containerStatuses": [
            {
                "name": container.get("name", "app"),
                "ready": True,
                "started": True,
                "restartCount": 0,
                "image": container.get("image", ""),
                "imageID": "",
                "state": started,
            }
            for container in _containers(pod)
        ],
    }
