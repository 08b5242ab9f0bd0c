"""A game day across its runs: pass rate, time to recover, and every slot's fate.

The slots come from the runs' ``gameday.json`` (``slots``: the records each run added: its own,
and the missed slots it found). A slot recorded twice (two runners fired for it: one ran, one
found it already running) is shown twice: that is the history, not noise.

Pass rate counts the runs that ran experiments (outcome pass, fail, rollback-incomplete or
aborted); a skipped, paused or invalid run tested nothing and counts in neither direction, but
is shown. A run's time to recover is its slowest experiment's (``model``'s definition).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from chaosmesh_py.report.runs import GameDayRun, SlotRecord

RAN = ("pass", "fail", "rollback-incomplete", "aborted")


@dataclass(frozen=True)
class RunPoint:
    label: str  # the slot id
    outcome: str
    pass_share: float | None  # share of its experiments that passed; None: none ran
    recovery_s: float | None


@dataclass(frozen=True)
class Trend:
    gameday: str
    points: tuple[RunPoint, ...]  # runs and slots that did not run, in slot order
    runs: int  # runs that ran experiments
    passed: int
    slot_outcomes: dict[str, int]  # outcome -> slots recorded with it
    slots: tuple[SlotRecord, ...]

    @property
    def pass_rate(self) -> float | None:
        return self.passed / self.runs if self.runs else None

    @property
    def recovery_s(self) -> tuple[float, ...]:
        return tuple(p.recovery_s for p in self.points if p.recovery_s is not None)


def trend(gameday: str, runs: Sequence[GameDayRun]) -> Trend:
    points: dict[str, RunPoint] = {}
    for run in runs:
        shares = [e.outcome == "pass" for e in run.experiments]
        recovered = [e.recovery_s for e in run.experiments if e.recovery_s is not None]
        points[_key(run.slot_id)] = RunPoint(
            label=run.slot_id,
            outcome=run.outcome,
            pass_share=sum(shares) / len(shares) if shares else None,
            recovery_s=max(recovered) if recovered else None,
        )
    slots = sorted({s for run in runs for s in run.slots}, key=lambda s: (s.slot_id, s.outcome))
    for slot in slots:
        key = _key(slot.slot_id)
        if slot.slot_id and key not in points and slot.outcome not in RAN:
            points[key] = RunPoint(slot.slot_id, slot.outcome, None, None)
    ran = [run for run in runs if run.outcome in RAN]
    return Trend(
        gameday=gameday,
        points=tuple(points[k] for k in sorted(points)),
        runs=len(ran),
        passed=sum(run.outcome == "pass" for run in ran),
        slot_outcomes=dict(Counter(s.outcome for s in slots)),
        slots=tuple(slots),
    )


def _key(slot_id: str) -> str:
    # "adhoc-20261208T093000Z" sorts with the scheduled slots by its time.
    return slot_id.removeprefix("adhoc-") + ("~" if slot_id.startswith("adhoc-") else "")
