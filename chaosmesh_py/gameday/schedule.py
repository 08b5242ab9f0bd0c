"""When a game day fires: cron read exactly as a Kubernetes CronJob reads it.

The CronJob controller parses ``spec.schedule`` with robfig/cron v3's standard parser, prefixed
with ``TZ=<spec.timeZone>``, and asks the result's ``Next`` for each fire time. Fire times here
are computed the same way, so ``chaosmesh gameday validate`` prints what the cluster will do:

- the grammar is robfig/cron v3 ``parser.go`` (``ParseStandard``): five fields, names (``JAN``,
  ``MON``), ranges, steps (``N/step`` runs to the field's end), lists, ``*`` and ``?``, and the
  descriptors ``@yearly @annually @monthly @weekly @daily @midnight @hourly``;
- day of month and day of week combine as robfig's ``dayMatches``: both must match when either
  field starts with ``*`` or ``?`` (a step of 1 keeps that mark: ``*/1``), otherwise either may;
- ``_next_unix`` mirrors robfig/cron v3 ``spec.go`` ``SpecSchedule.Next`` step for step, with Go's
  ``time.Date`` zone resolution (``_wall_to_unix``), which decides what happens at DST changes: a
  slot inside a spring-forward gap does not fire that day (02:30 daily in Europe/Berlin skips the
  last Sunday of March), and a slot inside a fall-back repeat fires twice (01:30 daily in
  America/New_York fires at 01:30 EDT and again at 01:30 EST on the first Sunday of November).

What Kubernetes' CronJob validation rejects is rejected with its words: ``TZ=``/``CRON_TZ=`` in the
schedule (pkg/apis/batch/validation ``validateScheduleFormat``), a zone name outside IANA's
naming rules or ``Local`` (``validateTimeZone``). ``@every`` parses in Kubernetes but is not in
its documented syntax and counts from the CronJob's creation or last run, not from the clock, so
its fire times are not a calendar anyone can review: refused here, with the cron to write instead.

All datetimes in and out are timezone-aware. Fire times come out with a fixed offset, the
zone's at that instant and named as the zone names it (``CEST``): Python compares and subtracts
two datetimes sharing one ``ZoneInfo`` by their wall clocks, ignoring ``fold``, so the two 01:30s
of a fall-back night would compare equal and lie zero minutes apart.

tests/data/cron_reference.json holds robfig/cron v3.0.1's own answers (the version Kubernetes
vendors) for 1210 schedules in 15 zones; this port agrees with every one to the second.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from chaosmesh_py.errors import InvalidInput, shown
from chaosmesh_py.gameday.suite import Blackout, Schedule

__all__ = [
    "CronSpec",
    "blackout_at",
    "fire_times",
    "jitter_for",
    "latest_slot",
    "parse_cron",
    "parse_timezone",
    "skipped_by_clock_change",
    "slots_between",
]

CRON_FIX = (
    "write five fields 'minute hour day-of-month month day-of-week' (e.g. '30 10 * * TUE') "
    "or one of @yearly @monthly @weekly @daily @hourly"
)


@dataclass(frozen=True)
class _Bounds:
    low: int
    high: int
    names: tuple[str, ...] = ()  # names[i] is the value low + i


_MINUTE = _Bounds(0, 59)
_HOUR = _Bounds(0, 23)
_DOM = _Bounds(1, 31)
_MONTH = _Bounds(
    1, 12, ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
)
_DOW = _Bounds(0, 6, ("sun", "mon", "tue", "wed", "thu", "fri", "sat"))
_FIELDS = (
    ("minute", _MINUTE),
    ("hour", _HOUR),
    ("day of month", _DOM),
    ("month", _MONTH),
    ("day of week", _DOW),
)


@dataclass(frozen=True)
class CronSpec:
    """A parsed schedule: the values each field allows (day of week: Sunday is 0, as in cron),
    and whether day of month / day of week were written as ``*`` or ``?`` (robfig's star bit)."""

    minutes: frozenset[int]
    hours: frozenset[int]
    days_of_month: frozenset[int]
    months: frozenset[int]
    days_of_week: frozenset[int]
    dom_star: bool
    dow_star: bool


def _every(bounds: _Bounds) -> frozenset[int]:
    return frozenset(range(bounds.low, bounds.high + 1))


# robfig parser.go parseDescriptor: each fires at second 0, minute 0, hour 0 unless noted.
_DESCRIPTORS = {
    "@yearly": CronSpec(
        frozenset({0}), frozenset({0}), frozenset({1}), frozenset({1}), _every(_DOW), False, True
    ),
    "@monthly": CronSpec(
        frozenset({0}), frozenset({0}), frozenset({1}), _every(_MONTH), _every(_DOW), False, True
    ),
    "@weekly": CronSpec(
        frozenset({0}), frozenset({0}), _every(_DOM), _every(_MONTH), frozenset({0}), True, False
    ),
    "@daily": CronSpec(
        frozenset({0}), frozenset({0}), _every(_DOM), _every(_MONTH), _every(_DOW), True, True
    ),
    "@hourly": CronSpec(
        frozenset({0}), _every(_HOUR), _every(_DOM), _every(_MONTH), _every(_DOW), True, True
    ),
}
_DESCRIPTORS["@annually"] = _DESCRIPTORS["@yearly"]
_DESCRIPTORS["@midnight"] = _DESCRIPTORS["@daily"]

# strconv.Atoi's syntax: a sign, then ASCII digits (Python's int() takes '1_0' and ' 1' too).
_GO_INT = re.compile(r"[+-]?[0-9]+")


def parse_cron(text: str, field: str = "schedule.cron") -> CronSpec:
    """Parse a schedule as Kubernetes does, or raise ``InvalidInput`` naming ``field``."""
    return _parse_cron_cached(text, field)


@lru_cache(maxsize=64)
def _parse_cron_cached(text: str, field: str) -> CronSpec:
    if "TZ" in text:
        # Kubernetes' words (validateScheduleFormat): the zone belongs in the timeZone field.
        raise InvalidInput(
            field,
            f"{shown(text)}: cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
            "move the zone to schedule.timezone",
        )
    if not text:
        raise InvalidInput(field, "empty spec string", CRON_FIX)
    if text.startswith("@"):
        if text.startswith("@every"):
            raise InvalidInput(
                field,
                f"{shown(text)}: @every counts from the CronJob's creation or last run, not "
                "from the clock, and is not in Kubernetes' documented schedule syntax",
                "write it as cron fields, e.g. '0 */2 * * *' for every two hours",
            )
        spec = _DESCRIPTORS.get(text)
        if spec is None:
            raise InvalidInput(field, f"unrecognized descriptor: {shown(text)}", CRON_FIX)
        return spec
    parts = text.split()
    if len(parts) != len(_FIELDS):
        raise InvalidInput(
            field, f"expected exactly 5 fields, found {len(parts)}: {shown(text)}", CRON_FIX
        )
    values: list[frozenset[int]] = []
    stars: list[bool] = []
    for part, (name, bounds) in zip(parts, _FIELDS, strict=True):
        try:
            allowed, star = _parse_field(part, bounds)
        except ValueError as error:
            raise InvalidInput(field, f"{name} field {shown(part)}: {error}", CRON_FIX) from None
        values.append(allowed)
        stars.append(star)
    minutes, hours, days_of_month, months, days_of_week = values
    spec = CronSpec(minutes, hours, days_of_month, months, days_of_week, stars[2], stars[4])
    if _next_unix(spec, ZoneInfo("UTC"), 0) is None:
        # robfig accepts "0 0 30 2 *" and Kubernetes stores it; the controller then never
        # starts it. Refuse it here, where someone can still fix it.
        raise InvalidInput(field, f"{shown(text)} never fires (no such day in any year)", CRON_FIX)
    return spec


def _parse_field(field: str, bounds: _Bounds) -> tuple[frozenset[int], bool]:
    """robfig parser.go getField/getRange: a comma list of ``*|?|N|N-M`` with an optional
    ``/step``. Returns the allowed values and whether the star mark survives (step <= 1)."""
    allowed: set[int] = set()
    star = False
    ranges = [item for item in field.split(",") if item]  # strings.FieldsFunc drops empty items
    if not ranges:
        raise ValueError("no values")
    for expr in ranges:
        range_and_step = expr.split("/")
        low_and_high = range_and_step[0].split("-")
        is_star = low_and_high[0] in ("*", "?")
        if is_star:
            start, end = bounds.low, bounds.high
        else:
            start = _parse_value(low_and_high[0], bounds)
            if len(low_and_high) == 1:
                end = start
            elif len(low_and_high) == 2:
                end = _parse_value(low_and_high[1], bounds)
            else:
                raise ValueError(f"too many hyphens: {expr}")
        if len(range_and_step) == 1:
            step = 1
        elif len(range_and_step) == 2:
            step = _parse_number(range_and_step[1])
            if len(low_and_high) == 1:
                end = bounds.high  # "N/step" means "N-max/step"
        else:
            raise ValueError(f"too many slashes: {expr}")
        if start < bounds.low:
            raise ValueError(f"beginning of range ({start}) below minimum ({bounds.low}): {expr}")
        if end > bounds.high:
            raise ValueError(f"end of range ({end}) above maximum ({bounds.high}): {expr}")
        if start > end:
            raise ValueError(f"beginning of range ({start}) beyond end of range ({end}): {expr}")
        if step == 0:
            raise ValueError(f"step of range should be a positive number: {expr}")
        allowed.update(range(start, end + 1, step))
        star = star or (is_star and step <= 1)
    return frozenset(allowed), star


def _parse_value(expr: str, bounds: _Bounds) -> int:
    if expr.lower() in bounds.names:
        return bounds.low + bounds.names.index(expr.lower())
    return _parse_number(expr)


def _parse_number(expr: str) -> int:
    if not expr:
        raise ValueError("a number is missing")  # robfig: "failed to parse int from "
    if _GO_INT.fullmatch(expr) is None:
        raise ValueError(f"failed to parse int from {expr}")
    number = int(expr)
    if number < 0:
        raise ValueError(f"negative number ({number}) not allowed: {expr}")
    return number


# IANA's naming rules as Kubernetes' validateTimeZone applies them (digits and '+' tolerated
# for legacy names such as Etc/GMT+5).
_ZONE_PART = re.compile(r"[A-Za-z.\-_0-9+]{1,14}")
TIMEZONE_FIX = "use an IANA zone name such as Europe/Berlin, America/New_York or UTC"


def parse_timezone(name: object, field: str = "schedule.timezone") -> ZoneInfo:
    """The zone a CronJob's ``timeZone`` would accept, or ``InvalidInput`` naming ``field``."""
    if not isinstance(name, str) or not name:
        raise InvalidInput(field, f"{shown(name)} is not a time zone name", TIMEZONE_FIX)
    for part in name.split("/"):
        if part in (".", "..") or part.startswith("-") or _ZONE_PART.fullmatch(part) is None:
            raise InvalidInput(field, f"unknown time zone {shown(name)}", TIMEZONE_FIX)
    if name.lower() == "local":
        raise InvalidInput(
            field,
            "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones",
            TIMEZONE_FIX,
        )
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise InvalidInput(field, f"unknown time zone {shown(name)}", TIMEZONE_FIX) from None


# --- robfig/cron v3 SpecSchedule.Next, on Unix seconds ---------------------------------------

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
# robfig gives up after five years without a match.
_YEAR_LIMIT = 5


def _offset_at(zone: ZoneInfo, unix: int) -> int:
    offset = datetime.fromtimestamp(unix, zone).utcoffset()
    assert offset is not None
    return int(offset.total_seconds())


def _wall(zone: ZoneInfo, unix: int) -> datetime:
    """The wall-clock fields of an instant in ``zone`` (Go's t.Year(), t.Hour(), ...)."""
    return datetime.fromtimestamp(unix, zone)


def _wall_to_unix(
    zone: ZoneInfo, year: int, month: int, day: int, *, hour: int = 0, minute: int = 0
) -> int:
    """Go's ``time.Date(year, month, day, hour, minute, 0, 0, zone)``: out-of-range months and
    days roll over; a wall time the zone skips or repeats resolves as Go resolves it (look the
    offset up at the wall time read as UTC, then once more at the result if that fell outside
    the first offset's period). This is what moves robfig's schedules at DST changes."""
    year += (month - 1) // 12
    month = (month - 1) % 12 + 1
    ordinal = date(year, month, 1).toordinal() + day - 1
    wall = (ordinal - _EPOCH_ORDINAL) * 86400 + hour * 3600 + minute * 60
    first = _offset_at(zone, wall)
    return wall - _offset_at(zone, wall - first)


def _day_matches(spec: CronSpec, wall: datetime) -> bool:
    dom_match = wall.day in spec.days_of_month
    dow_match = (wall.weekday() + 1) % 7 in spec.days_of_week  # Go: Sunday is 0
    if spec.dom_star or spec.dow_star:
        return dom_match and dow_match
    return dom_match or dow_match


def _next_unix(spec: CronSpec, zone: ZoneInfo, after: int) -> int | None:
    """The first fire time strictly after ``after`` (whole seconds), or None within five years.

    A port of robfig/cron v3 spec.go ``Next`` with the seconds field fixed at 0 (the standard
    parser's default): each field in turn is stepped until it matches; a step that wraps the
    field (``goto WRAP`` there) starts over from the month, since the fields before it moved."""
    t = after + 1
    added = False  # robfig: the first step of any field first resets the fields below it
    year_limit = _wall(zone, t).year + _YEAR_LIMIT
    while _wall(zone, t).year <= year_limit:
        for step in (_step_month, _step_day, _step_hour, _step_minute, _step_second):
            t, added, wrapped = step(spec, zone, t, added)
            if wrapped:
                break
        else:
            return t
    return None


# Each step returns (the new time, added, whether the field wrapped around).
_Step = tuple[int, bool, bool]


def _step_month(spec: CronSpec, zone: ZoneInfo, t: int, added: bool) -> _Step:
    wall = _wall(zone, t)
    while wall.month not in spec.months:
        if not added:
            added = True
            wall = _wall(zone, _wall_to_unix(zone, wall.year, wall.month, 1))
        # AddDate(0, 1, 0): the same wall clock a month on, through time.Date
        t = _wall_to_unix(
            zone, wall.year, wall.month + 1, wall.day, hour=wall.hour, minute=wall.minute
        )
        wall = _wall(zone, t)
        if wall.month == 1:
            return t, added, True
    return t, added, False


def _step_day(spec: CronSpec, zone: ZoneInfo, t: int, added: bool) -> _Step:
    wall = _wall(zone, t)
    while not _day_matches(spec, wall):
        if not added:
            added = True
            wall = _wall(zone, _wall_to_unix(zone, wall.year, wall.month, wall.day))
        t = _wall_to_unix(
            zone, wall.year, wall.month, wall.day + 1, hour=wall.hour, minute=wall.minute
        )
        wall = _wall(zone, t)
        # robfig: where midnight does not exist (DST at 00:00), go back or on to the hour.
        if wall.hour != 0:
            t += (24 - wall.hour) * 3600 if wall.hour > 12 else -wall.hour * 3600
            wall = _wall(zone, t)
        if wall.day == 1:
            return t, added, True
    return t, added, False


def _step_hour(spec: CronSpec, zone: ZoneInfo, t: int, added: bool) -> _Step:
    wall = _wall(zone, t)
    while wall.hour not in spec.hours:
        if not added:
            added = True
            t = _wall_to_unix(zone, wall.year, wall.month, wall.day, hour=wall.hour)
        t += 3600  # t.Add(time.Hour): absolute, so a repeated hour is visited twice
        wall = _wall(zone, t)
        if wall.hour == 0:
            return t, added, True
    return t, added, False


def _step_minute(spec: CronSpec, zone: ZoneInfo, t: int, added: bool) -> _Step:
    wall = _wall(zone, t)
    while wall.minute not in spec.minutes:
        if not added:
            added = True
            t -= t % 60
        t += 60
        wall = _wall(zone, t)
        if wall.minute == 0:
            return t, added, True
    return t, added, False


def _step_second(spec: CronSpec, zone: ZoneInfo, t: int, added: bool) -> _Step:
    second = _wall(zone, t).second
    if second == 0:
        return t, added, False
    return t + 60 - second, True, True  # up to second 0 of the next minute: a wrap


# --- the shared interface ---------------------------------------------------------------------


def _zone_and_spec(schedule: Schedule) -> tuple[ZoneInfo, CronSpec]:
    return parse_timezone(schedule.timezone), parse_cron(schedule.cron)


def _unix(moment: datetime) -> int:
    """Whole seconds, floored: robfig starts its search at the next whole second."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"a timezone-aware datetime is needed, got {moment!r}")
    return int(moment.timestamp() // 1)


def _moment(unix: int, zone: ZoneInfo) -> datetime:
    local = datetime.fromtimestamp(unix, zone)
    offset = local.utcoffset()
    assert offset is not None
    return local.replace(tzinfo=timezone(offset, local.tzname() or zone.key), fold=0)


def fire_times(schedule: Schedule, after: datetime, count: int) -> list[datetime]:
    """The next ``count`` fire times strictly after ``after``, in the schedule's zone (fewer if
    the schedule stops firing within five years, as robfig's ``Next`` gives up)."""
    zone, spec = _zone_and_spec(schedule)
    times: list[datetime] = []
    unix = _unix(after)
    while len(times) < count:
        found = _next_unix(spec, zone, unix)
        if found is None:
            break
        times.append(_moment(found, zone))
        unix = found
    return times


def slots_between(schedule: Schedule, start: datetime, end: datetime) -> list[datetime]:
    """Every fire time t with start < t <= end, in the schedule's zone."""
    zone, spec = _zone_and_spec(schedule)
    last = end.timestamp()
    slots: list[datetime] = []
    unix = _unix(start)
    while (found := _next_unix(spec, zone, unix)) is not None and found <= last:
        slots.append(_moment(found, zone))
        unix = found
    return slots


# The controller's look-back is bounded too (startingDeadlineSeconds, 100 missed schedules);
# a slot older than a year is no slot anyone is waiting for.
_LOOK_BACK = timedelta(days=366)


def latest_slot(schedule: Schedule, at: datetime) -> datetime | None:
    """The latest fire time <= ``at`` (None if none within a year), in the schedule's zone.

    robfig has no "previous": search forward from ever earlier starts, doubling the window, so
    a minutely schedule costs a few steps and a yearly one a handful of windows. (Kubernetes'
    own look-back, ``mostRecentScheduleTime``, approximates by a constant interval; this is the
    exact slot.)"""
    window = timedelta(minutes=2)
    while True:
        slots = slots_between(schedule, at - window, at)
        if slots:
            return slots[-1]
        if window >= _LOOK_BACK:
            return None
        window = min(window * 2, _LOOK_BACK)


def skipped_by_clock_change(schedule: Schedule, start: datetime, end: datetime) -> list[datetime]:
    """Wall-clock times in (start, end] the cron names but the zone skips when its clocks go
    forward, as naive datetimes: robfig's ``Next`` steps over them, so Kubernetes starts no Job
    for them (a 02:30 daily schedule in Europe/Berlin has no run on the last Sunday of March)."""
    zone, spec = _zone_and_spec(schedule)
    skipped: list[datetime] = []
    first, last = _unix(start), _unix(end)
    for change in _offset_changes(zone, first, last):
        before, after = _wall(zone, change - 1), _wall(zone, change)
        missing = after.replace(tzinfo=None) - before.replace(tzinfo=None) - timedelta(seconds=1)
        wall = (before + timedelta(seconds=1)).replace(tzinfo=None)
        for minute in range(int(missing.total_seconds()) // 60):
            moment = wall + timedelta(minutes=minute)
            if _wall_matches(spec, moment):
                skipped.append(moment)
    return skipped


def _offset_changes(zone: ZoneInfo, first: int, last: int) -> list[int]:
    """The instants in (first, last] where the zone's UTC offset changes, to the second."""
    changes = []
    step = 6 * 3600  # zones change offset at most twice a year, never twice in six hours
    low = first
    while low < last:
        high = min(low + step, last)
        if _offset_at(zone, low) != _offset_at(zone, high):
            lo, hi = low, high  # offset(lo) != offset(hi): bisect to the first second of the new
            while hi - lo > 1:
                middle = (lo + hi) // 2
                lo, hi = (
                    (middle, hi)
                    if _offset_at(zone, middle) == _offset_at(zone, lo)
                    else (lo, middle)
                )
            changes.append(hi)
        low = high
    return changes


def _wall_matches(spec: CronSpec, wall: datetime) -> bool:
    return (
        wall.second == 0
        and wall.minute in spec.minutes
        and wall.hour in spec.hours
        and wall.month in spec.months
        and _day_matches(spec, wall)
    )


def blackout_at(blackouts: Sequence[Blackout], timezone: str, moment: datetime) -> Blackout | None:
    """The first blackout covering ``moment`` (read in ``timezone``), or None.

    Every condition a blackout gives must hold. Hours are [from, to); when ``to`` is before
    ``from`` the window wraps past midnight and its small hours belong to the day it started:
    ``weekdays: [fri]`` with ``hours 22:00-06:00`` covers Friday 22:00 to Saturday 06:00, and the
    same holds for ``dates``."""
    local = moment.astimezone(parse_timezone(timezone))
    for blackout in blackouts:
        if _covers(blackout, local):
            return blackout
    return None


def _covers(blackout: Blackout, local: datetime) -> bool:
    day = local.date()
    if blackout.hours is not None:
        start, end = blackout.hours
        now = local.time().replace(tzinfo=None)
        if start < end:
            if not start <= now < end:
                return False
        elif now >= start:
            pass
        elif now < end:
            day -= timedelta(days=1)  # the small hours of a night that began the day before
        else:
            return False
    if blackout.weekdays and day.weekday() not in blackout.weekdays:
        return False
    return blackout.dates is None or blackout.dates[0] <= day <= blackout.dates[1]


def jitter_for(name: str, slot: datetime, jitter_s: float) -> float:
    """A delay in [0, jitter_s) that every runner of this game day's slot computes alike: a
    digest of the name and the slot's UTC second, so two runners of one slot wait the same and
    ``validate`` can print it in advance."""
    if jitter_s <= 0:
        return 0.0
    instant = datetime.fromtimestamp(_unix(slot), UTC).strftime("%Y%m%dT%H%M%SZ")
    digest = hashlib.sha256(f"{name}\n{instant}".encode()).digest()
    fraction = int.from_bytes(digest[:8], "big") / 2**64
    return fraction * jitter_s
