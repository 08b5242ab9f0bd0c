"""The ``chaosmesh`` command: a thin layer over the package's modules.

    chaosmesh validate EXPERIMENT...   Chaos Toolkit's own validation, plus every chaosmesh
                                       activity's argument values (exit 0 valid, 2 invalid)

``chaos validate`` checks argument names only; a percentage of 101 passes it. This command
runs the same checks ``chaos run`` makes through the control before the first injection.
"""

from __future__ import annotations

import sys
from pathlib import Path

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
