"""The ``chaosmesh`` command: a thin layer over the package's modules.

    chaosmesh validate EXPERIMENT...   Chaos Toolkit's own validation, plus every chaosmesh
                                       activity's argument values (exit 0 valid, 2 invalid)
    chaosmesh local up|down|status     the local mesh: Istio API, real Envoy, Bookinfo
    chaosmesh gate PATH...             run experiments / grade journals honestly, for CI
                                       (exit 0 pass, 1 fail, 2 invalid input, 3 rollback
                                       incomplete)

``chaos validate`` checks argument names only; a percentage of 101 passes it. This command
runs the same checks ``chaos run`` makes through the control before the first injection.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click


@click.group()
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
    help="pass runs whose faults could not be seen live (a cluster without verify_url)",
)
def gate(
    paths: tuple[Path, ...],
    junit: Path | None,
    json_report: Path | None,
    journal_dir: Path,
    allow_unverified: bool,
) -> None:
    """Run experiments and/or grade journals; pass only runs that really passed.

    Each PATH is an experiment (run with `chaos run --rollback-strategy always`, the chaosmesh
    control forced on, a journal per experiment) or a journal.json (graded as it is), told
    apart by content. A run passes only if the steady state held before and after (and during,
    when probed), every method activity succeeded, every chaosmesh fault was seen live, and
    every rollback completed. Nothing runs when any input is invalid.

    \b
    Exit status, the first that applies:
      3  rollback incomplete: something may still be in place
      1  fail: some run did not pass
      2  invalid input: no experiment was run
      0  every input passed
    """
    import shutil

    from chaosmesh_py import gate as gating

    results = gating.gate(paths, journal_dir, allow_unverified)
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


@main.group()
def local() -> None:
    """The local mesh: an Istio API and a real Envoy with Bookinfo, on this machine."""


_state_dir = click.option(
    "--state-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="where the mesh keeps its state (default: CHAOSMESH_STATE_DIR, else "
    "~/.local/state/chaosmesh/local)",
)
_kubeconfig = click.option(
    "--kubeconfig",
    type=click.Path(path_type=Path),
    default=None,
    help="the kubeconfig to add the chaosmesh-local context to "
    "(default: KUBECONFIG or ~/.kube/config)",
)


def _options(state_dir: Path | None, kubeconfig_path: Path | None, **extra: Any) -> Any:
    from chaosmesh_py.local import kubeconfig, lifecycle

    return lifecycle.Options(
        state_dir=state_dir or lifecycle.default_state_dir(),
        kubeconfig=kubeconfig_path or kubeconfig.default_path(),
        **extra,
    )


@local.command()
@_state_dir
@_kubeconfig
@click.option(
    "--crds",
    type=click.Path(path_type=Path, exists=True),
    multiple=True,
    help="Istio CRD file(s) to validate against (default: CHAOSMESH_ISTIO_CRDS or ../shared/istio)",
)
@click.option(
    "--api-port", type=int, default=0, help="the Kubernetes API's port (default: any free)"
)
@click.option(
    "--ingress-port", type=int, default=None, help="the ingress gateway's port (default: any free)"
)
def up(
    state_dir: Path | None,
    kubeconfig: Path | None,
    crds: tuple[Path, ...],
    api_port: int,
    ingress_port: int | None,
) -> None:
    """Start the local mesh in the background (harmless when it already runs)."""
    from chaosmesh_py.local import lifecycle

    options = _options(
        state_dir,
        kubeconfig,
        crds=crds or lifecycle.default_crds(),
        api_port=api_port,
        ingress_port=ingress_port,
    )
    try:
        started = lifecycle.up(options)
    except lifecycle.LocalMeshError as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"local mesh up: context {started['context']} -> {started['api_url']}")
    click.echo(f"ingress: {started['ingress_url']}/productpage")


@local.command()
@_state_dir
@_kubeconfig
def down(state_dir: Path | None, kubeconfig: Path | None) -> None:
    """Stop every process of the local mesh and remove its files and kubeconfig context."""
    from chaosmesh_py.local import lifecycle

    stopped = lifecycle.down(_options(state_dir, kubeconfig))
    click.echo(
        "local mesh down" + (f" (stopped pid {stopped[0]})" if stopped else ": was not running")
    )


@local.command()
@_state_dir
@click.option("--json", "as_json", is_flag=True, help="print the status as JSON")
def status(state_dir: Path | None, as_json: bool) -> None:
    """Say whether the local mesh runs, and where each part is. Exit 1 when it does not run."""
    import json

    from chaosmesh_py.local import lifecycle

    running = lifecycle.status(state_dir or lifecycle.default_state_dir())
    if as_json:
        click.echo(json.dumps(running or {"running": False}, indent=2))
    elif running is None:
        click.echo("local mesh: not running")
    else:
        click.echo(f"local mesh: running (pid {running['pid']})")
        click.echo(f"  kubernetes API  {running['api_url']}  (context {running['context']})")
        click.echo(f"  ingress         {running['ingress_url']}")
        click.echo(f"  envoy admin     {running['envoy_admin_url']}")
        for name, service in running["services"].items():
            click.echo(f"  {name:<15} {service.get('url', service['host'])}")
    sys.exit(0 if running else 1)


# Clean-up commands. Exit status: 0 nothing of what was asked is left, 3 something may still be
# in place (the report says what and why), 2 invalid input.

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


@main.command()
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
    from chaosmesh_py import cleanup, ledger

    if (run_id is None) == (not every_run):
        _invalid("give exactly one of --run ID or --all")
    directory = ledger_dir or ledger.default_dir()
    run_ids = [run_id] if run_id is not None else cleanup.pending_runs(directory)
    reports = {}
    with _cleanup_errors():
        kube = _connect(context)
        for each in run_ids:
            reports[each] = cleanup.roll_back_run(kube, directory, each)
    _finish(reports, as_json, "rollback")


@main.command()
@_namespaces
@_context
@_istio_version
@_as_json
def halt(
    namespaces: tuple[str, ...], context: str | None, istio_api_version: str, as_json: bool
) -> None:
    """Remove every owned fault, of every run, now: the button for an incident."""
    from chaosmesh_py import cleanup
    from chaosmesh_py.kube import virtual_service_kind

    with _cleanup_errors():
        kube = _connect(context)
        report = cleanup.halt(kube, virtual_service_kind(istio_api_version), namespaces or None)
    _finish({"halt": report}, as_json, "halt")


@main.command()
@_namespaces
@_context
@_istio_version
@_as_json
def reap(
    namespaces: tuple[str, ...], context: str | None, istio_api_version: str, as_json: bool
) -> None:
    """Remove every owned fault whose expiry has passed (no ledger needed): run it on a
    schedule, as deploy/'s CronJob does."""
    from chaosmesh_py import cleanup
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
        from chaosmesh_py.cleanup import format_report

        if not reports:
            click.echo(f"{verb}: nothing to do")
        for name, report in reports.items():
            click.echo(format_report(name if verb == "rollback" else verb, report))
    sys.exit(0 if complete else 3)
