"""The local mesh's kube-controller-manager and kubelet: Deployments become pods that run.

On a cluster, the deployment controller keeps a ReplicaSet per pod template, the ReplicaSet
controller keeps ``replicas`` pods, the kubelet starts their containers and reports them Ready,
and the endpoints controller lists the ready pods of each Service. This module does the same
through the local API, so ``kubectl get pods``, ``kubectl delete pod``, ``kubectl scale`` and
chaostoolkit-kubernetes' pod actions and probes behave locally as there:

- a Deployment gets a ReplicaSet ``<deployment>-<pod-template-hash>`` (owned by it; a changed
  template gets a new one and the old one is scaled to 0), a ReplicaSet gets pods
  ``<replicaset>-<5 characters>`` (owned by it, labelled ``pod-template-hash``);
- a new pod is Pending (ContainerCreating) for ``start_delay_s`` (Kubernetes' is the image pull
  and the container start), then its app starts on its own port with its own sidecar, and the pod
  is Running and Ready;
- a deleted pod's app stops at once, graceful or not (its port closes: callers see connections
  refused or reset, as from a killed pod), and the ReplicaSet makes a replacement;
- Endpoints per Service (``addresses`` the ready pods, ``notReadyAddresses`` those starting,
  each with a ``targetRef`` to its pod), which the control loop turns into Envoy's clusters;
- Deployment and ReplicaSet status (replicas, ready, available, updated; Available and
  Progressing conditions) as chaostoolkit-kubernetes' deployment probes read them.

Only the apps the mesh has can run (``Apps``): a pod of another app stays Pending, waiting with
the reason ``LocalMeshHasNoSuchApp``. Every pod's address is 127.0.0.1, told apart by port: a
replica keeps the ports of its slot in the Deployment (replica 0's are the mesh's declared
ones, published in its info), so a replacement pod listens where the pod it replaces did.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from chaosmesh_py.localmesh.apiserver import ApiError, ApiServer, WatchEvent
from chaosmesh_py.localmesh.pod_status import (
    ALPHABET,
    NODE,
    POD_IP,
    condition,
    controller_name,
    controller_uid,
    is_ready,
    owner_reference,
    pending_status,
    pod_template_hash,
    running_status,
    uid,
)
from chaosmesh_py.localmesh.topology import Workload

log = logging.getLogger(__name__)

# The pause between a pod's creation and its app serving: on Kubernetes, the image pull and the
# container's start (seconds); short here, long enough to see the pod missing.
START_DELAY_S = 1.5
TEMPLATE_HASH = "pod-template-hash"
APPS_V1 = "apps/v1"
Json = dict[str, Any]


class Apps(Protocol):
    """What runs the pods' apps: the mesh's Bookinfo, httpbin and sleep."""

    def runs(self, labels: Mapping[str, str]) -> bool:
        """Is there an app for a pod with these labels?"""

    def serves(self, labels: Mapping[str, str]) -> bool:
        """Does that app listen (a server), or only call out (a client such as sleep)?"""

    def start(self, workload: Workload) -> None:
        """Serve on ``workload.port`` (returns once it listens)."""

    def stop(self, workload: Workload) -> None:
        """Stop serving: the port closes, calls in flight fail."""


@dataclass(frozen=True)
class Ports:
    """One replica slot's ports: its app, its sidecar, its pod address (0: none)."""

    app: int
    sidecar: int
    pod: int


@dataclass
class _Pod:
    """A pod this controller runs or is about to: its slot's ports from its creation on."""

    workload: Workload
    slot: int
    start_at: float
    runnable: bool
    running: bool = False


@dataclass
class _Slots:
    """A Deployment's replica slots: their ports, and which pod holds each."""

    ports: list[Ports] = field(default_factory=list)
    holders: dict[int, str] = field(default_factory=dict)


class DeploymentController:
    """Deployments -> ReplicaSets -> pods running apps -> Endpoints, through ``api`` (see the
    module). ``declared``: workloads whose ports are replica 0's of the Deployment of their
    name; ``ports``: where further replicas' ports come from."""

    def __init__(
        self,
        api: ApiServer,
        apps: Apps,
        ports: Iterator[int],
        *,
        declared: Sequence[Workload] = (),
        start_delay_s: float = START_DELAY_S,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self.api = api
        self.apps = apps
        self.start_delay_s = start_delay_s
        self._ports = ports
        self._on_change = on_change
        self._slots: dict[tuple[str, str], _Slots] = {}
        for workload in declared:
            self._slots[(workload.namespace, workload.name)] = _Slots(
                [Ports(workload.port, workload.sidecar_port, workload.pod_port)]
            )
        self._pods: dict[tuple[str, str], _Pod] = {}
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._unsubscribe: Callable[[], None] | None = None

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Act on every change from now on, in a thread of its own."""
        self._unsubscribe = self.api.subscribe(self._changed)
        self._thread = threading.Thread(target=self._loop, name="deployments", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop acting, and stop every app this controller started."""
        self._stopping.set()
        self._wake.set()
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with self._lock:
            for pod in self._pods.values():
                if pod.running:
                    self.apps.stop(pod.workload)
            self._pods.clear()

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """No round runs meanwhile (the mesh's reset, which then ``settle(adopt=True)``)."""
        with self._lock:
            yield

    def settle(self, timeout_s: float = 30.0, *, adopt: bool = False) -> None:
        """Reconcile now, starting new pods at once (no start delay), until every pod that can
        run is Ready: the mesh's start and reset. ``adopt``: a pod this controller runs whose
        object vanished (the API was reset) is re-created under its name, its app left
        running, where its ReplicaSet wants one more pod."""
        deadline = time.monotonic() + timeout_s
        while True:
            with self._lock:
                self.reconcile(immediately=True, adopt=adopt)
                waiting = [p.workload.pod for p in self._pods.values() if _waiting(p)]
            if not waiting:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"pods not ready after {timeout_s} s: {sorted(waiting)}")
            time.sleep(0.02)

    def _changed(self, event: WatchEvent) -> None:
        # Called under the store's lock: only wake the loop.
        if event.resource_type.kind in ("Deployment", "ReplicaSet", "Pod", "Service"):
            self._wake.set()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self._next_start_in())
            self._wake.clear()
            if self._stopping.is_set():
                return
            try:
                with self._lock:
                    self.reconcile()
            except Exception:  # the next change may fix it
                log.exception("the local deployment controller failed a round")

    def _next_start_in(self) -> float:
        with self._lock:
            starts = [p.start_at for p in self._pods.values() if _waiting(p)]
        if not starts:
            return 5.0
        return min(max(0.0, min(starts) - time.monotonic()), 5.0)

    # --- what runs ------------------------------------------------------------------------

    def on_ports(self, workload: Workload) -> str | None:
        """The pod running on ``workload``'s ports now (a declared workload: its replica 0)."""
        with self._lock:
            for record in self._pods.values():
                if record.running and record.workload.sidecar_port == workload.sidecar_port:
                    return record.workload.pod
        return None

    def workloads(self) -> tuple[Workload, ...]:
        """The pods whose apps run now, as the translator reads workloads."""
        with self._lock:
            return tuple(p.workload for p in self._pods.values() if p.running)

    # --- one round ------------------------------------------------------------------------

    def reconcile(self, *, immediately: bool = False, adopt: bool = False) -> None:
        """Bring the API's objects and the running apps one step closer to what the
        Deployments ask for; ``immediately``: start new pods without the delay; ``adopt``: see
        ``settle``."""
        deployments = self.api.list(APPS_V1, "Deployment")
        for deployment in deployments:
            self._deployment_replica_sets(deployment)
        replica_sets = self.api.list(APPS_V1, "ReplicaSet")
        live_deployments = {uid(d) for d in deployments}
        for replica_set in replica_sets:
            if controller_uid(replica_set, "Deployment") not in live_deployments:
                self._delete(APPS_V1, "ReplicaSet", replica_set)
        replica_sets = [
            r for r in replica_sets if controller_uid(r, "Deployment") in live_deployments
        ]
        pods = self.api.list("v1", "Pod")
        for replica_set in replica_sets:
            pods = self._replica_set_pods(replica_set, pods, adopt)
        live_sets = {uid(r): r for r in replica_sets}
        for pod in pods:
            owner = controller_uid(pod, "ReplicaSet")
            if owner is not None and owner not in live_sets:
                self._delete("v1", "Pod", pod)
        pods = [p for p in pods if controller_uid(p, "ReplicaSet") in live_sets]
        changed = self._run_pods(pods, live_sets, immediately)
        pods = self.api.list("v1", "Pod")
        self._write_endpoints(pods)
        for replica_set in replica_sets:
            self._replica_set_status(replica_set, pods)
        for deployment in deployments:
            self._deployment_status(deployment)
        if changed:
            self._on_change()

    def _deployment_replica_sets(self, deployment: Json) -> None:
        """The ReplicaSet of the current template at ``replicas``; the others at 0."""
        meta, spec = deployment["metadata"], deployment["spec"]
        template_hash = pod_template_hash(spec["template"])
        name = f"{meta['name']}-{template_hash}"
        namespace = meta["namespace"]
        owned = [
            r
            for r in self.api.list(APPS_V1, "ReplicaSet", namespace)
            if controller_uid(r, "Deployment") == uid(deployment)
        ]
        replicas = int(spec.get("replicas", 1))
        for replica_set in owned:
            wanted = replicas if replica_set["metadata"]["name"] == name else 0
            if replica_set["spec"].get("replicas") != wanted:
                self._patch(APPS_V1, "ReplicaSet", replica_set, {"spec": {"replicas": wanted}})
        if any(r["metadata"]["name"] == name for r in owned):
            return
        labels = {**(spec["template"].get("metadata") or {}).get("labels", {})}
        labels[TEMPLATE_HASH] = template_hash
        template = json.loads(json.dumps(spec["template"]))
        template.setdefault("metadata", {})["labels"] = labels
        selector = json.loads(json.dumps(spec["selector"]))
        selector.setdefault("matchLabels", {})[TEMPLATE_HASH] = template_hash
        self._create(
            {
                "apiVersion": APPS_V1,
                "kind": "ReplicaSet",
                "metadata": {
                    "name": name,
                    "namespace": namespace,
                    "labels": labels,
                    "ownerReferences": [owner_reference(deployment)],
                },
                "spec": {"replicas": replicas, "selector": selector, "template": template},
            }
        )

    def _replica_set_pods(self, replica_set: Json, pods: list[Json], adopt: bool) -> list[Json]:
        """Create or delete pods until ``replicas`` of them are owned; the pods now."""
        owned = [p for p in pods if controller_uid(p, "ReplicaSet") == uid(replica_set)]
        wanted = int(replica_set["spec"].get("replicas", 1))
        meta = replica_set["metadata"]
        template = replica_set["spec"]["template"]
        orphans = self._orphans(replica_set, pods) if adopt else []
        for index in range(wanted - len(owned)):
            random_id = "".join(random.choices(ALPHABET, k=5))
            name = orphans[index] if index < len(orphans) else f"{meta['name']}-{random_id}"
            labels = (template.get("metadata") or {}).get("labels") or {}
            created = self._create(
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {
                        "name": name,
                        "namespace": meta["namespace"],
                        "labels": labels,
                        "ownerReferences": [owner_reference(replica_set)],
                    },
                    "spec": {
                        **json.loads(json.dumps(template.get("spec") or {})),
                        "nodeName": NODE,
                    },
                }
            )
            if created is not None:
                pods = [*pods, created]
        # As the ReplicaSet controller: the not-ready first, then the newest (here: the highest
        # replica slot, so replica 0 keeps the ports the mesh's info publishes).
        extra = sorted(owned, key=lambda p: (is_ready(p), -self._slot_of(p)))
        for pod in extra[: max(0, len(owned) - wanted)]:
            self._delete("v1", "Pod", pod)
            pods = [p for p in pods if uid(p) != uid(pod)]
        return pods

    def _slot_of(self, pod: Json) -> int:
        record = self._pods.get((pod["metadata"]["namespace"], pod["metadata"]["name"]))
        return record.slot if record is not None else 1 << 30  # not started: newest of all

    def _orphans(self, replica_set: Json, pods: list[Json]) -> list[str]:
        """Names of the running pods of this ReplicaSet's template whose objects vanished."""
        meta = replica_set["metadata"]
        present = {(p["metadata"]["namespace"], p["metadata"]["name"]) for p in pods}
        template_hash = (meta.get("labels") or {}).get(TEMPLATE_HASH)
        return [
            record.workload.pod
            for key, record in sorted(self._pods.items(), key=lambda item: item[1].slot)
            if key not in present
            and record.running
            and key[0] == meta["namespace"]
            and record.workload.labels.get(TEMPLATE_HASH) == template_hash
            and record.workload.name == controller_name(replica_set, "Deployment")
        ]

    def _run_pods(self, pods: list[Json], replica_sets: Mapping[str, Json], now: bool) -> bool:
        """Stop the apps of pods gone, start those whose start time came; changed anything?"""
        changed = False
        present = {(p["metadata"]["namespace"], p["metadata"]["name"]): p for p in pods}
        for key in [k for k in self._pods if k not in present]:
            gone = self._pods.pop(key)
            if gone.running:
                self.apps.stop(gone.workload)
                changed = True
            self._slots_of(gone.workload).holders.pop(gone.slot, None)
        for key, pod in present.items():
            if key not in self._pods:
                owner = replica_sets[str(controller_uid(pod, "ReplicaSet"))]
                self._pods[key] = self._new_pod(pod, controller_name(owner, "Deployment"))
                self._pod_status(pod, pending_status(pod, self._pods[key].runnable))
            record = self._pods[key]
            if record.running and not is_ready(pod):  # adopted: its app runs on
                self._pod_status(pod, running_status(pod))
            if _waiting(record) and (now or time.monotonic() >= record.start_at):
                self.apps.start(record.workload)
                record.running = True
                self._pod_status(pod, running_status(pod))
                changed = True
        return changed

    def _new_pod(self, pod: Json, deployment: str) -> _Pod:
        """A pod's record, holding the first free slot of its Deployment (a new one if none)."""
        meta = pod["metadata"]
        labels = dict(meta.get("labels") or {})
        slots = self._slots.setdefault((meta["namespace"], deployment), _Slots())
        free = [i for i in range(len(slots.ports)) if i not in slots.holders]
        if free:
            slot = free[0]
        else:
            serves = self.apps.serves(labels)
            slots.ports.append(
                Ports(
                    next(self._ports) if serves else 0,
                    next(self._ports),
                    next(self._ports) if serves else 0,
                )
            )
            slot = len(slots.ports) - 1
        slots.holders[slot] = meta["name"]
        ports = slots.ports[slot]
        spec = pod.get("spec") or {}
        workload = Workload(
            name=deployment,
            namespace=meta["namespace"],
            labels=labels,
            port=ports.app,
            sidecar_port=ports.sidecar,
            pod_port=ports.pod,
            pod=meta["name"],
            # Kubernetes' admission names "default" when the pod names none.
            service_account=str(
                spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
            ),
        )
        start_at = time.monotonic() + self.start_delay_s
        return _Pod(workload, slot, start_at, runnable=self.apps.runs(labels))

    def _slots_of(self, workload: Workload) -> _Slots:
        return self._slots.setdefault((workload.namespace, workload.name), _Slots())

    # --- Endpoints and status -------------------------------------------------------------

    def _write_endpoints(self, pods: list[Json]) -> None:
        """One Endpoints per Service with a selector: its pods, ready or not, by port."""
        for service in self.api.list("v1", "Service"):
            selector = (service.get("spec") or {}).get("selector")
            if not selector:
                continue  # a Service without selector keeps hand-made Endpoints
            meta = service["metadata"]
            chosen = [
                p
                for p in pods
                if p["metadata"]["namespace"] == meta["namespace"]
                and all(
                    (p["metadata"].get("labels") or {}).get(k) == v for k, v in selector.items()
                )
                and not p["metadata"].get("deletionTimestamp")
            ]
            body = {
                "apiVersion": "v1",
                "kind": "Endpoints",
                "metadata": {
                    "name": meta["name"],
                    "namespace": meta["namespace"],
                    "labels": dict(meta.get("labels") or {}),
                },
                "subsets": self._subsets(chosen, service),
            }
            existing = self.api.get("v1", "Endpoints", meta["namespace"], meta["name"])
            try:
                if existing is None:
                    self.api.create(body)
                elif existing.get("subsets") != body["subsets"]:
                    self.api.patch("v1", "Endpoints", meta["namespace"], meta["name"], body)
            except ApiError as error:
                log.warning(f"could not write the Endpoints of {meta['name']}: {error}")

    def _subsets(self, pods: list[Json], service: Json) -> list[Json]:
        """Kubernetes' subsets: addresses grouped by their ports (here each pod has its own)."""
        by_port: dict[int, Json] = {}
        service_port = ((service["spec"].get("ports") or [{}])[0]).get("name") or ""
        for pod in sorted(pods, key=lambda p: p["metadata"]["name"]):
            record = self._pods.get((pod["metadata"]["namespace"], pod["metadata"]["name"]))
            port = record.workload.port if record is not None else 0
            if not port:
                continue  # not this controller's, or serves nothing: no port to list
            subset = by_port.setdefault(
                port,
                {"ports": [{"name": service_port, "port": port, "protocol": "TCP"}]},
            )
            field_name = "addresses" if is_ready(pod) else "notReadyAddresses"
            subset.setdefault(field_name, []).append(
                {
                    "ip": POD_IP,
                    "nodeName": NODE,
                    "targetRef": {
                        "kind": "Pod",
                        "name": pod["metadata"]["name"],
                        "namespace": pod["metadata"]["namespace"],
                        "uid": uid(pod),
                    },
                }
            )
        if not service_port:
            for subset in by_port.values():
                del subset["ports"][0]["name"]
        return [by_port[port] for port in sorted(by_port)]

    def _replica_set_status(self, replica_set: Json, pods: list[Json]) -> None:
        owned = [p for p in pods if controller_uid(p, "ReplicaSet") == uid(replica_set)]
        ready = sum(1 for p in owned if is_ready(p))
        status = {
            "replicas": len(owned),
            "fullyLabeledReplicas": len(owned),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "observedGeneration": replica_set["metadata"].get("generation", 1),
        }
        self._status(APPS_V1, "ReplicaSet", replica_set, status)

    def _deployment_status(self, deployment: Json) -> None:
        meta, spec = deployment["metadata"], deployment["spec"]
        current = f"{meta['name']}-{pod_template_hash(spec['template'])}"
        owned = [
            r
            for r in self.api.list(APPS_V1, "ReplicaSet", meta["namespace"])
            if controller_uid(r, "Deployment") == uid(deployment)
        ]
        counts = {
            key: sum(int((r.get("status") or {}).get(key) or 0) for r in owned)
            for key in ("replicas", "readyReplicas", "availableReplicas")
        }
        updated = sum(
            int((r.get("status") or {}).get("replicas") or 0)
            for r in owned
            if r["metadata"]["name"] == current
        )
        replicas = int(spec.get("replicas", 1))
        # RollingUpdate's default maxUnavailable is 25 %, rounded down: what "Available" means.
        minimum = replicas - (replicas * 25) // 100
        available = counts["availableReplicas"] >= minimum
        old_conditions = {
            c["type"]: c for c in (deployment.get("status") or {}).get("conditions") or []
        }
        conditions = [
            condition(
                old_conditions,
                "Available",
                available,
                "MinimumReplicasAvailable" if available else "MinimumReplicasUnavailable",
                "Deployment has minimum availability."
                if available
                else "Deployment does not have minimum availability.",
            ),
            condition(
                old_conditions,
                "Progressing",
                True,
                "NewReplicaSetAvailable",
                f'ReplicaSet "{current}" has successfully progressed.',
            ),
        ]
        status: Json = {
            "observedGeneration": meta.get("generation", 1),
            "replicas": counts["replicas"],
            "updatedReplicas": updated,
            "readyReplicas": counts["readyReplicas"],
            "availableReplicas": counts["availableReplicas"],
            "conditions": conditions,
        }
        unavailable = max(0, replicas - counts["availableReplicas"])
        if unavailable:
            status["unavailableReplicas"] = unavailable
        self._status(APPS_V1, "Deployment", deployment, status)

    # --- writes (a conflict or a vanished object waits for the next round) ----------------

    def _create(self, body: Json) -> Json | None:
        try:
            return self.api.create(body)
        except ApiError as error:
            log.warning(f"could not create {body['kind']} {body['metadata']['name']}: {error}")
            return None

    def _patch(self, api_version: str, kind: str, obj: Json, patch: Json) -> None:
        meta = obj["metadata"]
        try:
            self.api.patch(api_version, kind, meta["namespace"], meta["name"], patch)
        except ApiError as error:
            log.warning(f"could not patch {kind} {meta['name']}: {error}")

    def _status(self, api_version: str, kind: str, obj: Json, status: Json) -> None:
        if obj.get("status") == status:
            return
        meta = obj["metadata"]
        try:
            self.api.patch(
                api_version,
                kind,
                meta["namespace"],
                meta["name"],
                {"status": status},
                subresource="status",
            )
        except ApiError as error:
            log.warning(f"could not write the status of {kind} {meta['name']}: {error}")

    def _pod_status(self, pod: Json, status: Json) -> None:
        self._status("v1", "Pod", pod, status)

    def _delete(self, api_version: str, kind: str, obj: Json) -> None:
        meta = obj["metadata"]
        try:
            self.api.delete(api_version, kind, meta["namespace"], meta["name"])
        except ApiError as error:
            if error.status != 404:
                log.warning(f"could not delete {kind} {meta['name']}: {error}")


def _waiting(pod: _Pod) -> bool:
    """Created, not started yet, and startable."""
    return pod.runnable and not pod.running
