"""Reading a game-day file: its structure checked against ``gameday.schema.json`` (the one
description of it, ``chaosmesh_py.gameday.schema``), then what a schema cannot say, each refusal
an ``InvalidInput`` that names the field as the file spells it (``blackouts[1].hours.from``) and
says what to write instead.

What is checked in code, after the schema:

- ``schedule``: the cron as a Kubernetes CronJob would read it, the zone in the IANA database
  (``chaosmesh_py.gameday.schedule``); a jitter shorter than the starting deadline, and a deadline
  of at least 10 s (the CronJob controller may not start a Job at all with less);
- ``blackouts``: real dates, ranges that are neither reversed nor empty, none that can never be
  the reason given (covered by one listed before it), and not so many that no slot of the coming
  year is left;
- ``preflight`` / ``abort``: a Prometheus for each, names unique (runs report them by name);
- ``experiments``: files relative to the game-day file that exist and pass ``chaosmesh
  validate``'s checks;
- ``notifications`` / ``grafana``: ``${ENV_NAME}`` references well formed. They are never
  resolved here: a secret is read from the environment when it is sent, and never written.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, cast

import yaml

from chaosmesh_py.errors import InvalidInput, shown
from chaosmesh_py.experiment import Document, read_document
from chaosmesh_py.gameday import schedule as cron
from chaosmesh_py.gameday.schema import check_document
from chaosmesh_py.gameday.suite import (
    ENV_REFERENCE,
    AbortCondition,
    Blackout,
    GameDay,
    Grafana,
    Notification,
    NotificationEvent,
    Preflight,
    Schedule,
    Step,
    format_duration,
    parse_duration,
)
from chaosmesh_py.kube.names import parse_namespace

__all__ = ["WEEKDAYS", "notes", "read_gameday"]

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # index = datetime.weekday()

# The CronJob controller looks at its CronJobs every 10 s: a shorter deadline can miss every slot.
MIN_STARTING_DEADLINE_S = 10.0
# Enough to find a free slot of any real schedule, few enough to stay instant on a minutely one.
_SLOTS_CHECKED = 10_000
# Anything written ${...}: each must be a well-formed ENV_REFERENCE.
_BRACED = re.compile(r"\$\{([^}]*)\}")


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """YAML without 1.1's surprises for this file: ``22:00`` stays a string (YAML 1.1 reads the
    integer 1320, while ``06:00`` stays a string) and ``2026-12-18`` stays a string (the schema
    says which strings are dates and times)."""


def _construct_mapping(loader: Any, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    """A key written twice is refused (YAML parsers keep the last one, silently)."""
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if isinstance(key, str | int | float | bool | type(None)) and key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"found the key {key!r} twice in one mapping", key_node.start_mark
            )
        seen.add(key if isinstance(key, str | int | float | bool | type(None)) else id(key))
    return cast(dict[Any, Any], yaml.SafeLoader.construct_mapping(loader, node, deep=deep))


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.yaml_implicit_resolvers = {
    first: [
        (tag, pattern)
        for tag, pattern in resolvers
        if tag
        not in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float", "tag:yaml.org,2002:timestamp")
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$"), list("-+0123456789")
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$|^[-+]?[0-9]+[eE][-+]?[0-9]+$"
    ),
    list("-+.0123456789"),
)

GAMEDAY_FILE = Document(
    name="gameday",
    suffix_fix="name the game-day file *.yaml, *.yml or *.json",
    shape="a game day is a mapping with name, namespace and experiments "
    "(`chaosmesh gameday schema` prints them all)",
    depth="a game-day file is a few levels deep",
    yaml_loader=_Loader,
)


def read_gameday(path: Path) -> GameDay:
    document = read_document(path, GAMEDAY_FILE)
    if not isinstance(document, dict):
        raise InvalidInput(
            GAMEDAY_FILE.name,
            f"must be a mapping, got {type(document).__name__}",
            GAMEDAY_FILE.shape,
        )
    check_document(document)
    return _GameDayReader(path, document).read()


# A literal value here is a credential written into a file that gets committed and shared.
_SECRET_HEADERS = re.compile(r"authorization|.*(token|api-?key|secret|password).*", re.IGNORECASE)
_SECRET_URL = re.compile(
    r"hooks\.slack\.com/|//[^/@]+:[^/@]+@|[?&](token|key|secret|sig)=", re.IGNORECASE
)


def notes(gameday: GameDay) -> list[str]:
    """What is allowed but probably not meant: said by ``validate``, never refused."""
    said = []
    first: dict[Path, int] = {}
    for index, step in enumerate(gameday.experiments):
        if step.path in first:
            said.append(
                f"experiments[{index}] runs {step.path.name} again "
                f"(also experiments[{first[step.path]}]); fine if meant"
            )
        first.setdefault(step.path, index)
    for index, target in enumerate(gameday.notifications):
        field = f"notifications[{index}]"
        if "${" not in target.url and _SECRET_URL.search(target.url):
            said.append(
                f"{field}.url looks like it holds a credential; write ${{NAME}} and set NAME in "
                "the environment of the runner, so the file can be shared"
            )
        for name, value in target.headers:
            if _SECRET_HEADERS.fullmatch(name) and "${" not in value:
                said.append(f"{field}.headers.{name} is written out; write ${{NAME}} instead")
    return said


# --- what a schema cannot say -------------------------------------------------------------------


class _GameDayReader:
    """The semantic checks, in the order a reader of the file meets its parts."""

    def __init__(self, path: Path, document: Mapping[str, Any]) -> None:
        self.path = path
        self.document = document
        self.prometheus_url: str | None = document.get("prometheus", {}).get("url")

    def read(self) -> GameDay:
        document = self.document
        schedule = self.schedule(document["schedule"]) if "schedule" in document else None
        blackouts = tuple(
            self.blackout(i, item) for i, item in enumerate(document.get("blackouts", []))
        )
        if blackouts and schedule is None:
            raise InvalidInput(
                "blackouts",
                "are read in the schedule's time zone, and this game day has no schedule",
                "add a schedule (its timezone is theirs), or leave blackouts out",
            )
        _check_blackouts_reachable(blackouts)
        if schedule is not None and blackouts:
            _check_some_slot_left(schedule, blackouts)
        preflight = tuple(
            self.preflight(i, item) for i, item in enumerate(document.get("preflight", []))
        )
        abort = tuple(self.abort(i, item) for i, item in enumerate(document.get("abort", [])))
        _check_unique_names("preflight", [check.name for check in preflight])
        _check_unique_names("abort", [condition.name for condition in abort])
        notifications = tuple(
            self.notification(i, item) for i, item in enumerate(document.get("notifications", []))
        )
        return GameDay(
            name=document["name"],
            namespace=parse_namespace(document["namespace"], "namespace"),
            description=document.get("description", ""),
            experiments=self.experiments(document["experiments"]),
            source=self.path,
            schedule=schedule,
            blackouts=blackouts,
            preflight=preflight,
            abort=abort,
            notifications=notifications,
            grafana=self.grafana(document["grafana"]) if "grafana" in document else None,
            prometheus_url=self.prometheus_url,
        )

    def schedule(self, item: Mapping[str, Any]) -> Schedule:
        cron.parse_timezone(item["timezone"], "schedule.timezone")
        cron.parse_cron(item["cron"], "schedule.cron")
        jitter_s = parse_duration(item.get("jitter", "0s"), "schedule.jitter")
        deadline_s = parse_duration(
            item.get("startingDeadline", "10m"), "schedule.startingDeadline"
        )
        if deadline_s < MIN_STARTING_DEADLINE_S:
            raise InvalidInput(
                "schedule.startingDeadline",
                f"{item['startingDeadline']} is shorter than 10s: the CronJob controller checks "
                "every 10 s and may start no Job at all",
                "give it at least 10s; 10m is the default",
            )
        if jitter_s >= deadline_s:
            raise InvalidInput(
                "schedule.jitter",
                f"{item['jitter']} is not shorter than the starting deadline "
                f"({format_duration(deadline_s)}): a late start would count as missed",
                "make the jitter shorter, or schedule.startingDeadline longer",
            )
        return Schedule(
            cron=item["cron"],
            timezone=item["timezone"],
            jitter_s=jitter_s,
            starting_deadline_s=deadline_s,
        )

    def blackout(self, index: int, item: Mapping[str, Any]) -> Blackout:
        field = f"blackouts[{index}]"
        hours = None
        if "hours" in item:
            start, end = (time.fromisoformat(item["hours"][key]) for key in ("from", "to"))
            if start == end:
                raise InvalidInput(
                    f"{field}.hours",
                    f"from {item['hours']['from']} to {item['hours']['to']} is empty "
                    "([from, to) holds no minute)",
                    "to black out whole days leave hours out; "
                    "for a night write e.g. from '22:00' to '06:00'",
                )
            hours = (start, end)
        dates = None
        if "dates" in item:
            start_day, end_day = (
                _day(item["dates"][key], f"{field}.dates.{key}") for key in ("from", "to")
            )
            if end_day < start_day:
                raise InvalidInput(
                    f"{field}.dates",
                    f"from {start_day} to {end_day} is reversed "
                    "(both days are included, from first)",
                    f"write from: {end_day}, to: {start_day}",
                )
            dates = (start_day, end_day)
            if "weekdays" in item and not _some_weekday_between(dates, item["weekdays"]):
                raise InvalidInput(
                    field,
                    f"covers no day: none of {start_day} to {end_day} "
                    f"is a {' or '.join(item['weekdays'])}",
                    "widen the dates or fix the weekdays",
                )
        weekdays = frozenset(WEEKDAYS.index(day) for day in item.get("weekdays", []))
        return Blackout(reason=item["reason"], weekdays=weekdays, hours=hours, dates=dates)

    def prometheus(self, field: str, item: Mapping[str, Any]) -> str | None:
        url = item.get("prometheus")
        if url is None and self.prometheus_url is None:
            raise InvalidInput(
                f"{field}.prometheus",
                "no Prometheus to ask",
                "set prometheus.url at the top of the file, or prometheus here",
            )
        if url is not None:
            _check_references(f"{field}.prometheus", url)
        return cast(str | None, url)

    def preflight(self, index: int, item: Mapping[str, Any]) -> Preflight:
        field = f"preflight[{index}]"
        return Preflight(
            name=item["name"],
            query=item["query"],
            below=item.get("below"),
            prometheus_url=self.prometheus(field, item),
        )

    def abort(self, index: int, item: Mapping[str, Any]) -> AbortCondition:
        field = f"abort[{index}]"
        interval_s = parse_duration(item.get("interval", "5s"), f"{field}.interval")
        if interval_s < 1:
            raise InvalidInput(
                f"{field}.interval",
                f"{item['interval']} is shorter than 1s",
                "check at most once a second, e.g. 5s",
            )
        return AbortCondition(
            name=item["name"],
            query=item["query"],
            above=item.get("above"),
            below=item.get("below"),
            for_s=parse_duration(item.get("for", "0s"), f"{field}.for"),
            interval_s=interval_s,
            prometheus_url=self.prometheus(field, item),
        )

    def experiments(self, items: Sequence[Mapping[str, Any]]) -> tuple[Step, ...]:
        steps = []
        checked: set[Path] = set()
        for index, item in enumerate(items):
            field = f"experiments[{index}]"
            path = _existing(
                self.path.parent.resolve() / item["path"], item["path"], f"{field}.path"
            )
            if path not in checked:
                _check_experiment(path, item["path"], f"{field}.path")
                checked.add(path)
            pause_s = parse_duration(item.get("pauseAfter", "0s"), f"{field}.pauseAfter")
            steps.append(Step(path=path, pause_after_s=pause_s))
        return tuple(steps)

    def notification(self, index: int, item: Mapping[str, Any]) -> Notification:
        field = f"notifications[{index}]"
        _check_references(f"{field}.url", item["url"])
        headers = tuple(sorted(item.get("headers", {}).items()))
        for name, value in headers:
            _check_references(f"{field}.headers.{name}", value)
        return Notification(
            kind=item["type"],
            url=item["url"],
            events=frozenset(cast(list[NotificationEvent], item.get("events", []))),
            headers=headers,
            verify_tls=item.get("verifyTls", True),
            timeout_s=_timeout(item, field),
        )

    def grafana(self, item: Mapping[str, Any]) -> Grafana:
        _check_references("grafana.url", item["url"])
        return Grafana(
            url=item["url"],
            token_env=item["tokenEnv"],
            dashboard_uid=item.get("dashboardUid"),
            panel_id=item.get("panelId"),
            tags=tuple(item.get("tags", ("chaos", "gameday"))),
            timeout_s=_timeout(item, "grafana"),
        )


def _existing(path: Path, written: str, field: str) -> Path:
    """The experiment file, resolved, or ``InvalidInput`` saying where it was looked for."""
    relative = "paths are relative to the game-day file's folder"
    try:
        is_file = path.is_file()
    except (OSError, ValueError) as error:  # a name too long, a NUL byte
        problem = getattr(error, "strerror", None) or str(error)
        raise InvalidInput(field, f"{shown(written)} cannot be read: {problem}", relative) from None
    if not is_file:
        where = shown(os.path.normpath(path))
        raise InvalidInput(field, f"{shown(written)}: no such file (looked for {where})", relative)
    return path.resolve()


def _check_experiment(path: Path, written: str, field: str) -> None:
    """The experiment passes ``chaosmesh validate``'s checks (the gate's own)."""
    from chaosmesh_py.verdict.gate import GateError, validate_experiment

    try:
        validate_experiment(path)
    except GateError as error:
        problems = re.sub(r"(^|; )invalid: ", r"\1", str(error))
        raise InvalidInput(
            field,
            f"{written} is not a valid experiment: {problems}",
            f"`chaosmesh validate {written}` shows every problem",
        ) from None


def _timeout(item: Mapping[str, Any], field: str) -> float:
    timeout_s = parse_duration(item.get("timeout", "5s"), f"{field}.timeout")
    if not 0 < timeout_s <= 60:
        raise InvalidInput(
            f"{field}.timeout",
            f"{item['timeout']} is outside (0s, 60s]",
            "a few seconds: an experiment waits at most this long for it, e.g. 5s",
        )
    return timeout_s


def _day(text: str, field: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(
            field, f"{shown(text)} is not a date", "a real day as YYYY-MM-DD"
        ) from None


def _some_weekday_between(dates: tuple[date, date], weekdays: Sequence[str]) -> bool:
    days = min((dates[1] - dates[0]).days + 1, 7)
    return any(WEEKDAYS[(dates[0] + timedelta(days=n)).weekday()] in weekdays for n in range(days))


def _check_references(field: str, value: str) -> None:
    """``${NAME}`` must name an environment variable; it is read when sending, never here."""
    for match in _BRACED.finditer(value):
        if ENV_REFERENCE.fullmatch(match.group(0)) is None:
            raise InvalidInput(
                field,
                f"${{{match.group(1)}}} does not name an environment variable",
                "write ${NAME} with letters, digits and '_', e.g. ${SLACK_WEBHOOK_URL}",
            )
    if "${" in _BRACED.sub("", value):
        raise InvalidInput(field, "has a '${' that is never closed", "write ${NAME}")


def _check_unique_names(section: str, names: Sequence[str]) -> None:
    seen: dict[str, int] = {}
    for index, name in enumerate(names):
        if name in seen:
            raise InvalidInput(
                f"{section}[{index}].name",
                f"{name!r} is also the name of {section}[{seen[name]}]",
                "give each its own name: runs report them by name",
            )
        seen[name] = index


def _check_blackouts_reachable(blackouts: Sequence[Blackout]) -> None:
    """A blackout inside one listed before it is never the reason a slot is skipped: the first
    that covers a moment is the one reported. That is a mistake (a duplicate, or an order that
    hides the reason meant)."""
    for later, blackout in enumerate(blackouts):
        for earlier in range(later):
            if _within(blackout, blackouts[earlier]):
                raise InvalidInput(
                    f"blackouts[{later}]",
                    "is never the reason given: every moment it covers is already covered "
                    f"by blackouts[{earlier}] ({blackouts[earlier].reason!r}), listed before it",
                    "remove it, or list it before the wider one",
                )


def _within(inner: Blackout, outer: Blackout) -> bool:
    """Whether every moment ``inner`` covers, ``outer`` covers, provable from their conditions.

    Only claimed when both read the day of a moment alike (hours that wrap past midnight give
    their small hours to the day before); otherwise this answers False, never wrongly True."""
    if outer.hours is not None and (
        inner.hours is None or not _hours_within(inner.hours, outer.hours)
    ):
        return False
    has_days = bool(outer.weekdays) or outer.dates is not None
    if has_days and _wraps(inner.hours) != _wraps(outer.hours):
        return False
    if outer.weekdays and not _weekdays_of(inner) <= outer.weekdays:
        return False
    return outer.dates is None or (
        inner.dates is not None
        and outer.dates[0] <= inner.dates[0]
        and inner.dates[1] <= outer.dates[1]
    )


def _weekdays_of(blackout: Blackout) -> frozenset[int]:
    """The days of the week a blackout's days can fall on (its dates narrow its weekdays)."""
    days = blackout.weekdays or frozenset(range(7))
    if blackout.dates is not None:
        start, end = blackout.dates
        span = min((end - start).days + 1, 7)
        days &= {(start + timedelta(days=n)).weekday() for n in range(span)}
    return days


def _wraps(hours: tuple[time, time] | None) -> bool:
    return hours is not None and hours[1] < hours[0]


def _minutes(hours: tuple[time, time]) -> set[int]:
    start, end = (clock.hour * 60 + clock.minute for clock in hours)
    return set(range(start, end)) if start < end else set(range(start, 24 * 60)) | set(range(end))


def _hours_within(inner: tuple[time, time], outer: tuple[time, time]) -> bool:
    return _minutes(inner) <= _minutes(outer)


def _check_some_slot_left(schedule: Schedule, blackouts: Sequence[Blackout]) -> None:
    """Refuse blackouts that skip every slot of the coming year: the game day would never run."""
    now = datetime.now(UTC)
    reasons: set[str] = set()
    looked_at = 0
    for slot in _slots_ahead(schedule, now, now + timedelta(days=365)):
        blackout = cron.blackout_at(blackouts, schedule.timezone, slot)
        if blackout is None:
            return
        reasons.add(blackout.reason)
        looked_at += 1
    if looked_at:
        raise InvalidInput(
            "blackouts",
            f"skip every slot of the coming year ({looked_at} slots looked at: "
            f"{', '.join(sorted(reasons))})",
            "narrow the blackouts or move the schedule: as written the game day never runs",
        )


def _slots_ahead(schedule: Schedule, now: datetime, end: datetime) -> Iterator[datetime]:
    """The slots up to ``end``, one by one while there are few (a weekly schedule has 52); a
    schedule firing more often is sampled: the first slot after each hour of the year."""
    after, count, chunk_size = now, 0, 64
    while count < _SLOTS_CHECKED:
        chunk = cron.fire_times(schedule, after, chunk_size)
        for slot in chunk:
            if slot > end:
                return
            yield slot
        count += len(chunk)
        if len(chunk) < chunk_size:
            return
        after = chunk[-1]
    for hour in range(365 * 24):
        yield from cron.fire_times(schedule, now + timedelta(hours=hour), 1)
