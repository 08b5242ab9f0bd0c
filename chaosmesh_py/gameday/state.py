"""A game day's state in the cluster: the pause switch and the slot history.

One ConfigMap ``chaosmesh-gameday-<name>`` in the game day's namespace, so every runner (a
CronJob's pod, a laptop) sees the same state, and it outlives any of them::

    data:
      pause.json   {"by": ..., "reason": ..., "at": ...}     present while paused
      slots.json   [{"slot", "slot_id", "outcome", "runner", "recorded", "reason"}, ...]

The history keeps the last ``MAX_RECORDS`` records (a ConfigMap holds at most 1 MiB; results
belong on a volume). Every write is a merge patch carrying the resourceVersion it was computed
from: when two runners write at once, the API server refuses the later one (409) and it re-reads
and recomputes, so no record is lost.

Slot outcomes: a run's (``pass``, ``fail``, ``aborted``, ``paused``, ``rollback-incomplete``),
``running`` while it runs, ``skipped`` (a blackout, the pause switch, a preflight check),
``missed`` (no runner came, recorded by the next one), ``already-running`` / ``already-run``
(a second start for the slot: a CronJob creates its Job "about once"), ``interrupted`` (its
runner stopped without an outcome: killed).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from chaosmesh_py.errors import ChaosMeshError, ConflictPersisted, NotFound, Unavailable
from chaosmesh_py.kube import CONFIG_MAP, Kube, ResourceRef

MAX_RECORDS = 200
PAUSE_KEY = "pause.json"
SLOTS_KEY = "slots.json"
RUNNING = "running"


@dataclass(frozen=True)
class SlotRecord:
    slot: str | None  # ISO 8601 with the schedule's offset; None for a run outside any slot
    slot_id: str
    outcome: str
    runner: str
    recorded: str  # ISO 8601, UTC
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, value: Any) -> SlotRecord | None:
        if not isinstance(value, dict):
            return None
        try:
            return cls(
                slot=value.get("slot"),
                slot_id=str(value["slot_id"]),
                outcome=str(value["outcome"]),
                runner=str(value["runner"]),
                recorded=str(value["recorded"]),
                reason=str(value.get("reason") or ""),
            )
        except KeyError:
            return None


@dataclass(frozen=True)
class Pause:
    by: str
    reason: str
    at: str

    def to_json(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class State:
    pause: Pause | None
    slots: tuple[SlotRecord, ...]

    def for_slot(self, slot_id: str) -> list[SlotRecord]:
        return [record for record in self.slots if record.slot_id == slot_id]

    def last_slot(self) -> datetime | None:
        """The latest scheduled slot any record names (runs outside a slot are not slots)."""
        times = []
        for record in self.slots:
            try:
                times.append(datetime.fromisoformat(record.slot or ""))
            except ValueError:
                continue  # no slot (a run by hand), or edited by hand into nonsense
        return max(times, default=None)


def state_name(gameday: str) -> str:
    return f"chaosmesh-gameday-{gameday}"


# What makes the ConfigMap ours: written when we create it, checked before every read and write.
OWNER_ANNOTATION = "chaosmesh.io/gameday"


class ForeignState(ChaosMeshError):
    """An object of the name of a game day's state or Lease exists but was not created as
    this game day's: it is someone else's, and is neither read as ours nor written."""


def owned_by(gameday: str, obj: dict[str, Any], ref: ResourceRef) -> dict[str, Any]:
    """``obj`` when it carries the game day's owner annotation, else ForeignState."""
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    if annotations.get(OWNER_ANNOTATION) != gameday:
        raise ForeignState(
            f"{ref} exists but is not game day {gameday!r}'s (no "
            f"annotation {OWNER_ANNOTATION}: {gameday}); it is left as it is: rename the game "
            f"day, or move that {ref.kind.kind} out of the way"
        )
    return obj


class GameDayState:
    """Reads and writes one game day's ConfigMap."""

    def __init__(self, kube: Kube, namespace: str, gameday: str) -> None:
        self.kube = kube
        self.gameday = gameday
        self.ref = ResourceRef(CONFIG_MAP, namespace, state_name(gameday))

    def read(self) -> State:
        try:
            return _parse(owned_by(self.gameday, self.kube.get(self.ref), self.ref))
        except NotFound:
            return State(None, ())

    def record(self, *records: SlotRecord) -> State:
        """Add records, replacing any of the same slot id and runner (a run's ``running``
        becomes its outcome); the oldest go beyond ``MAX_RECORDS``."""

        def add(state: State) -> dict[str, Any]:
            replaced = {(r.slot_id, r.runner) for r in records}
            kept = [r for r in state.slots if (r.slot_id, r.runner) not in replaced]
            slots = [*kept, *records][-MAX_RECORDS:]
            return {SLOTS_KEY: json.dumps([r.to_json() for r in slots])}

        return self._change(add)

    def set_pause(self, pause: Pause | None) -> State:
        value = None if pause is None else json.dumps(pause.to_json())
        return self._change(lambda _: {PAUSE_KEY: value})

    def _change(self, plan: Callable[[State], dict[str, Any]]) -> State:
        """Apply ``plan``'s data keys (None removes one) to the ConfigMap as last read, with
        its resourceVersion as the precondition; re-read and re-plan after a conflict, and
        after a lost answer (429, 5xx, a dropped connection: the plan is idempotent, so a
        write that landed unseen is only written again)."""
        transient = 0
        for _ in range(self.kube.retry.max_conflicts + self.kube.retry.max_transient):
            try:
                return self._change_once(plan)
            except ConflictPersisted:
                continue
            except Unavailable as error:
                transient += 1
                if transient > self.kube.retry.max_transient:
                    raise
                time.sleep(self.kube.backoff_s(transient, error.retry_after_s))
        raise ConflictPersisted(
            f"{self.ref} changed under us on {self.kube.retry.max_conflicts} attempts; try again",
            409,
        )

    def _change_once(self, plan: Callable[[State], dict[str, Any]]) -> State:
        try:
            current = self.kube.get(self.ref)
        except NotFound:
            data = {k: v for k, v in plan(State(None, ())).items() if v is not None}
            body = {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": self.ref.name,
                    "namespace": self.ref.namespace,
                    "labels": {"app.kubernetes.io/managed-by": "chaosmesh"},
                    "annotations": {OWNER_ANNOTATION: self.gameday},
                },
                "data": data,
            }
            return _parse(self.kube.create(self.ref, body))  # 409: another runner was first
        owned_by(self.gameday, current, self.ref)
        patch = {
            "metadata": {"resourceVersion": current["metadata"]["resourceVersion"]},
            "data": plan(_parse(current)),
        }
        return _parse(self.kube.patch(self.ref, patch))


def _parse(config_map: dict[str, Any]) -> State:
    """Whatever is unreadable in the ConfigMap (edited by hand) is read as absent."""
    data = config_map.get("data") or {}
    pause = None
    try:
        raw_pause = json.loads(data[PAUSE_KEY]) if PAUSE_KEY in data else None
    except ValueError:
        raw_pause = {"reason": "(unreadable pause.json: paused all the same)"}
    if raw_pause is not None:
        values = raw_pause if isinstance(raw_pause, dict) else {}
        pause = Pause(
            str(values.get("by") or "unknown"),
            str(values.get("reason") or ""),
            str(values.get("at") or ""),
        )
    try:
        raw_slots = json.loads(data.get(SLOTS_KEY) or "[]")
    except ValueError:
        raw_slots = []
    slots = tuple(
        record
        for value in (raw_slots if isinstance(raw_slots, list) else [])
        if (record := SlotRecord.from_json(value)) is not None
    )
    return State(pause, slots)
