"""``chaosmesh rollback | halt | reap``: remove owned edits from outside the run.

Exit status: 0 nothing of what was asked is left, 3 something may still be in place (the report
says what and why), 2 invalid input.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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
    help="the networking.istio.io version the cluster serves",
)
_namespaces = click.option(
    "--namespace",
    "-n",
    "namespaces",
    multiple=True,
    help="only this namespace (repeatable; default: all, which needs cluster-wide list)",
)
_as_json = click.option("--json", "as_json", is_flag=True, help="print the report as JSON")


@click.command()
@click.option("--run", "run_id", default=None, help="the run to roll back")
@click.option("--all", "every_run", is_flag=True, help="every run whose rollback is unfinished")
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
    run_id: str | None,
    every_run: bool,
    ledger_dir: Path | None,
    context: str | None,
    as_json: bool,
) -> None:
    """Remove what a run injected and left in place, from its ledger on this machine.

    Works after the run was killed (even with kill -9) and while it still runs; safe to repeat.
    """
    from chaosmesh_py.engine import cleanup, ledger

    if (run_id is None) == (not every_run):
        _invalid("give exactly one of --run ID or --all")
    directory = ledger_dir or ledger.default_dir()
    try:
        directory.is_dir()
    except OSError as error:  # a name too long, a loop of links
        _invalid(f"--ledger-dir: {directory} cannot be read: {error.strerror}")
    run_ids = [run_id] if run_id is not None else cleanup.pending_runs(directory)
    reports = {}
    with _cleanup_errors():
        kube = _connect(context)
        for each in run_ids:
            reports[each] = cleanup.roll_back_run(kube, directory, each)
    _finish(reports, as_json, "rollback")


@click.command()
@_namespaces
@_context
@_istio_version
@_as_json
def halt(
    namespaces: tuple[str, ...], context: str | None, istio_api_version: str, as_json: bool
) -> None:
    """Remove every owned fault, of every run, now: the button for an incident."""
    from chaosmesh_py.engine import cleanup
    from chaosmesh_py.kube import virtual_service_kind

    with _cleanup_errors():
        kube = _connect(context)
        report = cleanup.halt(kube, virtual_service_kind(istio_api_version), namespaces or None)
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
    from chaosmesh_py.engine import cleanup
    from chaosmesh_py.kube import virtual_service_kind

    with _cleanup_errors():
        kube = _connect(context)
        report = cleanup.reap(kube, virtual_service_kind(istio_api_version), namespaces or None)
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


def _invalid(message: str) -> None:
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
