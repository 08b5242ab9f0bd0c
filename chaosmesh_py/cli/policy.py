"""``chaosmesh policy report``: what the mesh's timeouts, retries, circuit breakers and outlier
detection predict for every call path, before any experiment (docs/resilience.md).

Exit status: 0 no finding, 1 findings, 2 invalid input (nothing read), 3 the API or Prometheus
could not be read (no report).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

EXIT_FINDINGS = 1
EXIT_UNREADABLE = 3


@click.group()
def policy() -> None:
    """Resilience policies: what they predict."""


@policy.command()
@click.option(
    "--namespace",
    "-n",
    "namespaces",
    multiple=True,
    help="where the VirtualServices, DestinationRules and Services are read (repeatable; "
    "default: all namespaces, which needs cluster-wide list); the first is the callers' "
    "namespace for edges that do not name one",
)
@click.option(
    "--edges",
    "edges_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help='the call graph, a JSON or YAML list of {"source": "productpage", "destination": '
    '"reviews"} (optional per edge: namespace, source_labels, source_workload, port)',
)
@click.option(
    "--from-metrics",
    is_flag=True,
    help="read the call graph from Istio's istio_requests_total (reporter=source) over --window",
)
@click.option("--window", default="10m", show_default=True, help="the metrics' window")
@click.option(
    "--prometheus",
    "prometheus_url",
    default="",
    help="the Prometheus scraping Istio's metrics (default: the local mesh's)",
)
@click.option(
    "--max-amplification",
    type=int,
    default=10,
    show_default=True,
    help="a path whose worst-case attempts at its leaf exceed this is a finding",
)
@click.option("--max-paths", type=int, default=200, show_default=True, help="paths listed")
@click.option(
    "--ignore",
    multiple=True,
    metavar="KIND",
    help="leave findings of this kind out, and out of the exit status (repeatable), e.g. "
    "no_circuit_breaker",
)
@click.option(
    "--context",
    default=None,
    help="the kubeconfig context to use (default: KUBERNETES_CONTEXT, else the current one)",
)
@click.option(
    "--istio-api-version",
    type=click.Choice(["v1", "v1beta1", "v1alpha3"]),
    default="v1",
    show_default=True,
    help="the networking.istio.io version the cluster serves",
)
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
def report(
    *,
    namespaces: tuple[str, ...],
    edges_file: Path | None,
    from_metrics: bool,
    window: str,
    prometheus_url: str,
    max_amplification: int,
    max_paths: int,
    ignore: tuple[str, ...],
    context: str | None,
    istio_api_version: str,
    as_json: bool,
) -> None:
    """Per call-graph edge: the effective timeout, attempts (Istio's implicit 2 retries
    included), per-try timeout, what is retried, circuit breaker and outlier detection; per
    path: the worst-case attempts amplification and time; findings with their fixes
    (amplification above --max-amplification, timeout inversions, per-try timeouts that leave
    no room for a retry, edges without circuit breaker or outlier detection, call cycles,
    retried POST/PATCH routes).

    \b
    Exit status: 0 no finding, 1 findings, 2 invalid input, 3 the API or Prometheus could
    not be read.
    """
    import json

    from chaosmesh_py.errors import ChaosMeshError, InvalidInput
    from chaosmesh_py.resilience import policy_request

    arguments: dict[str, Any] = {
        "namespaces": list(namespaces) or None,
        "edges_file": str(edges_file) if edges_file is not None else None,
        "from_metrics": from_metrics,
        "window": window,
        "prometheus_url": prometheus_url,
        "max_amplification": max_amplification,
        "max_paths": max_paths,
        "ignore": list(ignore),
        "configuration": {"chaosmesh_istio_api_version": istio_api_version},
    }
    field_options = {
        "namespaces": "-n/--namespace",
        "edges_file": "--edges",
        "edges": "--edges",
        "from_metrics": "--from-metrics",
        "window": "--window",
        "prometheus_url": "--prometheus",
        "max_amplification": "--max-amplification",
        "max_paths": "--max-paths",
        "ignore": "--ignore",
    }
    secrets = {"KUBERNETES_CONTEXT": context} if context else None
    try:
        request = policy_request.parse_request(arguments)
        built = policy_request.produce(request, secrets).report
    except InvalidInput as error:
        option = next((o for f, o in field_options.items() if error.field.startswith(f)), None)
        raise InvalidInput(
            f"{option} ({error.field})" if option else error.field, error.problem, error.fix
        ) from None
    except ChaosMeshError as error:
        click.echo(f"error: {error}", err=True)
        click.echo("no report: fix the above and run again", err=True)
        sys.exit(EXIT_UNREADABLE)
    click.echo(json.dumps(built, indent=2) if as_json else format_text(built))
    sys.exit(EXIT_FINDINGS if built["findings"] else 0)


def format_text(built: dict[str, Any]) -> str:
    """The report as tables: edges, paths, findings."""
    lines = [
        f"policy report: {built['summary']['edges']} edges, {built['summary']['nodes']} "
        f"services, edges {built.get('edges_from') or 'declared'}",
        "",
        "EDGES (worst route of each; attempts = 1 + retries, * = Istio's implicit default)",
    ]
    header = ("SOURCE", "DESTINATION", "TIMEOUT", "ATTEMPTS", "PER-TRY", "RETRIES", "CB", "OD")
    rows: list[tuple[str, ...]] = [header]
    for edge in built["edges"]:
        retried = [
            name
            for name, key in (
                ("5xx", "retries_5xx"),
                ("503", "retries_gateway_errors"),
                ("connect", "retries_connect_failure"),
            )
            if edge[key]
        ]
        rows.append(
            (
                edge["source"]
                + (f" ({edge['source_workload']})" if edge["source_workload"] else ""),
                edge["destination"],
                _seconds(edge["timeout_s"]),
                f"{edge['attempts']}{'*' if edge['implicit_default'] else ''}",
                _seconds(edge["per_try_timeout_s"]),
                ",".join(retried) or "-",
                "yes" if edge["circuit_breaker"] else "no",
                "yes" if edge["outlier_detection"] else "no",
            )
        )
    lines += table(rows)
    lines += ["", f"PATHS (worst per entry and per leaf; {built['paths_total']} in all)"]
    path_rows: list[tuple[str, ...]] = [
        ("PATH", "ATTEMPTS", "MAX ATTEMPTS", "ON 503", "LEAF DOWN", "WORST TIME")
    ]
    for path in built["paths"]:
        path_rows.append(
            (
                " -> ".join(path["nodes"]),
                " x ".join(str(a) for a in path["attempts"]),
                str(path["max_attempts"]),
                str(path["max_attempts_on_503"]),
                str(path["max_attempts_leaf_unreachable"]),
                _seconds(path["worst_case_s"]) if path["worst_case_s"] is not None else "unbounded",
            )
        )
    lines += table(path_rows)
    lines += ["", f"FINDINGS ({len(built['findings'])})"]
    for finding in built["findings"]:
        lines.append(f"  [{finding['kind']}] {finding['where']}: {finding['message']}")
        lines.append(f"      fix: {finding['fix']}")
    if not built["findings"]:
        lines.append("  none")
    if built.get("unread_namespaces"):
        lines += [
            "",
            f"note: edges reach {', '.join(built['unread_namespaces'])}, whose VirtualServices "
            "and DestinationRules were not read (not among -n): add them with -n",
        ]
    return "\n".join(lines)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:g}s"


def table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
