"""``chaosmesh rollback | halt | reap``: remove owned edits from outside the run.

Exit status: 0 nothing of what was asked is left, 3 something may still be in place (the report
says what and why), 2 invalid input (a ``--run`` that is no run id, a ``-n`` that is no namespace
name: refused before anything is read or written).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import click

_context = click.option(
    "--context",
    default=None,
    help="the kubeconfig context to use (default: KUBERNETES_CONTEXT, else the current one); "
    "credentials otherwise resolve as for chaostoolkit-kubernetes",
)
_istio_version = click.option(
    "--istio-api-version",
    type=click.Choice(["v1", "v1beta1", "v1alpha3"]),
    default="v1",
    show_default=True,
    help="the networking.istio.io version the cluster serves (security.istio.io: v1 with v1, "
    "else v1beta1)",
)


def _checked_namespaces(
    _: click.Context, __: click.Parameter, values: tuple[str, ...]
) -> tuple[str, ...]:
    from chaosmesh_py.errors import InvalidInput
    from chaosmesh_py.kube.names import parse_namespace

    try:
        return tuple(parse_namespace(value, "-n/--namespace") for value in values)
    except InvalidInput as error:
        _invalid(str(error))


def _checked_run_id(_: click.Context, parameter: click.Parameter, value: str | None) -> str | None:
    from chaosmesh_py.engine.run import parse_run_id
    from chaosmesh_py.errors import InvalidInput

    try:
        return None if value is None else parse_run_id(value, parameter.opts[0])
    except InvalidInput as error:
        _invalid(str(error))


_namespaces = click.option(
    "--namespace",
    "-n",
    "namespaces",
    multiple=True,
    callback=_checked_namespaces,
    help="only this namespace (repeatable; default: all, which needs cluster-wide list)",
)
_as_json = click.option("--json", "as_json", is_flag=True, help="print the report as JSON")


@click.command()
@click.option(
    "--run", "run_id", default=None, callback=_checked_run_id, help="the run to roll back"
)
@click.option("--all", "every_run", is_flag=True, help="every run whose rollback is unfinished")
@click.option(
    "--forget",
    "forget_id",
    default=None,
    metavar="RUN",
    callback=_checked_run_id,
    help="close RUN's ledger without removing anything (its API is gone for good), printing "
    "what may remain and where",
)
@click.option(
    "--ledger-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="where the ledgers are (default: CHAOSMESH_LEDGER_DIR, else "
    "~/.local/state/chaosmesh/ledger)",
)
@_context
@_as_json
def rollback(
    *,
    run_id: str | None,
    every_run: bool,
    forget_id: str | None,
    ledger_dir: Path | None,
    context: str | None,
    as_json: bool,
) -> None:
    """Remove what a run injected and left in place, from its ledger on this machine.

    Works after the run was killed (even with kill -9) and while it still runs; safe to repeat.
    A run whose local mesh is gone (taken down: its state went with it) is closed with that
    reason. --forget closes a ledger by hand, e.g. for a cluster that no longer exists.
    """
    from chaosmesh_py.engine import cleanup, ledger

    if sum(1 for chosen in (run_id, forget_id, every_run or None) if chosen) != 1:
        _invalid("give exactly one of --run ID, --all or --forget ID")
    directory = ledger_dir or ledger.default_dir()
    try:
        directory.is_dir()
    except OSError as error:  # a name too long, a loop of links
        _invalid(f"--ledger-dir: {directory} cannot be read: {error.strerror}")
    if forget_id is not None:
        with _cleanup_errors():
            _forgotten(cleanup.forget_run(directory, forget_id), as_json)
        return
    if every_run:
        for name in cleanup.foreign_ledger_files(directory):
            click.echo(
                f"note: {directory / name} is not a ledger of this release (no run id, or a "
                "link elsewhere): not read; halt and reap remove what its run left, by record",
                err=True,
            )
    run_ids = [run_id] if run_id is not None else cleanup.pending_runs(directory)
    reports = {}
    with _cleanup_errors():
        kube = _connect(context)
        for each in run_ids:
            reports[each] = cleanup.roll_back_run(kube, directory, each)
    _finish(reports, as_json, "rollback")


def _forgotten(summary: dict[str, Any], as_json: bool) -> None:
    import json

    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    state = "was already closed" if summary["already_closed"] else "is closed"
    click.echo(f"run {summary['run_id']}: its ledger {state} ({summary['closed']})")
    if not summary["may_remain"]:
        click.echo("  nothing was recorded as applied")
    for entry in summary["may_remain"]:
        what = [*entry["routes"], *entry["fields"]] + (["the object"] if entry["object"] else [])
        click.echo(
            f"  may remain at {entry['api']}: {entry['resource']}: {', '.join(what) or '(unknown)'}"
        )
    if summary["may_remain"]:
        click.echo("  chaosmesh halt / reap remove them by their records if that API comes back")


@click.command()
@_namespaces
@_context
@_istio_version
@_as_json
def halt(
    namespaces: tuple[str, ...], context: str | None, istio_api_version: str, as_json: bool
) -> None:
    """Remove everything every run holds, on every kind chaosmesh edits, now: the button for an
    incident. Only what a record names (or an orphan that proves itself ours) is removed."""
    from chaosmesh_py.engine import cleanup, kinds

    with _cleanup_errors():
        kube = _connect(context)
        report = cleanup.halt(kube, namespaces or None, kinds=kinds.sweep_kinds(istio_api_version))
    _finish({"halt": report}, as_json, "halt")


@click.command()
@_namespaces
@_context
@_istio_version
@_as_json
def reap(
    namespaces: tuple[str, ...], context: str | None, istio_api_version: str, as_json: bool
) -> None:
    """Remove every owned fault whose expiry has passed (no ledger needed): run it on a
    schedule, as deploy/'s CronJob does."""
    from chaosmesh_py.engine import cleanup, kinds

    with _cleanup_errors():
        kube = _connect(context)
        report = cleanup.reap(kube, namespaces or None, kinds=kinds.sweep_kinds(istio_api_version))
    _finish({"reap": report}, as_json, "reap")


def _connect(context: str | None) -> Any:
    from chaosmesh_py.kube import Kube

    return Kube.connect({"KUBERNETES_CONTEXT": context} if context else None)


@contextmanager
def _cleanup_errors() -> Iterator[None]:
    """Input errors exit 2; an API that cannot be reached or read exits 3: nothing is known
    to be removed."""
    from chaosmesh_py.errors import ChaosMeshError, InvalidInput

    try:
        yield
    except InvalidInput as error:
        _invalid(str(error))
    except ChaosMeshError as error:
        click.echo(f"error: {error}", err=True)
        click.echo("nothing is known to be removed; fix the above and run again", err=True)
        sys.exit(3)


def _invalid(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


def _finish(reports: dict[str, Any], as_json: bool, verb: str) -> None:
    import json

    complete = all(report.complete for report in reports.values())
    if as_json:
        click.echo(json.dumps({name: r.to_json() for name, r in reports.items()}, indent=2))
    else:
        from chaosmesh_py.engine.cleanup import format_report

        if not reports:
            click.echo(f"{verb}: nothing to do")
        for name, report in reports.items():
            click.echo(format_report(name if verb == "rollback" else verb, report))
    sys.exit(0 if complete else 3)
