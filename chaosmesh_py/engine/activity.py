"""The error boundary every Chaos Toolkit activity of this extension runs inside.

Activities raise ``chaoslib.exceptions.ActivityFailed`` with the project's own message, so the
journal and the console show "percentage: 101 is outside [0.0001, 100] (…)" rather than a
traceback. Errors that are not the project's (bugs) keep their traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from chaosmesh_py.errors import ChaosMeshError


@contextmanager
def boundary() -> Iterator[None]:
    from chaoslib.exceptions import ActivityFailed

    try:
        yield
    except ChaosMeshError as error:
        raise ActivityFailed(f"{type(error).__name__}: {error}") from error
