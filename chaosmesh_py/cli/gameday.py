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


def _claim_name(_: click.Context, __: click.Parameter, value: str | None) -> str | None:
    from chaosmesh_py.errors import InvalidInput
    from chaosmesh_py.kube import names

    if value is not None and not names.is_resource_name(value):
        raise click.BadParameter(
            str(
                InvalidInput(
                    "--results-claim",
                    f"{value!r} is not a PersistentVolumeClaim name",
                    "lowercase letters, digits, '-' and '.', e.g. gameday-results",
                )
            )
        )
    return value


def _image(_: click.Context, __: click.Parameter, value: str | None) -> str | None:
    if value is not None and (not value or any(c.isspace() for c in value)):
        raise click.BadParameter(
            f"{value!r} is not an image reference, e.g. registry.example.com/chaosmesh-py:0.1.0"
        )
    return value


def _assignments(_: click.Context, __: click.Parameter, values: tuple[str, ...]) -> dict[str, str]:
    assigned = {}
    for value in values:
        name, equals, text = value.partition("=")
        if not equals or not name:
            raise click.BadParameter(f"{value!r} is not NAME=VALUE, e.g. BOOKINFO_NAMESPACE=shop")
        assigned[name] = text
    return assigned


@gameday.command()
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option(
    "-o",
    "--output",
    "directory",
    required=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="the directory to write the manifests to (created if absent)",
)
@click.option(
    "--image",
    default=None,
    callback=_image,
    help="the chaosmesh image the CronJob runs (build deploy/Dockerfile and push it; "
    "default chaosmesh-py:VERSION)",
)
@click.option(
    "--results-claim",
    default=None,
    callback=_claim_name,
    help="an existing PersistentVolumeClaim for the results; without it, one is rendered",
)
@click.option(
    "--env",
    "environment",
    multiple=True,
    metavar="NAME=VALUE",
    callback=_assignments,
    help="a plain (not secret) variable for the pod, e.g. the namespace an experiment's "
    "configuration reads from the environment; the RBAC follows it. Repeatable",
)
def render(
    file: Path,
    directory: Path,
    image: str | None,
    results_claim: str | None,
    environment: dict[str, str],
) -> None:
    """Write the manifests that run the game day FILE in its namespace, on its schedule.

    A CronJob (the schedule and timezone of FILE, one run at a time, never retried by
    Kubernetes, a deadline derived from the experiments), a ServiceAccount with the least
    RBAC the experiments' activities need (derived from them: an activity whose needs are
    unknown is refused), the game day and its experiments as a ConfigMap, a volume for the
    results. Apply them with `kubectl apply -f DIR`; the namespace must exist. Secrets the
    game day reads (notification URLs, Grafana's token) come from a Secret NAME-env that you
    create: render prints how, and never writes a secret itself.
    """
    from chaosmesh_py.gameday import environment as environments
    from chaosmesh_py.gameday import render as rendering
    from chaosmesh_py.gameday import suite

    gameday = suite.load(file)
    files = rendering.render(gameday, image, results_claim, environment)  # all, before writing
    for path in rendering.write(files, directory):
        click.echo(f"wrote {path}")
    for line in environments.secret_instructions(gameday, environment):
        click.echo(line)
    overlap = rendering.overlap_warning(gameday)
    if overlap is not None:
        click.echo(f"warning: {overlap}", err=True)
    click.echo(f"apply with: kubectl apply -f {directory}")
