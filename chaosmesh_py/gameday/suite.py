"""The game-day file's model.

A game-day file (YAML or JSON; its JSON Schema is published beside this module) names the
experiments of a game day, when it runs, when it must not, what must hold before it starts and
what stops it. Parsing a file gives a ``GameDay``, or raises ``InvalidInput`` naming the field.
Durations are seconds here; the file writes them as ``30s``, ``10m``, ``1h30m``.

The file is read in ``chaosmesh_py.gameday.loader``; its structure lives in one
place, ``gameday.schema.json``, and what a schema cannot say (a cron Kubernetes would refuse, a
zone that does not exist, reversed ranges, experiments that do not validate) in code there.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, time
from pathlib import Path
from typing import Literal

from chaosmesh_py.errors import InvalidInput, shown

# Monday is 0, as datetime.weekday() counts.
Weekday = int


@dataclass(frozen=True)
class Schedule:
    """When the game day fires: a cron expression read in an IANA timezone (as a CronJob's
    ``timeZone``), each start delayed by a random time in [0, jitter)."""

    cron: str
    timezone: str
    jitter_s: float = 0.0
    # How late a start may still run its slot; later than this the slot counts as missed.
    # Rendered as the CronJob's startingDeadlineSeconds.
    starting_deadline_s: float = 600.0


@dataclass(frozen=True)
class Blackout:
    """A time when the game day must not run, and why. Every condition given must hold for a
    moment to fall in the blackout (weekdays AND hours AND dates); times are read in the
    schedule's timezone."""

    reason: str
    weekdays: frozenset[Weekday] = frozenset()
    hours: tuple[time, time] | None = None  # [from, to); to < from wraps past midnight
    dates: tuple[date, date] | None = None  # [from, to], both days included


@dataclass(frozen=True)
class Preflight:
    """A PromQL query that must return no series (e.g. firing alerts), or, with ``below``,
    whose every value must be below it. Checked before the first experiment."""

    name: str
    query: str
    below: float | None = None
    prometheus_url: str | None = None  # else the game day's


@dataclass(frozen=True)
class AbortCondition:
    """A PromQL threshold watched for the whole game day: breached when any value of the query
    is above ``above`` (or below ``below``) for ``for_s`` seconds in a row."""

    name: str
    query: str
    above: float | None = None
    below: float | None = None
    for_s: float = 0.0
    interval_s: float = 5.0
    prometheus_url: str | None = None  # else the game day's


@dataclass(frozen=True)
class Step:
    """One experiment of the game day, and the pause after it before the next."""

    path: Path  # resolved against the game-day file's directory
    pause_after_s: float = 0.0


NotificationEvent = Literal[
    "gameday-started",
    "gameday-completed",  # every experiment ran and passed
    "gameday-failed",  # some experiment did not pass, or a rollback is incomplete
    "gameday-aborted",  # an abort condition or a pause stopped it
    "gameday-skipped",  # blackout, preflight, paused, already running or already run
    "experiment-started",
    "experiment-completed",
]


# How a URL or header value names an environment variable, read when used (never at parse
# time, never written anywhere).
ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class MissingVariable(Exception):
    """A ``${NAME}`` the file refers to is not set in the environment, or empty."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def resolve(text: str, environ: Mapping[str, str], used: set[str] | None = None) -> str:
    """``text`` with each ``${NAME}`` replaced by the environment's value (surrounding
    whitespace dropped: a token read from a file often ends in a newline, which no header may
    hold); each value used is added to ``used``, to be hidden."""

    def value(match: re.Match[str]) -> str:
        resolved = environ.get(match[1], "").strip()
        if not resolved:
            raise MissingVariable(match[1])
        if used is not None:
            used.add(resolved)
        return resolved

    return ENV_REFERENCE.sub(value, text)


@dataclass(frozen=True)
class Notification:
    """Where to tell what happened. ``http`` posts the event as JSON (Chaos Toolkit's
    ``settings.notifications`` http shape: url, headers, verify_tls, events); ``slack`` posts a
    Slack-compatible ``{"text": ...}`` to an incoming-webhook URL. A URL or header value may be
    ``${ENV_NAME}``, read from the environment when sending (never written anywhere)."""

    kind: Literal["http", "slack"]
    url: str
    events: frozenset[NotificationEvent] = frozenset()  # empty: every event
    headers: tuple[tuple[str, str], ...] = ()
    verify_tls: bool = True
    timeout_s: float = 5.0


@dataclass(frozen=True)
class Grafana:
    """A region annotation from the first injection to the last rollback, through Grafana's
    HTTP annotations API; the service-account token is read from ``token_env``."""

    url: str
    token_env: str
    dashboard_uid: str | None = None
    panel_id: int | None = None
    tags: tuple[str, ...] = ("chaos", "gameday")
    timeout_s: float = 5.0


@dataclass(frozen=True)
class GameDay:
    """A parsed game-day file."""

    name: str  # a DNS label: it names the Lease, the state ConfigMap and the CronJob
    namespace: str  # where the Lease, the state ConfigMap and the rendered manifests live
    experiments: tuple[Step, ...]
    source: Path  # the file it was read from
    schedule: Schedule | None = None  # None: run by hand only
    blackouts: tuple[Blackout, ...] = ()
    preflight: tuple[Preflight, ...] = ()
    abort: tuple[AbortCondition, ...] = ()
    notifications: tuple[Notification, ...] = ()
    grafana: Grafana | None = None
    prometheus_url: str | None = None  # default for preflight checks and abort conditions
    description: str = ""


def load(path: Path) -> GameDay:
    """The game day in ``path`` (YAML or JSON), or ``InvalidInput`` naming the field and the fix.

    Every experiment it lists must exist and pass ``chaosmesh validate``'s checks."""
    from chaosmesh_py.gameday.loader import read_gameday

    return read_gameday(path)


# Hours, minutes, seconds, each optional but in this order, at least one; seconds may be decimal.
_DURATION = re.compile(r"(?=[0-9])(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+(?:\.[0-9]+)?)s)?")
DURATION_FIX = "write a duration such as 30s, 10m or 1h30m"
MAX_DURATION_S = 366 * 24 * 3600.0  # nothing in a game day waits longer; and inf stays out


def parse_duration(text: str, field: str) -> float:
    """Seconds in a duration written ``30s``, ``10m``, ``1h30m`` or ``1.5s``, or ``InvalidInput``
    naming ``field``."""
    match = _DURATION.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise InvalidInput(field, f"{shown(text)} is not a duration", DURATION_FIX)
    hours, minutes, seconds = (float(part) if part else 0.0 for part in match.groups())
    total = hours * 3600 + minutes * 60 + seconds
    if total > MAX_DURATION_S:
        raise InvalidInput(field, f"{shown(text)} is longer than a year", DURATION_FIX)
    return total


def format_duration(seconds: float) -> str:
    """A duration as the file writes it: ``1h30m``, ``4m7s`` (whole seconds)."""
    hours, rest = divmod(int(seconds), 3600)
    minutes, whole = divmod(rest, 60)
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "")
    return text + f"{whole}s" if whole or not text else text
