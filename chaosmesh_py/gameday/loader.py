"""Reading a game-day file: its structure checked against ``gameday.schema.json`` (the one
description of it), then what a schema cannot say, each refusal an ``InvalidInput`` that names
the field as the file spells it (``blackouts[1].hours.from``) and says what to write instead.

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

import difflib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any, cast

import yaml

from chaosmesh_py.errors import InvalidInput, shown
from chaosmesh_py.experiment import Document, read_document
from chaosmesh_py.gameday import schedule as cron
from chaosmesh_py.gameday.suite import (
    AbortCondition,
    Blackout,
    GameDay,
    Grafana,
    Notification,
    NotificationEvent,
    Preflight,
    Schedule,
    Step,
    parse_duration,
)
from chaosmesh_py.kube.names import parse_namespace

__all__ = ["WEEKDAYS", "read_gameday", "schema"]

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # index = datetime.weekday()

# The CronJob controller looks at its CronJobs every 10 s: a shorter deadline can miss every slot.
MIN_STARTING_DEADLINE_S = 10.0
# Enough to find a free slot of any real schedule, few enough to stay instant on a minutely one.
_SLOTS_CHECKED = 10_000
_ENV_REFERENCE = re.compile(r"\$\{([^}]*)\}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """YAML without 1.1's surprises for this file: ``22:00`` stays a string (YAML 1.1 reads the
    integer 1320, while ``06:00`` stays a string) and ``2026-12-18`` stays a string (the schema
    says which strings are dates and times)."""


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


@cache
def schema() -> dict[str, Any]:
    """The game-day file's JSON Schema (draft 2020-12), as published with the package."""
    text = files("chaosmesh_py.gameday").joinpath("gameday.schema.json").read_text("utf-8")
    return cast(dict[str, Any], json.loads(text))


def read_gameday(path: Path) -> GameDay:
    document = read_document(path, GAMEDAY_FILE)
    if not isinstance(document, dict):
        raise InvalidInput(
            GAMEDAY_FILE.name,
            f"must be a mapping, got {type(document).__name__}",
            GAMEDAY_FILE.shape,
        )
    _check_structure(document)
    return _GameDayReader(path, document).read()


# --- the schema's errors, as a user reads them --------------------------------------------------


def _check_structure(document: Mapping[str, Any]) -> None:
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(schema())
    errors = sorted(
        validator.iter_errors(document), key=lambda error: _sort_key(error.absolute_path)
    )
    if not errors:
        return
    first = _explained(errors[0])
    more = len(errors) - 1
    problem = first.problem + (f" (and {more} more problem{'s' * (more > 1)})" if more else "")
    raise InvalidInput(first.field, problem, first.fix)


def _sort_key(path: Iterable[Any]) -> tuple[tuple[int, str], ...]:
    return tuple((0, f"{step:09d}") if isinstance(step, int) else (1, str(step)) for step in path)


def field_path(path: Iterable[Any]) -> str:
    """``blackouts[1].hours.from`` from the steps ``blackouts, 1, hours, from``."""
    text = ""
    for step in path:
        text += f"[{step}]" if isinstance(step, int) else f".{step}"
    return text.removeprefix(".") or "gameday"


def _explained(error: Any) -> InvalidInput:
    """One jsonschema error as the field it is about, the problem and the fix."""
    path = list(error.absolute_path)
    node: Mapping[str, Any] = error.schema
    fix = str(node.get("x-fix", ""))
    kind = error.validator
    if kind == "additionalProperties":
        known = sorted(node.get("properties", {}))
        unknown = sorted(set(error.instance) - set(known))
        key = unknown[0]
        guess = difflib.get_close_matches(key, known, n=1)
        hint = f"did you mean {guess[0]}? " if guess else ""
        return InvalidInput(
            field_path([*path, key]), "unknown key", f"{hint}known keys: {', '.join(known)}"
        )
    if kind == "required":
        missing = next(name for name in error.validator_value if name not in error.instance)
        described = node.get("properties", {}).get(missing, {})
        return InvalidInput(field_path([*path, missing]), "is required", _fix_of(described))
    if kind == "type":
        wanted = error.validator_value
        return InvalidInput(
            field_path(path),
            f"must be {_article(wanted)}, got {_json_kind(error.instance)} {shown(error.instance)}",
            fix,
        )
    if kind in ("anyOf", "oneOf"):
        return InvalidInput(field_path(path), _mixed_problem(kind, node), fix)
    if kind == "minItems" and error.validator_value == 1:
        return InvalidInput(field_path(path), "must not be empty", fix)
    if kind == "uniqueItems":
        return InvalidInput(field_path(path), "lists an item twice", fix)
    if kind == "maxLength":
        return InvalidInput(
            field_path(path),
            f"{shown(error.instance)} is {len(error.instance)} characters, "
            f"at most {node['maxLength']} fit",
            fix,
        )
    if kind == "minLength":
        return InvalidInput(field_path(path), "must not be empty", fix)
    return InvalidInput(
        field_path(path), f"{shown(error.instance)} {_said(kind, error.validator_value)}", fix
    )


def _fix_of(node: Mapping[str, Any]) -> str:
    if "x-fix" in node:
        return str(node["x-fix"])
    if "$ref" in node:
        return str(_definition(node["$ref"]).get("x-fix", ""))
    return ""


def _definition(reference: str) -> Mapping[str, Any]:
    return cast(Mapping[str, Any], schema()["$defs"][reference.rsplit("/", 1)[-1]])


def _mixed_problem(kind: str, node: Mapping[str, Any]) -> str:
    choices = [", ".join(option.get("required", [])) for option in node[kind]]
    if kind == "anyOf":
        return f"needs at least one of {', '.join(choices)}"
    return f"needs exactly one of {' or '.join(choices)}"


def _said(kind: str, value: Any) -> str:
    return {
        "pattern": "is not in the expected form",
        "enum": f"is not one of {', '.join(map(str, value))}"
        if isinstance(value, list)
        else "is not allowed",
        "minimum": f"is below {value}",
        "minItems": f"has fewer than {value} items",
    }.get(kind, f"fails {kind}")


def _article(kind: object) -> str:
    names = {"object": "a mapping", "array": "a list", "string": "a string", "number": "a number"}
    names |= {"integer": "an integer", "boolean": "true or false"}
    if isinstance(kind, list):
        return " or ".join(names.get(str(item), str(item)) for item in kind)
    return names.get(str(kind), str(kind))


def _json_kind(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return "a string" if isinstance(value, str) else "a number"


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
                f"({_seconds_text(deadline_s)}): a late start would count as missed",
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
        from chaosmesh_py.verdict.gate import GateError, validate_experiment

        steps = []
        checked: set[Path] = set()
        for index, item in enumerate(items):
            field = f"experiments[{index}].path"
            path = (self.path.parent / item["path"]).resolve()
            if path not in checked:
                try:
                    validate_experiment(path)
                except GateError as error:
                    raise InvalidInput(
                        field,
                        f"{item['path']}: {error}",
                        "paths are relative to the game-day file's folder; "
                        f"`chaosmesh validate {item['path']}` shows every problem",
                    ) from None
                checked.add(path)
            pause_s = parse_duration(
                item.get("pauseAfter", "0s"), f"experiments[{index}].pauseAfter"
            )
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


def _seconds_text(seconds: float) -> str:
    return f"{seconds:g}s"


def _check_references(field: str, value: str) -> None:
    """``${NAME}`` must name an environment variable; it is read when sending, never here."""
    for match in _ENV_REFERENCE.finditer(value):
        if _ENV_NAME.fullmatch(match.group(1)) is None:
            raise InvalidInput(
                field,
                f"${{{match.group(1)}}} does not name an environment variable",
                "write ${NAME} with letters, digits and '_', e.g. ${SLACK_WEBHOOK_URL}",
            )
    if "${" in _ENV_REFERENCE.sub("", value):
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
    if outer.weekdays and not (inner.weekdays and inner.weekdays <= outer.weekdays):
        return False
    return outer.dates is None or (
        inner.dates is not None
        and outer.dates[0] <= inner.dates[0]
        and inner.dates[1] <= outer.dates[1]
    )


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
    end = now + timedelta(days=365)
    reasons: set[str] = set()
    checked = 0
    after = now
    while checked < _SLOTS_CHECKED:
        slots = [slot for slot in cron.fire_times(schedule, after, 64) if slot <= end]
        for slot in slots:
            blackout = cron.blackout_at(blackouts, schedule.timezone, slot)
            if blackout is None:
                return
            reasons.add(blackout.reason)
        checked += len(slots)
        if len(slots) < 64:
            break
        after = slots[-1]
    else:
        return  # too many slots to be blacked out wholesale; the runner records each skip
    if checked:
        raise InvalidInput(
            "blackouts",
            f"skip every slot of the coming year ({checked} slots: {', '.join(sorted(reasons))})",
            "narrow the blackouts or move the schedule: as written the game day never runs",
        )
