"""``chaosmesh gameday validate | run | render | pause | resume``: scheduled game days.

The commands are thin: the game day itself lives in ``chaosmesh_py.gameday``.
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

import click


@click.group()
def gameday() -> None:
    """Scheduled game days: a suite of experiments on a schedule, safe to fire twice."""


@gameday.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--next",
    "count",
    type=click.IntRange(0, 1000),
    default=5,
    show_default=True,
    help="how many upcoming runs to show",
)
@click.option(
    "--from",
    "start",
    default=None,
    metavar="ISO-8601",
    help="show runs after this time instead of now (without an offset: the schedule's zone)",
)
def validate(file: Path, count: int, start: str | None) -> None:
    """Check a game-day file and show its next runs as the cluster will make them.

    Every experiment it lists is checked as `chaosmesh validate` checks it. The next runs are
    shown in the schedule's zone and in UTC, with each start's jitter; a run a blackout skips
    shows the reason, and a clock change shows what Kubernetes does (no run for a time the
    clocks skip, two for a time they repeat).

    \b
    Exit status: 0 valid, 2 invalid (the line names the field and the fix).
    """
    from chaosmesh_py.errors import InvalidInput
    from chaosmesh_py.gameday import upcoming
    from chaosmesh_py.gameday.loader import notes
    from chaosmesh_py.gameday.suite import load

    try:
        gameday = load(file)
        after = _start(start, gameday.schedule.timezone if gameday.schedule else "UTC")
    except InvalidInput as error:
        click.echo(f"{file}: invalid: {error}", err=True)
        sys.exit(2)
    click.echo(f"{file}: valid")
    for line in upcoming.describe(gameday):
        click.echo(line)
    for note in notes(gameday):
        click.echo(f"note: {note}")
    if gameday.schedule is None or count == 0:
        return
    runs = upcoming.upcoming(gameday, after, count)
    shown = sum(isinstance(run, upcoming.Run) for run in runs)
    click.echo(f"next {shown} runs after {after:%Y-%m-%d %H:%M %Z}:")
    for line in upcoming.format_runs(runs):
        click.echo(f"  {line}")


def _start(text: str | None, timezone: str) -> datetime:
    from zoneinfo import ZoneInfo

    from chaosmesh_py.errors import InvalidInput

    if text is None:
        return datetime.now(ZoneInfo(timezone))
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(
            "--from",
            f"{text!r} is not an ISO-8601 time",
            "e.g. 2026-03-27T12:00 or 2026-03-27T12:00+01:00",
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=ZoneInfo(timezone))


@gameday.command()
def schema() -> None:
    """Print the game-day file's JSON Schema (draft 2020-12), for editors and CI."""
    import json

    from chaosmesh_py.gameday.schema import schema as published

    click.echo(json.dumps(published(), indent=2))
