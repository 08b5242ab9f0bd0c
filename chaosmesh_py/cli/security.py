"""``chaosmesh security posture``: what a namespace's security policies let through, each
finding measured with a real request where the mesh allows one, else predicted (docs/security.md,
"Posture checks").

Exit status: 0 no finding, 1 findings, 2 invalid input (nothing read, nothing sent), 3 the API
could not be read (no report).
"""

from __future__ import annotations

import sys
from typing import Any

import click

EXIT_FINDINGS = 1
EXIT_UNREADABLE = 3


@click.group()
def security() -> None:
    """Security policies: what they let through."""


@security.command()
@click.option("--namespace", "-n", default="default", show_default=True, help="where to look")
@click.option(
    "--root-namespace",
    default="istio-system",
    show_default=True,
    help="Istio's root namespace (its policies apply mesh-wide)",
)
@click.option(
    "--selector",
    "-l",
    default=None,
    help="only the workloads whose pods carry these labels, e.g. app=productpage,version=v1",
)
@click.option(
    "--no-measure",
    is_flag=True,
    help="predict from the policies only; send no request (on the local mesh too)",
)
@click.option("--path", default="/", show_default=True, help="the path the requests ask for")
@click.option("--timeout", "timeout_s", type=float, default=3.0, show_default=True)
@click.option(
    "--context",
    default=None,
    help="the kubeconfig context to use (default: KUBERNETES_CONTEXT, else the current one)",
)
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
def posture(
    *,
    namespace: str,
    root_namespace: str,
    selector: str | None,
    no_measure: bool,
    path: str,
    timeout_s: float,
    context: str | None,
    as_json: bool,
) -> None:
    """Which workloads accept plain text; RequestAuthentications that let a request with no
    token through; ALLOW/DENY rules on mTLS-only fields where plain text gets in
    (ISTIO-SECURITY-2021-004); AuthorizationPolicies that can never match. On the local mesh
    the first three are measured with real requests; on a cluster they are predicted from the
    policies, and marked so.

    \b
    Exit status: 0 no finding, 1 findings, 2 invalid input, 3 the API could not be read.
    """
    import json

    from chaosmesh_py.errors import ChaosMeshError, InvalidInput
    from chaosmesh_py.security import posture as checks

    arguments: dict[str, Any] = {
        "namespace": namespace,
        "root_namespace": root_namespace,
        "selector": _labels(selector),
        "measure": not no_measure,
        "path": path,
        "timeout_s": timeout_s,
    }
    options = {
        "root_namespace": "--root-namespace",
        "namespace": "-n/--namespace",
        "selector": "-l/--selector",
        "path": "--path",
        "timeout_s": "--timeout",
    }
    secrets = {"KUBERNETES_CONTEXT": context} if context else None
    try:
        built = checks.run_report(arguments, secrets)
    except InvalidInput as error:
        option = next((o for f, o in options.items() if error.field.startswith(f)), None)
        raise InvalidInput(
            f"{option} ({error.field})" if option else error.field, error.problem, error.fix
        ) from None
    except ChaosMeshError as error:
        click.echo(f"error: {error}", err=True)
        click.echo("no report: fix the above and run again", err=True)
        sys.exit(EXIT_UNREADABLE)
    click.echo(json.dumps(built, indent=2) if as_json else format_text(built))
    sys.exit(EXIT_FINDINGS if built["findings"] else 0)


def _labels(selector: str | None) -> dict[str, str] | None:
    from chaosmesh_py.errors import InvalidInput

    if selector is None:
        return None
    labels = {}
    for item in selector.split(","):
        key, equals, value = item.partition("=")
        if not equals or not key.strip():
            raise InvalidInput(
                "-l/--selector", f"{item!r} is not label=value", "e.g. app=productpage"
            )
        labels[key.strip()] = value.strip()
    return labels


def format_text(built: dict[str, Any]) -> str:
    from chaosmesh_py.cli.policy import table

    where = "the local mesh, measured" if built["local_mesh"] else "a cluster, predicted"
    lines = [f"security posture of {built['namespace']} ({where})", "", "WORKLOADS"]
    rows: list[tuple[str, ...]] = [("WORKLOAD", "PRINCIPAL", "PLAIN TEXT", "HOW", "MODE")]
    for row in built["workloads"]:
        rows.append(
            (
                row["workload"],
                row["principal"],
                "accepted" if row["accepts_plaintext"] else "refused",
                "measured" if row["measured"] else "predicted",
                row["predicted_mode"],
            )
        )
    lines += table(rows)
    lines += ["", f"FINDINGS ({len(built['findings'])})"]
    for finding in built["findings"]:
        how = "measured" if finding["measured"] else "predicted"
        lines.append(f"  [{finding['kind']}] {finding['where']} ({how}): {finding['message']}")
        lines.append(f"      evidence: {finding['evidence']}")
        lines.append(f"      fix: {finding['fix']}")
    if not built["findings"]:
        lines.append("  none")
    return "\n".join(lines)
