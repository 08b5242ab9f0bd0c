"""A CronJob schedule as kube-apiserver checks it: robfig/cron v3's `ParseStandard`, ported.

Only the parse (is it a valid schedule, and if not the library's own message), not the fire
times: the double stores CronJobs, nothing runs them. Five fields (minute hour day-of-month
month day-of-week; names JAN-DEC and SUN-SAT; `*`, `?`, ranges, steps, lists) or a descriptor
(@yearly @annually @monthly @weekly @daily @midnight @hourly, `@every <Go duration>`), after an
optional `TZ=` / `CRON_TZ=` prefix naming a zone.
"""

from __future__ import annotations

import re
import zoneinfo

_MONTHS = {
    month: number
    for number, month in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1
    )
}
_DAYS = {
    day: number for number, day in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))
}
# minute, hour, day of month, month, day of week: (min, max, names)
_BOUNDS: tuple[tuple[int, int, dict[str, int]], ...] = (
    (0, 59, {}),
    (0, 23, {}),
    (1, 31, {}),
    (1, 12, _MONTHS),
    (0, 6, _DAYS),
)
_DESCRIPTORS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
_GO_DURATION = re.compile(
    r"^[-+]?(\d+(\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)((\d+(\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h))*$"
)


class CronError(ValueError):
    """A schedule robfig/cron refuses; the text is the library's."""


def _atoi(expr: str) -> int:
    if not re.fullmatch(r"[+-]?\d+", expr):
        raise CronError(
            f'failed to parse int from {expr}: strconv.Atoi: parsing "{expr}": invalid syntax'
        )
    number = int(expr)
    if number < 0:
        raise CronError(f"negative number ({number}) not allowed: {expr}")
    return number


def _int_or_name(expr: str, names: dict[str, int]) -> int:
    return names[expr.lower()] if expr.lower() in names else _atoi(expr)


def _check_range(expr: str, low: int, high: int, names: dict[str, int]) -> None:
    range_and_step = expr.split("/")
    low_and_high = range_and_step[0].split("-")
    if low_and_high[0] in ("*", "?"):
        start, end = low, high
    else:
        start = _int_or_name(low_and_high[0], names)
        if len(low_and_high) > 2:
            raise CronError(f"too many hyphens: {expr}")
        end = _int_or_name(low_and_high[1], names) if len(low_and_high) == 2 else start
    if len(range_and_step) > 2:
        raise CronError(f"too many slashes: {expr}")
    step = 1
    if len(range_and_step) == 2:
        step = _atoi(range_and_step[1])
        if len(low_and_high) == 1:
            end = high
    if start < low:
        raise CronError(f"beginning of range ({start}) below minimum ({low}): {expr}")
    if end > high:
        raise CronError(f"end of range ({end}) above maximum ({high}): {expr}")
    if start > end:
        raise CronError(f"beginning of range ({start}) beyond end of range ({end}): {expr}")
    if step == 0:
        raise CronError(f"step of range should be a positive number: {expr}")


def check_schedule(spec: str) -> None:
    """Raise CronError with robfig/cron's message unless `cron.ParseStandard(spec)` succeeds."""
    if not spec:
        raise CronError("empty spec string")
    if spec.startswith(("TZ=", "CRON_TZ=")):
        space = spec.find(" ")
        zone = spec[spec.index("=") + 1 : space if space >= 0 else len(spec) - 1]
        if not known_zone(zone):
            raise CronError(f"provided bad location {zone}: unknown time zone {zone}")
        spec = spec[space:].strip() if space >= 0 else ""
    if spec.startswith("@"):
        if spec.startswith("@every "):
            duration = spec.removeprefix("@every ")
            if not _GO_DURATION.match(duration):
                raise CronError(
                    f"failed to parse duration {spec}: time: invalid duration {duration!r}".replace(
                        "'", '"'
                    )
                )
        elif spec not in _DESCRIPTORS:
            raise CronError(f"unrecognized descriptor: {spec}")
        return
    fields = spec.split()
    if len(fields) != 5:
        raise CronError(f"expected exactly 5 fields, found {len(fields)}: [{' '.join(fields)}]")
    for field, (low, high, names) in zip(fields, _BOUNDS, strict=True):
        for expr in (part for part in field.split(",") if part):
            _check_range(expr, low, high, names)


_ZONE_PART = re.compile(r"^[A-Za-z\.\-_0-9+]{1,14}$")


def known_zone(name: str) -> bool:
    """Go's time.LoadLocation with the apiserver's extra rule on each `/`-separated part."""
    if name == "UTC":
        return True
    for part in name.split("/"):
        if part in (".", "..") or part.startswith("-") or not _ZONE_PART.match(part):
            return False
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True
