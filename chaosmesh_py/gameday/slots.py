"""Which slot a run belongs to, and what the history says about the slots around it.

A run started within a scheduled slot's starting deadline (a CronJob's
``startingDeadlineSeconds``) belongs to that slot; later, or without a schedule, it runs outside
any slot ("adhoc"). Slot ids are UTC (``20261208T093000Z``, ``adhoc-<now>``): one name for a slot
whatever the schedule's zone, and a directory name that sorts by time.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from chaosmesh_py.gameday import schedule as timing
from chaosmesh_py.gameday.state import MAX_RECORDS, RUNNING, SlotRecord, State
from chaosmesh_py.gameday.suite import GameDay


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds")


def slot_id(slot: datetime | None, now: datetime) -> str:
    def stamp(moment: datetime) -> str:
        return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")

    return stamp(slot) if slot is not None else f"adhoc-{stamp(now)}"


def current_slot(gameday: GameDay, now: datetime) -> datetime | None:
    """The slot a run started now belongs to: the latest fire time no later than the
    starting deadline ago, else None (a run by hand)."""
    if gameday.schedule is None:
        return None
    latest = timing.latest_slot(gameday.schedule, now)
    if latest is None or now - latest > timedelta(seconds=gameday.schedule.starting_deadline_s):
        return None
    return latest


def interrupted(state: State) -> list[SlotRecord]:
    """Runs recorded "running" whose runner is gone: asked by the runner that holds the Lease
    now, so no other runs."""
    return [
        replace(
            record,
            outcome="interrupted",
            reason="its runner stopped without recording an outcome (killed?); its Lease expired",
        )
        for record in state.slots
        if record.outcome == RUNNING
    ]


def missed(
    gameday: GameDay, state: State, now: datetime, current: str, runner: str
) -> list[SlotRecord]:
    """Scheduled slots after the last recorded one, up to now, that nobody recorded (the slot
    ``current`` aside): "missed", or "skipped" when a blackout covered the slot. A first run
    does not look back to the beginning of time."""
    last = state.last_slot()
    if gameday.schedule is None or last is None:
        return []
    recorded = {r.slot_id for r in state.slots}
    found = []
    for slot in timing.slots_between(gameday.schedule, last, now)[-MAX_RECORDS:]:
        key = slot_id(slot, now)
        if key == current or key in recorded:
            continue
        blackout = timing.blackout_at(gameday.blackouts, gameday.schedule.timezone, slot)
        if blackout is not None:  # it would have been skipped: not a run that went missing
            outcome, reason = "skipped", f"in a blackout: {blackout.reason} (no runner came)"
        else:
            outcome = "missed"
            reason = "no runner recorded this slot (not started, or started after its deadline)"
        found.append(SlotRecord(slot.isoformat(), key, outcome, runner, iso(now), reason))
    return found
