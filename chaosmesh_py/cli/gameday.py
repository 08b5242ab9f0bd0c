"""``chaosmesh gameday validate | run | render | pause | resume``: scheduled game days.

The commands are thin: the game day itself lives in ``chaosmesh_py.gameday``.
"""

from __future__ import annotations

import click


@click.group()
def gameday() -> None:
    """Scheduled game days: a suite of experiments on a schedule, safe to fire twice."""
