"""What every Chaos Toolkit activity of this extension shares: the error boundary and the client.

Activities raise ``chaoslib.exceptions.ActivityFailed`` with the project's own message, so the
journal and the console show "percentage: 101 is outside [0.0001, 100] (…)" rather than a
traceback. Errors that are not the project's (bugs) keep their traceback.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from chaosmesh_py.errors import ChaosMeshError
from chaosmesh_py.kube import Kube


@contextmanager
def boundary() -> Iterator[None]:
    from chaoslib.exceptions import ActivityFailed

    try:
        yield
    except ChaosMeshError as error:
        raise ActivityFailed(f"{type(error).__name__}: {error}") from error


def connect(secrets: Mapping[str, Any] | None) -> Kube:
    return Kube.connect(secrets)
