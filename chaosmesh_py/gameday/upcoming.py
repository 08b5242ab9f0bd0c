"""What ``chaosmesh gameday validate`` shows of a game day: a summary of the file, then its next
runs as the cluster will make them: each slot in the schedule's zone and in UTC, when it starts
after its jitter, the ones a blackout skips with the reason, and what a clock change does (a slot
in a spring-forward gap gets no run; one in a fall-back repeat gets two)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from chaosmesh_py.gameday import schedule as cron
from chaosmesh_py.gameday.loader import WEEKDAYS
from chaosmesh_py.gameday.suite import Blackout, GameDay, Schedule, format_duration

__all__ = ["NoRun", "Run", "describe", "format_runs", "upcoming"]


@dataclass(frozen=True)
class Run:
    """One fire time, and what becomes of it."""

    slot: datetime  # in the schedule's zone
    jitter_s: float
    blackout: Blackout | None
    repeated: bool  # the same wall clock as the slot before: the clocks went back between them

    @property
    def start(self) -> datetime:
        return self.slot + timedelta(seconds=self.jitter_s)


@dataclass(frozen=True)
class NoRun:
    """A time the cron names that the zone skips (clocks go forward): no Job starts."""

    wall: datetime  # naive: this wall-clock time does not exist in the zone
    timezone: str


def upcoming(gameday: GameDay, after: datetime, count: int) -> list[Run | NoRun]:
    """The next ``count`` fire times after ``after``, with the times a clock change skips
    among them."""
    schedule = gameday.schedule
    if schedule is None or count <= 0:
        return []
    slots = cron.fire_times(schedule, after, count)
    runs: list[Run | NoRun] = []
    for index, slot in enumerate(slots):
        previous = slots[index - 1] if index else None
        runs.append(
            Run(
                slot=slot,
                jitter_s=cron.jitter_for(gameday.name, slot, schedule.jitter_s),
                blackout=cron.blackout_at(gameday.blackouts, schedule.timezone, slot),
                repeated=previous is not None
                and previous.replace(tzinfo=None) == slot.replace(tzinfo=None),
            )
        )
    if slots:
        zone = ZoneInfo(schedule.timezone)
        for wall in cron.skipped_by_clock_change(schedule, after, slots[-1]):
            runs.append(NoRun(wall=wall, timezone=schedule.timezone))
        runs.sort(key=lambda run: _instant(run, zone))
    return runs


def _instant(run: Run | NoRun, zone: ZoneInfo) -> datetime:
    return run.slot if isinstance(run, Run) else run.wall.replace(tzinfo=zone)


def describe(gameday: GameDay) -> list[str]:
    """The file in a few lines: what runs, when, and what guards it (no URL: one may hold a
    secret)."""
    pauses = sum(step.pause_after_s for step in gameday.experiments)
    lines = [
        f"game day {gameday.name} in namespace {gameday.namespace}: "
        f"{_count(len(gameday.experiments), 'experiment')}"
        + (f", {format_duration(pauses)} of pauses" if pauses else ""),
    ]
    lines.extend(
        f"  {index:02d} {step.path.name}" for index, step in enumerate(gameday.experiments, 1)
    )
    lines.append(_schedule_line(gameday.schedule))
    for blackout in gameday.blackouts:
        lines.append(f"blackout {blackout.reason!r}: {blackout_text(blackout)}")
    guards = [
        _count(len(gameday.preflight), "preflight check"),
        _count(len(gameday.abort), "abort condition"),
        _count(len(gameday.notifications), "notification target"),
        "Grafana annotations" if gameday.grafana else "no Grafana annotations",
    ]
    lines.append(", ".join(guards))
    return lines


def _schedule_line(schedule: Schedule | None) -> str:
    if schedule is None:
        return "no schedule: runs by hand only (chaosmesh gameday run FILE)"
    jitter = f", jitter up to {format_duration(schedule.jitter_s)}" if schedule.jitter_s else ""
    return (
        f"schedule {schedule.cron!r} in {schedule.timezone}{jitter}, "
        f"starting deadline {format_duration(schedule.starting_deadline_s)}"
    )


def blackout_text(blackout: Blackout) -> str:
    parts = []
    if blackout.weekdays:
        parts.append(",".join(WEEKDAYS[day] for day in sorted(blackout.weekdays)))
    if blackout.hours:
        start, end = blackout.hours
        wraps = " (to the next morning)" if end < start else ""
        parts.append(f"{start:%H:%M}-{end:%H:%M}{wraps}")
    if blackout.dates:
        parts.append(f"{blackout.dates[0]} to {blackout.dates[1]}")
    return " and ".join(parts)


_HEAD_WIDTH = len("Tue 2026-12-08 10:30 CEST  = 09:30 UTC")


def format_runs(runs: Sequence[Run | NoRun]) -> list[str]:
    """One line per run: the slot in its zone, in UTC, then its start or why there is none."""
    lines = []
    for run in runs:
        if isinstance(run, NoRun):
            lines.append(
                f"{run.wall:%a %Y-%m-%d %H:%M}".ljust(_HEAD_WIDTH)
                + f"  no run: {run.timezone} skips this time (clocks go forward); "
                "Kubernetes starts no Job for it"
            )
            continue
        slot = run.slot
        utc = slot.astimezone(UTC)
        head = f"{slot:%a %Y-%m-%d %H:%M} {slot.tzname():<5} = {utc:%H:%M} UTC"
        if run.blackout is not None:
            tail = f"skipped: {run.blackout.reason}"
        elif run.jitter_s:
            tail = f"starts {run.start:%H:%M:%S} (jitter {format_duration(run.jitter_s)})"
        else:
            tail = "starts on time"
        if run.repeated:
            tail += "; again: the clocks went back, Kubernetes starts a second Job"
        lines.append(f"{head}  {tail}")
    return lines


def _count(number: int, thing: str) -> str:
    return f"{number} {thing}{'s' * (number != 1)}"
