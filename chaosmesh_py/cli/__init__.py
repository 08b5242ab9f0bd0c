"""The ``chaosmesh`` command: a thin layer over the package's modules.

    chaosmesh validate EXPERIMENT...   Chaos Toolkit's own validation, plus every chaosmesh
                                       activity's argument values (exit 0 valid, 2 invalid)
    chaosmesh gate PATH...             run experiments / grade journals honestly, for CI
                                       (exit 0 pass, 1 fail, 2 invalid input, 3 rollback
                                       incomplete)
    chaosmesh rollback|halt|reap       remove owned edits (``chaosmesh_py.cli.cleanup``)
    chaosmesh gameday ...              scheduled game days (``chaosmesh_py.cli.gameday``)
    chaosmesh report PATH... -o FILE   one self-contained HTML report (``chaosmesh_py.cli.report``)
    chaosmesh policy report            what the mesh's timeouts and retries predict, per edge and
                                       path (``chaosmesh_py.cli.policy``)
    chaosmesh local up|down|status     the local mesh (``chaosmesh_py.localmesh.cli``)
    chaosmesh examples                 the experiments that ship with the package

``chaos validate`` checks argument names only; a percentage of 101 passes it. This command
runs the same checks ``chaos run`` makes through the control before the first injection.

Each command module imports what it needs inside the command, so ``chaosmesh --help`` stays
fast. The local mesh's commands are the only door from here into ``chaosmesh_py.localmesh``.

Exit status, for every command: besides each command's own (above), 2 for any input it cannot
use, with a message naming the fix (an ``InvalidInput`` raised anywhere below ends here); 70
(EX_SOFTWARE) for an internal error, a bug: one line saying so, the traceback only with
``CHAOSMESH_DEBUG=1``. A user never sees a traceback for their input.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from chaosmesh_py import __version__

EXIT_INVALID_INPUT = 2
EXIT_INTERNAL_ERROR = 70  # sysexits.h EX_SOFTWARE
DEBUG_ENV = "CHAOSMESH_DEBUG"


class _Commands(click.Group):
    """The one place where errors that escape a command become an exit status and a line."""

    def invoke(self, ctx: click.Context) -> Any:
        from chaosmesh_py.errors import ChaosMeshError, InvalidInput, shorten

        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise  # click's own: usage errors exit 2 with the option named
        except InvalidInput as error:
            click.echo(f"error: {error}", err=True)
            ctx.exit(EXIT_INVALID_INPUT)
        except ChaosMeshError as error:
            click.echo(f"error: {error}", err=True)
            ctx.exit(1)
        except Exception as error:
            if os.environ.get(DEBUG_ENV):
                import traceback

                traceback.print_exc()
            one_line = shorten(" ".join(str(error).split()))
            click.echo(
                f"chaosmesh: internal error, a bug in chaosmesh (not in your input): "
                f"{type(error).__name__}: {one_line}. Please report it; "
                f"{DEBUG_ENV}=1 shows the traceback",
                err=True,
            )
            ctx.exit(EXIT_INTERNAL_ERROR)


@click.group(cls=_Commands)
@click.version_option(__version__, prog_name="chaosmesh")
def main() -> None:
    """Istio-native chaos engineering for Chaos Toolkit."""


@main.command()
@click.argument("experiments", nargs=-1, required=True, type=click.Path(path_type=Path))
def validate(experiments: tuple[Path, ...]) -> None:
    """Check experiments without running them: structure, and chaosmesh argument values."""
    from chaosmesh_py.experiment import validation_problems

    failed = False
    for path in experiments:
        problems = validation_problems(path)
        for problem in problems:
            click.echo(f"{path}: {problem}", err=True)
        failed = failed or bool(problems)
        if not problems:
            click.echo(f"{path}: valid")
    sys.exit(2 if failed else 0)


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--junit",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="write a JUnit XML report here: one testcase per input",
)
@click.option(
    "--json",
    "json_report",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="write the verdicts here as a JSON list",
)
@click.option(
    "--journal-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("chaosmesh-journals"),
    show_default=True,
    help="where each experiment's journal (NAME.journal.json) and log (NAME.log) go",
)
@click.option(
    "--allow-unverified",
    is_flag=True,
    help="pass runs whose faults could not be seen live or counted (a cluster without "
    "verify_url or chaosmesh_prometheus_url); a fault counted at 0 hits still fails",
)
@click.option(
    "--allow-no-fault",
    is_flag=True,
    help="pass runs that inject no chaosmesh fault (their faults come from another extension)",
)
def gate(
    paths: tuple[Path, ...],
    *,
    junit: Path | None,
    json_report: Path | None,
    journal_dir: Path,
    allow_unverified: bool,
    allow_no_fault: bool,
) -> None:
    """Run experiments and/or grade journals; pass only runs that really passed.

    Each PATH is an experiment (run with `chaos run --rollback-strategy always`, the chaosmesh
    control forced on, a journal per experiment) or a journal.json (graded as it is), told
    apart by content. A run passes only if the steady state held before and after (and during,
    when probed), every method activity succeeded, the method injected a chaosmesh fault, every
    chaosmesh fault was seen live and hit real requests, and every rollback completed. Nothing
    runs when any input is invalid.

    \b
    Exit status, the first that applies:
      3  rollback incomplete: something may still be in place
      1  fail: some run did not pass
      2  invalid input: no experiment was run
      0  every input passed
    """
    import shutil

    from chaosmesh_py.engine.private_file import check_creatable
    from chaosmesh_py.verdict import gate as gating

    for report, option in ((junit, "--junit"), (json_report, "--json")):
        if report is not None:
            check_creatable(report, option)  # before any run, not after
    waivers = gating.Waivers(allow_unverified=allow_unverified, allow_no_fault=allow_no_fault)
    results = gating.gate(paths, journal_dir, waivers)
    click.echo(gating.format_table(results, shutil.get_terminal_size((120, 24)).columns))
    if junit:
        gating.write_junit(results, junit)
    if json_report:
        gating.write_json(results, json_report)
    try:
        gating.raise_for(results)
    except gating.GateError as error:
        click.echo(str(error))
        sys.exit(error.exit_code)
    click.echo(f"gate: PASS ({gating.summarize(results)})")


@main.command()
@click.option("--dir", "only_dir", is_flag=True, help="print only their directory (for scripts)")
def examples(only_dir: bool) -> None:
    """List the experiments that ship with the package, and where they are.

    \b
    Against the local mesh (after `chaosmesh local up`, with the variables it prints):
      chaos run "$(chaosmesh examples --dir)/bookinfo-ratings-delay.json"
      chaosmesh gate "$(chaosmesh examples --dir)"/bookinfo-ratings-{delay,abort}.json
    """
    import json

    from chaosmesh_py import packaged

    directory = packaged.examples_dir()
    if only_dir:
        click.echo(str(directory))
        return
    click.echo(f"experiments in {directory}:")
    for path in packaged.experiments():
        title = json.loads(path.read_text()).get("title", "")
        click.echo(f"  {path.name:<44} {title}")
    manifests = ", ".join(str(p.relative_to(directory)) for p in packaged.bookinfo_manifests())
    click.echo(f"Bookinfo's routing they start from: {manifests} (the local mesh loads them)")


def _register() -> None:
    from chaosmesh_py.cli import cleanup, gameday, policy, report, security
    from chaosmesh_py.localmesh.cli import local

    commands = (
        cleanup.rollback,
        cleanup.halt,
        cleanup.reap,
        gameday.gameday,
        report.report,
        policy.policy,
        security.security,
        local,
    )
    for command in commands:
        main.add_command(command)


_register()
