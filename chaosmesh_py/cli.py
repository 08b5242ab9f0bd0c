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
    from chaoslib.configuration import load_configuration
    from chaoslib.exceptions import ChaosException
    from chaoslib.experiment import ensure_experiment_is_valid
    from chaoslib.loader import load_experiment

    from chaosmesh_py.control import argument_problems

    failed = False
    for path in experiments:
        try:
            experiment = load_experiment(str(path))
            ensure_experiment_is_valid(experiment)
            configuration = load_configuration(experiment.get("configuration", {}))
        except ChaosException as error:
            click.echo(f"{path}: invalid: {error}", err=True)
            failed = True
            continue
        problems = argument_problems(experiment, configuration)
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
