"""``chaosmesh gameday validate | run | render | pause | resume | status``: scheduled game days.

The commands are thin: the game day itself lives in ``chaosmesh_py.gameday``.
"""

from __future__ import annotations

import shutil
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


_context = click.option(
    "--context",
    default=None,
    help="the kubeconfig context to use (default: KUBERNETES_CONTEXT, else the current one); "
    "credentials otherwise resolve as for chaostoolkit-kubernetes",
)


@gameday.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--results",
    "results_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("chaosmesh-results"),
    show_default=True,
    help="where the run directory goes: RESULTS/<game day>/<slot id>/",
)
@click.option("--no-jitter", is_flag=True, help="start at once, without the slot's jitter")
@click.option(
    "--ignore-blackouts",
    is_flag=True,
    help="run even in a blackout (say, on a throwaway local mesh); the summary names it",
)
@click.option(
    "--json",
    "json_copy",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="also write the summary (gameday.json) here",
)
@click.option(
    "--junit",
    "junit_copy",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="also write the JUnit XML report here",
)
@click.option(
    "--allow-unverified",
    is_flag=True,
    help="as chaosmesh gate's: pass runs whose faults could not be seen live or counted",
)
@click.option(
    "--allow-no-fault",
    is_flag=True,
    help="as chaosmesh gate's: pass runs that inject no chaosmesh fault",
)
@_context
def run(
    file: Path,
    *,
    results_dir: Path,
    no_jitter: bool,
    ignore_blackouts: bool,
    json_copy: Path | None,
    junit_copy: Path | None,
    allow_unverified: bool,
    allow_no_fault: bool,
    context: str | None,
) -> None:
    """Run the game day in FILE now: its experiments in order, each graded as chaosmesh gate
    grades it, safe to start twice for one slot.

    \b
    Skipped (exit 0, "skipped: <reason>", recorded in the game day's history): a blackout,
    the pause switch, a preflight check, another runner holding the game day's Lease, the
    slot already run.
    \b
    Exit status otherwise, as chaosmesh gate's:
      3  rollback incomplete: something may still be in place
      1  fail, or stopped by the pause switch or an abort condition
      2  invalid input: nothing was run, nothing recorded
      0  every experiment passed
    """
    from chaosmesh_py.engine.private_file import check_creatable
    from chaosmesh_py.gameday import runner
    from chaosmesh_py.gameday.suite import load
    from chaosmesh_py.kube import Kube
    from chaosmesh_py.verdict import gate as gating

    for report, option in ((junit_copy, "--junit"), (json_copy, "--json")):
        if report is not None:
            check_creatable(report, option)
    gameday_file = load(file)
    options = runner.Options(
        results_dir=results_dir,
        jitter=not no_jitter,
        ignore_blackouts=ignore_blackouts,
        waivers=gating.Waivers(allow_unverified=allow_unverified, allow_no_fault=allow_no_fault),
    )
    game = runner.run_gameday(
        gameday_file,
        options,
        lambda: Kube.connect({"KUBERNETES_CONTEXT": context} if context else None),
    )
    summary = game.summary
    if game.results:
        click.echo(gating.format_table(game.results, shutil.get_terminal_size((120, 24)).columns))
    if json_copy is not None:
        runner.write_summary(summary, json_copy, "--json")
    if junit_copy is not None and game.results:
        gating.write_junit(game.results, junit_copy)
    click.echo(runner.verdict_line(summary))
    sys.exit(runner.EXIT_CODES[summary["outcome"]])


def _name(_: click.Context, __: click.Parameter, value: str) -> str:
    from chaosmesh_py.kube.names import is_namespace

    if not is_namespace(value):  # a game day's name is a DNS label, as a namespace's
        raise click.BadParameter(
            f"{value!r} is not a game-day name: at most 63 lower-case letters, digits and '-', "
            "starting and ending alphanumeric (the name: field of its file)"
        )
    return value


def _namespace(_: click.Context, __: click.Parameter, value: str) -> str:
    from chaosmesh_py.kube.names import NAMESPACE_RULE, is_namespace

    if not is_namespace(value):
        raise click.BadParameter(f"{value!r} is not a namespace name: use {NAMESPACE_RULE}")
    return value


_gameday_name = click.argument("name", callback=_name)
_gameday_namespace = click.option(
    "--namespace",
    "-n",
    required=True,
    callback=_namespace,
    help="the game day's namespace (the namespace: field of its file)",
)


@gameday.command()
@_gameday_name
@_gameday_namespace
@click.option("--reason", default="", help="why, for the record and whoever runs it next")
@_context
def pause(name: str, namespace: str, reason: str, context: str | None) -> None:
    """Pause the game day NAME: a run in progress rolls back its running experiment and starts
    no other (within about 2 s); later runs are skipped until `resume`."""
    from chaosmesh_py.gameday import runner
    from chaosmesh_py.kube import Kube

    kube = Kube.connect({"KUBERNETES_CONTEXT": context} if context else None)
    state = runner.set_pause(kube, namespace, name, reason)
    assert state.pause is not None
    click.echo(
        f"gameday {namespace}/{name}: paused by {state.pause.by} at {state.pause.at}"
        + (f" ({reason})" if reason else "")
    )


@gameday.command()
@_gameday_name
@_gameday_namespace
@_context
def resume(name: str, namespace: str, context: str | None) -> None:
    """Resume the game day NAME: the next run (scheduled or by hand) runs again."""
    from chaosmesh_py.gameday import runner
    from chaosmesh_py.kube import Kube

    kube = Kube.connect({"KUBERNETES_CONTEXT": context} if context else None)
    runner.set_pause(kube, namespace, name, None)
    click.echo(f"gameday {namespace}/{name}: resumed")


@gameday.command()
@_gameday_name
@_gameday_namespace
@click.option(
    "--last",
    type=click.IntRange(min=1, max=200),
    default=10,
    show_default=True,
    help="how many of the latest slot records to show",
)
@click.option("--json", "as_json", is_flag=True, help="the same as JSON, for machines")
@_context
def status(name: str, namespace: str, last: int, as_json: bool, context: str | None) -> None:
    """What the cluster records of the game day NAME: the pause switch, who runs it now (its
    Lease), and its latest slots (passed, failed, skipped and why, missed, run twice)."""
    import json

    from chaosmesh_py.gameday.lease import current_holder
    from chaosmesh_py.gameday.state import GameDayState
    from chaosmesh_py.kube import Kube

    kube = Kube.connect({"KUBERNETES_CONTEXT": context} if context else None)
    state = GameDayState(kube, namespace, name).read()
    held = current_holder(kube, namespace, name)
    records = state.slots[-last:]
    if as_json:
        document = {
            "gameday": name,
            "namespace": namespace,
            "pause": state.pause.to_json() if state.pause else None,
            "lease": None
            if held is None
            else {
                "holder": held[0].identity,
                "acquired": held[0].acquired,
                "renewed": held[0].renewed,
                "expired": held[1],
            },
            "slots": [record.to_json() for record in records],
        }
        click.echo(json.dumps(document, indent=2))
        return
    click.echo(f"gameday {namespace}/{name}")
    if state.pause is None:
        click.echo("  not paused")
    else:
        why = f" ({state.pause.reason})" if state.pause.reason else ""
        click.echo(f"  paused by {state.pause.by} at {state.pause.at}{why}")
    if held is None:
        click.echo("  not running (nobody holds its Lease)")
    elif held[1]:
        click.echo(f"  not running: the Lease of {held[0]} expired (a runner that died?)")
    else:
        click.echo(f"  running: {held[0]}")
    if not records:
        click.echo("  no slot recorded yet")
        return
    click.echo(f"  latest {len(records)} of {len(state.slots)} slot record(s):")
    for record in records:
        reason = f"  {record.reason}" if record.reason else ""
        click.echo(
            f"    {record.slot_id:<30} {record.outcome:<20} {record.runner:<24} "
            f"{record.recorded}{reason}"
        )


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
