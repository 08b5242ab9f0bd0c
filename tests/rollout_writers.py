"""Doubles of the two rollout controllers that write VirtualServices, writing the way they do.

Both talk to the API through the real ``kubernetes`` client over HTTP, with a field manager of
their own, as the controllers do (read from their source, 2026-12):

- Argo Rollouts' Istio traffic router (``rollout/trafficrouting/istio/istio.go``, ``SetWeight``)
  reads the VirtualService (from its informer), finds the routes the Rollout names **by name**,
  sets the weight of each destination whose subset (or host) is the canary's or the stable's,
  and writes the **whole object it read** back with ``Update`` (a PUT carrying the
  resourceVersion it read): every other route, ours included, and every annotation go back as
  read. A 409 fails the reconcile; the work queue retries it a few milliseconds later from a
  fresh read. ``ArgoLikeWriter`` does that every 100-200 ms, stepping the canary weight.
- Flagger's Istio router (``pkg/router/istio.go``) owns the VirtualService of a Canary:
  ``reconcileVirtualService`` builds the spec it wants (its hosts, gateways and one HTTP route
  to the primary and the canary) and, when the object differs in anything but weights and
  mirror, **replaces the whole spec and the annotations** (keeping only kubectl's
  last-applied-configuration and its own) with ``Update``; ``SetRoutes`` replaces
  ``spec.http`` with its weighted route and keeps the metadata. A 409 is an error for that
  control-loop tick, retried on the next. ``FlaggerLikeWriter`` does both.

Each double remembers what it wrote and when (``writes``: monotonic and wall-clock moments
around the request), and every 409 it met.
"""

from __future__ import annotations

import copy
import os
import random
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import kubernetes

GROUP, VERSION, PLURAL = "networking.istio.io", "v1", "virtualservices"
ARGO_MANAGER = "rollouts-controller"
FLAGGER_MANAGER = "flagger"
# Flagger keeps these two annotations through a rewrite, and drops every other.
KUBECTL_ANNOTATION = "kubectl.kubernetes.io/last-applied-configuration"
FLAGGER_CONFIG_ANNOTATION = "flagger.kubernetes.io/original-configuration"


@dataclass(frozen=True)
class Write:
    """One write that landed: when it was sent and answered, and what it set."""

    sent: float  # time.monotonic()
    answered: float
    sent_at: datetime  # wall clock, UTC
    answered_at: datetime
    resource_version: str
    weights: dict[str, int]


def _client(url: str) -> kubernetes.client.CustomObjectsApi:
    """A client of its own for the API at ``url``, with the token and CA the tests give the
    run in the environment (the local mesh's API wants both)."""
    configuration = kubernetes.client.Configuration()
    configuration.host = url
    if os.environ.get("KUBERNETES_HOST") == url:
        if os.environ.get("KUBERNETES_CA_CERT_FILE"):
            configuration.ssl_ca_cert = os.environ["KUBERNETES_CA_CERT_FILE"]
        if os.environ.get("KUBERNETES_API_KEY"):
            configuration.api_key["BearerToken"] = os.environ["KUBERNETES_API_KEY"]
            configuration.api_key_prefix["BearerToken"] = "Bearer"
    return kubernetes.client.CustomObjectsApi(kubernetes.client.ApiClient(configuration))


@dataclass
class _Writer:
    url: str
    namespace: str
    name: str
    writes: list[Write] = field(default_factory=list)
    conflicts: int = 0
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._api = _client(self.url)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def get(self) -> dict[str, Any]:
        return self._api.get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, self.name
        )

    def _update(self, body: dict[str, Any], manager: str, weights: dict[str, int]) -> bool:
        """PUT the whole object with the resourceVersion it carries; False on a 409."""
        sent, sent_at = time.monotonic(), datetime.now(UTC)
        try:
            written = self._api.replace_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, self.name, body, field_manager=manager
            )
        except kubernetes.client.ApiException as error:
            if error.status == 409:
                self.conflicts += 1
                return False
            self.errors.append(f"{error.status}: {error.reason}")
            return False
        self.writes.append(
            Write(
                sent,
                time.monotonic(),
                sent_at,
                datetime.now(UTC),
                written["metadata"]["resourceVersion"],
                weights,
            )
        )
        return True

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> _Writer:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _loop(self) -> None:
        raise NotImplementedError


@dataclass
class ArgoLikeWriter(_Writer):
    """Sets the canary weight of the named routes every 100-200 ms, as Argo's SetWeight does."""

    routes: tuple[str, ...] = ("everyone-to-v1",)
    stable_subset: str = "v1"
    canary_subset: str = "v3"
    interval_s: tuple[float, float] = (0.1, 0.2)
    step: int = 10
    seed: int = 0

    def set_weight(self, canary_weight: int) -> bool:
        """One SetWeight: read, set the weights of the named routes, Update what was read.
        A 409 is retried from a fresh read, as the work queue requeues the rollout."""
        for _ in range(20):
            current = self.get()
            wanted = copy.deepcopy(current)
            changed = False
            for route in wanted["spec"].get("http") or []:
                if route.get("name") not in self.routes:
                    continue
                for destination in route.get("route") or []:
                    subset = destination.get("destination", {}).get("subset")
                    if subset == self.canary_subset:
                        weight = canary_weight
                    elif subset == self.stable_subset:
                        weight = 100 - canary_weight
                    else:
                        continue
                    if destination.get("weight") != weight:
                        destination["weight"] = weight
                        changed = True
            if not changed:
                return True
            weights = {self.stable_subset: 100 - canary_weight, self.canary_subset: canary_weight}
            if self._update(wanted, ARGO_MANAGER, weights):
                return True
            time.sleep(0.005)  # the work queue's first backoff
        return False

    def weights_in(self, resource: dict[str, Any]) -> dict[str, dict[str, int]]:
        """The weights each named route holds in ``resource``: route -> subset -> weight."""
        return {
            route["name"]: {
                d["destination"].get("subset"): d.get("weight") for d in route.get("route") or []
            }
            for route in resource["spec"].get("http") or []
            if route.get("name") in self.routes
        }

    @property
    def last_weights(self) -> dict[str, int] | None:
        return self.writes[-1].weights if self.writes else None

    def _loop(self) -> None:
        rng = random.Random(self.seed)
        canary, direction = 0, 1
        while not self._stop.wait(rng.uniform(*self.interval_s)):
            if not 0 <= canary + direction * self.step <= 100:
                direction = -direction
            canary += direction * self.step
            self.set_weight(canary)


@dataclass
class FlaggerLikeWriter(_Writer):
    """Owns the VirtualService of a Canary: rewrites its whole spec and annotations when
    anything but weights differs from what it generates, then sets its weights."""

    primary_host: str = "reviews-primary"
    canary_host: str = "reviews-canary"
    hosts: tuple[str, ...] = ("reviews",)
    interval_s: float = 0.5
    canary_weight: int = 0
    rewrites: list[Write] = field(default_factory=list)

    def desired_spec(self, primary: int, canary: int) -> dict[str, Any]:
        return {
            "hosts": list(self.hosts),
            "gateways": ["mesh"],
            "http": [
                {
                    "route": [
                        {"destination": {"host": self.primary_host}, "weight": primary},
                        {"destination": {"host": self.canary_host}, "weight": canary},
                    ]
                }
            ],
        }

    def reconcile(self) -> bool:
        """One reconcileVirtualService: rewrite spec and annotations when they drifted.
        True when it rewrote the object."""
        current = self.get()
        spec = current.get("spec") or {}
        wanted = self.desired_spec(100 - self.canary_weight, self.canary_weight)
        annotations = current["metadata"].get("annotations") or {}
        kept = {k: v for k, v in annotations.items() if k == KUBECTL_ANNOTATION}
        if _without_weights(spec) == _without_weights(wanted) and annotations == kept:
            return False
        clone = copy.deepcopy(current)
        clone["spec"] = wanted
        clone["metadata"]["annotations"] = kept
        weights = {"primary": 100 - self.canary_weight, "canary": self.canary_weight}
        if not self._update(clone, FLAGGER_MANAGER, weights):
            return False
        self.rewrites.append(self.writes[-1])
        return True

    def set_routes(self, canary_weight: int) -> bool:
        """One SetRoutes: ``spec.http`` becomes the weighted route; metadata kept as read."""
        current = self.get()
        clone = copy.deepcopy(current)
        clone["spec"]["http"] = self.desired_spec(100 - canary_weight, canary_weight)["http"]
        weights = {"primary": 100 - canary_weight, "canary": canary_weight}
        if self._update(clone, FLAGGER_MANAGER, weights):
            self.canary_weight = canary_weight
            return True
        return False

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.reconcile()


def _without_weights(spec: dict[str, Any]) -> dict[str, Any]:
    """Flagger compares specs ignoring destination weights and mirror settings."""
    stripped = copy.deepcopy(spec)
    for route in stripped.get("http") or []:
        route.pop("mirror", None)
        route.pop("mirrorPercentage", None)
        for destination in route.get("route") or []:
            destination.pop("weight", None)
    return stripped
