"""``chaosmesh local up | down | status``: the local mesh's commands."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click


class _Refused(click.ClickException):
    """A user input we refuse (exit 2, as for every invalid input), nothing touched."""

    exit_code = 2


@click.group()
def local() -> None:
    """The local mesh: an Istio API and a real Envoy with Bookinfo, on this machine."""


_state_dir = click.option(
    "--state-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="where the mesh keeps its state (default: CHAOSMESH_STATE_DIR, else "
    "~/.local/state/chaosmesh/local)",
)
_kubeconfig = click.option(
    "--kubeconfig",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="the kubeconfig to add the chaosmesh-local context to "
    "(default: KUBECONFIG or ~/.kube/config)",
)


def _options(state_dir: Path | None, kubeconfig_path: Path | None, **extra: Any) -> Any:
    from chaosmesh_py.kube.credentials import read_kubeconfig
    from chaosmesh_py.localmesh import kubeconfig, lifecycle

    path = kubeconfig_path or kubeconfig.default_path()
    if path.exists():
        read_kubeconfig(str(path))  # InvalidInput before anything starts: the file is edited
    return lifecycle.Options(
        state_dir=state_dir or lifecycle.default_state_dir(),
        kubeconfig=path,
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
    "--api-port",
    type=click.IntRange(0, 65535),
    default=0,
    help="the Kubernetes API's port (default: any free)",
)
@click.option(
    "--ingress-port",
    type=click.IntRange(1, 65535),
    default=None,
    help="the ingress gateway's port (default: any free)",
)
@click.option(
    "--prometheus/--no-prometheus",
    default=True,
    help="run Prometheus beside the mesh, scraping its Istio metrics, when one is installed "
    "(CHAOSMESH_PROMETHEUS, else prometheus on PATH)  [default: --prometheus]",
)
@click.option(
    "--pod-start-delay",
    type=click.FloatRange(0, 300),
    default=None,
    help="seconds a new pod (a deleted pod's replacement, a replica added) takes to run, as a "
    "cluster's image start does  [default: 1.5]",
)
def up(
    *,
    state_dir: Path | None,
    kubeconfig: Path | None,
    crds: tuple[Path, ...],
    api_port: int,
    ingress_port: int | None,
    prometheus: bool,
    pod_start_delay: float | None,
) -> None:
    """Start the local mesh in the background (harmless when it already runs)."""
    from chaosmesh_py.errors import InvalidInput
    from chaosmesh_py.localmesh import lifecycle

    options = _options(
        state_dir,
        kubeconfig,
        crds=crds or lifecycle.default_crds(),
        api_port=api_port,
        ingress_port=ingress_port,
        prometheus=prometheus,
        pod_start_delay_s=pod_start_delay,
    )
    try:
        started = lifecycle.up(options)
    except InvalidInput as error:
        raise _Refused(str(error)) from error
    except lifecycle.LocalMeshError as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"local mesh up: context {started['context']} -> {started['api_url']}")
    click.echo(f"product page: {started['ingress_url']}/productpage")
    click.echo(_prometheus_line(started))
    _print_how_to_run(lifecycle.experiment_environment(started, options.kubeconfig))


def _prometheus_line(status: dict[str, Any]) -> str:
    prometheus = status.get("prometheus") or {}
    if not prometheus.get("url"):
        return f"prometheus: none ({prometheus.get('reason', 'not recorded')})"
    first = prometheus.get("first_scrape_s")
    scraped = f"first scrape after {first} s" if first is not None else "not scraped yet"
    every = prometheus.get("scrape_interval_s")
    return f"prometheus: {prometheus['url']} (scrapes the mesh every {every} s; {scraped})"


def _print_how_to_run(variables: dict[str, str]) -> None:
    import shlex

    from chaosmesh_py import packaged
    from chaosmesh_py.localmesh import lifecycle

    experiment = packaged.examples_dir() / packaged.DEMO_EXPERIMENT
    click.echo("run an experiment against it (`chaosmesh examples` lists those that ship):")
    click.echo(f"  export {lifecycle.shell_assignments(variables)}")
    click.echo(f"  chaos run {shlex.quote(str(experiment))}")


@local.command()
@_state_dir
@_kubeconfig
def down(state_dir: Path | None, kubeconfig: Path | None) -> None:
    """Stop every process of the local mesh and remove its files and kubeconfig context."""
    from chaosmesh_py.errors import InvalidInput
    from chaosmesh_py.localmesh import lifecycle

    try:
        stopped = lifecycle.down(_options(state_dir, kubeconfig))
    except InvalidInput as error:
        raise _Refused(str(error)) from error
    click.echo(
        "local mesh down" + (f" (stopped pid {stopped[0]})" if stopped else ": was not running")
    )


@local.command()
@_state_dir
@click.option("--json", "as_json", is_flag=True, help="print the status as JSON")
def status(state_dir: Path | None, as_json: bool) -> None:
    """Say whether the local mesh runs, and where each part is. Exit 1 when it does not run."""
    import json

    from chaosmesh_py.localmesh import lifecycle

    running = lifecycle.status(state_dir or lifecycle.default_state_dir())
    if as_json:
        click.echo(json.dumps(running or {"running": False}, indent=2))
    elif running is None:
        click.echo("local mesh: not running")
    else:
        click.echo(f"local mesh: running (pid {running['pid']})")
        click.echo(f"  kubernetes API  {running['api_url']}  (context {running['context']})")
        click.echo(f"  ingress         {running['ingress_url']}")
        click.echo(f"  envoy admin     {running['envoy_admin_socket']}  (owner-only socket)")
        click.echo(f"  metrics         {running['metrics_url']}")
        click.echo(f"  {_prometheus_line(running).replace(': ', '      ', 1)}")
        for name, service in running["services"].items():
            # Through the mesh; then as a client without a sidecar (kube-proxy, no routing).
            no_sidecar = service.get("no_sidecar_url")
            without = f"  (without a sidecar: {no_sidecar})" if no_sidecar else ""
            click.echo(f"  {name:<15} {service.get('url', service['host'])}{without}")
        for pod in running.get("pods", ()):
            ready = "ready" if pod["ready"] else "not ready"
            click.echo(f"  pod {pod['namespace']}/{pod['name']}  {pod['phase']}, {ready}")
    sys.exit(0 if running else 1)
