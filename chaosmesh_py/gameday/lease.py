"""The game day's Lease: at most one runner at a time per game day, across machines and pods.

A ``coordination.k8s.io/v1`` Lease ``chaosmesh-gameday-<name>`` in the game day's namespace, the
object Kubernetes' own leader election uses. Acquiring is create-or-conditional-update: a create
when there is none; otherwise, when it is free (released, or not renewed for its
``leaseDurationSeconds``: its runner was killed), a merge patch carrying the resourceVersion just
read, which the API server refuses (409) if another runner wrote first. Of two runners racing
for one slot exactly one wins; the other is told who holds it and since when.

While a runner holds it, a thread renews it every third of its duration; a runner that cannot
renew for a whole duration has lost it (``lost`` is set: the runner stops). Released at the end
(holder cleared), so the next runner need not wait for the expiry.

Expiry is judged from ``renewTime`` on this machine's clock, as client-go's leader election
reads a record it has not seen change: runners whose clocks differ by more than a few seconds
should use a longer duration.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from chaosmesh_py.errors import ApiError, ChaosMeshError, ConflictPersisted, NotFound, Unavailable
from chaosmesh_py.gameday.state import OWNER_ANNOTATION, owned_by
from chaosmesh_py.kube import LEASE, Kube, ResourceRef

logger = logging.getLogger("chaosmesh")

DEFAULT_DURATION_S = 30


@dataclass(frozen=True)
class Holder:
    """Who holds a Lease, since when, and when it was last renewed."""

    identity: str
    acquired: str | None
    renewed: str | None
    duration_s: int

    def __str__(self) -> str:
        return (
            f"{self.identity} (since {self.acquired or 'unknown'}, renewed "
            f"{self.renewed or 'never'}, expires {self.duration_s} s after its last renewal)"
        )


class LeaseUnavailable(ChaosMeshError):
    """The API does not serve Leases, or the namespace does not exist: no runner can be
    sure it is alone, so none runs."""


def lease_name(gameday: str) -> str:
    return f"chaosmesh-gameday-{gameday}"


def micro_time(moment: datetime) -> str:
    """Kubernetes' MicroTime: RFC 3339 in UTC with microseconds."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_time(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


class Lease:
    """One runner's hold on a game day's Lease."""

    def __init__(
        self,
        kube: Kube,
        namespace: str,
        gameday: str,
        identity: str,
        duration_s: int = DEFAULT_DURATION_S,
    ) -> None:
        self.kube = kube
        self.gameday = gameday
        self.ref = ResourceRef(LEASE, namespace, lease_name(gameday))
        self.identity = identity
        self.duration_s = duration_s
        self.lost = threading.Event()
        self._resource_version = ""
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def acquire(self, now: datetime | None = None) -> Holder | None:
        """Take the Lease: None when this runner holds it now, else who does. A lost answer
        (429, 5xx, a dropped connection) is asked again: a create or an update of ours that
        landed unseen shows this runner as the holder, which it takes as its own."""
        transient = 0
        while True:
            try:
                return self._acquire(now)
            except Unavailable as error:
                transient += 1
                if transient > self.kube.retry.max_transient:
                    raise
                time.sleep(self.kube.backoff_s(transient, error.retry_after_s))

    def _acquire(self, now: datetime | None) -> Holder | None:
        moment = now or datetime.now(UTC)
        spec = self._spec(moment, acquired=True)
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": self.ref.name,
                "namespace": self.ref.namespace,
                "annotations": {OWNER_ANNOTATION: self.gameday},
            },
            "spec": {**spec, "leaseTransitions": 0},
        }
        try:
            created = self.kube.create(self.ref, body)
        except ConflictPersisted:
            return self._take_over(moment)
        except NotFound as error:
            raise LeaseUnavailable(
                f"cannot create the Lease {self.ref}: the API does not serve "
                "coordination.k8s.io/v1 Leases, or namespace "
                f"{self.ref.namespace!r} does not exist ({error})"
            ) from None
        self._resource_version = created["metadata"]["resourceVersion"]
        return None

    def _take_over(self, moment: datetime) -> Holder | None:
        current = owned_by(self.gameday, self.kube.get(self.ref), self.ref)
        spec = current.get("spec") or {}
        holder = holder_of(spec)
        if holder is not None and holder.identity != self.identity and not _expired(holder, moment):
            return holder
        patch = {
            "metadata": {"resourceVersion": current["metadata"]["resourceVersion"]},
            "spec": {
                **self._spec(moment, acquired=True),
                "leaseTransitions": int(spec.get("leaseTransitions") or 0) + 1,
            },
        }
        try:
            updated = self.kube.patch(self.ref, patch)
        except ConflictPersisted:
            # Another runner wrote between our read and our write: it won.
            current = self.kube.get(self.ref)
            return holder_of(current.get("spec") or {}) or Holder("(unknown)", None, None, 0)
        self._resource_version = updated["metadata"]["resourceVersion"]
        return None

    def _spec(self, moment: datetime, acquired: bool) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": self.duration_s,
            "renewTime": micro_time(moment),
        }
        if acquired:
            spec["acquireTime"] = micro_time(moment)
        return spec

    def renew(self, now: datetime | None = None) -> bool:
        """Renew once; False when another runner holds it now. Someone else's write to the
        Lease (a label, an annotation) costs a re-read; ConflictPersisted when they keep on."""
        moment = now or datetime.now(UTC)
        for _ in range(self.kube.retry.max_conflicts):
            patch = {
                "metadata": {"resourceVersion": self._resource_version},
                "spec": {"renewTime": micro_time(moment)},
            }
            try:
                updated = self.kube.patch(self.ref, patch)
            except ConflictPersisted:
                current = self.kube.get(self.ref)
                holder = holder_of(current.get("spec") or {})
                if holder is None or holder.identity != self.identity:
                    return False
                self._resource_version = current["metadata"]["resourceVersion"]
                continue
            self._resource_version = updated["metadata"]["resourceVersion"]
            return True
        raise ConflictPersisted(f"{self.ref} kept changing under us: not renewed", 409)

    def keep_renewed(self) -> None:
        """Renew every third of the duration in a daemon thread until ``release``; set
        ``lost`` when another runner took it, or no renewal went through for a duration."""

        def renew_loop() -> None:
            last = datetime.now(UTC)
            while not self._stop.wait(self.duration_s / 3):
                try:
                    if not self.renew():
                        logger.error(f"chaosmesh: the Lease {self.ref} was taken by another runner")
                        self.lost.set()
                        return
                    last = datetime.now(UTC)
                except ChaosMeshError as error:
                    if datetime.now(UTC) - last >= timedelta(seconds=self.duration_s):
                        logger.error(f"chaosmesh: the Lease {self.ref} expired unrenewed: {error}")
                        self.lost.set()
                        return

        self._renewer = threading.Thread(target=renew_loop, name="chaosmesh-lease", daemon=True)
        self._renewer.start()

    def release(self) -> None:
        """Stop renewing and clear the holder, if it is still this runner; never raises."""
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=10)
        if self.lost.is_set():
            return
        patch = {
            "metadata": {"resourceVersion": self._resource_version},
            "spec": {"holderIdentity": None, "leaseDurationSeconds": 1},
        }
        try:
            self.kube.patch(self.ref, patch)
        except ApiError as error:  # it expires by itself
            logger.warning(f"chaosmesh: the Lease {self.ref} was not released: {error}")


def holder_of(spec: dict[str, Any]) -> Holder | None:
    """Who a Lease's spec says holds it; None when nobody does."""
    identity = spec.get("holderIdentity")
    if not identity:
        return None
    return Holder(
        str(identity),
        spec.get("acquireTime"),
        spec.get("renewTime"),
        int(spec.get("leaseDurationSeconds") or DEFAULT_DURATION_S),
    )


def current_holder(kube: Kube, namespace: str, gameday: str) -> tuple[Holder, bool] | None:
    """Who holds the game day's Lease and whether that hold has expired (a runner killed while
    running leaves one); None when nobody does. Read only."""
    try:
        found = kube.get(ResourceRef(LEASE, namespace, lease_name(gameday)))
    except NotFound:
        return None
    holder = holder_of(found.get("spec") or {})
    if holder is None:
        return None
    return holder, _expired(holder, datetime.now(UTC))


def _expired(holder: Holder, moment: datetime) -> bool:
    renewed = _parse_time(holder.renewed) or _parse_time(holder.acquired)
    if renewed is None:
        return True
    return moment >= renewed + timedelta(seconds=holder.duration_s)
