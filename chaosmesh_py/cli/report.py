"""``chaosmesh report``: one self-contained HTML file from journals and game-day runs."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    default=Path("report.html"),
    show_default=True,
    help="the HTML file to write (replaced if there)",
)
@click.option(
    "--prometheus",
    "prometheus_url",
    default=None,
    help="Prometheus to plot Istio's metrics from, around each run (default: the one each run "
    "used, chaosmesh_prometheus_url; none: no such plot)",
)
@click.option(
    "--padding-s",
    type=click.FloatRange(min=0, max=86400),
    default=60.0,
    show_default=True,
    help="seconds before and after each run that the Prometheus plots show",
)
@click.option(
    "--rate-window",
    default="30s",
    show_default=True,
    help="the PromQL rate window of those plots: at least four scrape intervals",
)
@click.option(
    "--all-runs", is_flag=True, help="detail every game-day run, not only each game day's latest"
)
def report(
    paths: tuple[Path, ...],
    *,
    output: Path,
    prometheus_url: str | None,
    padding_s: float,
    rate_window: str,
    all_runs: bool,
) -> None:
    """Write one HTML report (no script, no network at view time) for PATHS.

    Each PATH is a journal.json, a game-day run directory (it holds gameday.json), a game
    day's results directory (its runs: the trend across them), or a directory of
    *.journal.json. Per experiment: the verdict and its reasons, a timeline (steady state,
    each fault's window with its time to effect and hits, guardrail checks, rollbacks), probe
    values with the fault window and tolerance, Istio's metrics from Prometheus with padding,
    and the rollback evidence (each object's spec before the run vs after the rollback).

    \b
    Exit status: 0 written, 2 invalid input (nothing written).
    """
    from chaosmesh_py.engine.private_file import check_creatable, write_private
    from chaosmesh_py.errors import InvalidInput
    from chaosmesh_py.observe.hits import PROMETHEUS_URL_KEY
    from chaosmesh_py.observe.hits import prometheus_url as checked_url

    try:
        import matplotlib  # noqa: F401
    except ImportError as error:  # matplotlib is the `report` extra
        raise click.ClickException(
            f"chaosmesh report needs matplotlib ({error}): "
            "pip install 'chaostoolkit-chaosmesh-py[report]'"
        ) from None
    from chaosmesh_py.report import html

    if prometheus_url is not None:
        try:
            checked_url({PROMETHEUS_URL_KEY: prometheus_url})
        except InvalidInput as error:
            raise InvalidInput("--prometheus", error.problem, error.fix) from None
    options = html.Options(
        prometheus_url=prometheus_url,
        padding_s=padding_s,
        rate_window=_rate_window(rate_window),
        all_runs=all_runs,
    )
    check_creatable(output, "--output")
    page = html.build(paths, options)
    write_private(output, page.encode(), "--output")
    click.echo(f"report: {output} ({len(page.encode()) / 1024:.0f} KiB)")


def _rate_window(text: str) -> str:
    import re

    from chaosmesh_py.errors import InvalidInput

    if not re.fullmatch(r"([0-9]+(ms|s|m|h))+", text):
        raise InvalidInput("--rate-window", f"{text!r} is not a PromQL duration", "e.g. 30s, 1m")
    return text
